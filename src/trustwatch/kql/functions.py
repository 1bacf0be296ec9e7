"""The scalar function table: each KQL function compiles in one small function.

Semantics follow https://learn.microsoft.com/kusto/query/scalar-functions ; a function missing
from :data:`FUNCTIONS` is an error naming it, never a silent NULL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.arithmetic import from_micros, micros
from trustwatch.kql.parser import TYPE_NAMES, parse_timespan_text
from trustwatch.kql.semantics import (
    NUMERIC,
    TEXTUAL,
    Typed,
    check_regex,
    func,
    lit_string,
    not_null_string,
    sql_type,
    term_match,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler

Handler = Callable[["ExprCompiler", ast.Call], Typed]
FUNCTIONS: dict[str, Handler] = {}

# Defender XDR's enrichment functions answer from Microsoft's cloud; nothing local can.
# https://learn.microsoft.com/defender-xdr/advanced-hunting-fileprofile-function
DEFENDER_CLOUD_FUNCTIONS = frozenset(
    {"FileProfile", "DeviceFromIP", "AssignedIPAddresses", "SeenBy"}
)

# Documented Kusto functions we refuse with a clear error rather than guess at.
KNOWN_UNSUPPORTED = frozenset(
    {
        "geo_info_from_ip_address",
        "parse_user_agent",
        "hash",
        "series_decompose_anomalies",
        "series_decompose",
        "series_stats",
        "series_fir",
        "datetime_local_to_utc",
        "datetime_utc_to_local",
        "parse_xml",
        "dcount_hll",
        "hll_merge",
        "estimate_data_size",
        "cursor_after",
        "current_cluster_endpoint",
        "extent_id",
        "geo_distance_2points",
        "new_guid",
        "zip",
        "treepath",
        "bag_unpack",
        "cursor_current",
        "percentile_tdigest",
    }
)

_EPOCH_0001_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z in microseconds since 1970


def register(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for name in names:
            FUNCTIONS[name] = fn
        return fn

    return deco


def _error(node: ast.Node, message: str, code: str = "KQL205") -> KqlSemanticError:
    return KqlSemanticError(message, span=node.span, code=code)


def _regex_arg(t: Typed, node: ast.Node) -> None:
    """Validate a constant regular expression argument where it is written."""
    if t.is_constant and isinstance(t.constant, str):
        check_regex(t.constant, node.span)


def _const_str(t: Typed, node: ast.Node, what: str) -> str:
    if not (t.is_constant and isinstance(t.constant, str)):
        raise _error(node, f"{what} must be a constant string")
    return t.constant


# --- conversions -----------------------------------------------------------------------------


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


@register("parse_json", "todynamic", "toobject", "parse_xml_json")
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


# --- logic and nulls -------------------------------------------------------------------------


@register("iff", "iif")
def _iff(ec: ExprCompiler, node: ast.Call) -> Typed:
    cond, a, b = ec.args(node, 3)
    a, b = _same_type(node, a, b)
    return Typed(exp.If(this=ec.boolean(cond, node.args[0].span), true=a.sql, false=b.sql), a.type)


def _same_type(node: ast.Node, *values: Typed) -> tuple[Typed, ...]:
    types = {v.type for v in values if not (v.is_constant and v.constant is None)}
    if len(types) <= 1:
        ktype = types.pop() if types else values[0].type
        return tuple(v if v.type == ktype else convert(v, ktype) for v in values)
    if types <= NUMERIC:
        target = "real" if "real" in types else "long"
        return tuple(convert(v, target) if v.type != target else v for v in values)
    if types <= TEXTUAL:
        return values
    if "dynamic" in types:
        return tuple(v if v.type == "dynamic" else convert(v, "dynamic") for v in values)
    raise _error(node, f"all results must have the same type, found {', '.join(sorted(types))}")


@register("case")
def _case(ec: ExprCompiler, node: ast.Call) -> Typed:
    if len(node.args) < 3 or len(node.args) % 2 == 0:
        raise KqlSemanticError(
            "case() takes predicate/value pairs and a final else value",
            span=node.span,
            code="KQL204",
        )
    args = [ec.compile(a) for a in node.args]
    values = _same_type(node, *args[1::2], args[-1])
    ifs = [
        exp.If(this=ec.boolean(args[i], node.args[i].span), true=values[i // 2].sql)
        for i in range(0, len(args) - 1, 2)
    ]
    return Typed(exp.Case(ifs=ifs, default=values[-1].sql), values[0].type)


@register("coalesce")
def _coalesce(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = _same_type(node, *ec.args(node, 1, 64))
    if args[0].type in TEXTUAL:
        # coalesce skips empty strings: coalesce("", "x") == "x"
        parts = [exp.Nullif(this=a.sql, expression=lit_string("")) for a in args]
        return Typed(
            not_null_string(exp.Coalesce(this=parts[0], expressions=parts[1:])), args[0].type
        )
    return Typed(
        exp.Coalesce(this=args[0].sql, expressions=[a.sql for a in args[1:]]), args[0].type
    )


def _is_empty(t: Typed) -> exp.Expr:
    if t.type == "guid":
        return exp.Is(this=t.sql, expression=exp.null())
    if t.type in TEXTUAL:
        return exp.EQ(this=t.sql, expression=lit_string(""))
    if t.type == "dynamic":
        return exp.or_(
            exp.Is(this=t.sql, expression=exp.null()),
            exp.EQ(
                this=func("json_extract_string", t.sql.copy(), lit_string("$")),
                expression=lit_string(""),
            ),
        )
    return exp.Is(this=t.sql, expression=exp.null())


def _is_null(t: Typed) -> exp.Expr:
    if t.type == "string":
        return exp.false()  # strings are never null in KQL
    if t.type == "dynamic":
        return exp.or_(
            exp.Is(this=t.sql, expression=exp.null()),
            exp.EQ(this=func("json_type", t.sql.copy()), expression=lit_string("NULL")),
        )
    return exp.Is(this=t.sql, expression=exp.null())


@register("isempty")
def _isempty(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(_is_empty(arg), "bool")


@register("isnotempty", "notempty")
def _isnotempty(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(exp.Not(this=exp.paren(_is_empty(arg))), "bool")


@register("isnull")
def _isnull(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(_is_null(arg), "bool")


@register("isnotnull", "notnull")
def _isnotnull(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(exp.Not(this=exp.paren(_is_null(arg))), "bool")


@register("not")
def _not(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(exp.Not(this=exp.paren(ec.boolean(arg, node.args[0].span))), "bool")


@register("gettype")
def _gettype(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    if arg.type != "dynamic":
        return Typed(lit_string(arg.type), "string", arg.type, True)
    t = func("json_type", arg.sql)
    mapping = {
        "VARCHAR": "string",
        "BIGINT": "long",
        "UBIGINT": "long",
        "DOUBLE": "real",
        "BOOLEAN": "bool",
        "ARRAY": "array",
        "OBJECT": "dictionary",
        "NULL": "null",
    }
    return Typed(
        not_null_string(
            exp.Case(
                this=t,
                ifs=[exp.If(this=lit_string(k), true=lit_string(v)) for k, v in mapping.items()],
            )
        ),
        "string",
    )


# --- strings ---------------------------------------------------------------------------------


def _strings(ec: ExprCompiler, node: ast.Call, low: int, high: int | None = None) -> list[Typed]:
    return [to_string(a) if a.type not in TEXTUAL else a for a in ec.args(node, low, high)]


@register("strlen")
def _strlen(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("length", s.sql), "long")


@register("string_size")
def _string_size(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("octet_length", func("encode", s.sql)), "long")


@register("tolower")
def _tolower(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("lower", s.sql), "string")


@register("toupper")
def _toupper(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("upper", s.sql), "string")


@register("reverse")
def _reverse(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("reverse", s.sql), "string")


@register("strcat")
def _strcat(ec: ExprCompiler, node: ast.Call) -> Typed:
    parts = _strings(ec, node, 1, 64)
    return Typed(func("concat", *[p.sql for p in parts]), "string")


@register("strcat_delim")
def _strcat_delim(ec: ExprCompiler, node: ast.Call) -> Typed:
    parts = _strings(ec, node, 3, 65)
    return Typed(func("concat_ws", *[p.sql for p in parts]), "string")


@register("strcat_array")
def _strcat_array(ec: ExprCompiler, node: ast.Call) -> Typed:
    arr, delim = ec.args(node, 2)
    elements = func("json_extract_string", _dyn(arr), lit_string("$[*]"))
    return Typed(not_null_string(func("array_to_string", elements, to_string(delim).sql)), "string")


@register("strrep")
def _strrep(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    s = to_string(args[0]).sql
    if len(args) == 3:
        d = to_string(args[2]).sql
        body = func("repeat", func("concat", s, d), args[1].sql)
        return Typed(
            func(
                "left",
                body,
                exp.Sub(this=func("length", body.copy()), expression=func("length", d.copy())),
            ),
            "string",
        )
    return Typed(func("repeat", s, args[1].sql), "string")


@register("substring")
def _substring(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    s = to_string(args[0]).sql
    # a negative start counts from the end: substring("123456", -2, 2) == "56"
    raw = args[1].sql
    from_end = exp.Add(this=func("length", s.copy()), expression=raw.copy())
    start0 = exp.If(
        this=exp.LT(this=raw, expression=exp.Literal.number(0)),
        true=func("greatest", from_end, exp.Literal.number(0)),
        false=raw.copy(),
    )
    start = exp.Add(this=start0, expression=exp.Literal.number(1))
    if len(args) == 3:
        return Typed(not_null_string(func("substring", s, start, args[2].sql)), "string")
    return Typed(not_null_string(func("substring", s, start)), "string")


@register("indexof")
def _indexof(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 4)
    s, lookup = to_string(args[0]).sql, to_string(args[1]).sql
    if len(args) >= 3:
        start = args[2].sql
        tail = func("substring", s, exp.Add(this=start, expression=exp.Literal.number(1)))
        if len(args) == 4:  # length: -1 means to the end
            tail = exp.If(
                this=exp.EQ(this=args[3].sql, expression=exp.Literal.number(-1)),
                true=tail,
                false=func(
                    "substring",
                    s.copy(),
                    exp.Add(this=start.copy(), expression=exp.Literal.number(1)),
                    args[3].sql.copy(),
                ),
            )
        pos = func("strpos", tail, lookup)
        return Typed(
            exp.If(
                this=exp.GT(this=pos, expression=exp.Literal.number(0)),
                true=exp.Add(
                    this=exp.Sub(this=pos.copy(), expression=exp.Literal.number(1)),
                    expression=start.copy(),
                ),
                false=exp.Literal.number(-1),
            ),
            "long",
        )
    return Typed(exp.Sub(this=func("strpos", s, lookup), expression=exp.Literal.number(1)), "long")


@register("replace_string", "replace")
def _replace_string(ec: ExprCompiler, node: ast.Call) -> Typed:
    if node.name == "replace":
        regex, rewrite, text = _strings(ec, node, 3)
        return Typed(
            not_null_string(
                func("regexp_replace", text.sql, regex.sql, rewrite.sql, lit_string("g"))
            ),
            "string",
        )
    text, lookup, rewrite = _strings(ec, node, 3)
    return Typed(func("replace", text.sql, lookup.sql, rewrite.sql), "string")


@register("replace_regex")
def _replace_regex(ec: ExprCompiler, node: ast.Call) -> Typed:
    text, regex, rewrite = _strings(ec, node, 3)
    _regex_arg(regex, node.args[1])
    return Typed(
        not_null_string(func("regexp_replace", text.sql, regex.sql, rewrite.sql, lit_string("g"))),
        "string",
    )


def _trim(ec: ExprCompiler, node: ast.Call, leading: bool, trailing: bool) -> Typed:
    regex, text = _strings(ec, node, 2)
    pattern = _const_str(regex, node.args[0], "the trim regex")
    check_regex(pattern, node.args[0].span)
    out = text.sql
    if leading:
        out = func("regexp_replace", out, lit_string(f"^(?:{pattern})+"), lit_string(""))
    if trailing:
        out = func("regexp_replace", out, lit_string(f"(?:{pattern})+$"), lit_string(""))
    return Typed(out, "string")


@register("trim")
def _trim_both(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, True, True)


@register("trim_start")
def _trim_start(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, True, False)


@register("trim_end")
def _trim_end(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, False, True)


def _typeof_arg(node: ast.Node) -> str | None:
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


@register("extract")
def _extract(ec: ExprCompiler, node: ast.Call) -> Typed:
    ktype = _typeof_arg(node.args[3]) if len(node.args) == 4 else None
    if len(node.args) == 4 and ktype is None:
        raise _error(node.args[3], "the fourth argument of extract() is typeof(type)")
    regex, group, source = (
        (ec.compile(a) for a in node.args[:3]) if len(node.args) >= 3 else ec.args(node, 3, 4)
    )
    check_regex(_const_str(regex, node.args[0], "the extract regex"), node.args[0].span)
    text = to_string(source).sql
    value = func("regexp_extract", text, regex.sql, exp.Cast(this=group.sql, to=sql_type("int")))
    if ktype and ktype not in TEXTUAL:
        return convert(Typed(exp.Nullif(this=value, expression=lit_string("")), "string"), ktype)
    return Typed(not_null_string(value), "string")


@register("extract_all")
def _extract_all(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    regex = args[0]
    pattern = _const_str(regex, node.args[0], "the extract_all regex")
    check_regex(pattern, node.args[0].span)
    source = to_string(args[-1]).sql
    groups = re.compile(pattern).groups if _re_ok(pattern) else 1
    if len(args) == 3 or groups > 1:
        raise KqlSemanticError(
            "extract_all() with several capture groups is not supported yet",
            span=node.span,
            code="KQL301",
        )
    group = exp.Literal.number(1 if groups else 0)
    matches = func(
        "regexp_extract_all", source, regex.sql, exp.Cast(this=group, to=sql_type("int"))
    )
    return Typed(
        exp.If(
            this=exp.GT(this=func("len", matches), expression=exp.Literal.number(0)),
            true=func("to_json", matches.copy()),
            false=exp.Cast(this=exp.null(), to=sql_type("dynamic")),
        ),
        "dynamic",
    )


def _re_ok(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@register("split")
def _split(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    parts = func("string_split", to_string(args[0]).sql, to_string(args[1]).sql)
    if len(args) == 3:
        # with an index, split returns a one-element array
        # https://learn.microsoft.com/kusto/query/split-function
        idx = exp.Add(this=args[2].sql, expression=exp.Literal.number(1))
        element = func("list_extract", parts, idx)
        return Typed(
            exp.If(
                this=exp.Is(this=element, expression=exp.null()),
                true=exp.Cast(this=lit_string("[]"), to=sql_type("dynamic")),
                false=func("json_array", element.copy()),
            ),
            "dynamic",
        )
    return Typed(func("to_json", parts), "dynamic")


@register("countof")
def _countof(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    text, search = to_string(args[0]).sql, to_string(args[1])
    kind = "normal"
    if len(args) == 3:
        kind = _const_str(args[2], node.args[2], "the countof kind")
    pattern = search.sql if kind == "regex" else func("regexp_escape", search.sql)
    return Typed(func("len", func("regexp_extract_all", text, pattern)), "long")


@register("base64_decode_tostring", "base64_decodestring")
def _b64decode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(not_null_string(func("try", func("decode", func("from_base64", s.sql)))), "string")


@register("base64_encode_tostring", "base64_encodestring")
def _b64encode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("to_base64", func("encode", s.sql)), "string")


@register("url_decode")
def _url_decode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(not_null_string(func("try", func("url_decode", s.sql))), "string")


@register("url_encode", "url_encode_component")
def _url_encode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("url_encode", s.sql), "string")


def _hash(sql_name: str) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        (s,) = _strings(ec, node, 1)
        return Typed(func(sql_name, s.sql), "string")

    return handler


FUNCTIONS["hash_sha256"] = _hash("sha256")
FUNCTIONS["hash_md5"] = _hash("md5")
FUNCTIONS["hash_sha1"] = _hash("sha1")


def _udf(sql_name: str, ktype: str, nargs: tuple[int, int]) -> Handler:
    """A function implemented in Python and registered with the engine (see engines/udfs.py)."""

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = _strings(ec, node, *nargs)
        return Typed(func(sql_name, *[a.sql for a in args]), ktype)

    return handler


@register("parse_command_line")
def _parse_command_line(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = _strings(ec, node, 1, 2)
    parser = args[1].sql if len(args) == 2 else lit_string("windows")
    return Typed(func("tw_parse_command_line", args[0].sql, parser), "dynamic")


FUNCTIONS["parse_url"] = _udf("tw_parse_url", "dynamic", (1, 1))
FUNCTIONS["parse_urlquery"] = _udf("tw_parse_urlquery", "dynamic", (1, 1))
FUNCTIONS["parse_path"] = _udf("tw_parse_path", "dynamic", (1, 1))


@register("unicode_codepoints_from_string")
def _unicode_codepoints(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The code points of a string as a dynamic array of numbers."""
    (s,) = _strings(ec, node, 1)
    chars = func("string_split", s.sql, lit_string(""))
    points = func(
        "list_transform",
        chars,
        exp.Lambda(this=func("unicode", exp.column("c")), expressions=[exp.to_identifier("c")]),
    )
    empty = exp.EQ(this=s.sql.copy(), expression=lit_string(""))
    return Typed(
        exp.If(
            this=empty,
            true=exp.Cast(this=lit_string("[]"), to=sql_type("dynamic")),
            false=func("to_json", points),
        ),
        "dynamic",
    )


@register("jaccard_index")
def _jaccard_index(ec: ExprCompiler, node: ast.Call) -> Typed:
    """|A ∩ B| / |A ∪ B| over the distinct elements of two arrays.

    https://learn.microsoft.com/kusto/query/jaccard-index-function
    """
    a, b = (
        func("list_distinct", func("json_extract", _dyn(t), lit_string("$[*]")))
        for t in ec.args(node, 2)
    )
    union = func("len", func("list_distinct", func("list_concat", a.copy(), b.copy())))
    common = exp.Cast(this=func("len", func("list_intersect", a, b)), to=sql_type("real"))
    return Typed(
        exp.Div(this=common, expression=exp.Nullif(this=union, expression=exp.Literal.number(0))),
        "real",
    )


@register("has_any_index")
def _has_any_index(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The index of the first value the source ``has``, or -1.

    https://learn.microsoft.com/kusto/query/has-any-index-function
    """
    source, values = ec.args(node, 2)
    if not (values.is_constant and isinstance(values.constant, list)):
        raise KqlSemanticError(
            "has_any_index() needs a constant array of values",
            span=node.args[1].span,
            code="KQL301",
        )
    text = to_string(source).sql
    ifs = [
        exp.If(
            this=term_match(text.copy(), str(v), case_sensitive=False), true=exp.Literal.number(i)
        )
        for i, v in enumerate(values.constant)
        if v is not None
    ]
    if not ifs:
        return Typed(exp.Literal.number(-1), "long")
    return Typed(exp.Case(ifs=ifs, default=exp.Literal.number(-1)), "long")


@register("tohex")
def _tohex(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 1, 2)
    return Typed(func("lower", func("hex", args[0].sql)), "string")


# --- dynamic ---------------------------------------------------------------------------------


def _dyn(t: Typed) -> exp.Expr:
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


@register("array_length")
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
    path, text = ec.args(node, 2, 3)[:2]
    return Typed(
        not_null_string(func("json_extract_string", _dyn(text), to_string(path).sql)), "string"
    )


# --- numbers ---------------------------------------------------------------------------------


def _math(sql_name: str, result: str | None = "real", nargs: int = 1) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = ec.args(node, nargs)
        for a, n in zip(args, node.args, strict=True):
            if a.type not in NUMERIC and a.type != "dynamic":
                raise _error(n, f"{node.name}() needs a number, not {a.type}")
        ktype = result or args[0].type
        return Typed(func(sql_name, *[a.sql for a in args]), ktype)

    return handler


FUNCTIONS.update(
    {
        "exp": _math("exp"),
        "pow": _math("pow", "real", 2),
        "sign": _math("sign", None),
        "ceiling": _math("ceil", None),
        "isnan": _math("isnan", "bool"),
        "isinf": _math("isinf", "bool"),
        "isfinite": _math("isfinite", "bool"),
    }
)


def _domain(sql_name: str, strict: bool) -> Handler:
    """log/sqrt: outside the function's domain the result is null, as in Kusto."""

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        (x,) = ec.args(node, 1)
        test = exp.GT if strict else exp.GTE
        return Typed(
            exp.Case(
                ifs=[
                    exp.If(
                        this=test(this=x.sql, expression=exp.Literal.number(0)),
                        true=func(sql_name, x.sql.copy()),
                    )
                ]
            ),
            "real",
        )

    return handler


FUNCTIONS.update(
    {
        "log": _domain("ln", True),
        "log2": _domain("log2", True),
        "log10": _domain("log10", True),
        "sqrt": _domain("sqrt", False),
    }
)


@register("abs")
def _abs(ec: ExprCompiler, node: ast.Call) -> Typed:
    (x,) = ec.args(node, 1)
    if x.type == "timespan":
        return Typed(func("to_microseconds", func("abs", func("epoch_us", x.sql))), "timespan")
    if x.type not in NUMERIC:
        raise _error(node.args[0], f"abs() needs a number or timespan, not {x.type}")
    return Typed(func("abs", x.sql), x.type)


@register("exp2")
def _exp2(ec: ExprCompiler, node: ast.Call) -> Typed:
    (x,) = ec.args(node, 1)
    return Typed(func("pow", exp.Literal.number(2), x.sql), "real")


@register("exp10")
def _exp10(ec: ExprCompiler, node: ast.Call) -> Typed:
    (x,) = ec.args(node, 1)
    return Typed(func("pow", exp.Literal.number(10), x.sql), "real")


@register("round")
def _round(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 1, 2)
    precision = (
        exp.Cast(this=args[1].sql, to=sql_type("int")) if len(args) == 2 else exp.Literal.number(0)
    )
    if args[0].type == "real":
        # round half away from zero on the decimal written (2.15 -> 2.2), not its binary double
        as_decimal = exp.Cast(this=args[0].sql, to=exp.DataType.build("DECIMAL(38,15)"))
        return Typed(
            exp.Cast(this=func("round", as_decimal, precision), to=sql_type("real")), "real"
        )
    return Typed(func("round", args[0].sql, precision), args[0].type)


@register("rand")
def _rand(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 0, 1)
    if args:
        return Typed(
            exp.Cast(
                this=func("floor", exp.Mul(this=func("random"), expression=args[0].sql)),
                to=sql_type("long"),
            ),
            "long",
        )
    return Typed(func("random"), "real")


def _extreme(sql_name: str) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = _same_type(node, *ec.args(node, 2, 64))
        return Typed(func(sql_name, *[a.sql for a in args]), args[0].type)

    return handler


FUNCTIONS["min_of"] = _extreme("least")
FUNCTIONS["max_of"] = _extreme("greatest")


def _binary(build: Callable[[exp.Expr, exp.Expr], exp.Expr]) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        a, b = ec.args(node, 2)
        return Typed(build(a.sql, b.sql), "long")

    return handler


FUNCTIONS["binary_and"] = _binary(lambda a, b: exp.BitwiseAnd(this=a, expression=b))
FUNCTIONS["binary_or"] = _binary(lambda a, b: exp.BitwiseOr(this=a, expression=b))
FUNCTIONS["binary_xor"] = _binary(lambda a, b: func("xor", a, b))
FUNCTIONS["binary_shift_left"] = _binary(lambda a, b: exp.BitwiseLeftShift(this=a, expression=b))
FUNCTIONS["binary_shift_right"] = _binary(lambda a, b: exp.BitwiseRightShift(this=a, expression=b))


# --- time ------------------------------------------------------------------------------------


def _now_typed(ec: ExprCompiler) -> Typed:
    from trustwatch.kql.expressions import literal

    return literal(ec.compiler.now, "datetime")


@register("now")
def _now(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 0, 1)
    now = _now_typed(ec)
    if args:
        return Typed(exp.Add(this=now.sql, expression=args[0].sql), "datetime")
    return now


@register("ago")
def _ago(ec: ExprCompiler, node: ast.Call) -> Typed:
    (span,) = ec.args(node, 1)
    if span.type != "timespan":
        raise _error(node.args[0], f"ago() needs a timespan such as 1d, not {span.type}")
    # now() is evaluated once per query: https://learn.microsoft.com/kusto/query/ago-function
    return Typed(exp.Sub(this=_now_typed(ec).sql, expression=span.sql), "datetime")


def _bin_datetime(value: exp.Expr, size_us: exp.Expr, origin_us: exp.Expr) -> exp.Expr:
    offset = exp.Sub(this=func("epoch_us", value), expression=origin_us)
    floored = exp.Mul(
        this=func(
            "floor", exp.Div(this=exp.Cast(this=offset, to=sql_type("real")), expression=size_us)
        ),
        expression=size_us.copy(),
    )
    return func(
        "make_timestamp",
        exp.Cast(this=exp.Add(this=floored, expression=origin_us.copy()), to=sql_type("long")),
    )


def _bin(value: Typed, size: Typed, node: ast.Call, origin: Typed | None = None) -> Typed:
    if value.type == "datetime":
        if size.type != "timespan":
            raise _error(node, "bin() of a datetime needs a timespan size such as 1h")
        origin_us = (
            func("epoch_us", origin.sql)
            if origin is not None
            else exp.Literal.number(_EPOCH_0001_US)
        )
        return Typed(_bin_datetime(value.sql, micros(size.sql), origin_us), "datetime")
    if value.type == "timespan":
        size_us = micros(size.sql)
        base = micros(origin.sql) if origin is not None else exp.Literal.number(0)
        floored = exp.Mul(
            this=func(
                "floor",
                exp.Div(
                    this=exp.Cast(
                        this=exp.Sub(this=micros(value.sql), expression=base), to=sql_type("real")
                    ),
                    expression=size_us,
                ),
            ),
            expression=size_us.copy(),
        )
        return Typed(from_micros(exp.Add(this=floored, expression=base.copy())), "timespan")
    if value.type in NUMERIC:
        base = origin.sql if origin is not None else exp.Literal.number(0)
        floored = exp.Mul(
            this=func(
                "floor",
                exp.Div(
                    this=exp.Cast(
                        this=exp.Sub(this=value.sql, expression=base), to=sql_type("real")
                    ),
                    expression=size.sql,
                ),
            ),
            expression=size.sql.copy(),
        )
        out = exp.Add(this=floored, expression=base.copy())
        if value.type != "real" and size.type != "real":
            return Typed(exp.Cast(this=out, to=sql_type("long")), "long")
        return Typed(out, "real")
    raise _error(node, f"bin() cannot round a {value.type} value")


@register("bin", "floor")
def _bin_fn(ec: ExprCompiler, node: ast.Call) -> Typed:
    if node.name == "floor" and len(node.args) == 1:
        (x,) = ec.args(node, 1)
        return Typed(func("floor", x.sql), x.type)
    value, size = ec.args(node, 2)
    return _positive_size(_bin(value, size, node), size)


def _positive_size(result: Typed, size: Typed) -> Typed:
    """bin() with a null, zero or negative size is null."""
    measure = micros(size.sql) if size.type == "timespan" else size.sql
    positive = exp.GT(this=measure.copy(), expression=exp.Literal.number(0))
    return Typed(exp.Case(ifs=[exp.If(this=positive, true=result.sql)]), result.type)


@register("bin_at")
def _bin_at(ec: ExprCompiler, node: ast.Call) -> Typed:
    value, size, origin = ec.args(node, 3)
    return _positive_size(_bin(value, size, node, origin), size)


def _datetime_arg(
    ec: ExprCompiler, node: ast.Call, low: int = 1, high: int | None = None
) -> list[Typed]:
    args = ec.args(node, low, high)
    if args[0].type == "dynamic" or args[0].type in TEXTUAL:
        args[0] = convert(args[0], "datetime")
    if args[0].type != "datetime":
        raise _error(node.args[0], f"{node.name}() needs a datetime, not {args[0].type}")
    return args


def _start_of(unit: str) -> Handler:
    units = {"day": "to_days", "month": "to_months", "year": "to_years", "week": "to_days"}

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = _datetime_arg(ec, node, 1, 2)
        d = args[0].sql
        if unit == "week":
            # Kusto weeks start on Sunday; DuckDB's dayofweek() is 0 for Sunday.
            start: exp.Expr = exp.Sub(
                this=func("date_trunc", lit_string("day"), d),
                expression=func("to_days", func("dayofweek", d.copy())),
            )
        else:
            start = func("date_trunc", lit_string(unit), d)
        start = exp.Cast(this=start, to=sql_type("datetime"))
        if len(args) == 2:
            n = (
                args[1].sql
                if unit != "week"
                else exp.Mul(this=args[1].sql, expression=exp.Literal.number(7))
            )
            start = exp.Add(this=start, expression=func(units[unit], n))
        return Typed(start, "datetime")

    return handler


def _end_of(unit: str) -> Handler:
    start_handler = _start_of(unit)
    step = {"day": "to_days", "week": "to_days", "month": "to_months", "year": "to_years"}[unit]

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        start = start_handler(ec, node)
        n = exp.Literal.number(7 if unit == "week" else 1)
        return Typed(
            exp.Sub(
                this=exp.Add(this=start.sql, expression=func(step, n)),
                expression=func("to_microseconds", exp.Literal.number(1)),
            ),
            "datetime",
        )

    return handler


for _unit in ("day", "week", "month", "year"):
    FUNCTIONS[f"startof{_unit}"] = _start_of(_unit)
    FUNCTIONS[f"endof{_unit}"] = _end_of(_unit)


def _part(sql_name: str, ktype: str = "int") -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        (d,) = _datetime_arg(ec, node, 1)
        return Typed(exp.Cast(this=func(sql_name, d.sql), to=sql_type(ktype)), ktype)

    return handler


FUNCTIONS.update(
    {
        "hourofday": _part("hour"),
        "dayofmonth": _part("dayofmonth"),
        "dayofyear": _part("dayofyear"),
        "getyear": _part("year"),
        "getmonth": _part("month"),
        "monthofyear": _part("month"),
        "week_of_year": _part("weekofyear"),
        "weekofyear": _part("weekofyear"),
    }
)


@register("dayofweek")
def _dayofweek(ec: ExprCompiler, node: ast.Call) -> Typed:
    (d,) = _datetime_arg(ec, node, 1)
    # a timespan: days since the preceding Sunday
    return Typed(func("to_days", func("dayofweek", d.sql)), "timespan")


_PARTS = {
    "year": "year",
    "quarter": "quarter",
    "month": "month",
    "week": "week",
    "day": "day",
    "hour": "hour",
    "minute": "minute",
    "second": "second",
    "millisecond": "millisecond",
    "microsecond": "microsecond",
    "nanosecond": "microsecond",
}


def _part_name(ec: ExprCompiler, t: Typed, node: ast.Node) -> str:
    name = _const_str(t, node, "the date part").lower()
    name = {
        "yy": "year",
        "mm": "month",
        "dd": "day",
        "hh": "hour",
        "mi": "minute",
        "ss": "second",
        "ms": "millisecond",
        "mcs": "microsecond",
        "ns": "nanosecond",
        "wk": "week",
        "ww": "week",
    }.get(name, name)
    if name not in _PARTS:
        raise _error(node, f"unknown date part '{name}'")
    return name


@register("datetime_diff")
def _datetime_diff(ec: ExprCompiler, node: ast.Call) -> Typed:
    part, d1, d2 = ec.args(node, 3)
    name = _part_name(ec, part, node.args[0])
    if name == "week":  # Kusto's weeks start on Sunday; DuckDB's on Monday

        def week_start(d: exp.Expr) -> exp.Expr:
            return exp.Sub(
                this=func("date_trunc", lit_string("day"), d),
                expression=func("to_days", func("dayofweek", d.copy())),
            )

        days = func("date_diff", lit_string("day"), week_start(d2.sql), week_start(d1.sql))
        return Typed(exp.IntDiv(this=days, expression=exp.Literal.number(7)), "long")
    diff = func("date_diff", lit_string(_PARTS[name]), d2.sql, d1.sql)
    if name == "nanosecond":
        diff = exp.Mul(this=diff, expression=exp.Literal.number(1000))
    return Typed(diff, "long")


@register("datetime_add")
def _datetime_add(ec: ExprCompiler, node: ast.Call) -> Typed:
    part, amount, d = ec.args(node, 3)
    name = _part_name(ec, part, node.args[0])
    conv = {
        "year": "to_years",
        "quarter": "to_months",
        "month": "to_months",
        "week": "to_weeks",
        "day": "to_days",
        "hour": "to_hours",
        "minute": "to_minutes",
        "second": "to_seconds",
        "millisecond": "to_milliseconds",
        "microsecond": "to_microseconds",
        "nanosecond": "to_microseconds",
    }[name]
    n = amount.sql
    if name == "quarter":
        n = exp.Mul(this=n, expression=exp.Literal.number(3))
    if name == "nanosecond":
        n = exp.IntDiv(this=n, expression=exp.Literal.number(1000))
    return Typed(
        exp.Cast(this=exp.Add(this=d.sql, expression=func(conv, n)), to=sql_type("datetime")),
        "datetime",
    )


@register("datetime_part", "datepart")
def _datetime_part(ec: ExprCompiler, node: ast.Call) -> Typed:
    part, d = ec.args(node, 2)
    name = _part_name(ec, part, node.args[0])
    return Typed(
        exp.Cast(this=func("date_part", lit_string(_PARTS[name]), d.sql), to=sql_type("int")), "int"
    )


@register("make_datetime")
def _make_datetime(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 3, 7)
    parts = [a.sql for a in args[:5]] + [exp.Literal.number(0)] * (5 - min(5, len(args)))
    seconds = args[5].sql if len(args) >= 6 else exp.Literal.number(0)
    return Typed(func("make_timestamp", *parts, seconds), "datetime")


def _unixtime(scale_to_us: float) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        (n,) = ec.args(node, 1)
        value = convert(n, "real").sql if n.type not in NUMERIC else n.sql
        us = exp.Cast(
            this=func("round", exp.Mul(this=value, expression=exp.Literal.number(scale_to_us))),
            to=sql_type("long"),
        )
        return Typed(func("make_timestamp", us), "datetime")

    return handler


FUNCTIONS["unixtime_seconds_todatetime"] = _unixtime(1_000_000)
FUNCTIONS["unixtime_milliseconds_todatetime"] = _unixtime(1_000)
FUNCTIONS["unixtime_microseconds_todatetime"] = _unixtime(1)
FUNCTIONS["unixtime_nanoseconds_todatetime"] = _unixtime(0.001)

# .NET custom format specifiers -> strftime. https://learn.microsoft.com/kusto/query/format-datetime-function
_DT_FORMATS = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("dd", "%d"),
    ("d", "%-d"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("tt", "%p"),
    ("fffffff", "%f0"),
    ("ffffff", "%f"),
    ("fffff", "<f5>"),
    ("ffff", "<f4>"),
    ("fff", "%g"),
    ("ff", "<f2>"),
    ("f", "<f1>"),
]


def _dotnet_to_strftime(fmt: str) -> str:
    out, i = [], 0
    while i < len(fmt):
        for token, repl in _DT_FORMATS:
            if fmt.startswith(token, i):
                out.append(repl)
                i += len(token)
                break
        else:
            out.append("%%" if fmt[i] == "%" else fmt[i])
            i += 1
    return "".join(out)


@register("format_datetime")
def _format_datetime(ec: ExprCompiler, node: ast.Call) -> Typed:
    d, fmt = _datetime_arg(ec, node, 2)
    pattern = _dotnet_to_strftime(_const_str(fmt, node.args[1], "the format"))
    if "<f" in pattern:
        raise KqlSemanticError(
            "format_datetime() supports f, ff only as fff, ffffff or fffffff here",
            span=node.args[1].span,
            code="KQL301",
        )
    return Typed(not_null_string(func("strftime", d.sql, lit_string(pattern))), "string")


@register("format_timespan")
def _format_timespan(ec: ExprCompiler, node: ast.Call) -> Typed:
    t, fmt = ec.args(node, 2)
    text = _const_str(fmt, node.args[1], "the format")
    us = micros(t.sql)
    a = exp.Abs(this=us)
    pieces: list[exp.Expr] = []
    units = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}
    mods = {"d": None, "h": 24, "m": 60, "s": 60}
    i = 0
    while i < len(text):
        ch = text[i]
        j = i
        while j < len(text) and text[j] == ch:
            j += 1
        run = j - i
        key = ch.lower() if ch in "dhHms" else ch
        if key in units:
            value: exp.Expr = exp.IntDiv(this=a.copy(), expression=exp.Literal.number(units[key]))
            if mods[key]:
                value = exp.Mod(this=value, expression=exp.Literal.number(mods[key]))
            pieces.append(
                func(
                    "lpad",
                    exp.Cast(this=value, to=sql_type("string")),
                    exp.Literal.number(run),
                    lit_string("0"),
                )
            )
        elif ch in "fF":
            frac = exp.IntDiv(
                this=exp.Mod(
                    this=exp.Mul(this=a.copy(), expression=exp.Literal.number(10)),
                    expression=exp.Literal.number(10_000_000),
                ),
                expression=exp.Literal.number(10 ** (7 - min(run, 7))),
            )
            pieces.append(
                func(
                    "lpad",
                    exp.Cast(this=frac, to=sql_type("string")),
                    exp.Literal.number(min(run, 7)),
                    lit_string("0"),
                )
            )
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            end = len(text) if end < 0 else end
            pieces.append(lit_string(text[i + 1 : end]))
            j = end + 1
        else:
            pieces.append(lit_string(text[i:j]))
        i = j
    return Typed(func("concat", *pieces), "string")


# --- IPv4 ------------------------------------------------------------------------------------


def _ipv4_to_long(s: exp.Expr) -> exp.Expr:
    """An IPv4 address text as a number, or NULL when it is not one."""
    parts = func("string_split", s, lit_string("."))
    octet = [
        exp.TryCast(
            this=func("list_extract", parts.copy(), exp.Literal.number(i)), to=sql_type("long")
        )
        for i in range(1, 5)
    ]
    value = exp.Add(
        this=exp.Add(
            this=exp.Mul(this=octet[0], expression=exp.Literal.number(16777216)),
            expression=exp.Mul(this=octet[1], expression=exp.Literal.number(65536)),
        ),
        expression=exp.Add(
            this=exp.Mul(this=octet[2], expression=exp.Literal.number(256)), expression=octet[3]
        ),
    )
    valid = func(
        "regexp_matches",
        s.copy(),
        lit_string(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$"),
    )
    return exp.Case(ifs=[exp.If(this=valid, true=value)])


def _split_cidr(s: exp.Expr, default_prefix: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
    addr = func("split_part", s, lit_string("/"), exp.Literal.number(1))
    prefix = func(
        "coalesce",
        exp.TryCast(
            this=exp.Nullif(
                this=func("split_part", s.copy(), lit_string("/"), exp.Literal.number(2)),
                expression=lit_string(""),
            ),
            to=sql_type("long"),
        ),
        default_prefix,
    )
    return _ipv4_to_long(addr), prefix


def _masked(value: exp.Expr, prefix: exp.Expr) -> exp.Expr:
    block = func(
        "pow", exp.Literal.number(2), exp.Sub(this=exp.Literal.number(32), expression=prefix)
    )
    return exp.Mul(
        this=func("floor", exp.Div(this=value, expression=block)), expression=block.copy()
    )


@register("parse_ipv4")
def _parse_ipv4(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    value, prefix = _split_cidr(s.sql, exp.Literal.number(32))
    return Typed(exp.Cast(this=_masked(value, prefix), to=sql_type("long")), "long")


@register("ipv4_is_in_range", "ipv4_is_in_any_range")
def _ipv4_in_range(ec: ExprCompiler, node: ast.Call) -> Typed:
    ip, rng = _strings(ec, node, 2)
    value, _ = _split_cidr(ip.sql, exp.Literal.number(32))
    base, prefix = _split_cidr(rng.sql, exp.Literal.number(32))
    return Typed(
        exp.EQ(this=_masked(value, prefix), expression=_masked(base, prefix.copy())), "bool"
    )


@register("ipv4_compare")
def _ipv4_compare(ec: ExprCompiler, node: ast.Call) -> Typed:
    raw = ec.args(node, 2, 3)
    args = [to_string(a) for a in raw[:2]]
    a, pa = _split_cidr(args[0].sql, exp.Literal.number(32))
    b, pb = _split_cidr(args[1].sql, exp.Literal.number(32))
    prefix = (
        func("least", pa, pb)
        if len(raw) == 2
        else func("least", pa, pb, exp.Cast(this=raw[2].sql, to=sql_type("long")))
    )
    ma, mb = _masked(a, prefix), _masked(b, prefix.copy())
    return Typed(
        exp.Cast(this=func("sign", exp.Sub(this=ma, expression=mb)), to=sql_type("long")), "long"
    )


@register("ipv4_is_match")
def _ipv4_is_match(ec: ExprCompiler, node: ast.Call) -> Typed:
    cmp = _ipv4_compare(ec, node)
    return Typed(exp.EQ(this=cmp.sql, expression=exp.Literal.number(0)), "bool")


_PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@register("ipv4_is_private")
def _ipv4_is_private(ec: ExprCompiler, node: ast.Call) -> Typed:
    # RFC 1918 ranges: https://learn.microsoft.com/kusto/query/ipv4-is-private-function
    (ip,) = _strings(ec, node, 1)
    value, _ = _split_cidr(ip.sql, exp.Literal.number(32))
    preds = []
    for rng in _PRIVATE_RANGES:
        base, prefix = rng.split("/")
        a, b, c, d = (int(x) for x in base.split("."))
        base_value = exp.Literal.number(((a * 256 + b) * 256 + c) * 256 + d)
        preds.append(
            exp.EQ(
                this=_masked(value.copy(), exp.Literal.number(int(prefix))), expression=base_value
            )
        )
    return Typed(exp.or_(*preds), "bool")


# --- row context -----------------------------------------------------------------------------


@register("ingestion_time")
def _ingestion_time(ec: ExprCompiler, node: ast.Call) -> Typed:
    """Local files carry no ingestion time: the row's own time stands in, with a notice.

    In Sentinel, ingestion_time() is when the record reached the workspace, shortly after
    TimeGenerated; https://learn.microsoft.com/kusto/query/ingestion-time-function
    """
    ec.args(node, 0)
    for name in ("TimeGenerated", "Timestamp"):
        if ec.rel is not None and ec.rel.type_of(name) == "datetime":
            notice = f"ingestion_time() is approximated by {name}: local data has no ingestion time"
            if notice not in ec.compiler.notices:
                ec.compiler.notices.append(notice)
            return Typed(exp.column(name, quoted=True), "datetime")
    raise _error(
        node, "ingestion_time() needs a TimeGenerated or Timestamp column to stand in for it"
    )


@register("column_ifexists")
def _column_ifexists(ec: ExprCompiler, node: ast.Call) -> Typed:
    name_t, default = ec.args(node, 2)
    name = _const_str(name_t, node.args[0], "the column name")
    if ec.rel is not None and (ktype := ec.rel.type_of(name)) is not None:
        return Typed(exp.column(name, quoted=True), ktype)
    return default


@register("row_number")
def _row_number(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 0, 2)
    if ec.rel is None or ec.rel.order is None:
        raise _error(
            node,
            "row_number() needs serialized input: add '| serialize' or '| sort by ...' before it",
        )
    window = exp.Window(
        this=exp.RowNumber(),
        order=exp.Order(expressions=[exp.Ordered(this=exp.column(ec.rel.order, quoted=True))]),
    )
    if args:
        return Typed(
            exp.Add(
                this=exp.Sub(this=window, expression=exp.Literal.number(1)), expression=args[0].sql
            ),
            "long",
        )
    return Typed(window, "long")


def _offset_fn(lag: bool) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = ec.args(node, 1, 3)
        if ec.rel is None or ec.rel.order is None:
            raise _error(
                node,
                f"{node.name}() needs serialized input: add '| serialize' or '| sort by' before it",
            )
        offset = args[1].sql if len(args) >= 2 else exp.Literal.number(1)
        default = args[2].sql if len(args) == 3 else None
        cls = exp.Lag if lag else exp.Lead
        call = cls(this=args[0].sql, offset=offset, default=default)
        window = exp.Window(
            this=call,
            order=exp.Order(expressions=[exp.Ordered(this=exp.column(ec.rel.order, quoted=True))]),
        )
        sql: exp.Expr = not_null_string(window) if args[0].type in TEXTUAL else window
        return Typed(sql, args[0].type)

    return handler


FUNCTIONS["prev"] = _offset_fn(True)
FUNCTIONS["next"] = _offset_fn(False)


@register("toscalar")
def _toscalar(ec: ExprCompiler, node: ast.Call) -> Typed:
    if len(node.args) != 1:
        raise KqlSemanticError("toscalar() takes 1 argument", span=node.span, code="KQL204")
    arg = node.args[0]
    inner = arg.query if hasattr(arg, "query") else arg
    if isinstance(inner, ast.Expr) and not ec.compiler.names_tabular(inner, ec.scope):
        return ec.compile(inner)
    return ec.scalar_subquery(inner, node.span)


@register("typeof")
def _typeof(ec: ExprCompiler, node: ast.Call) -> Typed:
    raise _error(
        node,
        "typeof() is only valid as a type argument (as in mv-expand ... to typeof(string))",
    )


@register("materialize")
def _materialize_scalar(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return arg


@register("array_sort_asc", "array_sort_desc")
def _array_sort(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arr,) = ec.args(node, 1)
    lst = func("json_extract", _dyn(arr), lit_string("$[*]"))
    order = "ASC" if node.name.endswith("asc") else "DESC"
    return Typed(func("to_json", func("list_sort", lst, lit_string(order))), "dynamic")
