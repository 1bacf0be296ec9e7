"""Date and time functions: now/ago, bin, start/end of periods, parts, differences, formats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.arithmetic import from_micros, micros
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
from trustwatch.kql.functions.conversions import convert
from trustwatch.kql.functions.registry import (
    _EPOCH_0001_US,
    FUNCTIONS,
    Handler,
    _const_str,
    _error,
    register,
)


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
