"""Pipe operators: each takes the input relation and returns the output relation.

Importing this package registers every operator module into :data:`OPERATORS`.
https://learn.microsoft.com/kusto/query/tabular-expression-statements
"""

from __future__ import annotations

from trustwatch.kql.operators import (  # noqa: F401 - imported to register their operators
    evaluate,
    expand,
    grouping,
    join,
    nested,
    ordering,
    parse,
    partition,
    series,
)
from trustwatch.kql.operators.common import KQL_NAMES, OPERATORS, ColumnNamer, col, inferred_name
from trustwatch.kql.operators.project import compile_where
from trustwatch.kql.operators.union import search_predicate, union_relations

__all__ = [
    "KQL_NAMES",
    "OPERATORS",
    "ColumnNamer",
    "col",
    "compile_where",
    "inferred_name",
    "search_predicate",
    "union_relations",
]
