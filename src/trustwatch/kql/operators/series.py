"""The make-series operator: aggregates per bin of an axis, one array per group.

https://learn.microsoft.com/kusto/query/make-series-operator
"""

from __future__ import annotations

from sqlglot import exp

from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.expressions import literal
from trustwatch.kql.functions import convert
from trustwatch.kql.operators.common import col, register
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import NUMERIC, Typed, func, lit_string, sql_type

_BIN = "__tw_bin"


@register(ast.MakeSeries)
def compile_make_series(c: Compiler, op: ast.MakeSeries, rel: Relation, scope: Scope) -> Relation:
    """Bins are ``from + i * step`` for ``i`` in ``[0, ceil((to - from) / step))``; a bin with no
    rows takes the aggregate's ``default`` (0 unless given). The output has the ``by`` columns,
    one dynamic array per aggregate, and the axis as an array of bin starts."""
    from trustwatch.kql.summarize import summarize

    axis = c.expr(op.on, scope, rel)
    step = c.expr(op.step, scope, None)
    start = c.expr(op.start, scope, None) if op.start is not None else None
    stop = c.expr(op.stop, scope, None) if op.stop is not None else None
    if start is None or stop is None:
        start, stop = _data_bounds(c, op, rel, scope, step, start, stop)
    if axis.type == "datetime":
        origin, width = func("epoch_us", start.sql), func("epoch_us", step.sql)
        offset = exp.Sub(this=func("epoch_us", axis.sql), expression=origin)
        span = exp.Sub(this=func("epoch_us", stop.sql), expression=origin.copy())
    elif axis.type in NUMERIC:
        origin, width = start.sql, step.sql
        offset = exp.Sub(this=axis.sql, expression=origin)
        span = exp.Sub(this=stop.sql, expression=origin.copy())
    else:
        raise c.semantic_error(
            f"make-series needs a datetime or numeric axis, not {axis.type}",
            op.on.span,
            code="KQL205",
        )

    def real(e: exp.Expr) -> exp.Expr:
        return exp.Cast(this=e, to=sql_type("real"))

    index = exp.Cast(
        this=func("floor", exp.Div(this=real(offset), expression=width)), to=sql_type("long")
    )
    bins = exp.Cast(
        this=func("ceil", exp.Div(this=real(span), expression=width.copy())), to=sql_type("long")
    )
    binned = Relation(
        c.select(rel, [exp.Star(), alias(index, _BIN)]), (*rel.columns, (_BIN, "long"))
    )
    in_range = exp.and_(
        exp.GTE(this=col(_BIN), expression=exp.Literal.number(0)),
        exp.LT(this=col(_BIN), expression=bins.copy()),
    )
    binned = Relation(c.select(binned, [exp.Star()]).where(in_range), binned.columns)
    key = ast.Assignment(name=_BIN, expr=ast.Name(name=_BIN, span=op.span), span=op.span)
    grouped = summarize(
        c, ast.Summarize(aggregates=op.aggregates, by=(*op.by, key), span=op.span), binned, scope
    )
    keys = [n for n, _ in grouped.columns[: len(op.by)]]
    values = list(grouped.columns[len(op.by) + 1 :])
    groups, steps, sums = c.fresh("_g"), c.fresh("_b"), c.fresh("_s")
    # with no `by`, one group when there are rows, none when there are not (an empty input
    # gives no series: https://learn.microsoft.com/kusto/query/make-series-operator)
    group_keys = keys or ["__tw_one"]
    distinct = (
        exp.Select(expressions=[col(k) for k in keys] or [alias(exp.Literal.number(1), "__tw_one")])
        .from_(c.source(grouped), copy=False)
        .distinct()
    )
    series = exp.Select(expressions=[alias(exp.Unnest(expressions=[func("range", bins)]), "i")])
    on = exp.and_(
        exp.EQ(
            this=exp.column(_BIN, table=sums, quoted=True),
            expression=exp.column("i", table=steps, quoted=True),
        ),
        *(
            exp.NullSafeEQ(
                this=exp.column(k, table=sums, quoted=True),
                expression=exp.column(k, table=groups, quoted=True),
            )
            for k in keys
        ),
    )
    order = exp.column("i", table=steps, quoted=True)
    projections: list[exp.Expr] = [alias(exp.column(k, table=groups, quoted=True), k) for k in keys]
    columns: list[tuple[str, str]] = [(k, t) for k, t in grouped.columns[: len(op.by)]]
    for i, (name, ktype) in enumerate(values):
        given = op.defaults[i] if i < len(op.defaults) else None
        default = c.expr(given, scope, None) if given is not None else literal(0, "long")
        if default.type != ktype and not (default.is_constant and default.constant is None):
            default = convert(default, ktype)
        value = exp.Coalesce(
            this=exp.column(name, table=sums, quoted=True), expressions=[default.sql]
        )
        ordered = exp.ArrayAgg(
            this=exp.Order(this=value, expressions=[exp.Ordered(this=order.copy())])
        )
        projections.append(alias(func("to_json", ordered), name))
        columns.append((name, "dynamic"))
    bin_start = _bin_start(axis, start, step, order.copy())
    points = exp.ArrayAgg(
        this=exp.Order(this=bin_start, expressions=[exp.Ordered(this=order.copy())])
    )
    axis_name = op.on.name if isinstance(op.on, ast.Name) else "Column1"
    projections.append(alias(func("to_json", points), axis_name))
    columns.append((axis_name, "dynamic"))
    select = (
        exp.Select(expressions=projections)
        .from_(exp.Subquery(this=distinct, alias=exp.TableAlias(this=exp.to_identifier(groups))))
        .join(
            exp.Subquery(this=series, alias=exp.TableAlias(this=exp.to_identifier(steps))),
            join_type="CROSS",
        )
        .join(
            exp.Subquery(this=grouped.sql, alias=exp.TableAlias(this=exp.to_identifier(sums))),
            on=on,
            join_type="LEFT",
        )
    )
    select = select.group_by(*[exp.column(k, table=groups, quoted=True) for k in group_keys])
    return Relation(select, tuple(columns))


def _data_bounds(
    c: Compiler,
    op: ast.MakeSeries,
    rel: Relation,
    scope: Scope,
    step: Typed,
    start: Typed | None,
    stop: Typed | None,
) -> tuple[Typed, Typed]:
    """``from`` / ``to`` left out: the first bin that has data, ``bin(min(Axis), step)``, and
    the end of the last one, ``bin(max(Axis), step) + step``, over the whole input (every
    series gets the same axis). Empty input: null bounds, so no rows."""
    span = op.span

    def bound(fn: str) -> ast.Assignment:
        agg = ast.Call(name=fn, args=(op.on,), span=span, name_span=span)
        binned = ast.Call(name="bin", args=(agg, op.step), span=span, name_span=span)
        return ast.Assignment(name=f"__tw_{fn}", expr=binned, span=span)

    copy = Relation(rel.sql.copy(), rel.columns, rel.order)
    bounds, _ = c.compile_op(
        ast.Summarize(aggregates=(bound("min"), bound("max")), by=(), span=span), copy, scope
    )
    ktype = bounds.columns[0][1]

    def scalar(name: str) -> exp.Expr:
        return exp.Subquery(this=c.select(Relation(bounds.sql.copy(), bounds.columns), [col(name)]))

    if start is None:
        start = Typed(scalar("__tw_min"), ktype)
    if stop is None:
        last = scalar("__tw_max")
        stop = Typed(exp.Add(this=last, expression=exp.paren(step.sql.copy())), ktype)
    return start, stop


def _bin_start(axis: Typed, start: Typed, step: Typed, i: exp.Expr) -> exp.Expr:
    """The start of bin ``i``, as Kusto shows it inside a dynamic array."""
    if axis.type == "datetime":
        micros = exp.Add(
            this=func("epoch_us", start.sql.copy()),
            expression=exp.Mul(this=i, expression=func("epoch_us", step.sql.copy())),
        )
        return func(
            "strftime", func("make_timestamp", micros), lit_string("%Y-%m-%dT%H:%M:%S.%f0Z")
        )
    return exp.Add(this=start.sql.copy(), expression=exp.Mul(this=i, expression=step.sql.copy()))
