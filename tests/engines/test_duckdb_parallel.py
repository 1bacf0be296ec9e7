"""DuckDBEngine.execute_many: statements on several connections, what a session defines shared.

Loaded tables and views live in the session's in-memory database (not DuckDB's per-connection
``temp`` catalog), so every connection execute_many opens sees them, after lock() too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from trustwatch.engines.duckdb import DuckDBEngine
from trustwatch.errors import EngineError
from trustwatch.schema.model import Column, TableSchema

SCHEMA = TableSchema("Things", (Column("Name", "string"), Column("Size", "long")))
DATA = pa.table({"Name": [f"n{i}" for i in range(50)], "Size": list(range(50))})


def engine_with_data(
    path: str | None = None, threads: int | None = None
) -> tuple[DuckDBEngine, str]:
    engine = DuckDBEngine(path, threads=threads)
    loaded = engine.load(SCHEMA, DATA)
    engine.create_temp_view_sql(
        "big_things", f'SELECT * FROM "{loaded.sql_name}" WHERE "Size" > 10'
    )
    engine.lock()
    return engine, loaded.sql_name


def statements(table: str) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for k in range(12):
        out.append((f'SELECT "Name" FROM "{table}" WHERE "Size" % 12 = {k} ORDER BY "Size"', {}))
        out.append(('SELECT count(*) AS n FROM big_things WHERE "Size" > $k', {"k": k}))
    return out


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_results_in_order_and_equal_to_one_at_a_time(threads: int) -> None:
    engine, table = engine_with_data(threads=threads)
    listed = statements(table)
    got = list(engine.execute_many(listed))
    want = [engine.execute_sql(sql, params) for sql, params in listed]
    assert len(got) == len(want) == 24
    for a, b in zip(got, want, strict=True):
        assert a is not None and a.equals(b)
    assert got[1] is not None and got[1].column("n").to_pylist() == [39]  # 50 - 11


def test_a_failing_statement_is_none_and_the_others_run() -> None:
    engine, table = engine_with_data(threads=2)
    listed = [
        (f'SELECT count(*) FROM "{table}"', {}),
        ("SELECT no_such_function(1)", {}),
        ("SELECT CAST('x' AS INTEGER)", {}),  # fails when run, not when planned
        ("SELECT count(*) FROM big_things", {}),
    ]
    got = list(engine.execute_many(listed))
    assert got[1] is None and got[2] is None
    assert got[0] is not None and got[0].column(0).to_pylist() == [50]
    assert got[3] is not None and got[3].column(0).to_pylist() == [39]
    with pytest.raises(EngineError):  # the caller runs it again to raise its error
        engine.execute_sql(listed[1][0])


def test_the_parallel_connections_keep_the_lock_and_the_settings() -> None:
    engine, _ = engine_with_data(threads=2)
    listed = [
        ("SELECT current_setting('TimeZone')", {}),
        ("SELECT 1 // 0", {}),  # NULL, as in Kusto, not an error
        ("SELECT * FROM read_csv('/etc/passwd')", {}),  # no file access after lock()
        ("SET enable_external_access = true", {}),
    ] * 2
    got = list(engine.execute_many(listed))
    for k in (0, 4):
        assert got[k] is not None and got[k].column(0).to_pylist() == ["UTC"]
        assert got[k + 1] is not None and got[k + 1].column(0).to_pylist() == [None]
        assert got[k + 2] is None and got[k + 3] is None


def test_stopping_early_leaves_the_engine_usable() -> None:
    engine, table = engine_with_data(threads=2)
    results = engine.execute_many(statements(table))
    first = next(results)
    assert first is not None
    results.close()  # the statements not started are not run; nothing hangs
    assert engine.execute_sql("SELECT count(*) FROM big_things").column(0).to_pylist() == [39]
    assert [t is not None for t in engine.execute_many(statements(table)[:4])] == [True] * 4


@pytest.mark.parametrize("name", ["a,b", 'quo"te', "it's", "tw_session", "main"])
def test_workspace_files_of_any_name(tmp_path: Path, name: str) -> None:
    """The search path names the workspace's database: a hostile file name must not break it."""
    path = tmp_path / f"{name}.duckdb"
    con = duckdb.connect(str(path))
    con.execute('CREATE TABLE "Stored" AS SELECT 7 AS x')
    con.close()
    engine, table = engine_with_data(str(path), threads=2)
    assert engine.table_names() == {"Stored"}  # the session's tables are not the workspace's
    assert engine.column_names("Stored") == ["x"]
    assert engine.column_names(table) == []
    listed = [('SELECT x FROM "Stored"', {}), (f'SELECT count(*) FROM "{table}"', {})]
    got = list(engine.execute_many(listed))
    assert got[0] is not None and got[0].column(0).to_pylist() == [7]
    assert got[1] is not None and got[1].column(0).to_pylist() == [50]
    engine.close()
    con = duckdb.connect(str(path), read_only=True)  # nothing of the session was saved
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"Stored"}
    con.close()


def test_the_statements_run_ahead_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only RUN_AHEAD statements per connection start before the caller takes a result: the
    results waiting to be taken stay a few, however many statements there are."""
    import time

    from trustwatch.engines import duckdb as engine_module

    engine, table = engine_with_data(threads=2)
    started: list[str] = []
    attempt = DuckDBEngine._attempt

    def counted(con: Any, sql: str, params: Any) -> Any:
        started.append(sql)
        return attempt(con, sql, params)

    monkeypatch.setattr(DuckDBEngine, "_attempt", staticmethod(counted))
    listed = statements(table) * 2  # 48 statements
    results = engine.execute_many(listed)
    first = next(results)
    time.sleep(0.3)  # unbounded, every statement would have started by now
    ahead = engine_module.RUN_AHEAD * 2
    assert first is not None
    assert len(started) <= ahead + 1
    assert len([r for r in results if r is not None]) == len(listed) - 1
    assert len(started) == len(listed)
    engine.close()
