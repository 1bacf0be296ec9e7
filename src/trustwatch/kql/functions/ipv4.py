"""IPv4 functions: parsing, ranges, comparison and private-address tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    Typed,
    func,
    lit_string,
    sql_type,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.conversions import to_string
from trustwatch.kql.functions.registry import (
    register,
)
from trustwatch.kql.functions.strings import _strings


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


@register("ipv4_is_in_range")
def _ipv4_in_range(ec: ExprCompiler, node: ast.Call) -> Typed:
    ip, rng = _strings(ec, node, 2)
    return Typed(_in_range(ip.sql, rng.sql), "bool")


def _in_range(ip: exp.Expr, rng: exp.Expr) -> exp.Expr:
    value, _ = _split_cidr(ip, exp.Literal.number(32))
    base, prefix = _split_cidr(rng, exp.Literal.number(32))
    return exp.EQ(this=_masked(value, prefix), expression=_masked(base, prefix.copy()))


@register("ipv4_is_in_any_range")
def _ipv4_in_any_range(ec: ExprCompiler, node: ast.Call) -> Typed:
    """Whether the address is in one of the ranges: given as strings, or as a constant
    ``dynamic([...])`` array of them (each argument either).

    https://learn.microsoft.com/kusto/query/ipv4-is-in-any-range-function
    """
    args = ec.args(node, 2, 64)
    ip = to_string(args[0]).sql
    ranges: list[exp.Expr] = []
    for arg, arg_node in zip(args[1:], node.args[1:], strict=True):
        if arg.type != "dynamic":
            ranges.append(to_string(arg).sql)
        elif arg.is_constant and isinstance(arg.constant, list):
            ranges += [exp.Literal.string(str(r)) for r in arg.constant if r is not None]
        else:
            raise KqlSemanticError(
                "ipv4_is_in_any_range() takes its ranges as strings or a constant array",
                span=arg_node.span,
                code="KQL301",
            )
    if not ranges:
        return Typed(exp.false(), "bool")
    return Typed(exp.or_(*[_in_range(ip.copy(), r) for r in ranges]), "bool")


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
