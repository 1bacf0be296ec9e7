"""The ``partition`` operator: a subquery run on each subtable of rows sharing a key value.

https://learn.microsoft.com/kusto/query/partition-operator
"""

from __future__ import annotations

from trustwatch.errors import KqlSemanticError, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.operators.common import col, distinct_first_pass, register
from trustwatch.kql.operators.expand import run_within
from trustwatch.kql.scope import Relation, Scope

_STRATEGIES = ("native", "shuffle", "legacy")
#: the legacy strategy (the default) refuses a key column with more distinct values
LEGACY_PARTITIONS = 64


@register(ast.Partition)
def compile_partition(c: Compiler, op: ast.Partition, rel: Relation, scope: Scope) -> Relation:
    """``partition by Column (subquery)``: the subquery's operators run on each subtable (the
    rows with one value of ``Column``) and the results are put together, as mv-apply runs its
    subquery per row (the same operators: row-wise ones, summarize, distinct, count, top, take,
    and sort before one of them). All three strategies give the same result; the legacy one
    (the default) refuses more than 64 distinct values, as Kusto does, when the data is at
    hand. ``{ T | ... }`` (a subquery with its own source) is refused, located.
    """
    hints = dict(op.hints)
    strategy = hints.get("strategy", "legacy")
    if strategy not in _STRATEGIES:
        raise KqlSemanticError(
            f"unknown partition strategy '{strategy}'",
            span=op.span,
            hint=f"strategies: {', '.join(_STRATEGIES)}",
            code="KQL204",
        )
    if op.subquery is None:
        source = op.source_query.span if op.source_query is not None else op.span
        raise UnsupportedKql(
            "a partition subquery with its own source ({ T | ... }) is not supported by "
            "trustwatch's KQL engine",
            span=source,
            hint="write the subquery without a source, in parentheses: partition by X ( ... )",
        )
    key_type = rel.type_of(op.column)
    if key_type is None:
        raise KqlSemanticError(
            f"unknown column '{op.column}' in the input of partition",
            span=op.span,
            code="KQL202",
        )
    if strategy == "legacy" and c.probe is not None:
        _check_legacy_partitions(c, op, rel, scope)
    key = c.fresh("__tw_part")
    keyed = Relation(
        c.select(rel, [*(col(n) for n in rel.names()), alias(col(op.column), key)]),
        rel.columns,
        key,
    )
    sub = run_within(c, op.subquery.ops, keyed, scope, key, "partition")
    return Relation(c.select(sub, [col(n) for n in sub.names()]), sub.columns)


def _check_legacy_partitions(c: Compiler, op: ast.Partition, rel: Relation, scope: Scope) -> None:
    """The legacy strategy's limit: an error past 64 distinct values of the key column."""
    span = op.span
    column = ast.Name(name=op.column, span=span)
    rows = distinct_first_pass(
        c, rel, scope, op.column, column, LEGACY_PARTITIONS, span, "partition", ""
    )
    if len(rows) > LEGACY_PARTITIONS:
        raise KqlSemanticError(
            f"partition's legacy strategy (the default) takes at most {LEGACY_PARTITIONS} "
            f"distinct values of {op.column}, and the data holds more",
            span=span,
            hint="add hint.strategy=native (or shuffle), which has no such limit",
            code="KQL205",
        )
