"""Runs every case of tests/kql/conformance/*.yaml through trustwatch's Session on each engine.

One suite, two engines: DuckDB, and Spark in local mode (skipped, saying why, without PySpark
or Java). A case Spark is known to answer differently is listed in ``spark_differences.yaml``
with its reason (docs/spark.md) and expected to fail there, strictly: it is reported once it
passes. Whenever Spark returns rows, they are also checked against DuckDB's for the same case
(``EnginesDisagree``), expected failure or not: Spark may refuse a query, never answer it
differently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import spark_group
from trustwatch.errors import TrustwatchError
from trustwatch.output import json_matrix, kql_types

CASES_DIR = Path(__file__).parent / "conformance"
SPARK_DIFFERENCES = Path(__file__).parent / "spark_differences.yaml"
DEFAULT_NOW = "2024-01-10T00:00:00Z"
ENGINES = ("duckdb", "spark")


class EnginesDisagree(Exception):
    """Spark returned rows that differ from DuckDB's for the same case.

    Not an ``AssertionError``: an expected failure (``xfail(raises=EXPECTED_FAILURES)``) never
    hides it.
    """


# what an expected failure may fail with: a wrong answer against the case, or a refusal
EXPECTED_FAILURES = (AssertionError, TrustwatchError)


def spark_differences() -> dict[str, str]:
    """Case id (``file/id``) -> why Spark answers it differently."""
    listed: dict[str, str] = yaml.safe_load(SPARK_DIFFERENCES.read_text(encoding="utf-8"))
    return listed


def load_cases() -> list[Any]:
    params = []
    differences = spark_differences()
    for engine in ENGINES:
        for path in sorted(CASES_DIR.glob("*.yaml")):
            for case in yaml.safe_load(path.read_text(encoding="utf-8")):
                case_id = f"{path.stem}/{case['id']}"
                marks = [spark_group] if engine == "spark" else []
                if case.get("known_gap"):
                    # documented gap (docs/kql-support.md): fails today; reported once it passes
                    marks.append(
                        pytest.mark.xfail(
                            reason=case["known_gap"], strict=True, raises=EXPECTED_FAILURES
                        )
                    )
                elif engine == "spark" and case_id in differences:
                    reason = f"spark differs: {differences[case_id]}"
                    marks.append(
                        pytest.mark.xfail(reason=reason, strict=True, raises=EXPECTED_FAILURES)
                    )
                params.append(pytest.param(engine, case, id=f"{engine}/{case_id}", marks=marks))
    return params


def test_listed_differences_are_cases() -> None:
    """Every case listed as a Spark difference exists (a renamed case is not left behind)."""
    ids = {
        f"{path.stem}/{case['id']}"
        for path in sorted(CASES_DIR.glob("*.yaml"))
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))
    }
    assert set(spark_differences()) <= ids


def case_tables(case: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    tables = {}
    for name, spec in (case.get("tables") or {}).items():
        cols = [c[0] for c in spec["columns"]]
        tables[name] = (
            cols,
            [c[1] for c in spec["columns"]],
            [dict(zip(cols, row, strict=True)) for row in spec["rows"]],
        )
    return tables


def as_arrow(cols: list[str], types: list[str], rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    import json

    import pyarrow as pa

    arrays = []
    for c, t in zip(cols, types, strict=True):
        values = [r.get(c) for r in rows]
        if t in ("string", "guid"):
            arrays.append(pa.array(values, type=pa.string()))
        elif t in ("long", "int"):
            arrays.append(pa.array(values, type=pa.int64()))
        elif t == "real":
            arrays.append(
                pa.array([None if v is None else float(v) for v in values], type=pa.float64())
            )
        elif t == "bool":
            arrays.append(pa.array(values, type=pa.bool_()))
        elif t == "dynamic":
            arrays.append(
                pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())
            )
        else:  # datetime, timespan: text, converted by the engine to the column's type
            arrays.append(
                pa.array([None if v is None else str(v) for v in values], type=pa.string())
            )
    return pa.table(dict(zip(cols, arrays, strict=True)))


def canonical(value: Any) -> Any:
    """Numbers compare by value (600 == 600.0), recursively inside dynamic values."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def equal_rows(actual: list[list[Any]], expected: list[list[Any]], ordered: bool) -> bool:
    a = [repr(canonical(r)) for r in actual]
    e = [repr(canonical(r)) for r in expected]
    return a == e if ordered else sorted(a) == sorted(e)


@pytest.fixture
def engine_for(request: pytest.FixtureRequest) -> Any:
    """A new engine of the given name (Spark: a child of the test session's SparkSession)."""
    opened: list[Any] = []

    def open_engine(name: str) -> Any:
        from trustwatch.engines.select import SparkOptions, open_engine

        spark = None
        if name == "spark":
            spark = SparkOptions(session=request.getfixturevalue("spark_session"))
        engine = open_engine(name, spark)
        opened.append(engine)
        return engine

    yield open_engine
    for engine in opened:
        engine.close()


def run_case(case: dict[str, Any], engine: Any) -> Any:
    """The case's last result table on ``engine`` (raises the query's TrustwatchError)."""
    from trustwatch.api import Session
    from trustwatch.schema.model import Column, TableSchema

    session_tables = {}
    schemas = {}
    for name, (cols, types, rows) in case_tables(case).items():
        session_tables[name] = as_arrow(cols, types, rows)
        schemas[name] = TableSchema(
            name, tuple(Column(c, t) for c, t in zip(cols, types, strict=True))
        )
    # declared test tables are typed exactly as the case says
    session = Session(session_tables, schemas=schemas, engine=engine)
    return session.run(case["kql"], now=str(case.get("now", DEFAULT_NOW))).tables[-1]


def check_same_as_duckdb(case: dict[str, Any], spark_result: Any, duckdb_engine: Any) -> None:
    """Spark's rows for ``case`` are DuckDB's: same columns, types and rows.

    Raises:
        EnginesDisagree: they differ, or DuckDB refuses what Spark answered.
    """
    try:
        duck = run_case(case, duckdb_engine)
    except TrustwatchError as exc:
        raise EnginesDisagree(f"Spark returned rows; DuckDB refused: {exc}") from exc
    ordered = bool(case["expect"].get("ordered", False))
    spark = (spark_result.column_names, kql_types(spark_result), json_matrix(spark_result))
    duckdb = (duck.column_names, kql_types(duck), json_matrix(duck))
    if spark[:2] != duckdb[:2] or not equal_rows(spark[2], duckdb[2], ordered):
        raise EnginesDisagree(f"\nquery: {case['kql']}\nspark:  {spark}\nduckdb: {duckdb}")


@pytest.mark.parametrize(("engine", "case"), load_cases())
def test_conformance(engine: str, case: dict[str, Any], engine_for: Any) -> None:
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(TrustwatchError) as info:
            run_case(case, engine_for(engine))
        assert info.value.code == expect["error"], info.value.render()
        return
    result = run_case(case, engine_for(engine))
    if engine == "spark":
        check_same_as_duckdb(case, result, engine_for("duckdb"))
    if "columns" in expect:
        assert result.column_names == expect["columns"]
    if "types" in expect:
        assert kql_types(result) == expect["types"]
    actual = json_matrix(result)
    assert equal_rows(actual, expect["rows"], bool(expect.get("ordered", False))), (
        f"\nquery: {case['kql']}\nactual:   {actual}\nexpected: {expect['rows']}"
    )
