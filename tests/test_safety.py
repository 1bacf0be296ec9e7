"""Whatever a query says, it cannot read or write files, reach the network, or break out of SQL."""

from __future__ import annotations

import duckdb
import pytest

import trustwatch
from trustwatch.api import Session
from trustwatch.errors import TrustwatchError, UnsupportedKql
from trustwatch.output import json_matrix

HOSTILE = [
    "'); DROP TABLE x; --",
    "\\'; SELECT 1; --",
    '" OR 1=1 --',
    "$$ ; COPY (SELECT 1) TO '/tmp/pwned.csv'; $$",
    "'||read_text('/etc/passwd')||'",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_string_literals_stay_literals(text: str) -> None:
    kql = f"print s = {_kql_string(text)}, n = strlen({_kql_string(text)})"
    rows = json_matrix(trustwatch.query(kql))
    assert rows == [[text, len(text)]]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_predicates_match_as_text(text: str) -> None:
    rows = [{"s": text}, {"s": "harmless"}]
    for op in ("==", "has", "contains", "=~", "startswith", "matches regex"):
        needle = _kql_string(text) if op != "matches regex" else _kql_string("^harmless$")
        result = trustwatch.query(f"T | where s {op} {needle} | count", tables={"T": rows})
        assert json_matrix(result)[0][0] in (0, 1)


def test_engine_cannot_reach_files_once_locked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    session = Session({"T": [{"a": 1}]})
    target = tmp_path / "out.csv"
    with pytest.raises(duckdb.Error):
        session.engine.con.execute("SELECT * FROM read_csv('/etc/hostname')")
    with pytest.raises(duckdb.Error):
        session.engine.con.execute(f"COPY (SELECT 1) TO '{target}'")
    with pytest.raises(duckdb.Error):
        session.engine.con.execute("SET enable_external_access = true")
    assert not target.exists()


def test_externaldata_is_refused() -> None:
    kql = 'externaldata(x:string) ["https://example.invalid/list.csv"] with (format="csv")'
    with pytest.raises(UnsupportedKql) as info:
        trustwatch.query(kql)
    assert "network" in info.value.diagnostic.message


def test_engine_functions_are_not_reachable_by_name() -> None:
    with pytest.raises(TrustwatchError) as info:
        trustwatch.query("print read_text('/etc/passwd')")
    assert info.value.code == "KQL203"


def _kql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_duckdb_never_draws_on_stdout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A long query's progress bar would land in the middle of --format json output."""
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace

    ws = Workspace(tmp_path / "ws.duckdb")
    engines = [Session().engine, ws.engine]
    for engine in engines:
        setting = "SELECT current_setting('enable_progress_bar')"
        assert engine.con.execute(setting).fetchall() == [(False,)]
    ws.close()
    engine, _ = pipeline.open_workspace_for_query(tmp_path / "ws.duckdb")
    assert engine.con.execute(setting).fetchall() == [(False,)]
    engine.close()
