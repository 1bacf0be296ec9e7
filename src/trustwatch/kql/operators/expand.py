"""Operators on dynamic arrays: mv-expand and mv-apply."""

from __future__ import annotations

from sqlglot import exp

from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import convert
from trustwatch.kql.operators.common import (
    KQL_NAMES,
    ColumnNamer,
    col,
    inferred_name,
    register,
)
from trustwatch.kql.operators.ordering import row_count, sort_keys
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import Typed, func, lit_string, sql_type


@register(ast.MvExpand)
def compile_mv_expand(c: Compiler, op: ast.MvExpand, rel: Relation, scope: Scope) -> Relation:
    """Expand dynamic arrays (and property bags) into one row per element, zipping several columns.

    https://learn.microsoft.com/kusto/query/mv-expand-operator
    """
    expanded: dict[str, tuple[exp.Expr, str | None]] = {}
    namer = ColumnNamer(rel.names())
    for item in op.items:
        name = item.name or inferred_name(item.expr) or namer.next()
        t = c.expr(item.expr, scope, rel)
        if t.type != "dynamic":
            t = convert(t, "dynamic")
        d = t.sql
        is_object = exp.EQ(this=func("json_type", d), expression=lit_string("OBJECT"))
        value_of_k = func(
            "json_extract",
            d.copy(),
            func("concat", lit_string('$."'), exp.column("k"), lit_string('"')),
        )
        pair = (
            func("json_array", exp.column("k"), value_of_k)
            if op.bagexpansion == "array"
            else func("json_object", exp.column("k"), value_of_k)
        )
        bag_items = func(
            "list_transform",
            func("json_keys", d.copy()),
            exp.Lambda(this=pair, expressions=[exp.to_identifier("k")]),
        )
        elements = exp.Case(
            ifs=[
                exp.If(this=is_object, true=bag_items),
                exp.If(
                    this=exp.EQ(this=func("json_type", d.copy()), expression=lit_string("ARRAY")),
                    true=func("json_extract", d.copy(), lit_string("$[*]")),
                ),
            ],
            default=func("list_value", d.copy()),
        )
        expanded[name] = (elements, item.to_type)
    projections: list[exp.Expr] = []
    columns: list[tuple[str, str]] = []
    inner_cols: list[exp.Expr] = [col(n) for n in rel.names() if n not in expanded]
    if rel.order:
        inner_cols.append(col(rel.order))
    # Zip several arrays: unnest each in the same SELECT (DuckDB pads the shorter ones with NULL).
    unnests = [
        alias(exp.Unnest(expressions=[elements]), f"__tw_x_{name}")
        for name, (elements, _) in expanded.items()
    ]
    if op.with_itemindex:
        lengths = [func("len", elements.copy()) for elements, _ in expanded.values()]
        longest = func("greatest", *lengths) if len(lengths) > 1 else lengths[0]
        index_list = func("range", exp.Cast(this=longest, to=sql_type("long")))
        unnests.append(alias(exp.Unnest(expressions=[index_list]), op.with_itemindex))
    inner = c.select(rel, inner_cols + unnests)
    inner_rel = Relation(inner, ())
    for name, ktype in rel.columns:
        if name in expanded:
            _, to_type = expanded[name]
            value = _expanded_value(col(f"__tw_x_{name}"), to_type)
            projections.append(alias(value.sql, name))
            columns.append((name, value.type))
        else:
            projections.append(col(name))
            columns.append((name, ktype))
    for name, (_elements, to_type) in expanded.items():
        if rel.type_of(name) is None:
            value = _expanded_value(col(f"__tw_x_{name}"), to_type)
            projections.append(alias(value.sql, name))
            columns.append((name, value.type))
    if op.with_itemindex:
        projections.append(col(op.with_itemindex))
        columns.append((op.with_itemindex, "long"))
    if rel.order:
        projections.append(col(rel.order))
    select = c.select(inner_rel, projections)
    if op.limit is not None:
        raise c.unsupported("mv-expand ... limit", op.limit.span)
    return Relation(select, tuple(columns), rel.order)


def _expanded_value(element: exp.Expr, to_type: str | None) -> Typed:
    typed = Typed(exp.Cast(this=element, to=sql_type("dynamic")), "dynamic")
    if to_type is None or to_type == "dynamic":
        return typed
    return convert(typed, to_type)


@register(ast.MvApply)
def compile_mv_apply(c: Compiler, op: ast.MvApply, rel: Relation, scope: Scope) -> Relation:
    """Run a subquery on each row's expanded arrays; add back the row's other columns.

    Each input row gets a hidden number; the subquery's operators run partitioned by it (a
    ``summarize`` groups by it too, ``top``/``take`` count within it), and the result is joined
    back to the row. https://learn.microsoft.com/kusto/query/mv-apply-operator
    """
    if op.limit is not None:
        raise c.unsupported("mv-apply ... limit", op.limit.span)
    rowid = c.fresh("__tw_row")
    # the numbers are read twice (expansion, then the join back): computed once, or DuckDB may
    # number the rows differently each time and pair a row with another row's results
    numbered = c.share(
        Relation(
            c.select(rel, [exp.Star(), alias(exp.Window(this=exp.RowNumber()), rowid)]),
            (*rel.columns, (rowid, "long")),
        ),
        materialized=True,
    )
    expand = ast.MvExpand(
        items=op.items, bagexpansion=op.bagexpansion, with_itemindex=op.with_itemindex, span=op.span
    )
    expanded = compile_mv_expand(c, expand, numbered, scope)
    namer = ColumnNamer(rel.names())
    item_names = [i.name or inferred_name(i.expr) or namer.next() for i in op.items]
    # the subquery sees the expanded values and the row's other columns (queries use both)
    sub_columns = tuple((n, t) for n, t in expanded.columns if n != rowid)
    visible: list[exp.Expr] = [col(n) for n, _ in sub_columns]
    sub = Relation(c.select(expanded, [*visible, col(rowid)]), sub_columns, rowid)
    sub = run_within(c, op.subquery.ops, sub, scope, rowid, "mv-apply")
    kept = [(n, t) for n, t in rel.columns if n not in item_names]
    added = [(n, t) for n, t in sub.columns if n not in {k for k, _ in kept}]
    la, ra = c.fresh("_l"), c.fresh("_r")
    projections: list[exp.Expr] = [alias(exp.column(n, table=la, quoted=True), n) for n, _ in kept]
    projections += [alias(exp.column(n, table=ra, quoted=True), n) for n, _ in added]
    on = exp.EQ(
        this=exp.column(rowid, table=la, quoted=True),
        expression=exp.column(rowid, table=ra, quoted=True),
    )
    select = (
        exp.Select(expressions=projections)
        .from_(exp.Subquery(this=numbered.sql, alias=exp.TableAlias(this=exp.to_identifier(la))))
        .join(exp.Subquery(this=sub.sql, alias=exp.TableAlias(this=exp.to_identifier(ra))), on=on)
    )
    return Relation(select, tuple(kept + added))


_ROW_WISE = (
    ast.Where,
    ast.Extend,
    ast.Project,
    ast.ProjectAway,
    ast.ProjectKeep,
    ast.ProjectRename,
    ast.ProjectReorder,
    ast.Parse,
    ast.MvExpand,
)


def run_within(
    c: Compiler,
    ops: tuple[ast.PipeOp, ...],
    sub: Relation,
    scope: Scope,
    rowid: str,
    within: str,
) -> Relation:
    """The subquery's operators of ``within`` (mv-apply, partition) run on each subtable of
    ``sub`` (told apart by column ``rowid``): each by :func:`partitioned`, a sort numbering the
    rows for the operator right after it (:func:`sorted_within`)."""
    rank: str | None = None  # the within-subtable order a sort set, for the next operator
    for op in ops:
        if isinstance(op, ast.Sort):
            sub, rank = sorted_within(c, op, sub, scope, rowid)
            continue
        sub = partitioned(c, op, sub, scope, rowid, rank, within)
        rank = None
    return sub


def sorted_within(
    c: Compiler, op: ast.Sort, sub: Relation, scope: Scope, rowid: str
) -> tuple[Relation, str]:
    """A sort inside mv-apply (or partition): each subtable numbered in the sort order.

    The number orders the next operator (``make_list`` after ``order by`` keeps that order).
    """
    visible = Relation(sub.sql, (*sub.columns, (rowid, "long")))
    keys = sort_keys(c, op.keys, visible, scope)
    rank = c.fresh("__tw_rank")
    window = exp.Window(
        this=exp.RowNumber(), partition_by=[col(rowid)], order=exp.Order(expressions=keys)
    )
    ranked = c.select(visible, [*[col(n) for n in visible.names()], alias(window, rank)])
    return Relation(ranked, sub.columns, rowid), rank


def partitioned(
    c: Compiler,
    op: ast.PipeOp,
    sub: Relation,
    scope: Scope,
    rowid: str,
    rank: str | None,
    within: str,
) -> Relation:
    """One subquery operator of ``within`` (mv-apply: every input row; partition: every
    value of its column), run separately for each subtable, told apart by column ``rowid``."""
    if isinstance(op, _ROW_WISE):
        out, _ = c.compile_op(op, sub, scope)  # row-wise operators carry the hidden row number
        return out
    visible = Relation(sub.sql, (*sub.columns, (rowid, "long")), rank)
    if isinstance(op, ast.Summarize | ast.Distinct | ast.Count):
        key = ast.Assignment(name=rowid, expr=ast.Name(name=rowid, span=op.span), span=op.span)
        grouped: ast.PipeOp
        if isinstance(op, ast.Summarize):
            grouped = ast.Summarize(aggregates=op.aggregates, by=(*op.by, key), span=op.span)
        elif isinstance(op, ast.Count):
            counter = ast.Call(name="count", span=op.span)
            grouped = ast.Summarize(
                aggregates=(ast.Assignment(name=op.name, expr=counter, span=op.span),),
                by=(key,),
                span=op.span,
            )
        else:
            grouped = ast.Distinct(items=(*op.items, key), star=op.star, span=op.span)
        out, _ = c.compile_op(grouped, visible, scope)
        return Relation(out.sql, tuple((n, t) for n, t in out.columns if n != rowid), rowid)
    if isinstance(op, ast.Top | ast.Take):
        count = row_count(c, op.count, scope)
        if isinstance(op, ast.Top):
            order: list[exp.Ordered] | None = sort_keys(c, (op.key,), visible, scope)
        else:  # take right after a sort takes the first rows in that order
            order = [exp.Ordered(this=col(rank))] if rank else None
        window = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(rowid)],
            order=exp.Order(expressions=order) if order else None,
        )
        rank = c.fresh("__tw_rank")
        ranked = Relation(c.select(visible, [exp.Star(), alias(window, rank)]), visible.columns)
        select = c.select(ranked, [col(n) for n in visible.names()]).where(
            exp.LTE(this=col(rank), expression=count)
        )
        return Relation(select, sub.columns, rowid)
    raise c.unsupported(
        f"the '{KQL_NAMES.get(type(op), type(op).__name__.lower())}' operator inside {within}",
        op.span,
    )
