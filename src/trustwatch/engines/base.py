"""The Engine protocol: what every layer above the engines calls, whatever runs the SQL.

Two implementations: ``engines.duckdb.DuckDBEngine`` (embedded, the default) and
``engines.spark.SparkEngine`` (the ``[spark]`` extra), chosen by name in ``engines.select``.
Each maps its own library's exceptions to trustwatch errors in one place, so nothing above
this boundary sees a DuckDB or Spark exception, or needs the engine's connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from trustwatch.kql.semantics import TEXTUAL
from trustwatch.schema.model import Column, KqlType, TableSchema

_ARROW_TO_KQL: list[tuple[Any, KqlType]] = [
    (pa.types.is_boolean, "bool"),
    (pa.types.is_integer, "long"),
    (pa.types.is_floating, "real"),
    (pa.types.is_timestamp, "datetime"),
    (pa.types.is_date, "datetime"),
    (pa.types.is_duration, "timespan"),
    (pa.types.is_string, "string"),
    (pa.types.is_large_string, "string"),
]


def kql_type_of_arrow(dtype: pa.DataType) -> KqlType:
    """The KQL type for an undocumented column found in loaded data."""
    for test, ktype in _ARROW_TO_KQL:
        if test(dtype):
            return ktype
    return "dynamic"


def with_data_columns(
    schema: TableSchema, data: pa.Table
) -> tuple[TableSchema, dict[str, pa.DataType]]:
    """The schema a load gives ``data``: ``schema``'s columns, then those the data has beyond
    them (typed from Arrow: nothing is lost); and the data's columns with their Arrow types."""
    present = {name: data.schema.field(name).type for name in data.column_names}
    extra = [
        Column(n, kql_type_of_arrow(t)) for n, t in present.items() if schema.column(n) is None
    ]
    return schema.with_extra_columns(extra), present


def loss_query(
    schema: TableSchema,
    present: Mapping[str, pa.DataType],
    source: str,
    cast: Callable[[Column, pa.DataType], exp.Expr],
) -> tuple[list[str], exp.Select] | None:
    """The query counting, per column, the values given in ``source`` that could not be read
    as the column's type (``cast`` gives null): they are reported, not dropped silently. The
    columns it counts, in order; None when no column can lose a value."""
    names: list[str] = []
    counts: list[exp.Expr] = []
    for column in schema.columns:
        given_type = present.get(column.name)
        if given_type is None or column.type in TEXTUAL:
            continue
        ref = exp.column(column.name, quoted=True)
        given: exp.Expr = exp.Not(this=exp.Is(this=ref, expression=exp.null()))
        if pa.types.is_string(given_type) or pa.types.is_large_string(given_type):
            given = exp.and_(given, exp.NEQ(this=ref.copy(), expression=exp.Literal.string("")))
        lost = exp.and_(given, exp.Is(this=cast(column, given_type), expression=exp.null()))
        names.append(column.name)
        counts.append(exp.Count(this=exp.Case(ifs=[exp.If(this=lost, true=exp.Literal.number(1))])))
    if not counts:
        return None
    return names, exp.Select(expressions=counts).from_(exp.to_table(source))


def row_tuples(table: pa.Table) -> list[tuple[Any, ...]]:
    """A small result's rows as tuples, by position (column names may repeat)."""
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


@dataclass(frozen=True, slots=True)
class Loaded:
    """A table loaded into an engine: its SQL name, its full schema, and what was lost.

    ``losses``: column -> how many values given in the data could not be read as the column's
    type (they are null now); reported to the user, never dropped silently.
    """

    sql_name: str
    schema: TableSchema
    losses: Mapping[str, int] = field(default_factory=dict)


class Engine(Protocol):
    """An execution engine behind the KQL compiler."""

    #: the sqlglot dialect the engine's SQL is generated in
    dialect: str

    def load(self, schema: TableSchema, data: pa.Table) -> Loaded:
        """Load rows for a table, typed by ``schema`` (extra columns typed from the data)."""
        ...

    def lock(self) -> None:
        """Forbid file, network and configuration access from queries from now on."""
        ...

    def to_sql(self, query: exp.Expr) -> str:
        """The engine's SQL text for a compiled tree (what :meth:`execute_sql` takes).

        Raises:
            UnsupportedKql: the tree uses a function the engine has no equivalent for.
        """
        ...

    def execute(self, query: exp.Query) -> pa.Table:
        """Run a compiled query; the rows as Arrow."""
        ...

    def execute_sql(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """Run SQL generated in :attr:`dialect` from a compiled query, with named parameters."""
        ...

    def execute_many(
        self, statements: Sequence[tuple[str, Mapping[str, object]]]
    ) -> Iterator[pa.Table | None]:
        """Run independent statements (at once where the engine can); results in order.

        ``None`` where a statement failed: the caller runs it again with :meth:`execute_sql`
        to raise its error.
        """
        ...

    def prepare(self, sql: str) -> str:
        """Make ``sql`` ready to run many times; the handle :meth:`execute_prepared` takes."""
        ...

    def execute_prepared(self, handle: str, params: Mapping[str, datetime]) -> pa.Table:
        """Run a prepared query with named time parameters."""
        ...

    def create_temp_view(self, name: str, query: exp.Query) -> str:
        """A temporary view (this session only) named ``name`` over ``query``; its SQL name."""
        ...

    def create_temp_view_sql(self, name: str, sql: str) -> str:
        """As :meth:`create_temp_view`, over a query already written by :meth:`to_sql`."""
        ...

    def table_names(self) -> set[str]:
        """The stored (base) tables the engine holds, by SQL name."""
        ...

    def column_names(self, table: str) -> list[str]:
        """The columns of a stored table, in order; empty if there is no such table."""
        ...

    def set_memory_limit(self, size: str) -> None:
        """Bound the engine's memory (``512MB``, ``2GB``...), where the engine can."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...
