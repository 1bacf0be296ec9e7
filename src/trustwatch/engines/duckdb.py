"""Embedded DuckDB engine: one connection, typed tables loaded from Arrow, locked before queries."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from trustwatch.engines import udfs
from trustwatch.errors import EngineError, InputError
from trustwatch.kql.semantics import SQL_TYPES, TEXTUAL
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBEngine:
    """Runs compiled queries on an embedded, in-process DuckDB connection."""

    dialect = "duckdb"

    def __init__(self, path: str | None = None, *, threads: int | None = None) -> None:
        self.con = duckdb.connect(path or ":memory:")
        # UTC everywhere, no implicit scans of Python variables by name, NULL for x/0 as in Kusto.
        self.con.execute("SET TimeZone='UTC'")
        self.con.execute("SET python_enable_replacements=false")
        self.con.execute("SET error_on_division_by_zero=false")
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        self._register_udfs()
        self._locked = False
        self._count = 0

    def _register_udfs(self) -> None:
        self.con.create_function("tw_parse_command_line", udfs.parse_command_line, ["VARCHAR", "VARCHAR"], "JSON",
                                 null_handling="special")
        self.con.create_function("tw_parse_url", udfs.parse_url, ["VARCHAR"], "JSON", null_handling="special")
        self.con.create_function("tw_parse_urlquery", udfs.parse_urlquery, ["VARCHAR"], "JSON", null_handling="special")
        self.con.create_function("tw_parse_path", udfs.parse_path, ["VARCHAR"], "JSON", null_handling="special")
        self.con.create_function("tw_todatetime_us", udfs.todatetime, ["VARCHAR"], "BIGINT", null_handling="special")
        self.con.create_function("tw_totimespan_us", udfs.totimespan, ["VARCHAR"], "BIGINT", null_handling="special")

    def load(self, schema: TableSchema, data: pa.Table) -> tuple[str, TableSchema]:
        """Copy ``data`` into a typed table following ``schema``.

        Documented columns missing from the data get their type's empty value; columns the
        schema does not document are kept with a type inferred from the data. Strings are never
        NULL afterwards (KQL strings have no null).

        Returns:
            The SQL table name and the schema including any extra columns.
        """
        if self._locked:
            raise EngineError("tables cannot be loaded after the engine is locked")
        self._count += 1
        sql_name = f"tw_{re.sub(r'[^A-Za-z0-9_]', '_', schema.name)}_{self._count}"
        present = {name: data.schema.field(name).type for name in data.column_names}
        extra = [Column(n, kql_type_of_arrow(t)) for n, t in present.items() if schema.column(n) is None]
        full = schema.with_extra_columns(extra)
        selects = [f"{self._cast(col, present.get(col.name))} AS {_quote(col.name)}" for col in full.columns]
        view = f"__tw_src_{self._count}"
        self.con.register(view, data)
        try:
            self.con.execute(f"CREATE TABLE {_quote(sql_name)} AS SELECT {', '.join(selects)} FROM {view}")  # noqa: S608 - names are quoted identifiers
        except duckdb.Error as exc:
            raise InputError(f"table {schema.name}: the data does not fit the table's schema: {exc}") from exc
        finally:
            self.con.unregister(view)
        return sql_name, full

    @staticmethod
    def _cast(col: Column, source: pa.DataType | None) -> str:
        target = SQL_TYPES[col.type]
        if source is None:
            return "''" if col.type in TEXTUAL else f"CAST(NULL AS {target})"
        ref = _quote(col.name)
        if col.type in TEXTUAL:
            if pa.types.is_string(source) or pa.types.is_large_string(source):
                return f"COALESCE({ref}, '')"
            if pa.types.is_struct(source) or pa.types.is_list(source) or pa.types.is_map(source):
                return f"COALESCE(CAST(to_json({ref}) AS VARCHAR), '')"
            return f"COALESCE(CAST({ref} AS VARCHAR), '')"
        if col.type == "dynamic":
            if pa.types.is_string(source) or pa.types.is_large_string(source):
                return f"CASE WHEN json_valid({ref}) THEN CAST({ref} AS JSON) WHEN {ref} IS NULL OR {ref} = '' THEN NULL ELSE to_json({ref}) END"
            return f"to_json({ref})"
        if col.type == "datetime":
            if pa.types.is_timestamp(source) or pa.types.is_date(source):
                return f"CAST({ref} AS TIMESTAMP)"
            return f"CAST(TRY_CAST({ref} AS TIMESTAMPTZ) AS TIMESTAMP)"
        if col.type == "timespan":
            if pa.types.is_duration(source):
                return f"CAST({ref} AS INTERVAL)"
            if pa.types.is_integer(source):
                return f"to_microseconds(CAST({ref} AS BIGINT) // 10)"  # ticks
            return f"to_microseconds(tw_totimespan_us(CAST({ref} AS VARCHAR)))"
        if col.type == "bool" and (pa.types.is_string(source) or pa.types.is_large_string(source)):
            return f"TRY_CAST(lower({ref}) AS BOOLEAN)"
        return f"TRY_CAST({ref} AS {target})"

    def lock(self) -> None:
        """Switch off file and network access and lock the configuration.

        Whatever a query says, it can no longer read or write files or reach the network.
        https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview
        """
        if not self._locked:
            self.con.execute("SET enable_external_access=false")
            self.con.execute("SET lock_configuration=true")
            self._locked = True

    def execute(self, query: exp.Query) -> pa.Table:
        sql = query.sql(dialect=self.dialect)
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB failed to run the compiled query: {exc}",
                              hint="run with --explain to see the SQL; please report this as a bug") from exc

    def close(self) -> None:
        self.con.close()
