"""Conversions between KQL types: tostring(), toint(), todatetime(), parse_json() and kin."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.literals import TYPE_NAMES, parse_timespan_text
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
from trustwatch.kql.functions.registry import (
    FUNCTIONS,
    Handler,
    register,
)


def _timespan_text(sql: exp.Expr) -> exp.Expr:
    """Kusto's ``[-][d.]hh:mm:ss[.fffffff]`` text for an INTERVAL."""
    us = func("epoch_us", sql)
    a = exp.Abs(this=us)
    days = exp.IntDiv(this=a, expression=exp.Literal.number(86_400_000_000))
    rem = exp.Mod(this=a.copy(), expression=exp.Literal.number(86_400_000_000))
    hms = func("strftime", func("make_timestamp", rem), lit_string("%H:%M:%S"))
    frac = exp.Mod(this=a.copy(), expression=exp.Literal.number(1_000_000))
    return func(
        "concat",
        exp.If(
            this=exp.LT(this=us.copy(), expression=exp.Literal.number(0)),
            true=lit_string("-"),
            false=lit_string(""),
        ),
        exp.If(
            this=exp.GT(this=days, expression=exp.Literal.number(0)),
            true=func("concat", days.copy(), lit_string(".")),
            false=lit_string(""),
        ),
        hms,
        exp.If(
            this=exp.GT(this=frac, expression=exp.Literal.number(0)),
            true=func(
                "concat",
                lit_string("."),
                func(
                    "lpad",
                    exp.Cast(
                        this=exp.Mul(this=frac.copy(), expression=exp.Literal.number(10)),
                        to=sql_type("string"),
                    ),
                    exp.Literal.number(7),
                    lit_string("0"),
                ),
            ),
            false=lit_string(""),
        ),
    )


def _built_json(sql: exp.Expr) -> bool:
    """``json_object(...)`` or ``to_json(list_value(...))``: an object or array, never null."""
    if not isinstance(sql, exp.Anonymous):
        return False
    name = str(sql.this).lower()
    if name == "json_object":
        return True
    inner = sql.expressions[0] if name == "to_json" and len(sql.expressions) == 1 else None
    return isinstance(inner, exp.Anonymous) and str(inner.this).lower() == "list_value"


def to_string(t: Typed) -> Typed:
    """``tostring()``: the bare text of a value; ``""`` for null.

    https://learn.microsoft.com/kusto/query/tostring-function
    """
    if t.type == "string":
        return t
    if t.type == "guid":  # a guid, unlike a string, can be null
        return Typed(not_null_string(t.sql), "string", t.constant or "", t.is_constant)
    if t.is_constant and t.constant is None:
        return Typed(lit_string(""), "string", "", True)
    sql: exp.Expr
    if t.type == "dynamic" and _built_json(t.sql):
        # an object or array built here is already JSON text: reading it back is not needed
        return Typed(exp.Cast(this=t.sql, to=sql_type("string")), "string")
    if t.type == "dynamic":
        sql = func("json_extract_string", t.sql, lit_string("$"))
    elif t.type == "datetime":
        # .NET round-trip form: 2024-01-03T00:00:00.0000000Z
        sql = func("strftime", t.sql, lit_string("%Y-%m-%dT%H:%M:%S.%f0Z"))
    elif t.type == "timespan":
        sql = _timespan_text(t.sql)
    elif t.type == "real":
        sql = func(
            "regexp_replace",
            exp.Cast(this=t.sql, to=sql_type("string")),
            lit_string(r"\.0$"),
            lit_string(""),
        )
    else:
        sql = exp.Cast(this=t.sql, to=sql_type("string"))
    return Typed(not_null_string(sql), "string")


def convert(t: Typed, ktype: str) -> Typed:
    """Convert a value to ``ktype`` as the to*() functions do: invalid input gives null."""
    ktype = TYPE_NAMES.get(ktype, ktype)
    if ktype in TEXTUAL:
        return to_string(t)
    if t.type == ktype:
        return t
    if ktype == "dynamic":
        return Typed(func("to_json", t.sql), "dynamic")
    src = t.sql
    if t.type == "dynamic":
        src = func("json_extract_string", src, lit_string("$"))
    if ktype in ("long", "int"):
        if t.type == "real":
            src = func("trunc", src)
        elif t.type in ("string", "dynamic"):
            src = func("trunc", exp.TryCast(this=src, to=sql_type("real")))
        elif t.type == "datetime" or t.type == "timespan":
            return Typed(
                exp.Mul(this=func("epoch_us", src), expression=exp.Literal.number(10)), ktype
            )
        return Typed(exp.TryCast(this=src, to=sql_type(ktype)), ktype)
    if ktype == "real":
        return Typed(exp.TryCast(this=src, to=sql_type("real")), "real")
    if ktype == "bool":
        if t.type in NUMERIC:
            return Typed(exp.NEQ(this=src, expression=exp.Literal.number(0)), "bool")
        return Typed(exp.TryCast(this=func("lower", src), to=sql_type("bool")), "bool")
    if ktype == "datetime":
        if t.type in NUMERIC:
            raise KqlSemanticError(
                "todatetime() of a number is not supported; use unixtime_*_todatetime()"
            )
        iso = exp.Cast(
            this=exp.TryCast(this=src, to=exp.DataType.build("TIMESTAMPTZ")),
            to=sql_type("datetime"),
        )
        # RFC 822 / RFC 850 forms go through a Python parser, only for rows ISO parsing rejected
        return Typed(
            exp.Case(
                ifs=[
                    exp.If(
                        this=exp.Not(this=exp.Is(this=iso, expression=exp.null())), true=iso.copy()
                    )
                ],
                default=func("make_timestamp", func("tw_todatetime_us", src.copy())),
            ),
            "datetime",
        )
    if ktype == "timespan":
        if t.is_constant and isinstance(t.constant, str):
            try:
                return Typed(
                    func(
                        "to_microseconds",
                        exp.Literal.number(
                            parse_timespan_text(t.constant) // timedelta(microseconds=1)
                        ),
                    ),
                    "timespan",
                )
            except ValueError:
                return Typed(exp.Cast(this=exp.null(), to=sql_type("timespan")), "timespan")
        if t.type in NUMERIC:  # ticks
            return Typed(
                func(
                    "to_microseconds",
                    exp.IntDiv(
                        this=exp.Cast(this=src, to=sql_type("long")),
                        expression=exp.Literal.number(10),
                    ),
                ),
                "timespan",
            )
        return Typed(func("to_microseconds", func("tw_totimespan_us", src)), "timespan")
    raise KeyError(ktype)


def _conversion(ktype: str) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        if ktype == "string" and len(node.args) == 1:
            element = _split_element(ec, node.args[0])
            if element is not None:
                return element
        (arg,) = ec.args(node, 1)
        return convert(arg, ktype)

    return handler


def _split_element(ec: ExprCompiler, node: ast.Node) -> Typed | None:
    """``tostring(split(s, d)[i])`` without a JSON round trip: the i-th part as text.

    Same result as the general path (negative i counts from the end, out of range is "").
    """
    if not (
        isinstance(node, ast.Index)
        and isinstance(node.target, ast.Call)
        and node.target.name == "split"
        and len(node.target.args) == 2
        and isinstance(node.index, ast.Literal)
        and isinstance(node.index.value, int)
        and not isinstance(node.index.value, bool)
    ):
        return None
    text, delimiter = (to_string(ec.compile(a)) for a in node.target.args)
    i = node.index.value
    parts = func("string_split", text.sql, delimiter.sql)
    position = exp.Literal.number(i + 1 if i >= 0 else i)  # DuckDB lists are 1-based
    return Typed(not_null_string(func("list_extract", parts, position)), "string")


for _name, _ktype in {
    "tostring": "string",
    "toint": "int",
    "tolong": "long",
    "todouble": "real",
    "toreal": "real",
    "todecimal": "real",
    "tobool": "bool",
    "toboolean": "bool",
    "todatetime": "datetime",
    "totimespan": "timespan",
    "totime": "timespan",
    "dynamic_to_json": "string",
}.items():
    FUNCTIONS[_name] = _conversion(_ktype)


@register("toguid")
def _toguid(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    s = to_string(arg).sql
    valid = func(
        "regexp_matches",
        s,
        lit_string(
            r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$"
        ),
    )
    hexed = func(
        "replace",
        func("lower", func("trim", s.copy(), lit_string("{}"))),
        lit_string("-"),
        lit_string(""),
    )
    canonical = func(
        "concat",
        func("substr", hexed, exp.Literal.number(1), exp.Literal.number(8)),
        lit_string("-"),
        func("substr", hexed.copy(), exp.Literal.number(9), exp.Literal.number(4)),
        lit_string("-"),
        func("substr", hexed.copy(), exp.Literal.number(13), exp.Literal.number(4)),
        lit_string("-"),
        func("substr", hexed.copy(), exp.Literal.number(17), exp.Literal.number(4)),
        lit_string("-"),
        func("substr", hexed.copy(), exp.Literal.number(21), exp.Literal.number(12)),
    )
    return Typed(exp.Case(ifs=[exp.If(this=valid, true=canonical)]), "guid")


@register("parse_json", "parsejson", "todynamic", "toobject", "parse_xml_json")
def _parse_json(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    if arg.type == "dynamic":
        return arg
    if arg.type not in TEXTUAL:
        return Typed(func("to_json", arg.sql), "dynamic")
    # A string that is not JSON becomes a dynamic string; an empty string becomes null.
    # https://learn.microsoft.com/kusto/query/parse-json-function
    s = arg.sql
    return Typed(
        exp.Case(
            ifs=[
                exp.If(
                    this=func("json_valid", s), true=exp.Cast(this=s.copy(), to=sql_type("dynamic"))
                ),
                exp.If(
                    this=exp.NEQ(this=s.copy(), expression=lit_string("")),
                    true=func("to_json", s.copy()),
                ),
            ]
        ),
        "dynamic",
    )


def typeof_argument(node: ast.Node) -> str | None:
    """The type a ``typeof(T)`` argument names (canonical name), or None if it is not one."""
    if (
        isinstance(node, ast.Call)
        and node.name == "typeof"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
    ):
        name = node.args[0].name
        if name in TYPE_NAMES:
            return TYPE_NAMES[name]
    return None
