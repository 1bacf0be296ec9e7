"""The ``top-nested`` operator: hierarchical aggregation, the top values of each level.

https://learn.microsoft.com/kusto/query/top-nested-operator
"""

from __future__ import annotations

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.operators.common import ColumnNamer, col, inferred_name, register
from trustwatch.kql.operators.ordering import row_count
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.summarize import summarize


@register(ast.TopNested)
def compile_top_nested(c: Compiler, op: ast.TopNested, rel: Relation, scope: Scope) -> Relation:
    """Level 1 groups the rows by its value and keeps the N groups whose aggregation is the
    greatest (least with ``asc``); each later level does the same within each group kept by
    the levels before it, over those groups' rows only. One row per path through the levels:
    each level's value and aggregation, side by side (``aggregated_<Value>`` unless named).

    Ties on the aggregation go to the least value (Kusto picks any); nulls sort as ``top``
    sorts them (last for desc, first for asc).
    """
    namer = ColumnNamer(rel.names())
    names: list[tuple[str, str]] = []  # (value column, aggregation column) per level
    hidden = [(f"__tw_nv{i}", f"__tw_na{i}") for i in range(len(op.levels))]
    projections: list[exp.Expr] = [col(n) for n in rel.names()]
    columns = list(rel.columns)
    for level, (value_col, _) in zip(op.levels, hidden, strict=True):
        if level.others is not None:
            raise UnsupportedKql(
                "top-nested's 'with others' is not supported by trustwatch's KQL engine",
                span=level.others.span,
                hint="see docs/kql-support.md for what is implemented",
            )
        value = c.expr(level.value.expr, scope, rel)
        projections.append(alias(value.sql, value_col))
        columns.append((value_col, value.type))
        name = level.value.name or inferred_name(level.value.expr) or namer.next()
        names.append((name, level.aggregate.name or f"aggregated_{name}"))
    flat = [n for pair in names for n in pair]
    for n in flat:
        if flat.count(n) > 1 or sum(m.lower() == n.lower() for m in flat) > 1:
            raise KqlSemanticError(
                f"top-nested names two columns '{n}'",
                span=op.span,
                hint="name the values or aggregations: `of Name = Expr by Name = count()`",
                code="KQL205",
            )
    current = Relation(c.select(rel, projections), tuple(columns))
    kept = current
    for i, level in enumerate(op.levels):
        value_col, agg_col = hidden[i]
        before = [v for v, _ in hidden[:i]]
        keys = [*before, *(a for _, a in hidden[:i]), value_col]
        by = tuple(
            ast.Assignment(name=k, expr=ast.Name(name=k, span=level.span), span=level.span)
            for k in keys
        )
        aggregate = ast.Assignment(name=agg_col, expr=level.aggregate.expr, span=level.span)
        grouped = summarize(
            c, ast.Summarize(aggregates=(aggregate,), by=by, span=level.span), current, scope
        )
        kept = _top_per_group(c, level, grouped, before, value_col, agg_col, scope)
        if i + 1 < len(op.levels):
            current = _rows_kept(c, current, kept, [*before, value_col], agg_col)
    final: list[exp.Expr] = []
    out: list[tuple[str, str]] = []
    for (value_col, agg_col), (value_name, agg_name) in zip(hidden, names, strict=True):
        for hidden_name, name in ((value_col, value_name), (agg_col, agg_name)):
            final.append(alias(col(hidden_name), name))
            ktype = kept.type_of(hidden_name)
            assert ktype is not None
            out.append((name, ktype))
    return Relation(c.select(kept, final), tuple(out))


def _top_per_group(
    c: Compiler,
    level: ast.TopNestedLevel,
    grouped: Relation,
    partition: list[str],
    value_col: str,
    agg_col: str,
    scope: Scope,
) -> Relation:
    """The groups of ``grouped`` whose aggregation is among the level's N best per partition."""
    if level.count is None:
        return grouped
    count = row_count(c, level.count, scope)
    rank = "__tw_rank"
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[col(p) for p in partition],
        order=exp.Order(
            expressions=[
                exp.Ordered(
                    this=col(agg_col), desc=level.descending, nulls_first=not level.descending
                ),
                exp.Ordered(this=col(value_col), nulls_first=True),
            ]
        ),
    )
    ranked = Relation(
        c.select(grouped, [*(col(n) for n in grouped.names()), alias(window, rank)]),
        (*grouped.columns, (rank, "long")),
    )
    select = c.select(ranked, [col(n) for n in grouped.names()]).where(
        exp.LTE(this=col(rank), expression=count)
    )
    return Relation(select, grouped.columns)


def _rows_kept(
    c: Compiler, rows: Relation, kept: Relation, keys: list[str], agg_col: str
) -> Relation:
    """The rows of ``rows`` in a group ``kept`` holds (by ``keys``), with its aggregation."""
    left, right = c.fresh(), c.fresh()
    on = exp.and_(
        *(
            exp.NullSafeEQ(
                this=exp.column(k, table=left, quoted=True),
                expression=exp.column(k, table=right, quoted=True),
            )
            for k in keys
        )
    )
    projections: list[exp.Expr] = [
        alias(exp.column(n, table=left, quoted=True), n) for n in rows.names()
    ]
    projections.append(alias(exp.column(agg_col, table=right, quoted=True), agg_col))
    select = (
        exp.Select(expressions=projections)
        .from_(exp.Subquery(this=rows.sql, alias=exp.TableAlias(this=exp.to_identifier(left))))
        .join(
            exp.Subquery(this=kept.sql, alias=exp.TableAlias(this=exp.to_identifier(right))),
            on=on,
            join_type="INNER",
        )
    )
    ktype = kept.type_of(agg_col)
    assert ktype is not None
    return Relation(select, (*rows.columns, (agg_col, ktype)))
