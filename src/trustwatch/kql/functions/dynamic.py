"""Dynamic (JSON) values: arrays, property bags and set operations."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    TEXTUAL,
    Typed,
    func,
    lit_string,
    not_null_string,
    sql_type,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.conversions import to_string
from trustwatch.kql.functions.registry import (
    FUNCTIONS,
    Handler,
    _error,
    register,
)


def _dyn(t: Typed) -> exp.Expr:
    """A value as dynamic: a string is parsed when it holds JSON (else null), others to_json."""
    if t.type == "dynamic":
        return t.sql
    if t.type in TEXTUAL:
        return exp.Case(
            ifs=[
                exp.If(
                    this=func("json_valid", t.sql),
                    true=exp.Cast(this=t.sql.copy(), to=sql_type("dynamic")),
                )
            ]
        )
    return func("to_json", t.sql)


def _json_value(t: Typed) -> exp.Expr:
    """A value as a JSON element (for building arrays and bags)."""
    if t.type == "dynamic":
        return t.sql
    if t.type == "datetime":
        return func("to_json", to_string(t).sql)
    if t.type == "timespan":
        return func("to_json", to_string(t).sql)
    return func("to_json", t.sql)


@register("array_length", "arraylength")
def _array_length(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arr,) = ec.args(node, 1)
    d = _dyn(arr)
    return Typed(
        exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=func("json_type", d), expression=lit_string("ARRAY")),
                    true=func("json_array_length", d.copy()),
                )
            ]
        ),
        "long",
    )


@register("array_concat")
def _array_concat(ec: ExprCompiler, node: ast.Call) -> Typed:
    arrays = ec.args(node, 1, 64)
    lists = [func("json_extract", _dyn(a), lit_string("$[*]")) for a in arrays]
    out = lists[0]
    for nxt in lists[1:]:
        out = func("list_concat", out, nxt)
    return Typed(func("to_json", out), "dynamic")


@register("pack_array", "make_array")
def _pack_array(ec: ExprCompiler, node: ast.Call) -> Typed:
    values = ec.args(node, 1, 64)
    return Typed(func("to_json", func("list_value", *[_json_value(v) for v in values])), "dynamic")


@register("pack", "bag_pack", "pack_dictionary")
def _bag_pack(ec: ExprCompiler, node: ast.Call) -> Typed:
    values = ec.args(node, 0, 128)
    if len(values) % 2:
        raise KqlSemanticError(
            f"{node.name}() takes key/value pairs", span=node.span, code="KQL204"
        )
    args: list[exp.Expr] = []
    for i in range(0, len(values), 2):
        args += [to_string(values[i]).sql, _json_value(values[i + 1])]
    return Typed(func("json_object", *args), "dynamic")


@register("pack_all")
def _pack_all(ec: ExprCompiler, node: ast.Call) -> Typed:
    if ec.rel is None:
        raise _error(node, "pack_all() needs a row context")
    args: list[exp.Expr] = []
    for name, ktype in ec.rel.columns:
        args += [lit_string(name), _json_value(Typed(exp.column(name, quoted=True), ktype))]
    return Typed(func("json_object", *args), "dynamic")


@register("bag_keys")
def _bag_keys(ec: ExprCompiler, node: ast.Call) -> Typed:
    (bag,) = ec.args(node, 1)
    d = _dyn(bag)
    is_object = exp.EQ(this=func("json_type", d), expression=lit_string("OBJECT"))
    return Typed(
        exp.Case(ifs=[exp.If(this=is_object, true=func("to_json", func("json_keys", d.copy())))]),
        "dynamic",
    )


@register("bag_has_key")
def _bag_has_key(ec: ExprCompiler, node: ast.Call) -> Typed:
    bag, key = ec.args(node, 2)
    path = func("concat", lit_string('$."'), to_string(key).sql, lit_string('"'))
    return Typed(func("coalesce", func("json_exists", _dyn(bag), path), exp.false()), "bool")


@register("bag_merge")
def _bag_merge(ec: ExprCompiler, node: ast.Call) -> Typed:
    bags = ec.args(node, 2, 64)
    out = _dyn(bags[-1])
    for b in reversed(bags[:-1]):  # the first bag's value wins on duplicate keys
        out = func("json_merge_patch", out, _dyn(b))
    return Typed(out, "dynamic")


@register("set_has_element")
def _set_has_element(ec: ExprCompiler, node: ast.Call) -> Typed:
    arr, value = ec.args(node, 2)
    return Typed(
        func(
            "coalesce",
            func(
                "list_contains",
                func("json_extract", _dyn(arr), lit_string("$[*]")),
                _json_value(value),
            ),
            exp.false(),
        ),
        "bool",
    )


@register("array_index_of")
def _array_index_of(ec: ExprCompiler, node: ast.Call) -> Typed:
    arr, value = ec.args(node, 2)
    pos = func(
        "list_position", func("json_extract", _dyn(arr), lit_string("$[*]")), _json_value(value)
    )
    return Typed(
        exp.Sub(
            this=func("coalesce", pos, exp.Literal.number(0)), expression=exp.Literal.number(1)
        ),
        "long",
    )


@register("array_slice")
def _array_slice(ec: ExprCompiler, node: ast.Call) -> Typed:
    arr, start, end = ec.args(node, 3)
    lst = func("json_extract", _dyn(arr), lit_string("$[*]"))
    n = func("len", lst)

    def norm(i: exp.Expr) -> exp.Expr:
        return exp.If(
            this=exp.LT(this=i, expression=exp.Literal.number(0)),
            true=exp.Add(this=i.copy(), expression=n.copy()),
            false=i.copy(),
        )

    return Typed(
        func(
            "to_json",
            func(
                "list_slice",
                lst.copy(),
                exp.Add(this=norm(start.sql), expression=exp.Literal.number(1)),
                exp.Add(this=norm(end.sql), expression=exp.Literal.number(1)),
            ),
        ),
        "dynamic",
    )


def _set_op(sql_name: str) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        arrays = ec.args(node, 2, 64)
        lists = [func("json_extract", _dyn(a), lit_string("$[*]")) for a in arrays]
        out = lists[0]
        for nxt in lists[1:]:
            out = func(sql_name, out, nxt)
        return Typed(func("to_json", func("list_distinct", out)), "dynamic")

    return handler


FUNCTIONS["set_union"] = _set_op("list_concat")
FUNCTIONS["set_intersect"] = _set_op("list_intersect")


@register("set_difference")
def _set_difference(ec: ExprCompiler, node: ast.Call) -> Typed:
    arrays = ec.args(node, 2, 64)
    first = func("json_extract", _dyn(arrays[0]), lit_string("$[*]"))
    others = [func("json_extract", _dyn(a), lit_string("$[*]")) for a in arrays[1:]]
    rest = others[0]
    for o in others[1:]:
        rest = func("list_concat", rest, o)
    kept = func(
        "list_filter",
        first,
        exp.Lambda(
            this=exp.Not(this=func("list_contains", rest, exp.column("x"))),
            expressions=[exp.to_identifier("x")],
        ),
    )
    return Typed(func("to_json", func("list_distinct", kept)), "dynamic")


@register("extractjson", "extract_json")
def _extractjson(ec: ExprCompiler, node: ast.Call) -> Typed:
    """``extract_json(path, text [, typeof(T)])``: the element at the JSONPath, as a string or,
    with a type argument, converted to that type (null when it does not convert); extractjson
    is the older name. https://learn.microsoft.com/kusto/query/extract-json-function"""
    from trustwatch.kql.functions.conversions import convert, typeof_argument

    ktype = typeof_argument(node.args[2]) if len(node.args) == 3 else None
    if len(node.args) == 3 and ktype is None:
        raise _error(node.args[2], f"the third argument of {node.name}() is typeof(type)")
    path, text = (ec.compile(a) for a in node.args[:2]) if ktype else ec.args(node, 2, 2)
    document = _dyn(text)
    if ktype == "dynamic":
        return Typed(func("json_extract", document, to_string(path).sql), "dynamic")
    value = func("json_extract_string", document, to_string(path).sql)
    if ktype is None or ktype in TEXTUAL:
        return Typed(not_null_string(value), ktype or "string")
    return convert(Typed(exp.Nullif(this=value, expression=lit_string("")), "string"), ktype)


RANGE_MAX_VALUES = 1_048_576  # range(): at most 2^20 values, the rest cut off


def _micros_of(t: Typed) -> exp.Expr:
    """A timespan as microseconds: a number for a literal, else computed from the interval."""
    from trustwatch.kql.arithmetic import micros

    if t.is_constant and isinstance(t.constant, timedelta):
        return exp.Literal.number(t.constant // timedelta(microseconds=1))
    return micros(t.sql)


@register("range")
def _range(ec: ExprCompiler, node: ast.Call) -> Typed:
    """``range(start, stop [, step])``: start, start + step, ... up to and including stop, as a
    dynamic array of at most 2^20 values; step defaults to 1, or 1h for datetime and timespan.

    https://learn.microsoft.com/kusto/query/range-function
    """
    from trustwatch.kql.arithmetic import from_micros

    args = ec.args(node, 2, 3)
    start, stop = args[0], args[1]
    numeric = {"int", "long", "real"}
    step: Typed | None = args[2] if len(args) == 3 else None
    if start.type in ("datetime", "timespan"):
        if stop.type != start.type or (step is not None and step.type != "timespan"):
            raise _error(
                node, f"range() over {start.type} takes a {start.type} stop and a timespan step"
            )
        step_us = _micros_of(step) if step is not None else exp.Literal.number(3_600_000_000)
        if start.type == "datetime":
            span = exp.Sub(this=func("epoch_us", stop.sql), expression=func("epoch_us", start.sql))
        else:
            span = exp.Sub(this=_micros_of(stop), expression=_micros_of(start))
    elif start.type in numeric and stop.type in numeric:
        step = step or Typed(exp.Literal.number(1), "long")
        if step.type not in numeric:
            raise _error(node, "range() over numbers takes a numeric step")
        step_us = step.sql
        span = exp.Sub(this=stop.sql, expression=start.sql.copy())
    else:
        raise _error(node, "range() takes numbers, datetimes or timespans")
    # the number of steps after start: floor((stop - start) / step), null for a zero step
    steps = func(
        "floor",
        exp.Div(
            this=exp.Cast(this=span, to=sql_type("real")),
            expression=exp.Nullif(this=step_us, expression=exp.Literal.number(0)),
        ),
    )
    # at most 2^20 values (LEAST would skip the null of a zero step)
    count = exp.Cast(this=steps, to=sql_type("long"))
    cap = exp.Literal.number(RANGE_MAX_VALUES - 1)
    last = exp.Case(
        ifs=[exp.If(this=exp.GT(this=count, expression=cap), true=cap.copy())],
        default=count.copy(),
    )
    offset = exp.Mul(this=exp.column("i"), expression=step_us.copy())
    element: exp.Expr
    if start.type in ("datetime", "timespan"):
        # the elements as Kusto writes them in dynamic: round-trip datetimes, [d.]hh:mm:ss
        value = Typed(exp.Add(this=start.sql.copy(), expression=from_micros(offset)), start.type)
        element = to_string(value).sql
    else:
        types = (start.type, stop.type, step.type if step is not None else "long")
        ktype = "real" if "real" in types else "long"
        element = exp.Cast(
            this=exp.Add(this=start.sql.copy(), expression=offset), to=sql_type(ktype)
        )
    values = func(
        "list_transform",
        func("generate_series", exp.Literal.number(0), last),
        exp.Lambda(this=element, expressions=[exp.to_identifier("i")]),
    )
    return Typed(func("to_json", values), "dynamic")


@register("array_iff", "array_iif")
def _array_iff(ec: ExprCompiler, node: ast.Call) -> Typed:
    """``array_iff(conditions, when_true, when_false)``: element-wise iif over a dynamic array.

    A condition is true if it is true or a number other than 0, false if false or 0, and any
    other value (text, datetime, null) gives a null element; ``when_true``/``when_false`` are
    arrays read at the same index (null past their end) or one value for every element; the
    result is as long as the conditions. array_iif is the same function.
    https://learn.microsoft.com/kusto/query/array-iff-function
    """
    conditions, when_true, when_false = ec.args(node, 3)
    conds = func("json_extract", _dyn(conditions), lit_string("$[*]"))
    i = exp.column("i")
    cond = func("list_extract", conds.copy(), i.copy())
    kind = func("json_type", cond.copy())
    number_types = ("BIGINT", "UBIGINT", "DOUBLE")
    flag = exp.Case(
        ifs=[
            exp.If(
                this=exp.EQ(this=kind.copy(), expression=lit_string("BOOLEAN")),
                true=exp.Cast(this=cond.copy(), to=sql_type("bool")),
            ),
            exp.If(
                this=exp.In(this=kind.copy(), expressions=[lit_string(t) for t in number_types]),
                true=exp.NEQ(
                    this=exp.Cast(this=cond.copy(), to=sql_type("real")),
                    expression=exp.Literal.number(0),
                ),
            ),
        ]
    )

    def pick(t: Typed) -> exp.Expr:
        if t.type != "dynamic":
            return _json_value(t)
        d = _dyn(t)
        return exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=func("json_type", d), expression=lit_string("ARRAY")),
                    true=func(
                        "list_extract",
                        func("json_extract", d.copy(), lit_string("$[*]")),
                        i.copy(),
                    ),
                )
            ],
            default=d.copy(),
        )

    element = exp.Case(
        ifs=[
            exp.If(this=exp.EQ(this=flag, expression=exp.true()), true=pick(when_true)),
            exp.If(this=exp.EQ(this=flag.copy(), expression=exp.false()), true=pick(when_false)),
        ],
        default=exp.Cast(this=exp.null(), to=sql_type("dynamic")),
    )
    values = func(
        "list_transform",
        func("generate_series", exp.Literal.number(1), func("len", conds.copy())),
        exp.Lambda(this=element, expressions=[exp.to_identifier("i")]),
    )
    return Typed(func("to_json", values), "dynamic")
