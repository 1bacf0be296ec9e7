"""The workspace: a DuckDB database holding raw events, the normalised tables and a quarantine.

**One file, one transaction.** Each file is read, normalised and stored in a transaction of its
own, together with the steps that look beyond one chunk of it (script blocks joined, processes
linked; see :mod:`trustwatch.ingest.finish`) and its row in ``_files``; small files (up to
``SMALL_FILE``) are stored a group at a time, their events staged as one chunk, so that many
small files cost what their events cost. An ingest killed at any point leaves every earlier
file (or group) whole and nothing of the one it was reading. Once all files
are in, one more transaction fills rows whose process was created in a later file and marks the
ingest finished; an ingest that never got there is finished by the next one, which says so.

**Files already stored are not read again.** A file is identified by its size, modification
time and a hash of its first and last MiB; one that a finished ``_files`` row already holds is
skipped (``FileStats.skipped_ingest``), so running the same command again after an interruption
reads only what is missing.

**Every raw event is stored once**, keyed on Computer, Channel, Provider, EventID,
EventRecordID and TimeCreated: a chunk's keys are compared only with the stored events of its
time range and record-number range (constants the scan prunes row groups with), so the check
costs the same per event however large the workspace is. Table rows from exports are keyed on
their content. For every file, records read = stored + quarantined + duplicates.

**Chunks, not events.** The reader runs in a thread ahead of DuckDB (the Rust parser releases
the interpreter while it works, and the copy of each chunk into Arrow happens there too);
chunks of up to ``CHUNK`` documents are staged, checked and mapped by a handful of
SQL statements each, whose text is built once per machine (:mod:`trustwatch.compiled`). A large
EVTX file is read and staged in a second process instead (:mod:`trustwatch.ingest.stager`),
one chunk ahead, so that both cores work; DuckDB here then runs on one thread.

**Processes.** A row gets its InitiatingProcess* details from its process's creation row when
that is in the same chunk or file (a scan bounded by the file's row groups); rows whose process
is in another file, or that name it only by id, are filled once per ingest, in its last step.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from trustwatch import limits
from trustwatch.engines.duckdb import DuckDBEngine, cast_column
from trustwatch.errors import IngestError, TrustwatchError
from trustwatch.ingest import finish, mapsql, normalize, sharing, stager, staging
from trustwatch.ingest.chunks import BATCH, CHUNK, HANDOFF, chunks, prefetch, to_arrow
from trustwatch.ingest.records import EventBatch, Item, RefKind, Rejected, RowBatch
from trustwatch.ingest.stager import Stager
from trustwatch.schema.model import Column, TableSchema, builtin_schemas
from trustwatch.tables import rows_to_arrow

MEMORY_LIMIT = "384MB"  # DuckDB's buffer pool during an ingest (--memory-limit)
FRESH = "_tw_fresh"
STAGE = "_tw_stage"
QUARANTINE = "_quarantine"
EDGE = 1 << 20  # bytes hashed at each end of a file to recognise it
SMALL_CHUNK = 1_024  # chunks up to this size are registered for their statements (Workspace._run)
SMALL_FILE = 1 << 20  # files up to this size are stored a group at a time ...
GROUP_BYTES = 16 << 20  # ... of up to this many bytes
GROUP_FILES = 256  # ... and this many files
HELD = 4_096  # quarantine rows held before they are inserted together

_QUARANTINE_COLUMNS = (
    ("_ingest", "INTEGER"),
    ("file", "VARCHAR"),
    ("ref_kind", "VARCHAR"),
    ("ref", "BIGINT"),
    ("records", "INTEGER"),
    ("reason", "VARCHAR"),
    ("excerpt", "VARCHAR"),
)
_INGESTS_COLUMNS = (
    ("id", "INTEGER"),
    ("started", "TIMESTAMP"),
    ("files", "INTEGER"),
    ("stored", "BIGINT"),
    ("finished", "BOOLEAN"),
)
_FILES_COLUMNS = (
    ("id", "INTEGER"),
    ("_ingest", "INTEGER"),
    ("path", "VARCHAR"),
    ("format", "VARCHAR"),
    ("size", "BIGINT"),
    ("mtime_ns", "BIGINT"),
    ("fingerprint", "VARCHAR"),
    ("read", "BIGINT"),
    ("stored", "BIGINT"),
    ("quarantined", "BIGINT"),
    ("duplicates", "BIGINT"),
    ("unmapped", "BIGINT"),
    ("bad_times", "BIGINT"),
    ("failed", "VARCHAR"),  # NULL: read to its end; else why the file or its rest was not
)


@dataclass(slots=True)
class FileStats:
    """What one file gave: records read, stored, quarantined, duplicates; rows per table."""

    path: str
    format: str
    read: int = 0
    stored: int = 0
    quarantined: int = 0
    duplicates: int = 0
    unmapped: int = 0  # stored raw events no field map takes (still in Event / WindowsEvent)
    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # first few quarantine reasons
    skipped_ingest: int | None = None  # already stored, by this ingest: not read again
    failed: str | None = None  # why the file, or the rest of it, could not be read
    bad_times: int = 0  # events stored with an impossible time (their Timestamp left empty)
    # quarantine rows kept one by one (up to the quarantine-rows limit), and past it: how many
    # records, from which first reference, for which first reason (one summary row at the end)
    last_problem: str = field(default="", repr=False)  # the last reason past the first five
    kept_rows: int = field(default=0, repr=False)
    past_limit: int = field(default=0, repr=False)
    past_first: tuple[str, int, str] | None = field(default=None, repr=False)
    # what the file's last steps need to know (trustwatch.ingest.finish)
    chunks: int = field(default=0, repr=False)  # event chunks stored
    kinds: set[tuple[str, int]] = field(default_factory=set, repr=False)  # (provider, id)
    row_tables: set[str] = field(default_factory=set, repr=False)  # tables of exported rows

    def add_table(self, table: str, n: int) -> None:
        if n:
            self.tables[table] = self.tables.get(table, 0) + n

    def reset(self) -> None:
        """Forget an attempt whose transaction was rolled back."""
        self.read = self.stored = self.quarantined = self.duplicates = self.unmapped = 0
        self.bad_times = self.chunks = self.kept_rows = self.past_limit = 0
        self.past_first, self.last_problem = None, ""
        self.failed = None
        self.tables, self.problems = {}, []
        self.kinds, self.row_tables = set(), set()


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """How a file is recognised when it is given again: size, mtime, hash of both ends."""

    size: int
    mtime_ns: int
    fingerprint: str


def identify(path: Path) -> FileIdentity | None:
    """The identity of a regular file (None: not a readable file, e.g. a reader's stand-in)."""
    try:
        stat = path.stat()
        digest = hashlib.sha256(str(stat.st_size).encode())
        with path.open("rb") as fh:
            digest.update(fh.read(EDGE))
            if stat.st_size > EDGE:
                fh.seek(max(EDGE, stat.st_size - EDGE))
                digest.update(fh.read(EDGE))
    except OSError:
        return None
    return FileIdentity(stat.st_size, stat.st_mtime_ns, digest.hexdigest())


_ARROW_TYPES = {"INTEGER": pa.int32(), "BIGINT": pa.int64(), "VARCHAR": pa.string()}


def _located(kind: str, ref: int, reason: str) -> str:
    """A quarantine reason with its place: ``line 2: ...`` (unless the reason says it)."""
    where = f"{kind} {ref}: "
    return reason if where in reason else f"{where}{reason}"


def _q(sql: exp.Expr) -> str:
    return sql.sql(dialect="duckdb")


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


class Workspace:
    """A DuckDB database file (or memory) with trustwatch's tables."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        memory_limit: str | None = None,
        wait: float = sharing.LOCK_WAIT,
        stage_apart: bool = True,
    ) -> None:
        """Open (or create) a workspace file, or one in memory (``path`` None).

        ``stage_apart``: large EVTX files are read and staged in a second process
        (:mod:`trustwatch.ingest.stager`) while this one stores; False keeps it all in this
        process (what the stager is tested against).

        Another process writing the same file is waited for, ``wait`` seconds at most
        (:mod:`trustwatch.ingest.sharing`).

        Raises:
            IngestError: the file cannot be opened, or another process still writes it.
        """
        self.path = str(path) if path else None
        self._lock: sharing.WriterLock | None = None
        self._stage_apart = stage_apart and os.name == "posix"
        self._stager: Stager | None = None
        # quarantine rows not inserted yet (inserted together: _flush_quarantine), and the files
        # whose records went past the quarantine-rows limit in this transaction
        self._held: list[tuple[Any, ...]] = []
        self._past: dict[int, tuple[int, FileStats]] = {}
        file = Path(self.path) if self.path else None
        try:
            if file is None:
                self.engine = DuckDBEngine(None)
            else:
                self.engine = sharing.open_writer(file, lambda: DuckDBEngine(str(file)), wait)
        except duckdb.Error as exc:
            raise workspace_error(exc, self.path) or IngestError(
                f"cannot open workspace {path}: {exc}"
            ) from exc
        self.con = self.engine.con
        if file is not None:
            try:
                self._lock = sharing.WriterLock(file)
            except OSError as exc:
                self.engine.close()
                raise IngestError(
                    f"cannot write {sharing.lock_path(file)}: {(exc.strerror or '').lower()}",
                    code="ING010",
                ) from exc
            # checkpoints are taken after each committed file, under the lock readers copy
            # the file with (sharing); none in between
            self.con.execute(_q(exp.Set(expressions=[_setting("checkpoint_threshold", "1TB")])))
        # DuckDB keeps a transaction's new rows in memory up to its limit, then writes them
        # to the database file: the limit is what keeps a long ingest's memory flat
        try:
            self.engine.set_memory_limit(memory_limit or MEMORY_LIMIT)
        except IngestError:
            self.engine.close()
            raise
        # zstd for every column: the raw events' JSON and the tables' text take ~40% less room
        # than with DuckDB's default choice, in the same time (measured on Sysmon EVTX here)
        self.con.execute(_q(exp.Set(expressions=[_setting("force_compression", "zstd")])))
        # rows the last ingest rebuilt from stored events (script blocks), by table
        self.assembled: dict[str, int] = {}
        # earlier ingests that had been interrupted and that the last ingest finished
        self.resumed: list[int] = []
        self._file_id = 0  # the next file's id, during an ingest
        self._setup()
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Write the committed state to the database file, where readers copy it from."""
        if self._lock is not None:
            with self._lock.exclusive():
                self.con.execute("CHECKPOINT")

    def _setup(self) -> None:
        con = self.con
        bookkeeping = (
            (QUARANTINE, _QUARANTINE_COLUMNS),
            ("_ingests", _INGESTS_COLUMNS),
            ("_files", _FILES_COLUMNS),
        )
        targets = sorted({m.target for m in normalize.field_maps()})

        def tables() -> list[exp.Expr]:
            trees: list[exp.Expr] = [staging.create_raw()]
            trees += [staging.create_table(name, columns) for name, columns in bookkeeping]
            trees += [staging.create_stored(builtin_schemas()[t]) for t in targets]
            return trees

        def create() -> None:  # all the tables, or (killed meanwhile) none of them
            for statement in finish.cached_sql(("setup", *targets), tables).split(";\n"):
                con.execute(statement)
            # a workspace made by an earlier version gains the bookkeeping columns it lacks
            query = exp.select("table_name", "column_name").from_("information_schema.columns")
            where = query.where("table_catalog = current_database() AND table_schema = 'main'")
            have = {(t, c) for t, c in con.execute(_q(where)).fetchall()}
            for name, columns in bookkeeping:
                for column, kind in columns:
                    if (name, column) not in have:
                        con.execute(_q(_add_column(name, column, kind)))

        self._transaction(create)

    def _ensure_table(self, name: str) -> TableSchema:
        schema = builtin_schemas().get(name)
        if schema is None:
            raise IngestError(f"unknown table {name}")
        create = finish.cached_sql(("create", name), lambda: [staging.create_stored(schema)])
        self.con.execute(create)
        return schema

    def stored_tables(self) -> list[str]:
        query = (
            exp.select("table_name")
            .from_("information_schema.tables")
            .where(
                "table_catalog = current_database() AND table_schema = 'main' "
                "AND table_type = 'BASE TABLE' "
                "AND NOT starts_with(table_name, '_')"
            )
        )
        return sorted(r[0] for r in self.con.execute(_q(query)).fetchall())

    def _next_id(self, table: str) -> int:
        query = exp.select("COALESCE(max(id), 0) + 1").from_(exp.to_table(table, quoted=True))
        return int(self.con.execute(_q(query)).fetchall()[0][0])

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        files: Iterable[tuple[Path, str, Callable[[Path], Iterable[Item]]]],
        on_file: Callable[[FileStats], None] | None = None,
        on_progress: Callable[[FileStats, int | None], None] | None = None,
    ) -> list[FileStats]:
        """Read, normalise and store ``files`` (path, format name, reader), a file at a time.

        Small files (up to ``SMALL_FILE`` bytes) are stored a group at a time: one
        transaction and one chunk of events for up to ``GROUP_BYTES`` of them, so that a folder
        of many small files costs what their events cost, not a fixed price per file.

        A file that cannot be read is quarantined (``FileStats.failed`` says why) and the
        others go on; see :meth:`_store`.

        Raises:
            IngestError: the workspace itself cannot be written (disk full, permission, a
                read-only file system); it keeps every file committed before.
        """
        try:
            return self._ingest(files, on_file, on_progress)
        except duckdb.Error as exc:
            error = workspace_error(exc, self.path)
            if error is None:
                raise
            raise error from exc

    def _ingest(
        self,
        files: Iterable[tuple[Path, str, Callable[[Path], Iterable[Item]]]],
        on_file: Callable[[FileStats], None] | None,
        on_progress: Callable[[FileStats, int | None], None] | None,
    ) -> list[FileStats]:
        self.assembled = {}
        self.resumed = self._finish_pending()
        ingest = self._next_id("_ingests")
        started = datetime.now(UTC).replace(tzinfo=None)
        self._insert("_ingests", [ingest, started, 0, 0, False])
        self._set(staging.INGEST_VARIABLE, ingest)
        self._file_id = self._next_id("_files")
        results: list[FileStats] = []
        self._stager = Stager() if self._stage_apart else None
        large = isinstance(files, list | tuple) and any(_for_stager(p, f) for p, f, _ in files)
        if self._stager is not None and large:
            try:
                self._stager.start()
            except OSError:  # no second process here: every file is read in this one
                self._stager = None
        try:
            self._ingest_groups(files, ingest, results, on_file, on_progress)
        finally:
            if self._stager is not None:
                self._stager.close()
            self._stager = None
        self._transaction(lambda: self._finish_ingest(ingest, results))
        self._checkpoint()
        return results

    def _ingest_groups(
        self,
        files: Iterable[tuple[Path, str, Callable[[Path], Iterable[Item]]]],
        ingest: int,
        results: list[FileStats],
        on_file: Callable[[FileStats], None] | None,
        on_progress: Callable[[FileStats, int | None], None] | None,
    ) -> None:
        for group in _groups(files):
            members = []
            for path, fmt, reader in group:
                stats = FileStats(str(path), fmt)
                identity = identify(path)
                stats.skipped_ingest = self._stored_by(identity) if identity else None
                results.append(stats)
                if stats.skipped_ingest is None:
                    members.append(_Member(path, reader, stats, identity, self._new_file_id()))
                elif on_file is not None:
                    on_file(stats)
            if members:
                self._store(members, ingest, on_progress)
                self._checkpoint()
            for member in members:
                if on_file is not None:
                    on_file(member.stats)

    def _store(
        self,
        members: list[_Member],
        ingest: int,
        on_progress: Callable[[FileStats, int | None], None] | None,
    ) -> None:
        """Store files in one transaction; one bad file never loses the others.

        A reader that fails part way is handled where it is read (:func:`guarded`: what it
        gave is kept, the rest of its file quarantined). Anything else that fails rolls the
        transaction back: a group's files are then stored again one per transaction, and a
        file that fails alone is quarantined whole, as one ``file`` row. An I/O error of the
        workspace itself (disk full) ends the ingest: no other file could be stored either.
        ``KeyboardInterrupt`` and ``SystemExit`` are never caught.
        """
        assembled = dict(self.assembled)
        try:
            self._transaction(partial(self._ingest_files, members, ingest, on_progress))
        except Exception as exc:  # the isolation boundary: whatever failed, the next file goes on
            self._raise_if_fatal(exc)
            self.assembled = assembled
            for member in members:
                member.stats.reset()
            if len(members) > 1:
                for member in members:
                    self._store([member], ingest, on_progress)
                return
            self._transaction(partial(self._quarantine_file, members[0], ingest, failure(exc)))

    def _quarantine_file(self, member: _Member, ingest: int, reason: str) -> None:
        """The whole of a file that could not be stored: one quarantine row, its ``_files`` row."""
        stats = member.stats
        stats.read = stats.quarantined = 1
        stats.failed = reason
        self._quarantine(ingest, stats, "file", 0, 1, f"the file could not be read: {reason}", "")
        self._insert("_files", member.row(ingest))

    def _raise_if_fatal(self, exc: Exception) -> None:
        """Errors of the workspace itself, as what they are (the next file would fail too)."""
        error = workspace_error(exc, self.path)
        if error is not None:
            raise error from exc

    def _new_file_id(self) -> int:
        self._file_id += 1
        return self._file_id - 1

    def _ingest_files(
        self,
        members: list[_Member],
        ingest: int,
        on_progress: Callable[[FileStats, int | None], None] | None,
    ) -> None:
        """Store files in the current transaction: one alone (read ahead in a thread, a chunk
        at a time), or a group of small ones (their events staged together)."""
        by_id = {m.file_id: m.stats for m in members}
        if len(members) == 1:
            member = members[0]
            self._set(staging.FILE_VARIABLE, member.file_id)
            ahead: Iterable[Item]
            ahead_apart = self._stager is not None and _for_stager(member.path, member.stats.format)
            if self._stager is not None and ahead_apart:
                # read and staged in the stager process (its own read-ahead), a chunk at a time
                worker, fmt = self._stager, member.stats.format

                def staged(path: Path) -> Iterator[Item]:
                    return worker.read(path, fmt, member.file_id, ingest)

                ahead = guarded(staged, member.path, member.stats)
            else:
                items = guarded(member.reader, member.path, member.stats)
                ahead = prefetch(chunks(items, member.file_id))
            light = 0  # rejected records since the last progress report
            with self._threads(1 if ahead_apart else None):
                for item in ahead:
                    self._take(item, by_id, ingest, member.file_id)
                    light = light + 1 if isinstance(item, Rejected) else 0
                    if on_progress is not None and light % HANDOFF == 0:
                        on_progress(member.stats, getattr(item, "position", None))
        else:
            pending: list[EventBatch] = []
            for member in members:
                items = guarded(member.reader, member.path, member.stats)
                for item in chunks(items, member.file_id):
                    if isinstance(item, EventBatch):
                        pending.append(item)
                    else:
                        self._take(item, by_id, ingest, member.file_id)
            for batch in _regroup(pending):
                self._events(batch, by_id, ingest)
        for member in members:
            self._set(staging.FILE_VARIABLE, member.file_id)
            self._finish_file(member.file_id, member.stats)
            self._insert("_files", member.row(ingest))

    @contextlib.contextmanager
    def _threads(self, threads: int | None) -> Iterator[None]:
        """DuckDB on ``threads`` threads meanwhile (None: as it is). While the stager process
        keeps one core busy, one thread here: measured on 250k Sysmon events, the ingest's own
        CPU was ~15% lower than with two threads contending for the other core."""
        if threads is None:
            yield
            return
        setting = exp.func("current_setting", exp.Literal.string("threads"))
        before = int(self.con.execute(_q(exp.select(setting))).fetchall()[0][0])
        self.con.execute(_q(exp.Set(expressions=[_setting("threads", str(threads))])))
        try:
            yield
        finally:
            self.con.execute(_q(exp.Set(expressions=[_setting("threads", str(before))])))

    def _transaction(self, work: Callable[[], None]) -> None:
        """Run ``work`` in one transaction: all of it is stored, or none of it."""
        self.con.execute("BEGIN TRANSACTION")
        self._held, self._past = [], {}
        try:
            work()
            self._flush_quarantine(final=True)
            self.con.execute("COMMIT")
        except BaseException:
            self._held, self._past = [], {}
            with contextlib.suppress(duckdb.Error):  # DuckDB may have ended it already
                self.con.execute("ROLLBACK")
            raise

    def _stored_by(self, identity: FileIdentity) -> int | None:
        """The ingest that stored a file with this identity, if one did."""
        query = (
            exp.select("_ingest")
            .from_("_files")
            .where("size = ? AND mtime_ns = ? AND fingerprint = ? AND COALESCE(failed, '') = ''")
            .limit(1)
        )
        rows = self.con.execute(
            _q(query), [identity.size, identity.mtime_ns, identity.fingerprint]
        ).fetchall()
        return int(rows[0][0]) if rows else None

    def _finish_pending(self) -> list[int]:
        """Finish the ingests an interruption stopped before their last step; their ids."""
        query = exp.select("id").from_("_ingests").where("finished = false").order_by("id")
        pending = [int(r[0]) for r in self.con.execute(_q(query)).fetchall()]
        for ingest in pending:
            self._transaction(partial(self._finish_ingest, ingest, None))
        return pending

    def _set(self, name: str, value: int) -> None:
        item = exp.SetItem(
            this=exp.EQ(this=exp.column(name), expression=exp.Literal.number(value)),
            kind="VARIABLE",
        )
        self.con.execute(_q(exp.Set(expressions=[item])))

    def _insert(self, table: str, values: list[Any]) -> None:
        insert = exp.insert(
            exp.Values(expressions=[exp.Tuple(expressions=[exp.Placeholder() for _ in values])]),
            exp.to_table(table, quoted=True),
        )
        self.con.execute(_q(insert), values)

    def _take(self, item: Item, files: dict[int, FileStats], ingest: int, file_id: int) -> None:
        stats = files[file_id]
        if isinstance(item, Rejected):
            stats.read += item.count
            stats.quarantined += item.count
            self._quarantine(
                ingest, stats, item.ref_kind, item.ref, item.count, item.reason, item.excerpt
            )
        elif isinstance(item, EventBatch):
            self._events(item, files, ingest)
        else:
            self._rows(item, stats, ingest, file_id)

    def _quarantine(
        self,
        ingest: int,
        stats: FileStats,
        kind: str,
        ref: int,
        count: int,
        reason: str,
        excerpt: str,
    ) -> None:
        """Quarantine ``count`` records of a file from reference ``ref`` on (held, then inserted
        together); past the quarantine-rows limit, only counted."""
        if len(stats.problems) < 5:
            stats.problems.append(_located(kind, ref, reason))
        else:
            stats.last_problem = _located(kind, ref, reason)
        if stats.kept_rows >= limits.current().quarantine_rows:
            if stats.past_first is None:
                stats.past_first = (kind, ref, reason)
            stats.past_limit += count
            self._past[id(stats)] = (ingest, stats)
            return
        stats.kept_rows += 1
        self._held.append((ingest, stats.path, kind, ref, count, reason, excerpt))
        if len(self._held) >= HELD:
            self._flush_quarantine()

    def _flush_quarantine(self, *, final: bool = False) -> None:
        """Insert the held quarantine rows in one statement; at the end of a transaction, also
        one row per file for its records past the quarantine-rows limit."""
        if final:
            for ingest, stats in self._past.values():
                assert stats.past_first is not None
                kind, ref, reason = stats.past_first
                self._held.append(
                    (
                        ingest,
                        stats.path,
                        kind,
                        ref,
                        stats.past_limit,
                        f"{stats.past_limit:,} more record(s) quarantined past the quarantine-rows"
                        f" limit ({limits.current().quarantine_rows:,} rows per file), the first"
                        f" of them for: {reason}",
                        "",
                    )
                )
                stats.past_limit, stats.past_first = 0, None
            self._past = {}
        if not self._held:
            return
        columns = list(zip(*self._held, strict=True))
        self._held = []
        rows = pa.table(
            {
                name: pa.array(values, _ARROW_TYPES[sql_type])
                for (name, sql_type), values in zip(_QUARANTINE_COLUMNS, columns, strict=True)
            }
        )
        insert = exp.insert(exp.select("*").from_("_tw_bad"), exp.to_table(QUARANTINE))
        self._execute(_q(insert), "_tw_bad", rows)

    def _events(self, batch: EventBatch, files: dict[int, FileStats], ingest: int) -> None:
        """Stage, de-duplicate, store and normalise one chunk of documents (of ``files``).

        Intermediate results travel as Arrow tables passed to DuckDB as relations, not as
        temporary tables: inside the file's transaction, replaced temporary tables would be
        kept until the commit, and memory would grow with the file.
        """
        if batch.staged is not None:  # read and staged by the stager process
            staged, batch.staged = batch.staged, None
            read = _per_file(staged.column("_file"))
        else:
            data = batch.arrow if batch.arrow is not None else to_arrow(batch, next(iter(files)))
            batch.arrow = None
            read = _per_file(data.column("file"))
            staged = self._arrow(staging.stage_sql(BATCH), BATCH, data)
            del data
        bad = staged.filter(pc.is_valid(staged.column("_reason")))
        if bad.num_rows:
            self._quarantine_rows(bad, files, ingest, batch.ref_kind)
            staged = staged.filter(pc.is_null(staged.column("_reason")))
        staged = staged.drop_columns(["_reason", "_excerpt"])
        fresh = self._fresh(staged)
        del staged  # memory: at most the chunk's fresh events are held while the maps run
        rejected, stored = _per_file(bad.column("_file")), _per_file(fresh.column("_file"))
        for file_id, n in read.items():
            stats = files[file_id]
            stats.read += n
            stats.stored += stored.get(file_id, 0)
            stats.duplicates += n - rejected.get(file_id, 0) - stored.get(file_id, 0)
        if not fresh.num_rows:
            return
        impossible = fresh.filter(pc.fill_null(fresh.column("_bad_time"), False))
        for file_id, n in _per_file(impossible.column("_file")).items():
            files[file_id].bad_times += n
        self._execute(_raw_insert_sql(), FRESH, fresh)
        kinds = fresh.group_by(["_file", "Provider", "EventID"]).aggregate([("_ref", "count")])
        present: dict[tuple[str, int], int] = {}
        per_file: dict[tuple[int, str, int], int] = {}
        mapped = normalize.mapped_event_ids()
        for k in kinds.to_pylist():
            kind, stats = (str(k["Provider"]).lower(), k["EventID"]), files[k["_file"]]
            present[kind] = present.get(kind, 0) + k["_ref_count"]
            per_file[(k["_file"], *kind)] = k["_ref_count"]
            stats.kinds.add(kind)
            if kind[1] not in _mapped_ids(mapped, kind[0]):
                stats.unmapped += k["_ref_count"]
        for file_id in stored:
            files[file_id].chunks += 1
        for m in normalize.field_maps():  # only maps whose events are in the chunk
            if m.stage != "event" or not any(
                (m.provider.lower(), i) in present for i in m.event_ids
            ):
                continue
            if len(stored) == 1:
                made = {
                    next(iter(stored)): self._execute(mapsql.insert_sql(m, FRESH), FRESH, fresh)
                }
            else:
                rows = self._arrow(mapsql.insert_sql(m, FRESH, returning=True), FRESH, fresh)
                made = _per_file(rows.column("_file"))
            for file_id in stored:
                files[file_id].add_table(m.target, made.get(file_id, 0))
                # events the map takes but makes no row of (a Sysmon 12 without EventType)
                taken = sum(per_file.get((file_id, m.provider.lower(), i), 0) for i in m.event_ids)
                files[file_id].unmapped += max(0, taken - made.get(file_id, 0))

    def _fresh(self, staged: pa.Table) -> pa.Table:
        """The chunk's events that are neither earlier in it nor stored already.

        Equal keys mean equal TimeCreated and EventRecordID, so only the stored events of the
        chunk's time and record-number ranges are compared: as constants, the scan skips every
        row group outside them.
        """
        if not staged.num_rows:
            return staged
        keys = staged.column("_key")
        unique = pc.count_distinct(keys).as_py() == staged.num_rows
        times = pc.min_max(staged.column("TimeCreated")).as_py()
        records = pc.min_max(staged.column("EventRecordID")).as_py()
        numbered = staged.column("EventRecordID").null_count == 0
        stored = exp.column("_key", table="r")
        window = [_between("TimeCreated", times["min"], times["max"], "TIMESTAMP")]
        if numbered:
            window.append(_between("EventRecordID", records["min"], records["max"], "BIGINT"))
        seen = (
            exp.select(stored)
            .from_(exp.alias_(exp.to_table(staging.RAW), "r", table=True))
            .where(exp.and_(*[w.transform(lambda n: mapsql.qualified(n, "r")) for w in window]))
        )
        if unique:  # the common case: ask only for the stored keys, and keep the chunk as it is
            known = (
                exp.select(stored.copy())
                .from_(seen.subquery("r"))
                .where(
                    exp.In(
                        this=exp.column("_key", table="r"),
                        query=exp.select("_key").from_(STAGE).subquery(),
                    )
                )
            )
            found = self._arrow(_q(known), STAGE, staged.select(["_key"])).column("_key")
            if not len(found):
                return staged
            return staged.filter(pc.invert(pc.is_in(keys, value_set=found.combine_chunks())))
        # keys repeat inside the chunk: keep each key's first document, then the unseen ones
        first = exp.Window(
            this=exp.RowNumber(),
            partition_by=[exp.column("_key")],
            order=exp.Order(expressions=[exp.Ordered(this=exp.column("_ref"))]),
        )
        source = (
            exp.select("*")
            .from_(STAGE)
            .qualify(exp.EQ(this=first, expression=exp.Literal.number(1)))
        )
        query = (
            exp.select("s.*")
            .from_(source.subquery("s"))
            .where(exp.Not(this=exp.In(this=exp.column("_key", table="s"), query=seen.subquery())))
            .order_by(exp.column("_ref", table="s"))
        )
        return self._arrow(_q(query), STAGE, staged)

    def _quarantine_rows(
        self, bad: pa.Table, files: dict[int, FileStats], ingest: int, kind: str
    ) -> None:
        """Quarantine a chunk's unreadable documents (inserted with the other held rows)."""
        columns = (bad.column(c).to_pylist() for c in ("_file", "_ref", "_reason", "_excerpt"))
        for file_id, ref, reason, excerpt in zip(*columns, strict=True):
            stats = files[file_id]
            stats.quarantined += 1
            self._quarantine(ingest, stats, kind, ref, 1, reason, excerpt)

    def _arrow(self, sql: str, name: str, data: pa.Table) -> pa.Table:
        """Run ``sql`` over ``data``, visible to it as ``name``; the result as Arrow."""
        result: pa.Table = self._run(sql, name, data, lambda r: r.to_arrow_table())
        return result

    def _execute(self, sql: str, name: str, data: pa.Table) -> int:
        """Run a statement over ``data``, visible to it as ``name``; the number it returns."""
        count: int = self._run(sql, name, data, _scalar)
        return count

    def _run(self, sql: str, name: str, data: pa.Table, fetch: Callable[[Any], Any]) -> Any:
        """Run ``sql`` over ``data`` (as ``name``) and ``fetch`` its result.

        A large chunk is passed as a relation: registered with the connection, inside the
        file's transaction, it would stay referenced until the commit and memory would grow
        with the file. A small one is registered for the statement, which costs DuckDB's
        Python layer half as much per statement (what a file of a few events is made of).
        """
        if data.num_rows > SMALL_CHUNK:
            relation = self.con.from_arrow(data).query(name, sql)
            if relation is None:
                raise IngestError("internal: a staging statement returned no result")
            return fetch(relation)
        self.con.register(name, data)
        try:
            return fetch(self.con.sql(sql))
        finally:
            self.con.unregister(name)

    def _count(self, table: str) -> int:
        query = exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(table, quoted=True))
        return int(self.con.execute(_q(query)).fetchall()[0][0])

    def _finish_file(self, file_id: int, stats: FileStats) -> None:
        """In the file's transaction: script blocks, the file's own processes, Sentinel columns.

        Only the tables the file wrote rows to are visited, and only the file's rows.
        """
        scope = ("_file", file_id)
        for m in normalize.field_maps():
            if m.stage == "final" and any(
                (m.provider.lower(), i) in stats.kinds for i in m.event_ids
            ):
                n = finish.rebuild_groups(self.con, m, file_id)
                self.assembled[m.target] = self.assembled.get(m.target, 0) + n
                stats.add_table(m.target, n)
        # in one chunk, every process was stored before the rows that name it (process maps
        # run first): only a file of several chunks can have rows to fill
        if stats.chunks > 1 or stats.row_tables:
            for table in sorted(stats.tables):
                finish.enrich(self.con, table, scope)
        # the maps set both time columns and Type; exported rows may have only one of them
        for table in sorted(stats.row_tables):
            finish.sentinel_columns(self.con, table, scope)

    def _finish_ingest(self, ingest: int, results: list[FileStats] | None) -> None:
        """Rows whose process is in another file, or named by id only; the ingest's totals.

        ``results`` None: an interrupted ingest finished later (every table is visited).
        """
        stored = self.stored_tables()
        if results is None:
            tables = stored
        else:
            tables = sorted({t for s in results for t in s.tables} & set(stored))
        scope = ("_ingest", ingest)
        if "DeviceProcessEvents" in stored:
            for m in normalize.field_maps():
                if m.link_by_process_id and m.target in tables:
                    finish.link_by_process_id(self.con, m, scope)
        for table in tables:
            finish.enrich(self.con, table, scope)
        update = exp.update(
            "_ingests",
            {"finished": exp.true()},
            where=exp.column("id").eq(exp.Literal.number(ingest)),
        )
        if results is not None:
            update.set(
                "expressions",
                [
                    *update.expressions,
                    exp.column("files").eq(exp.Literal.number(len(results))),
                    exp.column("stored").eq(exp.Literal.number(sum(s.stored for s in results))),
                ],
            )
        self.con.execute(_q(update))

    def _rows(self, batch: RowBatch, stats: FileStats, ingest: int, file_id: int) -> None:
        stats.read += len(batch.rows)
        schema = builtin_schemas().get(batch.table)
        if schema is None:
            self._reject_rows(batch, stats, ingest, f"unknown table {batch.table!r}")
            return
        self._ensure_table(batch.table)
        keys = [_row_key(r) for r in batch.rows]
        data = rows_to_arrow(batch.rows, stats.path)
        data = data.append_column("_key", pa.array([str(k) for k in keys], pa.string()))
        data = data.append_column("_ref", pa.array(batch.refs, pa.int64()))
        data = data.append_column("_file", pa.array([file_id] * data.num_rows, pa.int32()))
        present = tuple((n, data.schema.field(n).type) for n in data.column_names)
        try:
            typed = self._arrow(_typed_rows_sql(batch.table, present), "_tw_rows", data)
            added = self._execute(_new_rows_sql(batch.table, schema, typed), "_tw_rows", typed)
        except duckdb.Error as exc:
            self._reject_rows(batch, stats, ingest, f"rows do not fit {batch.table}: {exc}")
            return
        stats.stored += added
        stats.duplicates += len(batch.rows) - added
        stats.add_table(batch.table, added)
        stats.row_tables.add(batch.table)

    def _reject_rows(self, batch: RowBatch, stats: FileStats, ingest: int, reason: str) -> None:
        stats.quarantined += len(batch.rows)
        first = batch.refs[0] if batch.refs else 0
        self._quarantine(ingest, stats, batch.ref_kind, first, len(batch.rows), reason, "")

    # -- export ----------------------------------------------------------------------------

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write every stored table as Parquet under DIR/<Table>/day=YYYY-MM-DD/."""
        from trustwatch.ingest.export import export_parquet

        return export_parquet(self.con, {t: t for t in self.stored_tables()}, directory)

    def close(self) -> None:
        """Close the workspace (DuckDB checkpoints it once more: readers wait for that)."""
        lock, self._lock = self._lock, None
        if lock is None:
            self.con.close()
            return
        try:
            with lock.exclusive():
                self.con.close()
        finally:
            lock.close()


REASON = 200  # characters of an exception's message kept in a reason


def failure(exc: BaseException) -> str:
    """Why a file could not be read, from the exception: its class and (the start of) its text.

    Our own errors name the limit or the place; a library's message is cut short, as it may
    quote what it was reading.
    """
    if isinstance(exc, TrustwatchError):
        return exc.diagnostic.message[:REASON]
    if isinstance(exc, RecursionError):
        return "RecursionError: nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "MemoryError: out of memory while reading it"
    text = str(exc)
    text = text if len(text) <= REASON else text[: REASON - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def guarded(read: Callable[[Path], Iterable[Item]], path: Path, stats: FileStats) -> Iterator[Item]:
    """The items ``read`` gives for ``path``; if it fails part way, the rest of the file as one
    quarantined record (after the last reference it gave) and ``stats.failed`` saying why.

    What the reader gave before it failed is kept: a file is never lost whole for an error in
    its middle. ``KeyboardInterrupt`` and ``SystemExit`` pass.
    """
    kind: RefKind = "record"
    last: int | None = None
    try:
        for item in read(path):
            kind, last = item.ref_kind, _last_ref(item, last)
            yield item
    except Exception as exc:  # a reader's failure ends its file, not the ingest
        reason = failure(exc)
        after = f"after {kind} {last}" if last is not None else "from its start"
        stats.failed = f"the rest of the file ({after}) could not be read: {reason}"
        yield Rejected(kind, last if last is not None else 0, stats.failed)


def _last_ref(item: Item, last: int | None) -> int | None:
    """The last reference in ``item`` (``last`` when it has none)."""
    if isinstance(item, Rejected):
        return item.ref
    if item.refs:
        return int(item.refs[-1])
    for name, column in (("arrow", "ref"), ("staged", "_ref")):
        arrow = getattr(item, name, None)
        if arrow is not None and column in arrow.column_names and arrow.num_rows:
            return int(arrow.column(column)[-1].as_py())
    return last


def workspace_error(exc: BaseException, path: str | None) -> IngestError | None:
    """An error of the workspace itself as an IngestError naming it (None: not one of those).

    Disk full, a file-size limit, permission denied, a read-only file system (DuckDB's error
    quoting the system's words: it reports a failed commit as a ``TransactionException``), and
    a database DuckDB invalidated after a fatal error. The
    workspace keeps its last committed file; the message says what happened and where.
    """
    where = f"workspace {path}" if path else "the in-memory workspace"
    what = _io_reason(exc)
    if what is not None:
        return IngestError(
            f"{what} while writing {where}",
            hint="the workspace keeps every file stored before this one; free space or fix "
            "the permission and run the same command again to store the rest",
            code="ING010",
        )
    if isinstance(exc, duckdb.FatalException) or "database has been invalidated" in str(exc):
        return IngestError(
            f"DuckDB stopped writing {where} after a fatal error ({failure(exc)})",
            hint="the workspace keeps every file committed before it; run the same command "
            "again to store the rest",
            code="ING011",
        )
    return None


_IO_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


def _io_reason(exc: BaseException) -> str | None:
    """The operating system's words for an I/O error (``no space left on device``), or None."""
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc).lower()
    for code in _IO_ERRORS:
        if os.strerror(code).lower() in text:
            return os.strerror(code).lower()
    if isinstance(exc, duckdb.IOException | duckdb.PermissionException):
        return f"an I/O error ({failure(exc)})"
    return None


def _for_stager(path: Path, fmt: str) -> bool:
    """Whether ``path`` is read and staged by the stager process (large, of its formats)."""
    if fmt not in stager.WORKER_FORMATS:
        return False
    try:
        return path.stat().st_size >= stager.WORKER_BYTES
    except OSError:
        return False  # read here, where the reader reports it


def _regroup(batches: list[EventBatch], size: int = CHUNK) -> Iterator[EventBatch]:
    """Small files' event batches as chunks of up to ``size`` documents (one ref kind each)."""
    pending: list[pa.Table] = []
    rows = 0
    for i, batch in enumerate(batches):
        pending.append(batch.arrow)
        rows += batch.arrow.num_rows
        batch.arrow = None
        following = batches[i + 1] if i + 1 < len(batches) else None
        if rows >= size or following is None or following.ref_kind != batch.ref_kind:
            yield EventBatch(batch.ref_kind, arrow=pa.concat_tables(pending))
            pending, rows = [], 0


def _groups(
    files: Iterable[tuple[Path, str, Callable[[Path], Iterable[Item]]]],
) -> Iterator[list[tuple[Path, str, Callable[[Path], Iterable[Item]]]]]:
    """The files in order, consecutive small ones together (up to GROUP_BYTES, GROUP_FILES)."""
    group: list[tuple[Path, str, Callable[[Path], Iterable[Item]]]] = []
    size = 0
    for planned in files:
        try:
            length = planned[0].stat().st_size
        except OSError:
            length = SMALL_FILE + 1  # a reader's stand-in, or gone: on its own
        if length > SMALL_FILE:
            if group:
                yield group
                group, size = [], 0
            yield [planned]
            continue
        if group and (size + length > GROUP_BYTES or len(group) >= GROUP_FILES):
            yield group
            group, size = [], 0
        group.append(planned)
        size += length
    if group:
        yield group


def _per_file(column: Any) -> dict[int, int]:
    """How many values of a chunk's file-id column name each file."""
    if not len(column):
        return {}
    counts = pc.value_counts(column).to_pylist()
    return {int(c["values"]): int(c["counts"]) for c in counts}


@dataclass(slots=True)
class _Member:
    """A file being stored: where it is, how to read it, what it gave, its identity and id."""

    path: Path
    reader: Callable[[Path], Iterable[Item]]
    stats: FileStats
    identity: FileIdentity | None
    file_id: int

    def row(self, ingest: int) -> list[Any]:
        """Its ``_files`` row."""
        ident = self.identity or FileIdentity(0, 0, "")
        s = self.stats
        return [
            self.file_id,
            ingest,
            s.path,
            s.format,
            ident.size,
            ident.mtime_ns,
            ident.fingerprint,
            s.read,
            s.stored,
            s.quarantined,
            s.duplicates,
            s.unmapped,
            s.bad_times,
            s.failed,
        ]


def _add_column(table: str, column: str, kind: str) -> exp.Alter:
    """``ALTER TABLE table ADD COLUMN IF NOT EXISTS column kind``."""
    add = exp.ColumnDef(
        this=_ident(column), kind=exp.DataType.build(kind, dialect="duckdb"), exists=True
    )
    return exp.Alter(this=exp.to_table(table, quoted=True), kind="TABLE", actions=[add])


@cache
def _raw_insert_sql() -> str:
    """``INSERT INTO _raw_events (...) SELECT ... FROM _tw_fresh``."""
    names = [_ident(c) for c, _ in staging.RAW_COLUMNS]
    insert = exp.Insert(
        this=exp.Schema(this=exp.to_table(staging.RAW), expressions=names),
        expression=exp.Select(expressions=[n.copy() for n in names]).from_(FRESH),
    )
    return _q(insert)


@cache
def _typed_rows_sql(table: str, present: tuple[tuple[str, pa.DataType], ...]) -> str:
    """Exported rows (columns ``present``: name, Arrow type) as ``table``'s typed columns, with
    ``_key``, ``_ingest``, ``_file`` and ``_ref``; built once per table and column set (kept
    in the compiled-content cache)."""
    # the column names and types exactly (names come from the data: no separator is safe)
    columns = pa.schema([pa.field(name, kind) for name, kind in present]).serialize()
    parts = ("typed-rows", table, columns.to_pybytes().hex())
    return finish.cached_sql(parts, lambda: [_typed_rows(table, present)])


def _typed_rows(table: str, present: tuple[tuple[str, pa.DataType], ...]) -> exp.Select:
    schema = builtin_schemas()[table]
    types = dict(present)
    return exp.Select(
        expressions=[
            *[_typed(c, types.get(c.name)).as_(_ident(c.name)) for c in schema.columns],
            exp.Cast(
                this=exp.column("_key"), to=exp.DataType.build("UBIGINT", dialect="duckdb")
            ).as_("_key"),
            staging.variable(staging.INGEST_VARIABLE).as_("_ingest"),
            exp.column("_file").as_("_file"),
            exp.column("_ref").as_("_ref"),
        ]
    ).from_("_tw_rows")


def _new_rows_sql(table: str, schema: TableSchema, typed: pa.Table) -> str:
    """INSERT of the ``typed`` rows (as ``_tw_rows``) not stored yet, each key once.

    Equal keys mean equal rows, so equal times: only the stored rows of the batch's time range
    (literal bounds, which the scan's row-group statistics prune on) and those without a time
    are compared, whatever the size of the workspace.
    """
    stored = exp.select("_key").from_(exp.to_table(table, quoted=True)).where("_key IS NOT NULL")
    timed = next((t for t in ("Timestamp", "TimeGenerated") if schema.column(t)), None)
    if timed is not None and typed.num_rows:
        span = pc.min_max(typed.column(timed)).as_py()
        if span["min"] is not None:
            window = _between(timed, span["min"], span["max"], "TIMESTAMP")
            if typed.column(timed).null_count:
                window = exp.or_(window, exp.Is(this=exp.column(timed), expression=exp.null()))
            stored = stored.where(window)
    first = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("_key", table="n")],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("_ref", table="n"))]),
    )
    new = (
        exp.select("*")
        .from_(exp.to_table("_tw_rows").as_("n"))
        .where(exp.Not(this=exp.In(this=exp.column("_key", table="n"), query=stored.subquery())))
        .qualify(exp.EQ(this=first, expression=exp.Literal.number(1)))
    )
    targets = [_ident(c.name) for c in schema.columns]
    targets += [_ident(c) for c in ("_key", "_ingest", "_file", "_ref")]
    insert = exp.Insert(
        this=exp.Schema(this=exp.to_table(table, quoted=True), expressions=targets),
        expression=new,
    )
    return _q(insert)


def _typed(column: Column, source: pa.DataType | None) -> exp.Expr:
    """An exported row's value as its column's type; an impossible event time as NULL."""
    value = cast_column(column, source)
    if column.name in ("Timestamp", "TimeGenerated") and source is not None:
        return staging.possible_time(value)
    return value


def _setting(name: str, value: str) -> exp.SetItem:
    return exp.SetItem(this=exp.EQ(this=exp.column(name), expression=exp.Literal.string(value)))


def _between(column: str, lo: Any, hi: Any, kind: str) -> exp.Expr:
    """``column BETWEEN lo AND hi`` with typed literal bounds (None: an empty range)."""
    if lo is None or hi is None:
        return exp.false()
    to = exp.DataType.build(kind, dialect="duckdb")
    value = str(lo) if not isinstance(lo, datetime) else lo.isoformat(sep=" ")
    upper = str(hi) if not isinstance(hi, datetime) else hi.isoformat(sep=" ")
    return exp.Between(
        this=exp.column(column, quoted=True),
        low=exp.Cast(this=exp.Literal.string(value), to=to),
        high=exp.Cast(this=exp.Literal.string(upper), to=to.copy()),
    )


def _mapped_ids(mapped: dict[str, set[int]], provider: str) -> set[int]:
    for name, ids in mapped.items():
        if name.lower() == provider:
            return ids
    return set()


def _scalar(relation: Any) -> int:
    """The single number a relation (an INSERT's row count, a count) holds."""
    if relation is None:
        return 0
    return int(relation.fetchall()[0][0])


def _row_key(row: dict[str, Any]) -> int:
    text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:8], "big")
