"""The INSERT statement of each field map, built once as a sqlglot tree and cached as SQL text.

``INSERT INTO target WITH _tw_in AS (<the map's events>), _tw_mapped AS (<the map>),
_tw_parent AS (<their processes>) SELECT ...``: rows naming a process (``_pguid``) get its
InitiatingProcess* details from its process-creation row in the same chunk or the same file,
found by a join on the few process ids of the chunk; processes of other files are looked up
once per ingest (:func:`trustwatch.ingest.finish.enrich`).

Building the statement compiles the map's KQL (tens of milliseconds a map); the text is kept by
:mod:`trustwatch.compiled`, keyed by the map, its source and trustwatch's code, so an ingest
after the first one starts without compiling anything.
"""

from __future__ import annotations

from sqlglot import exp

from trustwatch import compiled
from trustwatch.errors import IngestError
from trustwatch.ingest import normalize, staging
from trustwatch.kql.semantics import sql_type
from trustwatch.schema.model import TableSchema, builtin_schemas


def insert_sql(m: normalize.FieldMap, source: str, *, returning: bool = False) -> str:
    """The INSERT of map ``m`` over the raw events in relation ``source``, as DuckDB SQL.

    ``returning``: the statement returns each inserted row's ``_file`` (a chunk of several
    files counts its rows per file), instead of the number of rows.
    """
    parts = (m.name, m.query, ",".join(m.fields), m.target, source, str(returning))

    def build() -> str:
        insert = _build(m, source)
        if returning:
            insert.set("returning", exp.Returning(expressions=[exp.column("_file")]))
        return insert.sql("duckdb")

    return compiled.cached_text("ingest-map", parts, build)


def _build(m: normalize.FieldMap, source: str) -> exp.Insert:
    view = "_tw_in"  # a CTE: the map's events, with its fields as columns
    query, columns = m.compile(view)
    schema = builtin_schemas()[m.target]
    names = [n for n, _ in columns]
    mapped = exp.Select(expressions=[_out(n, t, schema) for n, t in columns]).from_(
        query.subquery("_m")
    )
    pairs = enrich_pairs(schema) if "_pguid" in names else []
    out: dict[str, exp.Expr] = {n: exp.column(n, table="_tw_mapped", quoted=True) for n in names}
    for target, source_col in pairs:
        mine = out.get(target)
        theirs = exp.column(source_col, table="_tw_parent", quoted=True)
        out[target] = fill(mine, theirs, schema, target)
    if schema.column("TimeGenerated") and "TimeGenerated" not in out and "Timestamp" in out:
        out["TimeGenerated"] = exp.column("Timestamp", table="_tw_mapped", quoted=True)
    for name in ("Timestamp", "TimeGenerated"):  # an impossible time dates nothing
        if name in out:
            out[name] = staging.possible_time(out[name])
    if schema.column("Type") and "Type" not in out:
        out["Type"] = exp.Literal.string(m.target)
    # event-stage maps keep each event's file (a chunk may hold several small files); a
    # final-stage map's rows belong to the file whose events made it run
    if "_file" not in out:
        out["_file"] = staging.variable(staging.FILE_VARIABLE)
    select = exp.Select(
        expressions=[
            *[value.as_(ident(n)) for n, value in out.items()],
            staging.variable(staging.INGEST_VARIABLE).as_("_ingest"),
            exp.Literal.string(m.name).as_("_map"),
        ]
    ).from_(exp.to_table("_tw_mapped"))
    # the mapped rows are read twice (the output, and the parents of process creations):
    # materialised, the map's expressions run once per event instead of twice
    select = select.with_(
        view, as_=staging.field_input(source, m.provider, m.event_ids, m.fields)
    ).with_("_tw_mapped", as_=mapped, materialized=bool(enrich_pairs(schema)) and "_pguid" in names)
    if pairs:
        same = set(names) if m.target == "DeviceProcessEvents" else None
        wanted = exp.select("_pguid").from_("_tw_mapped")
        # stored parents of the chunk's own files only: the workspace's others are looked up
        # once per ingest (finish.enrich), not once per chunk
        files = exp.select("_file").distinct().from_("_tw_mapped")
        these = exp.In(this=exp.column("_file"), query=files.subquery())
        found = parents(pairs, wanted, same_table=same, stored=these)
        select = select.with_("_tw_parent", as_=found).join(
            exp.to_table("_tw_parent"), on=made_by("_tw_mapped", "_tw_parent"), join_type="left"
        )
    targets = [ident(n) for n in [*out, "_ingest", "_map"]]
    return exp.Insert(
        this=exp.Schema(this=exp.to_table(m.target, quoted=True), expressions=targets),
        expression=select,
    )


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def qualified(node: exp.Expr, table: str) -> exp.Expr:
    """``node`` with its bare column references given ``table`` (for ``Expr.transform``)."""
    if isinstance(node, exp.Column) and not node.table:
        return exp.column(node.name, table=table, quoted=True)
    return node


def made_by(rows: str, process: str) -> exp.Expr:
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


def enrich_pairs(schema: TableSchema) -> list[tuple[str, str]]:
    """(target column, DeviceProcessEvents column) pairs of the enrichment, for ``schema``."""
    return [(t, s) for t, s in normalize.enrich_columns().items() if schema.column(t)]


def fill(mine: exp.Expr | None, theirs: exp.Expr, schema: TableSchema, name: str) -> exp.Expr:
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


def parents(
    pairs: list[tuple[str, str]],
    wanted: exp.Query,
    same_table: set[str] | None,
    stored: exp.Expr | None = None,
) -> exp.Query:
    """The process-creation rows of the processes ``wanted`` names (one per process).

    They come from the stored DeviceProcessEvents (those ``stored`` selects, e.g. the file's
    own: a scan the file's row groups bound, whatever the workspace's size) and, when the rows
    being inserted are themselves process creations (``same_table``: the columns they have),
    from those rows too: a parent usually starts moments before its child, in the same chunk.
    """
    columns = sorted({source for _, source in pairs} | {"DeviceName", "_guid", "Timestamp"})
    named = exp.and_(
        exp.NEQ(this=exp.column("_guid"), expression=exp.Literal.string("")),
        exp.In(this=exp.column("_guid"), query=wanted.subquery()),
    )

    def rows_of(table: exp.Table, has: set[str] | None, only: exp.Expr | None) -> exp.Select:
        values = [
            exp.column(c, quoted=True) if has is None or c in has else exp.null().as_(c)
            for c in columns
        ]
        where = named.copy() if only is None else exp.and_(only.copy(), named.copy())
        return exp.Select(expressions=values).from_(table).where(where)

    found: exp.Query = rows_of(exp.to_table("DeviceProcessEvents", quoted=True), None, stored)
    if same_table is not None:
        mapped = rows_of(exp.to_table("_tw_mapped"), same_table, None)
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


def _out(name: str, ktype: str, schema: TableSchema) -> exp.Expr:
    ref = exp.column(name, table="_m", quoted=True)
    col = schema.column(name)
    if col is None:
        if name in normalize.HIDDEN and normalize.HIDDEN[name] != "string":
            return ref.as_(ident(name))
        if name in normalize.HIDDEN:
            return exp.Coalesce(this=ref, expressions=[exp.Literal.string("")]).as_(ident(name))
        raise IngestError(f"field map output {name} is not a column of {schema.name}")
    value: exp.Expr = ref if col.type == ktype else exp.TryCast(this=ref, to=sql_type(col.type))
    if col.type == "string":
        value = exp.Coalesce(this=value, expressions=[exp.Literal.string("")])
    return value.as_(ident(name))
