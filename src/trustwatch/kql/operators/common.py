"""The operator table and the naming helpers every operator module shares.

https://learn.microsoft.com/kusto/query/tabular-expression-statements
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, Span, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.aggregates import column_name_of
from trustwatch.kql.compiler import Compiler, OperatorHandler
from trustwatch.kql.scope import Relation, Scope

OPERATORS: dict[type, OperatorHandler] = {}

# How each operator is spelt in KQL, for messages about operators that are not compiled.
KQL_NAMES: dict[type, str] = {
    ast.MvApply: "mv-apply",
    ast.MakeSeries: "make-series",
    ast.Evaluate: "evaluate",
    ast.Search: "search",
    ast.Sample: "sample",
}

# Functions whose result keeps the name of their first argument column.
_NAME_THROUGH = frozenset(
    {
        "tostring",
        "toint",
        "tolong",
        "todouble",
        "toreal",
        "tobool",
        "todatetime",
        "totimespan",
        "todynamic",
        "parse_json",
        "parsejson",
        "bin",
        "floor",
        "todecimal",
        "toguid",
        "bin_at",
    }
)


def register(node_type: type) -> Callable[[Callable[..., Relation]], Callable[..., Relation]]:
    def deco(fn: Callable[..., Relation]) -> Callable[..., Relation]:
        OPERATORS[node_type] = fn
        return fn

    return deco


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def inferred_name(expr: ast.Node) -> str | None:
    """The name Kusto gives an unnamed expression column, or None for ``ColumnN``."""
    name = column_name_of(expr)
    if name is not None:
        return name
    if isinstance(expr, ast.Call) and expr.name in _NAME_THROUGH and expr.args:
        return inferred_name(expr.args[0])
    return None


def free_name(name: str, taken: set[str]) -> str:
    """Kusto's rule for a name already taken: add 1, then 2, ... (Host1, DeviceId1, set_y1)."""
    candidate, n = name, 0
    while candidate in taken:
        n += 1
        candidate = f"{name}{n}"
    return candidate


class ColumnNamer:
    """Hands out ``Column1``, ``Column2``... avoiding names already present."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.n = 0

    def next(self) -> str:
        while True:
            self.n += 1
            name = f"Column{self.n}"
            if name not in self.taken:
                self.taken.add(name)
                return name


def _assignment_names(a: ast.Assignment, namer: ColumnNamer) -> str:
    if a.names:
        from trustwatch.kql import functions

        call = a.expr
        if isinstance(call, ast.Call) and call.name in functions.TUPLE_FUNCTIONS:
            # Kusto's multi-column functions (series_decompose_anomalies, series_fit_2lines,
            # ...): the missing function is the error, not the tuple
            raise UnsupportedKql(
                f"the function '{call.name}()' is not supported by trustwatch's KQL engine",
                span=call.name_span,
                hint="see docs/kql-support.md for what is implemented",
            )
        raise KqlSemanticError(
            "a tuple assignment '(A, B) = ...' is only valid for multi-column functions",
            span=a.span,
            code="KQL205",
        )
    return a.name or inferred_name(a.expr) or namer.next()


def distinct_first_pass(
    c: Compiler,
    rel: Relation,
    scope: Scope,
    name: str,
    expr: ast.Expr,
    limit: int,
    span: Span,
    what: str,
    hint: str,
) -> list[tuple[Any, ...]]:
    """A first pass over ``rel`` (:meth:`Compiler.rows_of`: ``what`` and ``hint`` as there):
    the distinct values of ``expr`` as column ``name``, at most ``limit + 1`` of them, so the
    caller sees when the data holds more than its ``limit``."""
    by = (ast.Assignment(name=name, expr=expr, span=span),)
    grouped, _ = c.compile_op(ast.Summarize(aggregates=(), by=by, span=span), rel, scope)
    count = ast.Literal(value=limit + 1, type="long", span=span)
    taken, _ = c.compile_op(ast.Take(count=count, span=span), grouped, scope)
    return c.rows_of(taken, span, what, hint)
