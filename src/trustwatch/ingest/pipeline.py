"""From paths to a workspace, and from a workspace to tables a query can read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlglot import exp

from trustwatch.engines.duckdb import DuckDBEngine
from trustwatch.errors import IngestError
from trustwatch.ingest import readers, staging
from trustwatch.ingest.records import Item
from trustwatch.schema.model import builtin_schemas

Planned = tuple[Path, str, Callable[[Path], Iterable[Item]]]
QUERY_MEMORY_LIMIT = "1GB"  # DuckDB's memory for queries over a workspace file (--memory-limit)


def expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named, and the files under directories named (sorted, hidden ones skipped).

    Hidden means hidden below the directory named: ``../case`` or ``~/.cases/x`` are read.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                below = child.relative_to(path).parts
                if child.is_file() and not any(p.startswith(".") for p in below):
                    yield child
        elif path.exists():
            yield path
        else:
            raise IngestError(f"no such file or directory: {path}")


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
    for path in expand(paths):
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


def query_views(engine: DuckDBEngine, prefix: str = "") -> dict[str, str]:
    """Temporary views exposing a workspace's tables with their documented columns only.

    Returns:
        KQL table name -> SQL name, for the stored tables and the Sentinel views over raw
        events (Event, WindowsEvent, SecurityEvent).
    """
    con = engine.con
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE'"
    ).fetchall()
    present = {r[0] for r in rows}
    if staging.RAW not in present:
        raise IngestError("not a trustwatch workspace (no raw event table)")
    views: dict[str, str] = {}
    for name in sorted(present):
        schema = builtin_schemas().get(name)
        if schema is None:
            continue
        select = exp.Select(
            expressions=[exp.column(c.name, quoted=True) for c in schema.columns]
        ).from_(exp.to_table(name, quoted=True))
        views[name] = _temp_view(engine, f"tw_ws_{prefix}{name}", select)
    for name, view_query in staging.sentinel_views().items():
        views[name] = _temp_view(engine, f"tw_ws_{prefix}{name}", view_query.copy())
    return views


def _temp_view(engine: DuckDBEngine, sql_name: str, select: exp.Query) -> str:
    create = exp.Create(
        this=exp.to_table(sql_name, quoted=True),
        kind="VIEW",
        expression=select,
        replace=True,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    engine.con.execute(create.sql(dialect="duckdb"))
    return sql_name


def open_workspace_for_query(
    path: str | Path, memory_limit: str | None = None
) -> tuple[DuckDBEngine, dict[str, str]]:
    """A read-only engine on a workspace file and its tables' views.

    ``memory_limit`` bounds DuckDB's memory for the queries (default ``QUERY_MEMORY_LIMIT``:
    hunting a 5M-event workspace took 5 GiB with DuckDB's own default, 80% of RAM, and 1.3
    GiB and 20% more time within 1GB).
    """
    p = Path(path)
    if not p.exists():
        raise IngestError(
            f"workspace not found: {p}",
            hint="create it with `trustwatch ingest PATH --workspace W`",
        )
    try:
        engine = DuckDBEngine(str(p), read_only=True)
    except Exception as exc:
        raise IngestError(f"cannot open workspace {p}: {exc}") from exc
    try:
        engine.set_memory_limit(memory_limit or QUERY_MEMORY_LIMIT)
    except IngestError:
        engine.close()
        raise
    return engine, query_views(engine)
