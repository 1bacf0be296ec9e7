"""The steps that look beyond one chunk, run once a file (or a whole ingest) is stored.

Each step touches the rows of one scope - a file (``("_file", id)``) inside that file's
transaction, or an ingest (``("_ingest", id)``) once all its files are in - never the whole
workspace, so its cost follows the input's size, not the workspace's:

* final-stage maps (PowerShell script blocks split over several events) are rebuilt for the
  groups (``group_field``, e.g. ScriptBlockId, on one computer) the file added events to;
* rows naming their process only by id (4104, Security 4688/4657) are linked to it;
* rows whose process-creation event was read after them get its details;
* both Sentinel time columns and ``Type`` are set.

Every statement is a sqlglot tree; values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from trustwatch import compiled
from trustwatch.ingest import mapsql, normalize, staging
from trustwatch.schema.model import TableSchema, builtin_schemas

Scope = tuple[str, int]  # ("_file", file id) or ("_ingest", ingest id)
TOUCHED = "_tw_touched"  # the groups a final map rebuilds: (Computer, group value)
REGROUP = "_tw_regroup"  # the raw events of those groups, the rebuild's input


def rebuild_groups(con: Any, m: normalize.FieldMap, file_id: int) -> int:
    """Run final-stage map ``m`` over every stored event of the groups file ``file_id`` added to.

    The rows it made before for those groups are replaced. Returns the rows written.
    """
    touched, regroup, replaced, drops = _rebuild_sql(m)
    con.execute(touched, [file_id])
    con.execute(regroup)
    written = _count(con.execute(mapsql.insert_sql(m, REGROUP)).fetchall())
    con.execute(replaced, [file_id, file_id])
    for drop in drops:
        con.execute(drop)
    return written


def _rebuild_sql(m: normalize.FieldMap) -> tuple[str, str, str, tuple[str, ...]]:
    """The statements of :func:`rebuild_groups` (the file id a parameter), cached as text."""
    parts = ("rebuild", m.name, m.group_field or "")
    texts = cached_sql(parts, lambda: _rebuild_trees(m)).split(";\n")
    return texts[0], texts[1], texts[2], tuple(texts[3:])


def _rebuild_trees(m: normalize.FieldMap) -> list[exp.Expr]:
    assert m.group_field is not None
    of_map = staging.event_filter(m.provider, m.event_ids)
    touched = (
        exp.select(exp.column("Computer"), _field(m.group_field).as_("g"))
        .distinct()
        .from_(staging.RAW)
        .where(exp.and_(exp.column("_file").eq(exp.Placeholder()), of_map))
    )
    regroup = (
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("r")))
        .from_(exp.alias_(exp.to_table(staging.RAW), "r", table=True))
        .join(
            exp.alias_(exp.to_table(TOUCHED), "t", table=True),
            on=exp.and_(
                exp.column("Computer", table="r").eq(exp.column("Computer", table="t")),
                _field(m.group_field, table="r").eq(exp.column("g", table="t")),
            ),
        )
        .where(of_map.transform(lambda n: mapsql.qualified(n, "r")))
    )
    view = exp.Create(
        this=exp.to_table(REGROUP),
        kind="VIEW",
        expression=regroup,
        replace=True,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    # the rows this rebuild replaces: same map, device and group, written for earlier files
    table = exp.to_table(m.target, quoted=True)
    new = (
        exp.select(exp.column("DeviceName", quoted=True), exp.column("_guid"))
        .from_(table.copy())
        .where(exp.and_(_is(exp.column("_map"), m.name), exp.column("_file").eq(exp.Placeholder())))
    )
    old = exp.Delete(
        this=table.copy(),
        using=[new.subquery("n")],
        where=exp.Where(
            this=exp.and_(
                _is(exp.column("_map", table=m.target, quoted=True), m.name),
                exp.NEQ(
                    this=exp.column("_file", table=m.target, quoted=True),
                    expression=exp.Placeholder(),
                ),
                exp.column("DeviceName", table=m.target, quoted=True).eq(
                    exp.column("DeviceName", table="n", quoted=True)
                ),
                exp.column("_guid", table=m.target, quoted=True).eq(exp.column("_guid", table="n")),
            )
        ),
    )
    return [
        _temp_table(TOUCHED, touched),
        view,
        old,
        exp.Drop(tables=[exp.to_table(REGROUP)], kind="VIEW", exists=True),
        exp.Drop(tables=[exp.to_table(TOUCHED)], kind="TABLE", exists=True),
    ]


def cached_sql(parts: tuple[str, ...], build: Callable[[], list[exp.Expr]]) -> str:
    """Statements built as trees once, kept as DuckDB SQL text (joined by ``;\\n``)."""
    return compiled.cached_text(
        "ingest-sql", parts, lambda: ";\n".join(t.sql(dialect="duckdb") for t in build())
    )


def link_by_process_id(con: Any, m: normalize.FieldMap, scope: Scope) -> None:
    """Fill the scope's rows of map ``m`` from their process, found by id (see below)."""
    if not mapsql.enrich_pairs(builtin_schemas()[m.target]):
        return
    sql = cached_sql(("link", m.name, scope[0]), lambda: [_link_tree(m, scope[0])])
    con.execute(sql, [m.name, scope[1]])


def _link_tree(m: normalize.FieldMap, column: str) -> exp.Expr:
    """Fill the scope's rows of map ``m`` from their process, found by id.

    4104 script blocks and Security 4688/4657 events name their process only by id (no
    ProcessGuid): the process is the latest one created on the same device with that id, at or
    before the event. Rows stay as they are when no such process was read.
    """
    schema = builtin_schemas()[m.target]
    pairs = mapsql.enrich_pairs(schema)
    sources = sorted({source for _, source in pairs})
    pending = (
        exp.select(
            exp.alias_(exp.column("rowid"), "rid"),
            *[
                exp.column(c, quoted=True)
                for c in ("DeviceName", "InitiatingProcessId", "Timestamp")
            ],
        )
        .from_(exp.to_table(m.target, quoted=True))
        .where(
            exp.and_(
                exp.column("_map").eq(exp.Placeholder()),
                exp.column(column).eq(exp.Placeholder()),
                exp.Not(this=exp.column("InitiatingProcessId", quoted=True).is_(exp.null())),
                exp.column("InitiatingProcessCreationTime", quoted=True).is_(exp.null()),
            )
        )
    )
    latest = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("rid", table="b")],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=exp.column("Timestamp", table="p", quoted=True), desc=True)
            ]
        ),
    )
    chosen = (
        exp.select(
            exp.column("rid", table="b"), *[exp.column(c, table="p", quoted=True) for c in sources]
        )
        .from_(pending.subquery("b"))
        .join(
            exp.alias_(exp.to_table("DeviceProcessEvents", quoted=True), "p", table=True),
            on=exp.and_(
                _col("p", "DeviceName").eq(_col("b", "DeviceName")),
                _col("p", "ProcessId").eq(_col("b", "InitiatingProcessId")),
                exp.LTE(this=_col("p", "Timestamp"), expression=_col("b", "Timestamp")),
            ),
        )
        .qualify(exp.EQ(this=latest, expression=exp.Literal.number(1)))
    )
    return exp.Update(
        this=exp.alias_(exp.to_table(m.target, quoted=True), "t", table=True),
        expressions=_fills(pairs, schema, "c"),
        from_=exp.From(this=chosen.subquery("c")),
        where=exp.Where(this=exp.column("rowid", table="t").eq(exp.column("rid", table="c"))),
    )


def enrich(con: Any, table: str, scope: Scope) -> None:
    """Fill the scope's rows whose process-creation event was read after them.

    Most rows were filled when inserted; this catches a process-creation event read after
    the events it caused (a later chunk of the file, or a later file of the ingest).
    """
    schema = builtin_schemas()[table]
    if not mapsql.enrich_pairs(schema) or not schema.column("InitiatingProcessCreationTime"):
        return
    sql = cached_sql(("enrich", table, scope[0]), lambda: [_enrich_tree(table, scope[0])])
    con.execute(sql, [scope[1]] * sql.count("?"))


def _enrich_tree(table: str, column: str) -> exp.Expr:
    schema = builtin_schemas()[table]
    pairs = mapsql.enrich_pairs(schema)
    unfilled = exp.and_(
        exp.EQ(this=exp.column(column), expression=exp.Placeholder()),
        exp.NEQ(this=exp.column("_pguid"), expression=exp.Literal.string("")),
        exp.Is(
            this=exp.column("InitiatingProcessCreationTime", quoted=True), expression=exp.null()
        ),
    )
    wanted = exp.select("_pguid").from_(exp.to_table(table, quoted=True)).where(unfilled)
    # a file's rows look among its own processes; an ingest's among all stored ones
    stored = exp.column("_file").eq(exp.Placeholder()) if column == "_file" else None
    return exp.Update(
        this=exp.alias_(exp.to_table(table, quoted=True), "t", table=True),
        expressions=_fills(pairs, schema, "p"),
        from_=exp.From(this=mapsql.parents(pairs, wanted, None, stored).subquery("p")),
        where=exp.Where(
            this=exp.and_(
                unfilled.transform(lambda n: mapsql.qualified(n, "t")), mapsql.made_by("t", "p")
            )
        ),
    )


def sentinel_columns(con: Any, table: str, scope: Scope) -> None:
    """Both time columns, as the Sentinel copy of a table has them, and Type (the table).

    TimeGenerated is the event time here (so TimeGenerated-based rules work on old data);
    an export that only has TimeGenerated (Log Analytics) gives Timestamp the same value.
    """
    schema = builtin_schemas()[table]
    if not (schema.column("TimeGenerated") and schema.column("Timestamp")):
        return
    sql = cached_sql(("sentinel", table, scope[0]), lambda: [_sentinel_tree(table, scope[0])])
    con.execute(sql, [table, scope[1]])


def _sentinel_tree(table: str, column: str) -> exp.Expr:
    generated, stamp, kind = (
        exp.column(c, quoted=True) for c in ("TimeGenerated", "Timestamp", "Type")
    )
    empty = exp.EQ(this=kind.copy(), expression=exp.Literal.string(""))
    return exp.Update(
        this=exp.to_table(table, quoted=True),
        expressions=[
            generated.copy().eq(exp.Coalesce(this=generated.copy(), expressions=[stamp.copy()])),
            stamp.copy().eq(exp.Coalesce(this=stamp.copy(), expressions=[generated.copy()])),
            kind.copy().eq(
                exp.Case(
                    ifs=[exp.If(this=empty.copy(), true=exp.Placeholder())], default=kind.copy()
                )
            ),
        ],
        where=exp.Where(
            this=exp.and_(
                exp.column(column).eq(exp.Placeholder()),
                exp.or_(generated.copy().is_(exp.null()), stamp.copy().is_(exp.null()), empty),
            )
        ),
    )


def _fills(pairs: list[tuple[str, str]], schema: TableSchema, process: str) -> list[exp.Expr]:
    """``SET column = <the row's own value, else the process's>`` for each enriched column."""
    return [
        exp.EQ(
            this=exp.column(target, quoted=True),
            expression=mapsql.fill(_col("t", target), _col(process, source), schema, target),
        )
        for target, source in pairs
    ]


def _field(name: str, table: str | None = None) -> exp.Expr:
    """An EventData field of a raw event, as text."""
    return exp.JSONExtractScalar(
        this=exp.column("EventData", table=table) if table else exp.column("EventData"),
        expression=exp.Literal.string(f"$.{name}"),
    )


def _is(column: exp.Expr, value: str | int) -> exp.Expr:
    literal = exp.Literal.number(value) if isinstance(value, int) else exp.Literal.string(value)
    return exp.EQ(this=column, expression=literal)


def _col(table: str, name: str) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _temp_table(name: str, query: exp.Query) -> exp.Create:
    return exp.Create(
        this=exp.to_table(name),
        kind="TABLE",
        expression=query,
        replace=True,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )


def _count(rows: list[tuple[Any, ...]]) -> int:
    return int(rows[0][0]) if rows else 0
