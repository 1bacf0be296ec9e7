"""Operators that order and limit rows: sort, top, take, sample, serialize."""

from __future__ import annotations

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.operators.common import (
    col,
    register,
)
from trustwatch.kql.operators.project import compile_extend
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import Typed


def sort_keys(
    c: Compiler, keys: tuple[ast.SortKey, ...], rel: Relation, scope: Scope
) -> list[exp.Ordered]:
    """ORDER BY terms with Kusto's defaults: desc, nulls last for desc and first for asc.

    https://learn.microsoft.com/kusto/query/sort-operator
    """
    out = []
    for key in keys:
        t = c.expr(key.expr, scope, rel)
        nulls_first = key.nulls_first if key.nulls_first is not None else not key.descending
        out.append(exp.Ordered(this=t.sql, desc=key.descending, nulls_first=nulls_first))
    return out


def _ordered(
    c: Compiler, rel: Relation, order_by: list[exp.Ordered], limit: exp.Expr | None = None
) -> Relation:
    """Materialise an order as a hidden row-number column carried by later stages."""
    order_col = c.fresh("__tw_order")
    window = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=order_by))
    projections: list[exp.Expr] = [col(n) for n in rel.names()]
    projections.append(alias(window, order_col))
    select = c.select(rel, projections)
    if limit is not None:
        select = select.order_by(*[o.copy() for o in order_by]).limit(limit)
    return Relation(select, rel.columns, order_col)


@register(ast.Sort)
def compile_sort(c: Compiler, op: ast.Sort, rel: Relation, scope: Scope) -> Relation:
    return _ordered(c, rel, sort_keys(c, op.keys, rel, scope))


@register(ast.Top)
def compile_top(c: Compiler, op: ast.Top, rel: Relation, scope: Scope) -> Relation:
    count = row_count(c, op.count, scope)
    return _ordered(c, rel, sort_keys(c, (op.key,), rel, scope), limit=count)


def row_count(c: Compiler, node: ast.Expr, scope: Scope) -> exp.Expr:
    """The N of take/top: a non-negative whole number."""
    count = c.expr(node, scope, None)
    if count.type not in ("int", "long"):
        raise KqlSemanticError(
            f"the number of rows must be a whole number, not {count.type}",
            span=node.span,
            code="KQL205",
        )
    if count.is_constant and isinstance(count.constant, int) and count.constant < 0:
        raise KqlSemanticError(
            "the number of rows cannot be negative", span=node.span, code="KQL205"
        )
    return count.sql


@register(ast.Take)
def compile_take(c: Compiler, op: ast.Take, rel: Relation, scope: Scope) -> Relation:
    count = Typed(row_count(c, op.count, scope), "long")
    select = c.select(rel, c.star_projection(rel))
    if rel.order:
        select = select.order_by(exp.Ordered(this=col(rel.order)))
    return Relation(select.limit(count.sql), rel.columns, rel.order)


@register(ast.Sample)
def compile_sample(c: Compiler, op: ast.Sample, rel: Relation, scope: Scope) -> Relation:
    return compile_take(c, ast.Take(count=op.count, span=op.span), rel, scope)


@register(ast.Serialize)
def compile_serialize(c: Compiler, op: ast.Serialize, rel: Relation, scope: Scope) -> Relation:
    if rel.order is None:
        order_col = c.fresh("__tw_order")
        window = exp.Window(this=exp.RowNumber())
        projections: list[exp.Expr] = [col(n) for n in rel.names()] + [alias(window, order_col)]
        rel = Relation(c.select(rel, projections), rel.columns, order_col)
    if op.items:
        return compile_extend(c, ast.Extend(items=op.items, span=op.span), rel, scope)
    return rel
