"""Runs every case of tests/kql/conformance/*.yaml through trustwatch.query() on DuckDB."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustwatch.errors import TrustwatchError
from trustwatch.output import json_matrix, kql_types

CASES_DIR = Path(__file__).parent / "conformance"
DEFAULT_NOW = "2024-01-10T00:00:00Z"


def load_cases() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            marks = []
            if case.get("known_gap"):
                # documented gap (docs/kql-support.md): fails today; reported once it passes
                marks.append(pytest.mark.xfail(reason=case["known_gap"], strict=True))
            params.append(pytest.param(case, id=f"{path.stem}/{case['id']}", marks=marks))
    return params


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


@pytest.mark.parametrize("case", load_cases())
def test_conformance(case: dict[str, Any]) -> None:
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
    session = Session(session_tables, schemas=schemas)
    expect = case["expect"]
    now = str(case.get("now", DEFAULT_NOW))
    if "error" in expect:
        with pytest.raises(TrustwatchError) as info:
            session.run(case["kql"], now=now)
        assert info.value.code == expect["error"], info.value.render()
        return
    result = session.run(case["kql"], now=now).tables[-1]
    if "columns" in expect:
        assert result.column_names == expect["columns"]
    if "types" in expect:
        assert kql_types(result) == expect["types"]
    actual = json_matrix(result)
    assert equal_rows(actual, expect["rows"], bool(expect.get("ordered", False))), (
        f"\nquery: {case['kql']}\nactual:   {actual}\nexpected: {expect['rows']}"
    )
