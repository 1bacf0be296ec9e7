"""The Python API: ``trustwatch.query(kql, tables=..., now=...) -> pyarrow.Table``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from trustwatch.engines.base import Engine, kql_type_of_arrow, row_tuples
from trustwatch.engines.select import open_engine
from trustwatch.errors import EngineError, InputError, Source, Span, TrustwatchError
from trustwatch.kql.compiler import CatalogTable, CompiledStatement, compile_query
from trustwatch.kql.parser import parse_query
from trustwatch.schema.model import Column, TableSchema, builtin_schemas

TableInput = object  # path | pyarrow.Table | pandas.DataFrame | list[dict]


@dataclass(slots=True)
class QueryResult:
    """Every result table of a query (one per tabular statement), the SQL run, and notices."""

    tables: list[pa.Table]
    sql: list[str]
    notices: list[str] = field(default_factory=list)


def _utc(now: datetime | str | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, str):
        from trustwatch.kql.literals import parse_datetime_text

        return parse_datetime_text(now)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


class Session:
    """An engine with tables loaded, ready to compile and run queries against them."""

    def __init__(
        self,
        tables: Mapping[str, TableInput] | None = None,
        *,
        schemas: Mapping[str, TableSchema] | None = None,
        engine: Engine | None = None,
        views: Mapping[str, str] | None = None,
    ) -> None:
        """Load ``tables`` (typed by ``schemas``, else the shipped ones, else their data).

        ``views`` names relations already in ``engine`` (a workspace's tables), by table name;
        they must have the table's documented columns and types.
        """
        self.engine: Engine = engine or open_engine("duckdb")
        self.notices: list[str] = []  # about the loaded data, reported with every result
        self.catalog: dict[str, CatalogTable] = {
            name: CatalogTable(schema, None)
            for name, schema in {**builtin_schemas(), **(schemas or {})}.items()
        }
        for name, sql_name in (views or {}).items():
            known = self.catalog.get(name)
            schema = known.schema if known is not None else self._relation_schema(name, sql_name)
            self.catalog[name] = CatalogTable(schema, sql_name)
        for name, value in (tables or {}).items():
            self.load(name, value if isinstance(value, pa.Table) else _read_table(value, name))
        self.engine.lock()

    def _relation_schema(self, name: str, sql_name: str) -> TableSchema:
        """The schema of a view with no documented one: its columns as the engine types them."""
        empty = self.engine.execute(
            exp.select("*").from_(exp.to_table(sql_name, quoted=True)).limit(0)
        )
        return TableSchema(
            name, tuple(Column(f.name, kql_type_of_arrow(f.type)) for f in empty.schema)
        )

    def load(self, name: str, data: pa.Table) -> None:
        known = self.catalog.get(name)
        schema = (
            known.schema
            if known
            else TableSchema(
                name,
                tuple(
                    Column(n, kql_type_of_arrow(data.schema.field(n).type))
                    for n in data.column_names
                ),
            )
        )
        loaded = self.engine.load(schema, data)
        full = loaded.schema
        for column, lost in loaded.losses.items():
            found = full.column(column)
            ktype = found.type if found is not None else "its type"
            self.notices.append(
                f"table {name}: {lost} value(s) of {column} could not be read as {ktype} "
                "and are null"
            )
        self.catalog[name] = CatalogTable(full, loaded.sql_name)

    def compile(
        self, kql: str, now: datetime | str | None = None, source_name: str = "<query>"
    ) -> tuple[list[CompiledStatement], list[str]]:
        source = Source(kql, source_name)
        try:
            tree = parse_query(kql, source_name)
            result = compile_query(tree, self.catalog, _utc(now), probe=self._probe)
        except TrustwatchError as exc:
            raise exc.with_source(source) from None
        return result.statements, result.notices

    def _probe(self, query: exp.Query) -> list[tuple[Any, ...]]:
        """A first pass over the data for the compiler (``evaluate bag_unpack``, ``pivot``)."""
        return row_tuples(self.engine.execute(query))

    def run(
        self, kql: str, now: datetime | str | None = None, source_name: str = "<query>"
    ) -> QueryResult:
        statements, notices = self.compile(kql, now, source_name)
        try:
            tables = [typed_result(self.engine.execute(s.sql), s.columns) for s in statements]
        except EngineError as exc:
            if exc.diagnostic.span is not None:
                raise
            d = exc.diagnostic  # the engine cannot say where: the query it ran, whole
            raise EngineError(
                d.message,
                span=Span(0, len(kql)),
                hint=d.hint,
                code=d.code,
                source=Source(kql, source_name),
            ) from exc
        sql = [self.engine.to_sql(s.sql) for s in statements]
        return QueryResult(tables, sql, [*self.notices, *notices])

    def dataframe(
        self, kql: str, now: datetime | str | None = None, source_name: str = "<query>"
    ) -> Any:
        """The last result as a Spark DataFrame, not run yet (the Spark engine only)."""
        from trustwatch.engines.spark import SparkEngine

        if not isinstance(self.engine, SparkEngine):
            raise InputError("a DataFrame result needs the spark engine")
        statements, _ = self.compile(kql, now, source_name)
        try:
            return self.engine.dataframe(statements[-1].sql)
        except TrustwatchError as exc:
            raise exc.with_source(Source(kql, source_name)) from None


def _read_table(value: TableInput, name: str) -> pa.Table:
    # the readers import pyarrow's CSV and Parquet modules: only for tables given as files/rows
    from trustwatch.tables import to_arrow

    return to_arrow(value, name)


def typed_result(table: pa.Table, columns: tuple[tuple[str, str], ...]) -> pa.Table:
    """Give each result column its KQL type: UTC timestamps, durations, and the type in metadata."""
    arrays = []
    fields = []
    for i, (name, ktype) in enumerate(columns):
        array = table.column(i)
        if ktype == "datetime" and pa.types.is_timestamp(array.type):
            array = _as_utc(array)
        elif ktype == "timespan" and pa.types.is_interval(array.type):
            micros = [
                None
                if v is None
                else v.days * 86_400_000_000
                + v.nanoseconds // 1000
                + v.months * 30 * 86_400_000_000
                for v in array.to_pylist()
            ]
            array = pa.chunked_array([pa.array(micros, type=pa.duration("us"))])
        elif ktype == "dynamic" and not pa.types.is_string(array.type):
            import pyarrow.compute as pc  # ~30 ms to import: only when a result needs it

            array = pc.cast(array, pa.string())
        arrays.append(array)
        fields.append(pa.field(name, array.type, metadata={"kql_type": ktype}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


_UTC_MICROS = pa.timestamp("us", tz="UTC")


def _as_utc(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as UTC microseconds; those in microseconds already (DuckDB's) only relabelled.

    Arrow keeps UTC instants whatever the time zone label, and a label-less (DuckDB TIMESTAMP)
    value is UTC here, so a view is exact: no computation, and no import of pyarrow.compute.
    """
    if array.type.unit == "us":
        return pa.chunked_array([c.view(_UTC_MICROS) for c in array.chunks], type=_UTC_MICROS)
    import pyarrow.compute as pc

    return pc.cast(array, _UTC_MICROS)


def run(
    kql: str, tables: Mapping[str, TableInput] | None = None, now: datetime | str | None = None
) -> QueryResult:
    """Run a query and return every result table (see :func:`query` for the common case)."""
    return Session(tables).run(kql, now)


def query(
    kql: str,
    tables: Mapping[str, TableInput] | None = None,
    now: datetime | str | None = None,
    *,
    engine: str = "duckdb",
    spark: Any = None,
    views: Mapping[str, str] | None = None,
) -> Any:
    """Run a KQL query and return the (last) result.

    Args:
        kql: the query text, as pasted from Sentinel or Defender Advanced Hunting.
        tables: table name -> file path (JSONL, JSON array, CSV, Parquet), pyarrow.Table,
            pandas.DataFrame or list of row dicts. Tables not given exist empty, fully typed.
        now: the value of ``now()`` (a datetime or ISO 8601 text); default: the current time.
        engine: ``"duckdb"`` (embedded) or ``"spark"``.
        spark: with ``engine="spark"``, the SparkSession to run on (a notebook's ``spark``);
            default: a local one.
        views: with ``engine="spark"``, table name -> a view or table already in the session
            (with the table's documented columns), read in place.

    Returns:
        DuckDB: a ``pyarrow.Table``, each field's KQL type in its metadata under ``kql_type``.
        Spark: a Spark DataFrame, not run yet (``.toArrow()`` for a small result).

    Raises:
        TrustwatchError: a located syntax, semantic or input error.
    """
    if engine == "duckdb" and spark is None and views is None:
        return run(kql, tables, now).tables[-1]
    if engine != "spark":
        raise InputError("spark= and views= go with engine='spark'")
    from trustwatch.engines.select import SparkOptions

    session = Session(tables, engine=open_engine("spark", SparkOptions(session=spark)), views=views)
    return session.dataframe(kql, now)
