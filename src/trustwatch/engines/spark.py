"""Apache Spark engine (the ``[spark]`` extra): compiled queries as Spark SQL on a SparkSession.

Local mode by default (``local[*]``), or any master (``--spark-master`` /
``TRUSTWATCH_SPARK_MASTER``), or a session the caller already has (a Databricks or Synapse
notebook's ``spark``). The engine works in its own child session (``newSession``): its
settings and temporary views never leak into the caller's. SQL comes from the compiler's
trees through ``engines.spark_sql``; trustwatch's Python functions (``engines.udfs``) run as
vectorised pandas UDFs. Spark's exceptions become ``EngineError`` in ``mapped_errors``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from trustwatch.engines import udfs
from trustwatch.engines.base import Loaded, loss_query, with_data_columns
from trustwatch.engines.duckdb import cast_column
from trustwatch.engines.spark_sql import spark_sql
from trustwatch.errors import EngineError, InputError, TrustwatchError
from trustwatch.schema.model import TableSchema, builtin_schemas

MASTER_ENV = "TRUSTWATCH_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"

# settings of the engine's session: KQL's meaning where Spark's default differs
SESSION_CONF: dict[str, str] = {
    # times are UTC, as in Kusto and on the DuckDB engine
    "spark.sql.session.timeZone": "UTC",
    # x/0 and a failed cast are null in Kusto; ANSI mode (Spark 4's default) raises instead
    "spark.sql.ansi.enabled": "false",
    # a query names the views trustwatch made, never a file path (`parquet.`/x``)
    "spark.sql.runSQLOnFiles": "false",
}
# settings a session built here starts with (a given session keeps its own)
BUILD_CONF: dict[str, str] = {
    "spark.ui.showConsoleProgress": "false",  # stdout is for results
}

# (SQL name, Python function, Spark result type) of engines/udfs.py functions
UDFS: list[tuple[str, Callable[..., Any], str]] = [
    ("tw_parse_command_line", udfs.parse_command_line, "string"),
    ("tw_parse_url", udfs.parse_url, "string"),
    ("tw_parse_urlquery", udfs.parse_urlquery, "string"),
    ("tw_parse_path", udfs.parse_path, "string"),
    ("tw_todatetime_us", udfs.todatetime, "bigint"),
    ("tw_totimespan_us", udfs.totimespan, "bigint"),
    ("tw_base64_text", udfs.base64_text, "string"),
    ("tw_url_text", udfs.url_text, "string"),
]


def _require_pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError as exc:
        raise InputError(
            "the spark engine needs PySpark, which is not installed",
            hint="pip install 'trustwatch[spark]' (and Java 17 or newer)",
        ) from exc
    return pyspark.sql


def build_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> Any:
    """A SparkSession on ``master`` (default ``TRUSTWATCH_SPARK_MASTER`` or ``local[*]``).

    Raises:
        InputError: PySpark or Java is missing, or Spark does not start.
    """
    sql = _require_pyspark()
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise InputError(
            "the spark engine needs Java (17 or newer), which was not found",
            hint="install a JDK or set JAVA_HOME",
        )
    url = master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER
    builder = sql.SparkSession.builder.master(url).appName("trustwatch")
    if url.startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
        # local Python workers (the pandas UDFs) run this interpreter, which has trustwatch;
        # Spark reads the variable when the session's context starts
        os.environ["PYSPARK_PYTHON"] = sys.executable
    for key, value in {**BUILD_CONF, **SESSION_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    with mapped_errors("start"):
        return builder.getOrCreate()


class SparkEngine:
    """Runs compiled queries as Spark SQL."""

    dialect = "spark"

    def __init__(
        self,
        session: Any = None,
        *,
        master: str | None = None,
        conf: Mapping[str, str] | None = None,
    ) -> None:
        # stopped on close only when this engine started Spark (not a notebook's, not a
        # session already running in this process, which getOrCreate returns)
        self._owned = session is None and _require_pyspark().SparkSession.getActiveSession() is None
        parent = session if session is not None else build_session(master, conf)
        with mapped_errors("start"):
            self.spark = parent.newSession()
            for key, value in {**SESSION_CONF, **(conf or {})}.items():
                if not key.startswith("spark.sql."):
                    continue  # only SQL settings belong to one session
                self.spark.conf.set(key, value)
        self._register_udfs()
        self._count = 0
        self._prepared: dict[str, str] = {}
        self._views: list[str] = []

    def _register_udfs(self) -> None:
        from pyspark.sql.pandas.functions import pandas_udf

        make: Any = pandas_udf  # typed for literal signatures; ours are built per arity
        for name, fn, result in UDFS:
            self.spark.udf.register(name, make(_vectorised(fn), result))

    def to_sql(self, query: exp.Expr) -> str:
        """Spark SQL text for a compiled tree."""
        return spark_sql(query)

    def load(self, schema: TableSchema, data: pa.Table) -> Loaded:
        """A temporary view of ``data`` typed by ``schema`` (as the DuckDB engine types it).

        Raises:
            InputError: the data does not fit the table's schema.
        """
        self._count += 1
        sql_name = f"tw_{_safe(schema.name)}_{self._count}"
        full, present = with_data_columns(schema, data)
        source = f"__tw_src_{self._count}"
        projections = [
            exp.alias_(cast_column(col, present.get(col.name)), exp.to_identifier(col.name))
            for col in full.columns
        ]
        select = exp.Select(expressions=projections).from_(exp.to_table(source))
        try:
            with mapped_errors("load"):
                self.spark.createDataFrame(data).createOrReplaceTempView(source)
                self.spark.sql(spark_sql(select)).createOrReplaceTempView(sql_name)
                losses = self._count_losses(full, present, source)
        except EngineError as exc:
            raise InputError(
                f"table {schema.name}: the data does not fit the table's schema: {exc}"
            ) from exc
        self._views += [source, sql_name]
        return Loaded(sql_name, full, losses)

    def _count_losses(
        self, schema: TableSchema, present: dict[str, pa.DataType], view: str
    ) -> dict[str, int]:
        """Values given in the data that could not be read as their column's type (now null)."""
        counted = loss_query(schema, present, view, cast_column)
        if counted is None:
            return {}
        names, query = counted
        counts = self.execute(query).to_pylist()[0].values()
        return {name: int(n) for name, n in zip(names, counts, strict=True) if n}

    def lock(self) -> None:
        """Nothing to switch: queries read only trustwatch's views (``runSQLOnFiles`` is off
        from the start), and KQL cannot name a file, a setting or a network address."""

    def execute(self, query: exp.Query) -> pa.Table:
        return self.execute_sql(self.to_sql(query))

    def execute_sql(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """Run Spark SQL (named parameters as ``:name``); the rows as Arrow."""
        with mapped_errors("run"):
            frame = self.spark.sql(sql, args=dict(params) if params else None)
            table: pa.Table = frame.toArrow()
        return table

    def dataframe(self, query: exp.Query) -> Any:
        """The query as a Spark DataFrame, not run yet (for notebooks: the caller acts on it)."""
        with mapped_errors("plan"):
            return self.spark.sql(self.to_sql(query))

    def execute_many(
        self, statements: Sequence[tuple[str, Mapping[str, object]]]
    ) -> Iterator[pa.Table | None]:
        """One after the other: Spark spreads each query over its executors already."""
        for sql, params in statements:
            try:
                yield self.execute_sql(sql, params)
            except TrustwatchError:
                yield None

    def prepare(self, sql: str) -> str:
        """Spark plans each query it runs: the handle keeps the SQL."""
        self._count += 1
        name = f"tw_prepared_{self._count}"
        self._prepared[name] = sql
        return name

    def execute_prepared(self, handle: str, params: Mapping[str, datetime]) -> pa.Table:
        return self.execute_sql(self._prepared[handle], params)

    def create_temp_view(self, name: str, query: exp.Query) -> str:
        return self.create_temp_view_sql(name, spark_sql(query))

    def create_temp_view_sql(self, name: str, sql: str) -> str:
        """As :meth:`create_temp_view`, over Spark SQL written by :meth:`to_sql`."""
        with mapped_errors("create a view for"):
            self.spark.sql(sql).createOrReplaceTempView(name)
        self._views.append(name)
        return name

    def register_parquet(self, name: str, path: str, schema: TableSchema) -> str:
        """A view over a Parquet folder (``day=`` partitions found) with ``schema``'s columns.

        Documented columns the files lack get their type's empty value, as in :meth:`load`.
        """
        raw = f"__tw_raw_{name}"
        with mapped_errors("read"):
            frame = self.spark.read.parquet(path)
            frame.createOrReplaceTempView(raw)
            present = {f.name: f.type for f in frame.limit(0).toArrow().schema}
        projections = [
            exp.alias_(cast_column(col, present.get(col.name)), exp.to_identifier(col.name))
            for col in schema.columns
        ]
        select = exp.Select(expressions=projections).from_(exp.to_table(raw))
        self._views.append(raw)
        return self.create_temp_view(name, select)

    def table_names(self) -> set[str]:
        with mapped_errors("list the tables for"):
            return {t.name for t in self.spark.catalog.listTables() if not t.isTemporary}

    def column_names(self, table: str) -> list[str]:
        if table not in self.table_names():
            return []
        with mapped_errors("describe"):
            return [str(c) for c in self.spark.table(table).columns]

    def set_memory_limit(self, size: str) -> None:
        """Spark's memory is set when its JVM starts (``--spark-conf spark.driver.memory=``)."""
        raise InputError(
            "--memory-limit applies to the duckdb engine",
            hint=f"for Spark give --spark-conf spark.driver.memory={size}",
        )

    def close(self) -> None:
        with mapped_errors("close"):
            for view in self._views:
                self.spark.catalog.dropTempView(view)
            self._views = []
            if self._owned:
                self.spark.stop()


def parquet_views(engine: SparkEngine, paths: Sequence[str]) -> dict[str, str]:
    """Views over Parquet tables: ``trustwatch ingest --parquet DIR`` exports, or table folders.

    A path is an export's root (``DIR/<Table>/day=YYYY-MM-DD/*.parquet``: each sub-folder named
    as a documented table is read), or one table's folder, named as the table. A URI the
    cluster reads (``s3a://``, ``abfss://``, ``dbfs:/``...) is one table's folder. Spark finds
    the ``day=`` partitions: a filter on ``day`` reads only those folders.

    Returns:
        Table name -> the view's SQL name.

    Raises:
        InputError: a path that does not exist or names no table.
    """
    tables = builtin_schemas()
    found: dict[str, str] = {}
    for raw in paths:
        local = "://" not in raw and not raw.startswith("dbfs:")
        name = raw.rstrip("/").rsplit("/", 1)[-1]
        if local and not Path(raw).exists():
            raise InputError(f"--data: {raw} does not exist")
        if name in tables:
            found[name] = raw
        elif local and Path(raw).is_dir():
            inside = [d for d in sorted(Path(raw).iterdir()) if d.is_dir() and d.name in tables]
            found.update({d.name: str(d) for d in inside})
            if not inside:
                raise InputError(
                    f"--data: {raw} holds no table folder",
                    hint="give a folder written by `trustwatch ingest ... --parquet DIR`, "
                    "or a folder named as its table (DeviceRegistryEvents/...)",
                )
        else:
            raise InputError(
                f"--data: {raw} is not named as a table",
                hint="with --engine spark, --data takes Parquet folders named as their table",
            )
    return {
        name: engine.register_parquet(f"tw_pq_{_safe(name)}", path, tables[name])
        for name, path in found.items()
    }


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _vectorised(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A pandas UDF body applying ``fn`` to each row of its Series (nulls as None).

    pandas UDFs are typed by their signature, so one body per number of arguments.
    """
    import pandas as pd

    def cell(value: Any) -> Any:
        return None if pd.isna(value) else value

    def one(a: pd.Series) -> pd.Series:
        return pd.Series([fn(cell(x)) for x in a], dtype="object")

    def two(a: pd.Series, b: pd.Series) -> pd.Series:
        return pd.Series([fn(cell(x), cell(y)) for x, y in zip(a, b, strict=True)], dtype="object")

    # the hints as types, not text (this module's annotations are postponed; pandas is local)
    one.__annotations__ = {"a": pd.Series, "return": pd.Series}
    two.__annotations__ = {"a": pd.Series, "b": pd.Series, "return": pd.Series}
    return one if fn.__code__.co_argcount == 1 else two


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """Spark's exceptions as trustwatch's ``EngineError``: the one place they are mapped."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(
            f"Spark failed to {action} the compiled query: {first}",
            hint="run with --explain to see the SQL; please report this as a bug",
        ) from exc
