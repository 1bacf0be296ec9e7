"""The workspace: a DuckDB database holding raw events, the normalised tables and a quarantine.

One ``ingest`` is one transaction: interrupted, it leaves the workspace as it was. Every raw
event is stored once (keyed on Computer, Channel, Provider, EventID, EventRecordID and
TimeCreated), so re-reading a file adds nothing; table rows from exports are keyed on their
content. For every file, records read = stored + quarantined + duplicates.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from trustwatch.engines.duckdb import DuckDBEngine, cast_column
from trustwatch.errors import IngestError
from trustwatch.ingest import normalize, staging
from trustwatch.ingest.records import EventBatch, Item, Rejected, RowBatch
from trustwatch.kql.semantics import sql_type
from trustwatch.schema.model import TableSchema, builtin_schemas
from trustwatch.tables import rows_to_arrow

MEMORY_LIMIT = "384MB"
BATCH = "_tw_batch"
FRESH = "_tw_fresh"
STAGE = "_tw_stage"


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

    def add_table(self, table: str, n: int) -> None:
        if n:
            self.tables[table] = self.tables.get(table, 0) + n


def _q(sql: exp.Expr) -> str:
    return sql.sql(dialect="duckdb")


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


class Workspace:
    """A DuckDB database file (or memory) with trustwatch's tables."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else None
        try:
            self.engine = DuckDBEngine(self.path)
        except duckdb.Error as exc:
            raise IngestError(f"cannot open workspace {path}: {exc}") from exc
        self.con = self.engine.con
        # DuckDB keeps a transaction's new rows in memory up to its limit, then writes them
        # to the database file: the limit is what keeps a long ingest's memory flat
        self.con.execute(f"SET memory_limit='{MEMORY_LIMIT}'")
        self._prepared: dict[tuple[str, str], str] = {}
        # rows the last ingest rebuilt from all stored events (script blocks), by table
        self.assembled: dict[str, int] = {}
        self._setup()

    def _setup(self) -> None:
        con = self.con
        con.execute(_q(staging.create_raw()))
        con.execute(
            "CREATE TABLE IF NOT EXISTS _quarantine (_ingest INTEGER, file VARCHAR, "
            "ref_kind VARCHAR, ref BIGINT, records INTEGER, reason VARCHAR, excerpt VARCHAR)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS _ingests (id INTEGER, started TIMESTAMP, "
            "files INTEGER, stored BIGINT)"
        )
        con.execute("CREATE TABLE IF NOT EXISTS _files (id INTEGER, _ingest INTEGER, path VARCHAR)")
        for m in normalize.field_maps():
            self._ensure_table(m.target)

    def _ensure_table(self, name: str) -> TableSchema:
        schema = builtin_schemas().get(name)
        if schema is None:
            raise IngestError(f"unknown table {name}")
        self.con.execute(_q(staging.create_stored(schema)))
        return schema

    def stored_tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' AND NOT starts_with(table_name, '_')"
        ).fetchall()
        return sorted(r[0] for r in rows)

    def _next_id(self, table: str) -> int:
        rows = self.con.execute(f"SELECT COALESCE(max(id), 0) + 1 FROM {table}").fetchall()  # noqa: S608
        return int(rows[0][0])

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        files: Iterable[tuple[Path, str, Callable[[Path], Iterable[Item]]]],
        on_file: Callable[[FileStats], None] | None = None,
        on_progress: Callable[[FileStats, int | None], None] | None = None,
    ) -> list[FileStats]:
        """Read, normalise and store ``files`` (path, format name, reader) in one transaction."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            ingest = self._next_id("_ingests")
            con.execute("INSERT INTO _ingests VALUES (?, now(), 0, 0)", [ingest])
            con.execute("SET VARIABLE tw_ingest = ?", [ingest])
            results = []
            for path, fmt, reader in files:
                stats = FileStats(str(path), fmt)
                file_id = self._next_id("_files")
                con.execute("INSERT INTO _files VALUES (?, ?, ?)", [file_id, ingest, str(path)])
                for item in prefetch(reader(path)):
                    self._take(item, stats, ingest, file_id)
                    if on_progress is not None:
                        on_progress(stats, getattr(item, "position", None))
                results.append(stats)
                if on_file is not None:
                    on_file(stats)
            self._finish(ingest)
            con.execute(
                "UPDATE _ingests SET files = ?, stored = ? WHERE id = ?",
                [len(results), sum(s.stored for s in results), ingest],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return results

    def _take(self, item: Item, stats: FileStats, ingest: int, file_id: int) -> None:
        if isinstance(item, Rejected):
            stats.read += item.count
            stats.quarantined += item.count
            self._quarantine(
                ingest, stats, item.ref_kind, item.ref, item.count, item.reason, item.excerpt
            )
        elif isinstance(item, EventBatch):
            self._events(item, stats, ingest, file_id)
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
        self.con.execute(
            "INSERT INTO _quarantine VALUES (?, ?, ?, ?, ?, ?, ?)",
            [ingest, stats.path, kind, ref, count, reason, excerpt],
        )
        if len(stats.problems) < 5:
            stats.problems.append(f"{kind} {ref}: {reason}")

    def _events(self, batch: EventBatch, stats: FileStats, ingest: int, file_id: int) -> None:
        """Stage, de-duplicate, store and normalise one batch of documents.

        Intermediate results travel as Arrow tables passed to DuckDB as relations (see
        :meth:`_arrow`), not as temporary tables: inside the ingest's transaction, replaced
        temporary tables would be kept until the commit, and memory would grow with the input.
        """
        con = self.con
        stats.read += len(batch.docs)
        data = pa.table(
            {"ref": pa.array(batch.refs, pa.int64()), "doc": pa.array(batch.docs, pa.string())}
        )
        staged = self._arrow(_q(staging.stage_query(BATCH, ingest, file_id)), BATCH, data)
        del data
        bad = staged.filter(pc.is_valid(staged.column("_reason")))
        for ref, reason, text in zip(
            bad.column("_ref").to_pylist(),
            bad.column("_reason").to_pylist(),
            bad.column("_excerpt").to_pylist(),
            strict=True,
        ):
            stats.quarantined += 1
            self._quarantine(ingest, stats, batch.ref_kind, ref, 1, reason, text)
        # new events: not earlier in the batch, not stored before (same key => same
        # TimeCreated, so only stored events of the batch's time range are compared)
        fresh = self._arrow(
            f"WITH s AS (SELECT * EXCLUDE (_excerpt, _reason) FROM {STAGE} WHERE _reason IS NULL "  # noqa: S608
            "QUALIFY row_number() OVER (PARTITION BY _key ORDER BY _ref) = 1), "
            # the batch's keys are the hash table; the stored ones stream past it
            f"seen AS (SELECT r._key FROM {staging.RAW} r, "
            "(SELECT min(TimeCreated) lo, max(TimeCreated) hi FROM s) b "
            "WHERE r.TimeCreated BETWEEN b.lo AND b.hi AND r._key IN (SELECT _key FROM s)) "
            "SELECT s.* FROM s ANTI JOIN seen ON s._key = seen._key",
            STAGE,
            staged,
        )
        del staged
        stats.stored += fresh.num_rows
        stats.duplicates += len(batch.docs) - bad.num_rows - fresh.num_rows
        if not fresh.num_rows:
            return
        rel = con.from_arrow(fresh)
        names = ", ".join(f'"{c}"' for c, _ in staging.RAW_COLUMNS)
        rel.query(FRESH, f"INSERT INTO {staging.RAW} ({names}) SELECT {names} FROM {FRESH}")  # noqa: S608
        kinds = fresh.group_by(["Provider", "EventID"]).aggregate([]).to_pylist()
        present = {(str(k["Provider"]).lower(), k["EventID"]) for k in kinds}
        for m in normalize.field_maps():  # only maps whose events are in the batch
            if m.stage == "event" and any((m.provider.lower(), i) in present for i in m.event_ids):
                stats.add_table(m.target, _scalar(rel.query(FRESH, self._insert_sql(m, FRESH))))
        stats.unmapped += _scalar(rel.query(FRESH, self._unmapped_sql(FRESH)))

    def _arrow(self, sql: str, name: str, data: pa.Table) -> pa.Table:
        """Run ``sql`` over ``data``, visible to it as ``name``; the result as Arrow.

        Arrow data is passed as a relation, not registered with the connection: inside the
        ingest's transaction, registered tables stay referenced until the commit, and memory
        would grow with the input.
        """
        relation = self.con.from_arrow(data).query(name, sql)
        if relation is None:
            raise IngestError("internal: a staging query returned no result")
        result: pa.Table = relation.to_arrow_table()
        return result

    def _unmapped_sql(self, table: str) -> str:
        conds = [
            staging.event_filter(provider, sorted(ids))
            for provider, ids in normalize.mapped_event_ids().items()
        ]
        where = exp.Not(this=exp.Paren(this=exp.or_(*conds))) if conds else exp.true()
        query = exp.select(exp.Count(this=exp.Star())).from_(table).where(where)
        return _q(query)

    def _count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # noqa: S608

    def _rebuild(self, m: normalize.FieldMap) -> int:
        """Run a final-stage map over every stored event, replacing its earlier rows."""
        self.con.execute(
            _q(
                exp.delete(exp.to_table(m.target, quoted=True)).where(
                    exp.EQ(this=exp.column("_map"), expression=exp.Literal.string(m.name))
                )
            )
        )
        return _scalar(self.con.sql(self._insert_sql(m, staging.RAW)))

    def _insert_sql(self, m: normalize.FieldMap, source: str) -> str:
        """The INSERT of map ``m`` over ``source``; built once per map and source.

        ``INSERT INTO target WITH _tw_in AS (<the map's events>), _tw_mapped AS (<the map>),
        _tw_parent AS (<their processes>) SELECT ...``: rows naming a process (``_pguid``) get
        its InitiatingProcess* details from its process-creation row, found by a join on the
        few process ids of the batch (no pass over the whole table afterwards).
        """
        key = (m.name, source)
        cached = self._prepared.get(key)
        if cached is not None:
            return cached
        view = "_tw_in"  # a CTE: the map's events, with its fields as columns
        query, columns = m.compile(view)
        schema = builtin_schemas()[m.target]
        names = [n for n, _ in columns]
        mapped = exp.Select(expressions=[_out(n, t, schema) for n, t in columns]).from_(
            query.subquery("_m")
        )
        pairs = _enrich_pairs(schema) if "_pguid" in names else []
        out: dict[str, exp.Expr] = {
            n: exp.column(n, table="_tw_mapped", quoted=True) for n in names
        }
        for target, source_col in pairs:
            mine = out.get(target)
            theirs = exp.column(source_col, table="_tw_parent", quoted=True)
            out[target] = _fill(mine, theirs, schema, target)
        if schema.column("TimeGenerated") and "TimeGenerated" not in out and "Timestamp" in out:
            out["TimeGenerated"] = exp.column("Timestamp", table="_tw_mapped", quoted=True)
        if schema.column("Type") and "Type" not in out:
            out["Type"] = exp.Literal.string(m.target)
        variable = exp.Anonymous(this="getvariable", expressions=[exp.Literal.string("tw_ingest")])
        select = exp.Select(
            expressions=[
                *[value.as_(_ident(n)) for n, value in out.items()],
                variable.as_("_ingest"),
                exp.Literal.string(m.name).as_("_map"),
            ]
        ).from_(exp.to_table("_tw_mapped"))
        select = select.with_(
            view, as_=staging.field_input(source, m.provider, m.event_ids, m.fields)
        ).with_("_tw_mapped", as_=mapped)
        if pairs:
            same = set(names) if m.target == "DeviceProcessEvents" else None
            wanted = exp.select("_pguid").from_("_tw_mapped")
            parents = _parents(pairs, wanted, same_table=same)
            select = select.with_("_tw_parent", as_=parents).join(
                exp.to_table("_tw_parent"),
                on=_made_by("_tw_mapped", "_tw_parent"),
                join_type="left",
            )
        targets = [_ident(n) for n in [*out, "_ingest", "_map"]]
        insert = exp.Insert(
            this=exp.Schema(this=exp.to_table(m.target, quoted=True), expressions=targets),
            expression=select,
        )
        sql = _q(insert)
        self._prepared[key] = sql
        return sql

    def _finish(self, ingest: int) -> None:
        """Maps over all stored events (script blocks), then InitiatingProcess* enrichment."""
        self.assembled = {}
        for m in normalize.field_maps():
            if m.stage == "final":
                n = self._rebuild(m)
                self.assembled[m.target] = self.assembled.get(m.target, 0) + n
        for m in normalize.field_maps():
            if m.link_by_process_id and m.target in self.stored_tables():
                self._link_by_process_id(m)
        for table in self.stored_tables():
            self._enrich(table, ingest)
            self._sentinel_columns(table, ingest)

    def _link_by_process_id(self, m: normalize.FieldMap) -> None:
        """Fill a map's rows from their process, found by id (maps with link_by_process_id).

        4104 script blocks and Security 4688/4657 events name their process only by id (no
        ProcessGuid): the process is the latest one created on the same device with that id,
        at or before the event. Rows stay as they are when no such process was read.
        """
        schema = builtin_schemas()[m.target]
        pairs = _enrich_pairs(schema)
        if not pairs or "DeviceProcessEvents" not in self.stored_tables():
            return
        sources = sorted({source for _, source in pairs})
        chosen = ", ".join(f'p."{c}"' for c in sources)
        sets = ", ".join(
            f'"{target}" = '
            + _q(
                _fill(
                    exp.column(target, table="t", quoted=True),
                    exp.column(source, table="c", quoted=True),
                    schema,
                    target,
                )
            )
            for target, source in pairs
        )
        self.con.execute(
            f"""UPDATE "{m.target}" AS t SET {sets}
            FROM (
                SELECT b.rid, {chosen}
                FROM (SELECT rowid AS rid, "DeviceName", "InitiatingProcessId", "Timestamp"
                      FROM "{m.target}" WHERE _map = ? AND "InitiatingProcessId" IS NOT NULL
                      AND "InitiatingProcessCreationTime" IS NULL) AS b
                JOIN "DeviceProcessEvents" AS p
                  ON p."DeviceName" = b."DeviceName" AND p."ProcessId" = b."InitiatingProcessId"
                 AND p."Timestamp" <= b."Timestamp"
                QUALIFY row_number() OVER (PARTITION BY b.rid ORDER BY p."Timestamp" DESC) = 1
            ) AS c
            WHERE t.rowid = c.rid""",  # noqa: S608 - names are the schema's, values bound
            [m.name],
        )

    def _sentinel_columns(self, table: str, ingest: int) -> None:
        """Both time columns, as the Sentinel copy of a table has them, and Type (the table).

        TimeGenerated is the event time here (so TimeGenerated-based rules work on old data);
        an export that only has TimeGenerated (Log Analytics) gives Timestamp the same value.
        """
        schema = builtin_schemas()[table]
        if not (schema.column("TimeGenerated") and schema.column("Timestamp")):
            return
        self.con.execute(
            f'UPDATE "{table}" SET TimeGenerated = COALESCE(TimeGenerated, "Timestamp"), '  # noqa: S608
            '"Timestamp" = COALESCE("Timestamp", TimeGenerated), '
            "Type = CASE WHEN Type = '' THEN ? ELSE Type END WHERE _ingest = ? AND "
            "(TimeGenerated IS NULL OR \"Timestamp\" IS NULL OR Type = '')",
            [table, ingest],
        )

    def _enrich(self, table: str, ingest: int) -> None:
        """Fill the rows of this ingest whose process was created later in the ingest.

        Most rows were filled when inserted; this catches a process-creation event read after
        the events it caused (another file, or a later batch).
        """
        schema = builtin_schemas()[table]
        pairs = _enrich_pairs(schema)
        if not pairs or not schema.column("InitiatingProcessCreationTime"):
            return
        unfilled = exp.and_(
            exp.EQ(this=exp.column("_ingest"), expression=exp.Placeholder()),
            exp.NEQ(this=exp.column("_pguid"), expression=exp.Literal.string("")),
            exp.Is(
                this=exp.column("InitiatingProcessCreationTime", quoted=True), expression=exp.null()
            ),
        )
        wanted = exp.select("_pguid").from_(exp.to_table(table, quoted=True)).where(unfilled)
        sets = [
            exp.EQ(
                this=exp.column(target, quoted=True),
                expression=_fill(
                    exp.column(target, table="t", quoted=True),
                    exp.column(source, table="p", quoted=True),
                    schema,
                    target,
                ),
            )
            for target, source in pairs
        ]
        update = exp.Update(
            this=exp.alias_(exp.to_table(table, quoted=True), "t", table=True),
            expressions=sets,
            from_=exp.From(this=_parents(pairs, wanted, same_table=None).subquery("p")),
            where=exp.Where(
                this=exp.and_(
                    unfilled.transform(lambda n: _qualified(n, "t")),
                    _made_by("t", "p"),
                )
            ),
        )
        self.con.execute(_q(update), [ingest, ingest])

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
        present = {n: data.schema.field(n).type for n in data.column_names}
        cols = list(schema.columns)
        select = exp.Select(
            expressions=[
                *[cast_column(c, present.get(c.name)).as_(_ident(c.name)) for c in cols],
                exp.Cast(
                    this=exp.column("_key"), to=exp.DataType.build("UBIGINT", dialect="duckdb")
                ).as_("_key"),
                exp.Literal.number(ingest).as_("_ingest"),
                exp.Literal.number(file_id).as_("_file"),
                exp.column("_ref").as_("_ref"),
            ]
        ).from_("_tw_rows")
        names = ", ".join(f'"{c.name}"' for c in cols)
        try:
            added = _scalar(
                self.con.from_arrow(data).query(
                    "_tw_rows",
                    f'INSERT INTO "{batch.table}" ({names}, _key, _ingest, _file, _ref) '  # noqa: S608
                    f"SELECT * FROM ({_q(select)}) n WHERE n._key NOT IN "
                    f'(SELECT _key FROM "{batch.table}" WHERE _key IS NOT NULL) '
                    "QUALIFY row_number() OVER (PARTITION BY n._key ORDER BY n._ref) = 1",
                )
            )
        except duckdb.Error as exc:
            self._reject_rows(batch, stats, ingest, f"rows do not fit {batch.table}: {exc}")
            return
        stats.stored += added
        stats.duplicates += len(batch.rows) - added
        stats.add_table(batch.table, added)

    def _reject_rows(self, batch: RowBatch, stats: FileStats, ingest: int, reason: str) -> None:
        stats.quarantined += len(batch.rows)
        first = batch.refs[0] if batch.refs else 0
        self._quarantine(ingest, stats, batch.ref_kind, first, len(batch.rows), reason, "")

    # -- export ----------------------------------------------------------------------------

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write every stored table as Parquet under DIR/<Table>/day=YYYY-MM-DD/."""
        out: dict[str, int] = {}
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IngestError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        for table in self.stored_tables():
            schema = builtin_schemas()[table]
            n = self._count(f'"{table}"')
            if not n:
                continue
            time_col = "Timestamp" if schema.column("Timestamp") else "TimeGenerated"
            names = ", ".join(f'"{c.name}"' for c in schema.columns)
            target = directory / table
            self.con.execute(
                f"COPY (SELECT {names}, strftime(\"{time_col}\", '%Y-%m-%d') AS day "  # noqa: S608
                f"FROM \"{table}\") TO '{_literal_path(target)}' "
                "(FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)"
            )
            out[table] = n
        return out

    def close(self) -> None:
        self.con.close()


_DONE = object()


def prefetch(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """Read ahead in a thread: the parser (Rust, GIL released) works while DuckDB does.

    At most ``depth`` items wait; an error in the reader is raised here, where it is used.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(_Failure(exc))
        queue.put(_DONE)

    thread = threading.Thread(target=produce, name="trustwatch-reader", daemon=True)
    thread.start()
    try:
        while True:
            got = queue.get()
            if got is _DONE:
                return
            if isinstance(got, _Failure):
                raise got.error
            yield cast(Item, got)
    finally:
        stop.set()
        while thread.is_alive():  # let a blocked producer finish
            try:
                queue.get_nowait()
            except Empty:
                thread.join(0.05)


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


def _made_by(rows: str, process: str) -> exp.Expr:
    """Rows ``rows`` name the process-creation row ``process`` (same ProcessGuid and device)."""
    return exp.and_(
        exp.EQ(
            this=exp.column("_pguid", table=rows),
            expression=exp.column("_guid", table=process),
        ),
        exp.EQ(
            this=exp.column("DeviceName", table=rows, quoted=True),
            expression=exp.column("DeviceName", table=process, quoted=True),
        ),
    )


def _enrich_pairs(schema: TableSchema) -> list[tuple[str, str]]:
    """(target column, DeviceProcessEvents column) pairs of the enrichment, for ``schema``."""
    return [(t, s) for t, s in normalize.enrich_columns().items() if schema.column(t)]


def _fill(mine: exp.Expr | None, theirs: exp.Expr, schema: TableSchema, name: str) -> exp.Expr:
    """The row's own value, or the process's when the row has none."""
    col = schema.column(name)
    text = col is not None and col.type == "string"
    if mine is None:
        return exp.Coalesce(this=theirs, expressions=[exp.Literal.string("")]) if text else theirs
    if text:
        empty = exp.EQ(this=mine.copy(), expression=exp.Literal.string(""))
        return exp.Case(
            ifs=[
                exp.If(
                    this=empty, true=exp.Coalesce(this=theirs, expressions=[exp.Literal.string("")])
                )
            ],
            default=mine.copy(),
        )
    return exp.Coalesce(this=mine, expressions=[theirs])


def _parents(
    pairs: list[tuple[str, str]], wanted: exp.Query, same_table: set[str] | None
) -> exp.Query:
    """The process-creation rows of the processes ``wanted`` names (one per process).

    They come from the stored DeviceProcessEvents and, when the rows being inserted are
    themselves process creations (``same_table``: the columns they have), from those rows
    too: a parent usually starts moments before its child, in the same batch.
    """
    columns = sorted({source for _, source in pairs} | {"DeviceName", "_guid", "Timestamp"})
    named = exp.and_(
        exp.NEQ(this=exp.column("_guid"), expression=exp.Literal.string("")),
        exp.In(this=exp.column("_guid"), query=wanted.subquery()),
    )

    def rows_of(table: exp.Table, has: set[str] | None) -> exp.Select:
        values = [
            exp.column(c, quoted=True) if has is None or c in has else exp.null().as_(c)
            for c in columns
        ]
        return exp.Select(expressions=values).from_(table).where(named.copy())

    found: exp.Query = rows_of(exp.to_table("DeviceProcessEvents", quoted=True), None)
    if same_table is not None:
        mapped = rows_of(exp.to_table("_tw_mapped"), same_table)
        found = exp.union(found, mapped, distinct=False)
    ordered = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("DeviceName", quoted=True), exp.column("_guid")],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("Timestamp", quoted=True))]),
    )
    return (
        exp.Select(expressions=[exp.column(c, quoted=True) for c in columns])
        .from_(found.subquery("_found"))
        .qualify(exp.EQ(this=ordered, expression=exp.Literal.number(1)))
    )


def _qualified(node: exp.Expr, table: str) -> exp.Expr:
    """``node`` with its bare column references given ``table``."""
    if isinstance(node, exp.Column) and not node.table:
        return exp.column(node.name, table=table, quoted=True)
    return node


def _scalar(relation: Any) -> int:
    """The single number a relation (an INSERT's row count, a count) holds."""
    if relation is None:
        return 0
    return int(relation.fetchall()[0][0])


def _literal_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _row_key(row: dict[str, Any]) -> int:
    text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:8], "big")


def _out(name: str, ktype: str, schema: TableSchema) -> exp.Expr:
    ref = exp.column(name, table="_m", quoted=True)
    col = schema.column(name)
    if col is None:
        if name in normalize.HIDDEN:
            return exp.Coalesce(this=ref, expressions=[exp.Literal.string("")]).as_(_ident(name))
        raise IngestError(f"field map output {name} is not a column of {schema.name}")
    value: exp.Expr = ref if col.type == ktype else exp.TryCast(this=ref, to=sql_type(col.type))
    if col.type == "string":
        value = exp.Coalesce(this=value, expressions=[exp.Literal.string("")])
    return value.as_(_ident(name))
