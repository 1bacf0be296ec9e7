"""Numeric functions: rounding, logarithms, powers, bitwise operations, min_of/max_of."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    NUMERIC,
    Typed,
    func,
    sql_type,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.logic import _same_type
from trustwatch.kql.functions.registry import (
    FUNCTIONS,
    Handler,
    _error,
    register,
)


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


@register("new_guid")
def _new_guid(ec: ExprCompiler, node: ast.Call) -> Typed:
    """A random (version 4) GUID, a new one for each row.

    https://learn.microsoft.com/kusto/query/new-guid-function
    """
    ec.args(node, 0, 0)
    return Typed(exp.Cast(this=func("uuid"), to=sql_type("guid")), "guid")


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
