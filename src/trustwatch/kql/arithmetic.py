"""Arithmetic on numbers, datetimes and timespans with Kusto's type rules.

https://learn.microsoft.com/kusto/query/numoperators ,
https://learn.microsoft.com/kusto/query/datetime-timespan-arithmetic
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, Span
from trustwatch.kql.semantics import NUMERIC, Typed, func, sql_type

ErrorFactory = Callable[..., KqlSemanticError]


def micros(sql: exp.Expr) -> exp.Expr:
    """A timespan (SQL INTERVAL) as a count of microseconds."""
    return func("epoch_us", sql)


def from_micros(sql: exp.Expr) -> exp.Expr:
    return func("to_microseconds", exp.Cast(this=func("round", sql), to=sql_type("long")))


def _numeric_result(left: Typed, right: Typed) -> str:
    # real if either side is real, else long (int op int is long in Kusto)
    return "real" if "real" in (left.type, right.type) else "long"


def _coerce_dynamic(t: Typed, other: Typed) -> Typed:
    if t.type == "dynamic":
        from trustwatch.kql.functions import convert

        return convert(
            t,
            "real"
            if other.type == "real" or other.type == "dynamic"
            else other.type
            if other.type in NUMERIC
            else "real",
        )
    return t


def arithmetic(op: str, left: Typed, right: Typed, span: Span, error: ErrorFactory) -> Typed:
    """Compile ``left op right`` for + - * / %."""
    left, right = _coerce_dynamic(left, right), _coerce_dynamic(right, left)
    lt, rt = left.type, right.type
    a, b = left.sql, right.sql
    if lt in NUMERIC and rt in NUMERIC:
        result = _numeric_result(left, right)
        if op == "+":
            return Typed(exp.Add(this=a, expression=b), result)
        if op == "-":
            return Typed(exp.Sub(this=a, expression=b), result)
        if op == "*":
            return Typed(exp.Mul(this=a, expression=b), result)
        if op == "/":
            if result == "long":
                # integer division truncates toward zero: -7 / 2 == -3
                return Typed(exp.IntDiv(this=a, expression=b), "long")
            return Typed(exp.Div(this=exp.Cast(this=a, to=sql_type("real")), expression=b), "real")
        # Kusto's modulo is never negative: 0 <= N % D < abs(D)
        absb = exp.Abs(this=b.copy())
        inner = exp.Mod(
            this=exp.paren(exp.Add(this=exp.paren(exp.Mod(this=a, expression=b)), expression=absb)),
            expression=absb.copy(),
        )
        return Typed(inner, result)
    if lt == "datetime" and rt == "timespan" and op in "+-":
        cls = exp.Add if op == "+" else exp.Sub
        return Typed(cls(this=a, expression=b), "datetime")
    if lt == "timespan" and rt == "datetime" and op == "+":
        return Typed(exp.Add(this=b, expression=a), "datetime")
    if lt == "datetime" and rt == "datetime" and op == "-":
        return Typed(exp.Sub(this=a, expression=b), "timespan")
    if lt == "timespan" and rt == "timespan":
        if op in "+-":
            cls = exp.Add if op == "+" else exp.Sub
            return Typed(cls(this=a, expression=b), "timespan")
        if op == "/":
            return Typed(
                exp.Div(this=exp.Cast(this=micros(a), to=sql_type("real")), expression=micros(b)),
                "real",
            )
        if op == "%":
            return Typed(
                func("to_microseconds", exp.Mod(this=micros(a), expression=micros(b))), "timespan"
            )
    if lt == "timespan" and rt in NUMERIC and op in "*/":
        scale = exp.Mul if op == "*" else exp.Div
        return Typed(
            from_micros(scale(this=exp.Cast(this=micros(a), to=sql_type("real")), expression=b)),
            "timespan",
        )
    if lt in NUMERIC and rt == "timespan" and op == "*":
        return Typed(
            from_micros(exp.Mul(this=exp.Cast(this=a, to=sql_type("real")), expression=micros(b))),
            "timespan",
        )
    raise error(
        f"operator '{op}' cannot combine {lt} and {rt}",
        span,
        hint="use strcat() to join strings" if "string" in (lt, rt) and op == "+" else None,
    )
