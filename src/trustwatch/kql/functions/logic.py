"""Conditionals and null tests: iff(), case(), coalesce(), isempty(), isnull(), not()."""

from __future__ import annotations

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
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.conversions import convert
from trustwatch.kql.functions.registry import (
    _error,
    register,
)


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
    return Typed(exp.Not(this=exp.paren(_is_null(arg), copy=False)), "bool")


@register("not")
def _not(ec: ExprCompiler, node: ast.Call) -> Typed:
    (arg,) = ec.args(node, 1)
    return Typed(exp.Not(this=exp.paren(ec.boolean(arg, node.args[0].span), copy=False)), "bool")


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
