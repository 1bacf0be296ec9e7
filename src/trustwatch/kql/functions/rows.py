"""Functions that read the row context: column_ifexists, row_number, prev/next, toscalar."""

from __future__ import annotations

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
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.dynamic import _dyn
from trustwatch.kql.functions.registry import (
    FUNCTIONS,
    Handler,
    _const_str,
    _error,
    register,
)


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


@register("column_ifexists", "columnifexists")
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
    if len(args) == 2:
        # refused rather than numbered across the restarts (a silently different result)
        raise ec.compiler.unsupported("row_number() with a restart predicate", node.span)
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
