"""Aggregation functions for ``summarize``, with Kusto's default output column names.

https://learn.microsoft.com/kusto/query/aggregation-functions ; default names: ``count_``,
``dcount_X``, ``set_X``, ``list_X`` (https://learn.microsoft.com/kusto/query/summarize-operator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    NUMERIC,
    TEXTUAL,
    Typed,
    func,
    lit_string,
    not_null_string,
    sql_type,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler

AggHandler = Callable[["ExprCompiler", ast.Call], Typed]
DEPRECATED_MAX_SIZE = 128  # makeset()/makelist(): the deprecated aliases' default maxSize
AGGREGATES: dict[str, AggHandler] = {}

# Aggregates that produce several columns; compiled by the summarize operator itself.
MULTI_COLUMN = frozenset(
    {
        "arg_max",
        "arg_min",
        "argmax",
        "argmin",
        "take_any",
        "percentiles",
        "percentiles_array",
        "any",
    }
)

# name -> prefix of the default output column (prefix_X for an argument column X)
DEFAULT_PREFIX = {
    "count": "count_",
    "countif": "countif_",
    "dcount": "dcount_",
    "dcountif": "dcountif_",
    "sum": "sum_",
    "sumif": "sumif_",
    "avg": "avg_",
    "avgif": "avgif_",
    "min": "min_",
    "max": "max_",
    "minif": "minif_",
    "maxif": "maxif_",
    "make_set": "set_",
    "makeset": "set_",
    "make_set_if": "set_",
    "make_list": "list_",
    "makelist": "list_",
    "make_list_if": "list_",
    "make_bag": "bag_",
    "make_dictionary": "dictionary_",
    "make_bag_if": "bag_",
    "stdev": "stdev_",
    "stdevif": "stdevif_",
    "variance": "variance_",
    "varianceif": "varianceif_",
    "count_distinct": "count_distinct_",
    "count_distinctif": "count_distinctif_",
    "percentile": "percentile_",
    # take_anyif(X, p) is named X, its deprecated alias anyif(X, p) anyif_X (Microsoft's
    # analyzer: Aggregates.cs in github.com/microsoft/Kusto-Query-Language)
    "take_anyif": "",
    "anyif": "anyif_",
    "binary_all_or": "binary_all_or_",
    "binary_all_and": "binary_all_and_",
}


def register(*names: str) -> Callable[[AggHandler], AggHandler]:
    def deco(fn: AggHandler) -> AggHandler:
        for n in names:
            AGGREGATES[n] = fn
        return fn

    return deco


def compile_aggregate(ec: ExprCompiler, node: ast.Call) -> Typed:
    if node.name in MULTI_COLUMN:
        raise KqlSemanticError(
            f"{node.name}() must be a summarize item of its own, not part of an expression",
            span=node.span,
            code="KQL205",
        )
    assert ec.aggregate is not None
    ec.aggregate.calls.append(node)
    return AGGREGATES[node.name](ec, node)


def _inner(ec: ExprCompiler) -> ExprCompiler:
    """Arguments of an aggregate are row expressions: no nested aggregates."""
    from trustwatch.kql.expressions import ExprCompiler

    return ExprCompiler(ec.compiler, ec.scope, ec.rel, ec.overlay, None)


def _args(ec: ExprCompiler, node: ast.Call, low: int, high: int | None = None) -> list[Typed]:
    return _inner(ec).args(node, low, high)


def _pred(ec: ExprCompiler, t: Typed, node: ast.Node) -> exp.Expr:
    return _inner(ec).boolean(t, node.span)


def _filter(agg: exp.Expr, predicate: exp.Expr | None) -> exp.Expr:
    if predicate is None:
        return agg
    return exp.Filter(this=agg, expression=exp.Where(this=predicate))


def _value(t: Typed) -> exp.Expr:
    """Aggregates skip nulls; KQL's empty strings are values, so they are kept."""
    return t.sql


@register("count")
def _count(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = _args(ec, node, 0, 1)
    if args and args[0].type == "bool":
        # count(predicate): the deprecated form of countif(predicate), Microsoft's analyzer
        # (Aggregates.cs in github.com/microsoft/Kusto-Query-Language) marks it obsolete
        return Typed(_filter(exp.Count(this=exp.Star()), _pred(ec, args[0], node.args[0])), "long")
    if args and not (isinstance(node.args[0], ast.Star)):
        return Typed(exp.Count(this=args[0].sql), "long")
    return Typed(exp.Count(this=exp.Star()), "long")


@register("countif")
def _countif(ec: ExprCompiler, node: ast.Call) -> Typed:
    (p,) = _args(ec, node, 1)
    return Typed(_filter(exp.Count(this=exp.Star()), _pred(ec, p, node.args[0])), "long")


def _dcount(ec: ExprCompiler, node: ast.Call, with_predicate: bool) -> Typed:
    args = _args(ec, node, 2 if with_predicate else 1, 3 if with_predicate else 2)
    pred = _pred(ec, args[1], node.args[1]) if with_predicate else None
    # Kusto's dcount is an estimate; an exact count is within its documented error.
    return Typed(_filter(exp.Count(this=exp.Distinct(expressions=[args[0].sql])), pred), "long")


@register("dcount", "count_distinct")
def _dcount_plain(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _dcount(ec, node, False)


@register("dcountif", "count_distinctif")
def _dcountif(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _dcount(ec, node, True)


def _numeric_agg(
    sql_name: str, with_predicate: bool, result: str | None, zero: bool = False
) -> AggHandler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = _args(ec, node, 2 if with_predicate else 1)
        value = args[0]
        if value.type == "dynamic":
            from trustwatch.kql.functions import convert

            value = convert(value, "real")
        pred = _pred(ec, args[1], node.args[1]) if with_predicate else None
        agg = _filter(func(sql_name, value.sql), pred)
        ktype = result or value.type
        if ktype == "int":
            ktype = "long"
        if zero:  # sum over nothing is 0; DuckDB widens integer sums to HUGEINT, Kusto keeps long
            agg = exp.Cast(
                this=exp.Coalesce(this=agg, expressions=[exp.Literal.number(0)]), to=sql_type(ktype)
            )
        if sql_name in ("min", "max") and value.type in TEXTUAL:
            agg = not_null_string(agg)
        return Typed(agg, ktype)

    return handler


AGGREGATES.update(
    {
        "sum": _numeric_agg("sum", False, None, zero=True),
        "sumif": _numeric_agg("sum", True, None, zero=True),
        "avg": _numeric_agg("avg", False, "real"),
        "avgif": _numeric_agg("avg", True, "real"),
        "min": _numeric_agg("min", False, None),
        "max": _numeric_agg("max", False, None),
        "minif": _numeric_agg("min", True, None),
        "maxif": _numeric_agg("max", True, None),
        "stdev": _numeric_agg("stddev_samp", False, "real"),
        "stdevif": _numeric_agg("stddev_samp", True, "real"),
        "stdevp": _numeric_agg("stddev_pop", False, "real"),
        "variance": _numeric_agg("var_samp", False, "real"),
        "varianceif": _numeric_agg("var_samp", True, "real"),
        "variancep": _numeric_agg("var_pop", False, "real"),
    }
)


def _json_element(t: Typed) -> exp.Expr:
    from trustwatch.kql.functions import to_string

    if t.type == "dynamic":
        return t.sql
    if t.type in ("datetime", "timespan"):
        return func("to_json", to_string(t).sql)
    return func("to_json", t.sql)


def _make_list(distinct: bool, with_predicate: bool, default_size: int | None = None) -> AggHandler:
    """make_set / make_list and their _if forms; ``default_size``: the deprecated aliases'
    (makeset, makelist) default maxSize, 128 where the new names have none."""

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        low = 2 if with_predicate else 1
        args = _args(ec, node, low, low + 1)
        value = args[0]
        pred = _pred(ec, args[1], node.args[1]) if with_predicate else None
        element = _json_element(value)
        not_null = exp.Not(this=exp.Is(this=value.sql.copy(), expression=exp.null()))
        cond = not_null if pred is None else exp.and_(not_null, pred)
        # make_set/make_list skip nulls and return [] over nothing; make_set flattens arrays.
        # https://learn.microsoft.com/kusto/query/make-set-aggregation-function
        order = ec.rel.order if ec.rel is not None else None
        if distinct and value.type == "dynamic":
            elements = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.EQ(
                            this=func("json_type", element), expression=lit_string("ARRAY")
                        ),
                        true=func("json_extract", element.copy(), lit_string("$[*]")),
                    )
                ],
                default=func("list_value", element.copy()),
            )
            agg = func("list_distinct", func("flatten", _filter(exp.ArrayAgg(this=elements), cond)))
        elif distinct:
            agg = func("list_distinct", _filter(exp.ArrayAgg(this=element), cond))
        elif order is not None:
            # serialized input (after sort): make_list keeps the row order
            ordered = exp.Order(
                this=element, expressions=[exp.Ordered(this=exp.column(order, quoted=True))]
            )
            agg = _filter(exp.ArrayAgg(this=ordered), cond)
        else:
            agg = _filter(exp.ArrayAgg(this=element), cond)
        lst: exp.Expr = exp.Coalesce(this=agg, expressions=[func("list_value")])
        limit = args[low].sql if len(args) > low else None
        if limit is None and default_size is not None:
            limit = exp.Literal.number(default_size)
        if limit is not None:
            lst = func("list_slice", lst, exp.Literal.number(1), limit)
        return Typed(func("to_json", lst), "dynamic")

    return handler


AGGREGATES.update(
    {
        "make_set": _make_list(True, False),
        "make_set_if": _make_list(True, True),
        "make_list": _make_list(False, False),
        "make_list_if": _make_list(False, True),
        "make_list_with_nulls": _make_list(False, False),
        # deprecated aliases Kusto still accepts, with their own default maxSize of 128:
        # https://learn.microsoft.com/kusto/query/make-list-aggregation-function (makelist),
        # https://learn.microsoft.com/kusto/query/make-set-aggregation-function (makeset)
        "makeset": _make_list(True, False, DEPRECATED_MAX_SIZE),
        "makelist": _make_list(False, False, DEPRECATED_MAX_SIZE),
    }
)


@register("make_bag", "make_bag_if", "make_dictionary")
def _make_bag(ec: ExprCompiler, node: ast.Call) -> Typed:
    """make_bag / make_bag_if; make_dictionary is make_bag's deprecated name (named
    dictionary_X by Microsoft's analyzer). https://learn.microsoft.com/kusto/query/make-bag-aggregation-function"""
    with_predicate = node.name == "make_bag_if"
    args = _args(ec, node, 2 if with_predicate else 1, 3 if with_predicate else 2)
    pred = _pred(ec, args[1], node.args[1]) if with_predicate else None
    bags = _filter(exp.ArrayAgg(this=args[0].sql), pred)
    merged = func(
        "list_reduce",
        bags,
        exp.Lambda(
            this=func("json_merge_patch", exp.column("a"), exp.column("b")),
            expressions=[exp.to_identifier("a"), exp.to_identifier("b")],
        ),
    )
    return Typed(
        exp.Coalesce(
            this=merged, expressions=[exp.Cast(this=lit_string("{}"), to=sql_type("dynamic"))]
        ),
        "dynamic",
    )


@register("take_anyif", "anyif")
def _take_anyif(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The value of one row where the predicate is true (null if none); anyif is the deprecated
    name. https://learn.microsoft.com/kusto/query/take-anyif-aggregation-function"""
    value, p = _args(ec, node, 2)
    pred = _pred(ec, p, node.args[1])
    if value.type in TEXTUAL:
        # as take_any of one column: a non-empty value is preferred
        agg = _filter(
            func("any_value", exp.Nullif(this=value.sql, expression=lit_string(""))), pred
        )
        return Typed(not_null_string(agg), value.type)
    return Typed(_filter(func("any_value", value.sql), pred), value.type)


@register("percentile")
def _percentile(ec: ExprCompiler, node: ast.Call) -> Typed:
    value, p = _args(ec, node, 2)
    if not (p.is_constant and isinstance(p.constant, int | float)):
        raise KqlSemanticError(
            "the percentile must be a constant number", span=node.args[1].span, code="KQL205"
        )
    fraction = exp.Literal.number(float(p.constant) / 100)
    # nearest-rank percentile: https://learn.microsoft.com/kusto/query/percentiles-aggregation-function
    return Typed(
        func("quantile_disc", value.sql, fraction),
        value.type if value.type in NUMERIC | {"datetime", "timespan"} else "real",
    )


for _name in MULTI_COLUMN:
    AGGREGATES.setdefault(_name, compile_aggregate)


def default_name(node: ast.Call) -> str | None:
    """Kusto's default output name for a single-column aggregate call, or None (Column1...)."""
    prefix = DEFAULT_PREFIX.get(node.name)
    if prefix is None:
        return None
    if node.name == "countif" or (node.name == "count" and not node.args):
        return prefix
    if node.name == "percentile" and len(node.args) == 2 and isinstance(node.args[1], ast.Literal):
        arg = column_name_of(node.args[0])
        p = node.args[1].value
        text = (
            str(p).replace(".", "_")
            if not (isinstance(p, float) and p.is_integer())
            else str(int(p))
        )
        return f"{prefix}{arg}_{text}" if arg else None
    arg = column_name_of(node.args[0]) if node.args else None
    return f"{prefix}{arg}" if arg else None


def column_name_of(node: ast.Node) -> str | None:
    """The column name an expression is named after: ``X`` for ``X``, ``a_b`` for ``a.b``."""
    if isinstance(node, ast.Name):
        return node.name
    if isinstance(node, ast.Member):
        base = column_name_of(node.target)
        return f"{base}_{node.name}" if base else node.name
    if isinstance(node, ast.Index) and isinstance(node.index, ast.Literal):
        base = column_name_of(node.target)
        return f"{base}_{node.index.value}" if base else None
    return None
