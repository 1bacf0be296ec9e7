"""evaluate bag_unpack() / pivot(): the first pass over the data, and what happens without one.

The results themselves are conformance cases (tests/kql/conformance/evaluate.yaml); these tests
check the compiler's side: no data at hand (rules, content compiled ahead) is a located refusal
unless an output schema is given, and the limit on columns made from the data.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from trustwatch.api import Session
from trustwatch.errors import UnsupportedKql
from trustwatch.kql.compiler import CatalogTable, compile_query
from trustwatch.kql.operators import evaluate
from trustwatch.kql.parser import parse_query
from trustwatch.schema.model import Column, TableSchema

NOW = datetime(2024, 1, 10, tzinfo=UTC)
CATALOG = {
    "T": CatalogTable(
        TableSchema("T", (Column("d", "dynamic"), Column("s", "string"), Column("n", "long"))),
        None,
    )
}


@pytest.mark.parametrize(
    "kql",
    ["T | evaluate bag_unpack(d)", "T | where n > 1 | evaluate pivot(s)"],
)
def test_without_data_it_is_refused_at_the_operator(kql: str) -> None:
    with pytest.raises(UnsupportedKql) as info:
        compile_query(parse_query(kql), CATALOG, NOW)
    span = info.value.diagnostic.span
    assert span is not None and kql[span.start : span.end].startswith("evaluate ")
    assert "output schema" in (info.value.diagnostic.hint or "")


@pytest.mark.parametrize(
    ("kql", "columns"),
    [
        ("T | evaluate bag_unpack(d) : (*, A:long)", ["s", "n", "A"]),
        ("T | evaluate pivot(s, sum(n)) : (x:long, y:long)", ["x", "y"]),
    ],
)
def test_an_output_schema_needs_no_data(kql: str, columns: list[str]) -> None:
    statement = compile_query(parse_query(kql), CATALOG, NOW).statements[-1]
    assert [name for name, _ in statement.columns] == columns


def test_the_first_pass_runs_once_per_operator() -> None:
    calls: list[object] = []

    def probe(query: object) -> list[tuple[object, ...]]:
        calls.append(query)
        return [("a",), ("b",)]

    statement = compile_query(
        parse_query("T | project s, n | evaluate pivot(s)"), CATALOG, NOW, probe=probe
    ).statements[-1]
    assert len(calls) == 1
    assert statement.columns == (("n", "long"), ("a", "long"), ("b", "long"))


def test_columns_past_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "DATA_COLUMNS", 3)
    data = pa.table({"s": [f"v{i}" for i in range(4)], "n": list(range(4))})
    session = Session({"P": data})
    kql = "P | evaluate pivot(s)"
    with pytest.raises(UnsupportedKql) as info:
        session.run(kql)
    assert "more than 3 columns" in info.value.diagnostic.message
    span = info.value.diagnostic.span
    assert span is not None and kql[span.start : span.end] == "evaluate pivot(s)"
    # at the limit it runs
    assert session.run("P | where n < 3 | evaluate pivot(s)").tables[-1].column_names == [
        "n",
        "v0",
        "v1",
        "v2",
    ]
