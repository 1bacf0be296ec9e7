"""From paths to a workspace, and from a workspace to tables a query can read."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import duckdb
from sqlglot import exp

from trustwatch import compiled
from trustwatch.engines.base import Engine
from trustwatch.engines.duckdb import DuckDBEngine
from trustwatch.errors import IngestError
from trustwatch.ingest import readers, sharing, staging
from trustwatch.ingest.records import Item
from trustwatch.schema.model import builtin_schemas

Planned = tuple[Path, str, Callable[[Path], Iterable[Item]]]
QUERY_MEMORY_LIMIT = "512MB"  # DuckDB's memory for queries over a workspace file (--memory-limit)


def expand(
    paths: Iterable[str | Path], skipped: list[tuple[Path, str]] | None = None
) -> Iterator[Path]:
    """Files named, and the files under directories named (sorted, hidden ones skipped).

    Hidden means hidden below the directory named: ``../case`` or ``~/.cases/x`` are read.
    Symbolic links are followed when they lead inside a path named (a link to a folder is
    walked like one, each folder once: cycles end there, each file is read once); a link
    leading elsewhere, a broken link, a folder that cannot be listed and anything that is
    not a regular file (a FIFO would hang the reader, a device never ends) are not read and
    are added to ``skipped`` (path, reason), never dropped without a word.

    Raises:
        IngestError: a path named does not exist.
    """
    named = [Path(raw) for raw in paths]
    for path in named:
        if not path.exists():
            raise IngestError(f"no such file or directory: {path}")
    walk = _Walk([p.resolve() for p in named], skipped if skipped is not None else [])
    for path in named:
        if path.is_dir():
            yield from walk.folder(path)
        else:
            yield from walk.file(path, path.stat())


class _Walk:
    """One walk over the paths named: what it has seen, where links may lead, what it skips."""

    def __init__(self, roots: list[Path], skipped: list[tuple[Path, str]]) -> None:
        self.roots = roots
        self.skipped = skipped
        self.folders: set[tuple[int, int]] = set()  # (st_dev, st_ino) of folders walked
        self.files: dict[tuple[int, int], Path] = {}  # of files given, with the path given

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, f"{path}: {reason}"))

    def file(self, path: Path, info: os.stat_result) -> Iterator[Path]:
        if not stat.S_ISREG(info.st_mode):
            self.skip(path, f"not a regular file ({_kind(info.st_mode)}): not read")
            return
        seen = self.files.setdefault((info.st_dev, info.st_ino), path)
        if seen != path:
            self.skip(path, f"the same file as {seen}: read once")
            return
        yield path

    def folder(self, top: Path) -> Iterator[Path]:
        """The files below ``top`` in sorted order, depth first (as ``sorted(rglob)`` lists)."""
        info = top.stat()
        if (info.st_dev, info.st_ino) in self.folders:
            return
        self.folders.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(top) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skip(top, f"cannot list the folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = top / entry.name
            try:
                if entry.is_symlink():
                    yield from self.link(child)
                elif entry.is_dir(follow_symlinks=False):
                    yield from self.folder(child)
                else:
                    yield from self.file(child, entry.stat(follow_symlinks=False))
            except OSError as exc:
                self.skip(child, f"cannot be read: {exc.strerror or exc}")

    def link(self, path: Path) -> Iterator[Path]:
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a loop of links (Python < 3.13)
            self.skip(path, "broken symbolic link: not followed")
            return
        if not any(target == root or target.is_relative_to(root) for root in self.roots):
            self.skip(path, f"symbolic link to {target}, outside the paths named: not followed")
            return
        info = target.stat()
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in self.folders:
                self.skip(path, f"symbolic link to {target}, a folder already read: cycle ended")
                return
            yield from self.folder(path)
            return
        yield from self.file(path, info)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def plan(
    paths: Iterable[str | Path],
    input_format: str | None = None,
    *,
    input_table: str | None = None,
    skip_unknown: bool = False,
) -> tuple[list[Planned], list[tuple[Path, str]]]:
    """Each file with its format and reader; files no format recognises (when skipping them).

    ``input_table`` names the table of exports that do not say it (Defender hunting results,
    portal CSV); it is an error for a format without table rows.
    """
    from trustwatch.ingest.readers.tabular import table_hint_reader

    forced = readers.by_name(input_format) if input_format else None
    planned: list[Planned] = []
    skipped: list[tuple[Path, str]] = []
    for path in expand(paths, skipped):
        fmt = forced
        if fmt is None:
            try:
                fmt = readers.detect(path)
            except IngestError as exc:
                if not skip_unknown:
                    raise
                skipped.append((path, exc.diagnostic.message))
                continue
        read = table_hint_reader(fmt.name, input_table) if input_table else fmt.read
        planned.append((path, fmt.name, read))
    return planned, skipped


# a workspace's account of what it read, queryable as tables of these names (their columns are
# the workspace's own: no documented schema)
ACCOUNT_TABLES = ("_quarantine", "_files")


def query_views(engine: Engine, prefix: str = "") -> dict[str, str]:
    """Temporary views exposing a workspace's tables with their documented columns only.

    The views' SQL is built as trees once and kept in the compiled-content cache, keyed by the
    engine's dialect and the tables present: building the Sentinel views' trees costs more
    than creating the views.

    Returns:
        KQL table name -> SQL name, for the stored tables, the Sentinel views over raw
        events (Event, WindowsEvent, SecurityEvent) and ``ACCOUNT_TABLES``.
    """
    present = engine.table_names()
    if staging.RAW not in present:
        raise IngestError("not a trustwatch workspace (no raw event table)")
    parts = [engine.dialect, prefix, *sorted(present)]
    entry = compiled.cached_text("query-views", parts, lambda: _view_sql(engine, present))
    return {
        name: engine.create_temp_view_sql(f"tw_ws_{prefix}{name}", sql)
        for name, sql in json.loads(entry).items()
    }


def _view_sql(engine: Engine, present: set[str]) -> str:
    """The views of :func:`query_views` as JSON: KQL table name -> the view's query, as SQL."""
    queries: dict[str, exp.Query] = {}
    for name in sorted(present):
        schema = builtin_schemas().get(name)
        if schema is None:
            continue
        queries[name] = exp.Select(
            expressions=[exp.column(c.name, quoted=True) for c in schema.columns]
        ).from_(exp.to_table(name, quoted=True))
    for name, view_query in staging.sentinel_views().items():
        queries[name] = view_query
    for name in ACCOUNT_TABLES:  # the workspace's own account: quarantine and files
        if name in present:
            queries[name] = exp.select("*").from_(exp.to_table(name, quoted=True))
    return json.dumps({name: engine.to_sql(query) for name, query in queries.items()})


def file_account(engine: Engine) -> dict[str, int]:
    """What a workspace's ingests could not read, over each file's latest row in ``_files``
    (a file that failed and was read again counts once): ``quarantined`` records, the
    ``quarantined_files`` holding them, ``unreadable`` files and ``untimed`` events."""
    have = set(engine.column_names("_files"))
    if not {"path", "id", "quarantined"} <= have:
        return {"quarantined": 0, "quarantined_files": 0, "unreadable": 0, "untimed": 0}
    # a workspace from before `failed` and `bad_times` were kept has none to count
    failed = "COALESCE(failed, '') <> ''" if "failed" in have else "FALSE"
    untimed = "COALESCE(SUM(bad_times), 0)" if "bad_times" in have else "0"
    latest = (
        exp.select("*")
        .from_(exp.to_table("_files", quoted=True))
        .qualify("ROW_NUMBER() OVER (PARTITION BY path ORDER BY id DESC) = 1")
    )
    query = exp.select(
        "COALESCE(SUM(quarantined), 0) AS quarantined",
        "COUNT(*) FILTER (WHERE quarantined > 0) AS quarantined_files",
        f"COUNT(*) FILTER (WHERE {failed}) AS unreadable",
        f"{untimed} AS untimed",
    ).from_(latest.subquery("f"))
    row = engine.execute(query).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


def _open_snapshot(path: Path, exc: duckdb.Error) -> DuckDBEngine:
    """A read-only engine on a snapshot of a workspace an ingest is writing (sharing)."""
    copy = sharing.snapshot(path, exc)
    try:
        return DuckDBEngine(str(copy), read_only=True)
    except duckdb.Error as failed:
        raise IngestError(f"cannot open a copy of workspace {path}: {failed}") from failed
    finally:
        sharing.discard(copy)  # the connection keeps the file open; nothing is left behind


def open_workspace_for_query(
    path: str | Path, memory_limit: str | None = None
) -> tuple[DuckDBEngine, dict[str, str]]:
    """A read-only engine on a workspace file and its tables' views.

    ``memory_limit`` bounds DuckDB's memory for the queries (default ``QUERY_MEMORY_LIMIT``:
    hunting a 5M-event workspace took 5 GiB with DuckDB's own default, 80% of RAM; within 1GB
    it peaked at 1,339 MiB in 61.1 s, within 512MB at 858 MiB in 58.4 s, same alerts).
    """
    p = Path(path)
    if not p.exists():
        raise IngestError(
            f"workspace not found: {p}",
            hint="create it with `trustwatch ingest PATH --workspace W`",
        )
    try:
        engine = DuckDBEngine(str(p), read_only=True)
    except duckdb.Error as exc:
        if not sharing.is_locked(exc):
            raise IngestError(f"cannot open workspace {p}: {exc}") from exc
        # an ingest is writing it: read a copy of its last committed file
        engine = _open_snapshot(p, exc)
    try:
        engine.set_memory_limit(memory_limit or QUERY_MEMORY_LIMIT)
    except IngestError:
        engine.close()
        raise
    return engine, query_views(engine)
