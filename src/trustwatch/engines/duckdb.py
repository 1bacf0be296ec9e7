"""Embedded DuckDB engine: one connection, typed tables loaded from Arrow, locked before queries.

It implements ``engines.base.Engine``, which is all the layers above it call. The ingest's
workspace writer (``ingest.workspace`` and its helpers) is the exception: a workspace *is* a
DuckDB database file, so the writer works on this engine's connection (``con``) directly.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.func import SPECIAL
from sqlglot import exp

from trustwatch.engines import udfs
from trustwatch.engines.base import Loaded, loss_query, with_data_columns
from trustwatch.errors import EngineError, IngestError, InputError
from trustwatch.kql.deep import sql_text
from trustwatch.kql.semantics import TEXTUAL, func, not_null_string, sql_type
from trustwatch.schema.model import Column, TableSchema

# the in-memory database holding what a session loads and defines (DuckDBEngine._attach_session)
SESSION_DB = "tw_session"
# statements execute_many keeps started ahead of the caller, per connection
RUN_AHEAD = 2
# (SQL name, Python function, parameter types, result type) of engines/udfs.py functions
UDFS: list[tuple[str, Callable[..., Any], list[Any], str]] = [
    ("tw_parse_command_line", udfs.parse_command_line, ["VARCHAR", "VARCHAR"], "JSON"),
    ("tw_parse_url", udfs.parse_url, ["VARCHAR"], "JSON"),
    ("tw_parse_urlquery", udfs.parse_urlquery, ["VARCHAR"], "JSON"),
    ("tw_parse_path", udfs.parse_path, ["VARCHAR"], "JSON"),
    ("tw_todatetime_us", udfs.todatetime, ["VARCHAR"], "BIGINT"),
    ("tw_totimespan_us", udfs.totimespan, ["VARCHAR"], "BIGINT"),
]


class DuckDBEngine:
    """Runs compiled queries on an embedded, in-process DuckDB connection."""

    dialect = "duckdb"

    def __init__(
        self, path: str | None = None, *, threads: int | None = None, read_only: bool = False
    ) -> None:
        self.con = duckdb.connect(path or ":memory:", read_only=read_only)
        # UTC everywhere, no implicit scans of Python variables by name, NULL for x/0 as in
        # Kusto; GLOBAL, so that the connections execute_many opens have them too.
        self.con.execute("SET GLOBAL TimeZone='UTC'")
        self.con.execute("SET GLOBAL python_enable_replacements=false")
        self.con.execute("SET GLOBAL error_on_division_by_zero=false")
        # DuckDB draws a progress bar on stdout for queries over ~2 s: stdout is for results
        # (a hunt's JSON over millions of events came out with bars in it)
        self.con.execute("SET enable_progress_bar=false")
        self._session, self._search_path = self._attach_session()
        self._workers: list[duckdb.DuckDBPyConnection] = []
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        if not path:  # spilled in the temp folder, not in a .tmp folder made in the user's cwd
            spill = Path(tempfile.gettempdir()) / f"trustwatch-duckdb-{os.getuid()}"
            self.con.execute("SET temp_directory = " + exp.Literal.string(str(spill)).sql())
        self._register_udfs()
        self._locked = False
        self._count = 0

    def set_memory_limit(self, size: str) -> None:
        """Bound DuckDB's memory on this connection (``512MB``, ``2GB``...).

        Raises:
            IngestError: DuckDB does not accept ``size`` (the user's ``--memory-limit``).
        """
        item = exp.SetItem(
            this=exp.EQ(this=exp.column("memory_limit"), expression=exp.Literal.string(size))
        )
        try:
            self.con.execute(exp.Set(expressions=[item]).sql(dialect=self.dialect))
        except duckdb.Error as exc:
            raise IngestError(
                f"--memory-limit {size!r} is not a size DuckDB accepts",
                hint="for example 512MB or 2GB",
            ) from exc

    def _attach_session(self) -> tuple[str, str]:
        """An in-memory database for what this session loads and defines, and the search path.

        Loaded tables and views live there rather than in DuckDB's ``temp`` catalog, which
        only the connection that made them sees: :meth:`execute_many`'s connections see them
        too. Never saved into a workspace file (opened read-only or not); unqualified names
        resolve in the workspace first, then there.
        """
        (current,) = self.con.execute("SELECT current_database()").fetchall()[0]
        session = SESSION_DB if current != SESSION_DB else SESSION_DB + "_2"
        # READ_WRITE: an in-memory database attached to a read-only connection is read-only
        self.con.execute(f"ATTACH ':memory:' AS {session} (READ_WRITE)")
        quoted = '"' + str(current).replace('"', '""') + '"'
        search_path = "SET search_path = " + exp.Literal.string(
            f"{quoted}.main,{session}.main"
        ).sql(dialect=self.dialect)
        self.con.execute(search_path)
        return session, search_path

    def _session_table(self, name: str) -> exp.Table:
        return exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier("main"),
            catalog=exp.to_identifier(self._session),
        )

    def _register_udfs(self) -> None:
        for name, fn, params, result in UDFS:
            self.con.create_function(name, fn, params, result, null_handling=SPECIAL)

    def load(self, schema: TableSchema, data: pa.Table) -> Loaded:
        """Copy ``data`` into a typed table following ``schema``.

        Documented columns missing from the data get their type's empty value; columns the
        schema does not document are kept with a type inferred from the data. Strings are never
        NULL afterwards (KQL strings have no null).

        Returns:
            The SQL table name, the schema including any extra columns, and the values that
            could not be read as their column's type.

        Raises:
            InputError: the data does not fit the table's schema.
        """
        # allowed after lock(): the data comes from memory (Arrow), no file is read
        self._count += 1
        sql_name = f"tw_{re.sub(r'[^A-Za-z0-9_]', '_', schema.name)}_{self._count}"
        full, present = with_data_columns(schema, data)
        projections = [
            exp.alias_(
                self._cast(col, present.get(col.name)), exp.to_identifier(col.name, quoted=True)
            )
            for col in full.columns
        ]
        view = f"__tw_src_{self._count}"
        create = exp.Create(
            # in the session's in-memory database: loads work beside a read-only workspace and
            # are never saved into it
            this=self._session_table(sql_name),
            kind="TABLE",
            expression=exp.Select(expressions=projections).from_(exp.to_table(view)),
        )
        self.con.register(view, data)
        try:
            self.con.execute(create.sql(dialect=self.dialect))
            losses = self._count_losses(full, present, view)
        except duckdb.Error as exc:
            raise InputError(
                f"table {schema.name}: the data does not fit the table's schema: {exc}"
            ) from exc
        finally:
            self.con.unregister(view)
        return Loaded(sql_name, full, losses)

    def _count_losses(
        self, schema: TableSchema, present: dict[str, pa.DataType], view: str
    ) -> dict[str, int]:
        """Values given in the data that could not be read as their column's type (now null).

        They are counted and reported rather than dropped silently.
        """
        counted = loss_query(schema, present, view, self._cast)
        if counted is None:
            return {}
        names, query = counted
        counts = self.con.execute(query.sql(dialect=self.dialect)).fetchall()[0]
        return {name: int(n) for name, n in zip(names, counts, strict=True) if n}

    @staticmethod
    def _cast(col: Column, source: pa.DataType | None) -> exp.Expr:
        return cast_column(col, source)

    def lock(self) -> None:
        """Switch off file and network access and lock the configuration.

        Whatever a query says, it can no longer read or write files or reach the network.
        https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview
        """
        if not self._locked:
            self.con.execute("SET enable_external_access=false")
            self.con.execute("SET lock_configuration=true")
            self._locked = True

    def to_sql(self, query: exp.Expr) -> str:
        """DuckDB SQL text for a compiled tree (the compiler writes DuckDB's functions)."""
        # generated on a deep stack: a query nested to query-depth compiles to a deep tree
        return sql_text(query, self.dialect)

    def execute(self, query: exp.Query) -> pa.Table:
        return self.execute_sql(self.to_sql(query))

    def prepare(self, sql: str) -> str:
        """Plan ``sql`` once; returns the name :meth:`execute_prepared` runs it by.

        DuckDB re-plans every query text it is given; a scheduled rule runs the same query for
        every window (only its parameters change), and planning costs more than running.
        """
        self._count += 1
        name = f"tw_prepared_{self._count}"
        with mapped_errors("plan"):
            self.con.execute(f"PREPARE {name} AS {sql}")
        return name

    def execute_prepared(self, name: str, params: Mapping[str, datetime]) -> pa.Table:
        """Run a prepared plan with named timestamp parameters (``$name`` in its SQL)."""
        args = ", ".join(
            f"{key} := " + exp.Literal.string(value.isoformat(sep=" ")).sql() + "::TIMESTAMP"
            for key, value in params.items()
        )
        return self.execute_sql(f"EXECUTE {name}({args})")

    def execute_sql(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """Run SQL generated from a compiled query (by :meth:`execute`, or kept for reuse).

        Through the DB-API cursor, not ``con.sql``: this duckdb's relation layer reads the
        whole SQL text in Python (tokens, parameter markers, a bind to describe it) before
        the engine parses it again - a second or more for a fused rule query of 400k
        characters, a third of a SigmaHQ hunt (bench/sigma.py). The Arrow copy that the
        cursor's result costs, and warns of, is of a rule's result rows only.
        """
        with mapped_errors("run"):
            return _fetch(self.con, sql, params)

    def create_temp_view(self, name: str, query: exp.Query) -> str:
        """A temporary view over ``query`` (never saved into a workspace file); its SQL name."""
        return self.create_temp_view_sql(name, self.to_sql(query))

    def create_temp_view_sql(self, name: str, sql: str) -> str:
        """As :meth:`create_temp_view`, over DuckDB SQL written by :meth:`to_sql` (kept in the
        compiled-content cache: building a view's tree costs more than creating it)."""
        view = self._session_table(name).sql(dialect=self.dialect)
        with mapped_errors("create a view for"):
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")
        return name

    def execute_many(
        self, statements: Sequence[tuple[str, Mapping[str, object]]]
    ) -> Iterator[pa.Table | None]:
        """Run independent statements, several at once on their own connections.

        A rule's statement costs more to plan than to run over a few thousand rows, and DuckDB
        plans on the calling thread: the statements are shared among up to as many connections
        as DuckDB has threads (each a cursor of this database, seeing its tables and the
        session's), so planning uses every core. Yields each result in order as soon as it is
        ready, the next ones running ahead (at most ``RUN_AHEAD`` per connection: the results
        held at once are a few, however many statements); ``None`` where a statement failed
        (the caller runs it again with :meth:`execute_sql`, which raises its error where it
        belongs). Statements not yet started when the caller stops reading are not run.
        """
        workers = min(len(statements), self._threads())
        if workers < 2:
            for sql, params in statements:
                yield self._attempt(self.con, sql, params)
            return
        while len(self._workers) < workers:
            worker = self.con.cursor()
            worker.execute(self._search_path)  # a session setting: allowed after lock()
            self._workers.append(worker)
        free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for worker in self._workers[:workers]:
            free.put(worker)

        def attempt(sql: str, params: Mapping[str, object]) -> pa.Table | None:
            worker = free.get()
            try:
                return self._attempt(worker, sql, params)
            finally:
                free.put(worker)

        pool = ThreadPoolExecutor(workers, thread_name_prefix="trustwatch-duckdb")
        todo = iter(statements)
        # at most RUN_AHEAD statements per connection started and not yet taken: the results
        # held at once stay a few, whatever the number of statements (memory does not grow
        # with the rules or their batches)
        running = deque(
            pool.submit(attempt, sql, params)
            for sql, params in itertools.islice(todo, RUN_AHEAD * workers)
        )
        try:
            while running:
                result = running.popleft().result()
                following = next(todo, None)
                if following is not None:  # started before the caller reads this result
                    running.append(pool.submit(attempt, *following))
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _threads(self) -> int:
        (threads,) = self.con.execute("SELECT current_setting('threads')").fetchall()[0]
        return max(1, int(threads))

    @staticmethod
    def _attempt(
        con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object]
    ) -> pa.Table | None:
        try:
            return _fetch(con, sql, params)
        except duckdb.Error:
            return None

    def table_names(self) -> set[str]:
        """The base tables of the database's main schema (a workspace's stored tables)."""
        query = (
            exp.select("table_name")
            .from_("information_schema.tables")
            .where(
                "table_catalog = current_database() AND table_schema = 'main' "
                "AND table_type = 'BASE TABLE'"
            )
        )
        return {str(name) for name in self.execute(query).column(0).to_pylist()}

    def column_names(self, table: str) -> list[str]:
        """The columns of a table of the main schema, in order."""
        query = (
            exp.select("column_name")
            .from_("information_schema.columns")
            .where(
                exp.and_(
                    exp.EQ(this=exp.column("table_name"), expression=exp.Literal.string(table)),
                    exp.EQ(this=exp.column("table_schema"), expression=exp.Literal.string("main")),
                    exp.EQ(
                        this=exp.column("table_catalog"),
                        expression=exp.func("current_database"),
                    ),
                )
            )
            .order_by("ordinal_position")
        )
        return [str(name) for name in self.execute(query).column(0).to_pylist()]

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self.con.close()


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object] | None
) -> pa.Table:
    """Run ``sql`` on ``con``; its rows as Arrow (DuckDB's errors as they are)."""
    cursor = con.execute(sql, dict(params) if params else None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        table: pa.Table = cursor.to_arrow_table()
    return table


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """DuckDB's exceptions as trustwatch's ``EngineError``: the one place they are mapped.

    The engine cannot say where in the KQL the failure lies; ``api.Session.run`` gives the
    error the whole query as its location.
    """
    try:
        yield
    except duckdb.Error as exc:
        raise EngineError(
            f"DuckDB failed to {action} the compiled query: {exc}",
            hint="run with --explain to see the SQL; please report this as a bug",
        ) from exc


def cast_column(col: Column, source: pa.DataType | None) -> exp.Expr:
    """The expression turning a loaded column into its KQL type (strings never NULL)."""
    target = sql_type(col.type)
    if source is None:
        if col.type in TEXTUAL:
            return exp.Literal.string("")
        return exp.Cast(this=exp.null(), to=target)
    ref = exp.column(col.name, quoted=True)
    text = pa.types.is_string(source) or pa.types.is_large_string(source)
    nested = pa.types.is_struct(source) or pa.types.is_list(source) or pa.types.is_map(source)
    if col.type in TEXTUAL:
        if text:
            return not_null_string(ref)
        if nested:
            return not_null_string(exp.Cast(this=func("to_json", ref), to=sql_type("string")))
        return not_null_string(exp.Cast(this=ref, to=sql_type("string")))
    if col.type == "dynamic":
        if not text:
            return func("to_json", ref)
        empty = exp.or_(
            exp.Is(this=ref.copy(), expression=exp.null()),
            exp.EQ(this=ref.copy(), expression=exp.Literal.string("")),
        )
        return exp.Case(
            ifs=[
                exp.If(
                    this=func("json_valid", ref.copy()),
                    true=exp.Cast(this=ref.copy(), to=target),
                ),
                exp.If(this=empty, true=exp.null()),
            ],
            default=func("to_json", ref.copy()),
        )
    if col.type == "datetime":
        if pa.types.is_timestamp(source) or pa.types.is_date(source):
            return exp.Cast(this=ref, to=target)
        as_tz = exp.TryCast(this=ref, to=exp.DataType.build("TIMESTAMPTZ"))
        return exp.Cast(this=as_tz, to=target)
    if col.type == "timespan":
        if pa.types.is_duration(source):
            return exp.Cast(this=ref, to=target)
        if pa.types.is_integer(source):  # ticks of 100 ns
            ticks = exp.Cast(this=ref, to=sql_type("long"))
            return func(
                "to_microseconds", exp.IntDiv(this=ticks, expression=exp.Literal.number(10))
            )
        as_text = exp.Cast(this=ref, to=sql_type("string"))
        return func("to_microseconds", func("tw_totimespan_us", as_text))
    if col.type == "bool" and text:
        return exp.TryCast(this=func("lower", ref), to=target)
    return exp.TryCast(this=ref, to=target)
