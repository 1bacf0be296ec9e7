"""The Defender export's queries run in advanced hunting, whose tables have no TimeGenerated.

Checked here: the rewrite (lets adding TimeGenerated = Timestamp, spliced at the parser's table
spans); every exported query compiling against a catalog of advanced hunting's tables only
(without the Log Analytics columns, as ../shared/reference/mde_schema.json documents them), with
the columns Defender requires of a custom detection; and the rewritten queries returning the
rows the original queries return, on the validate scenarios' Defender telemetry.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from trustwatch.errors import KqlSemanticError
from trustwatch.export.defender import REQUIRED_COLUMNS
from trustwatch.export.formats import export_rules
from trustwatch.export.hunting import (
    LOG_ANALYTICS_COLUMNS,
    hunting_query,
    hunting_schemas,
    hunting_session,
    rebound_tables,
)
from trustwatch.rules.model import Rule, load_rules
from trustwatch.rules.tuning import default_tuning_path, load_tuning

MDE_SCHEMA = Path(__file__).parents[2].parent / "shared" / "reference" / "mde_schema.json"


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules(["all"])


@pytest.fixture(scope="module")
def hunting() -> Any:
    return hunting_session()


def test_the_catalog_is_advanced_huntings_documented_columns() -> None:
    if not MDE_SCHEMA.exists():
        pytest.skip("../shared/reference/mde_schema.json is not here")
    documented = json.loads(MDE_SCHEMA.read_text("utf-8"))
    schemas = hunting_schemas()
    for table, columns in documented.items():
        ours = [(c.name, c.type) for c in schemas[table].columns]
        # trustwatch's Device*Events also carry MachineGroup, as Defender's streamed records
        # (and Sentinel's copies) do; the documented tables have it in DeviceInfo only
        if table != "DeviceInfo":
            ours = [c for c in ours if c[0] != "MachineGroup"]
        assert sorted(ours) == sorted((n, t) for n, t in columns), table
        assert "TimeGenerated" not in dict(ours)


def test_which_tables_are_read_through_a_let() -> None:
    rebound = rebound_tables()
    assert {
        "DeviceProcessEvents",
        "DeviceRegistryEvents",
        "DeviceFileEvents",
        "DeviceNetworkEvents",
        "DeviceEvents",
        "DeviceImageLoadEvents",
        "DeviceInfo",
    } <= rebound
    # Sentinel's own tables keep their TimeGenerated; TVM snapshots have no Timestamp to copy
    assert not {"SecurityEvent", "Event", "DeviceTvmSoftwareInventory"} & rebound


def test_the_rewrite_splices_table_references_only() -> None:
    query = (
        "// DeviceProcessEvents in a comment stays\n"
        "let Proc = materialize(DeviceProcessEvents\n"
        "    | where FileName == 'DeviceProcessEvents');  // kept\n"
        "Proc\n"
        "| join kind=inner (DeviceNetworkEvents | project DeviceName, NetTime = TimeGenerated)\n"
        "    on DeviceName\n"
        "| union ['DeviceProcessEvents'], SecurityEvent\n"
        "| summarize arg_min(TimeGenerated, *) by DeviceName"
    )
    rewritten = hunting_query(query)
    assert rewritten.tables == ("DeviceProcessEvents", "DeviceNetworkEvents")
    assert rewritten.text == (
        "let tw_DeviceProcessEvents = DeviceProcessEvents | extend TimeGenerated = Timestamp;\n"
        "let tw_DeviceNetworkEvents = DeviceNetworkEvents | extend TimeGenerated = Timestamp;\n"
        "// DeviceProcessEvents in a comment stays\n"
        "let Proc = materialize(tw_DeviceProcessEvents\n"
        "    | where FileName == 'DeviceProcessEvents');  // kept\n"
        "Proc\n"
        "| join kind=inner (tw_DeviceNetworkEvents | project DeviceName, NetTime = TimeGenerated)\n"
        "    on DeviceName\n"
        "| union tw_DeviceProcessEvents, SecurityEvent\n"
        "| summarize arg_min(TimeGenerated, *) by DeviceName"
    )


def test_a_query_not_naming_time_generated_is_unchanged() -> None:
    query = "// TimeGenerated in a comment\nDeviceProcessEvents\n| project Timestamp, ReportId"
    assert hunting_query(query).text == query
    broken = "DeviceProcessEvents | where TimeGenerated > ("
    assert hunting_query(broken).text == broken


def test_a_table_name_the_query_binds_itself_is_left_alone() -> None:
    query = (
        "let DeviceFileEvents = datatable(TimeGenerated: datetime)[];\n"
        "let tw_DeviceProcessEvents = 1;\n"
        "DeviceFileEvents | union DeviceProcessEvents | project TimeGenerated"
    )
    rewritten = hunting_query(query)
    assert rewritten.kept == ("DeviceFileEvents",)
    # the let's name does not clash with the query's own
    assert rewritten.text.startswith(
        "let tw_DeviceProcessEvents_ = DeviceProcessEvents | extend TimeGenerated = Timestamp;\n"
    )
    assert rewritten.text.endswith(
        "DeviceFileEvents | union tw_DeviceProcessEvents_ | project TimeGenerated"
    )


def test_every_exported_query_compiles_in_advanced_hunting(rules: list[Rule], hunting: Any) -> None:
    result = export_rules(rules, "defender", load_tuning(default_tuning_path()))
    bodies = json.loads(result.stdout)
    rejected = {n.rule for n in result.notes if "advanced hunting" in n.message}
    # the verbatim specification rule projects AccountName, which DeviceRegistryEvents lacks;
    # the AD CS and CAPI2 rules read Sentinel's SecurityEvent / WindowsEvent, which advanced
    # hunting has no table for (said in a note, not dropped)
    sentinel_only = {r.name for r in rules if _reads(r, ("SecurityEvent", "WindowsEvent"))}
    assert sentinel_only == {
        "AD CS or OCSP server auditing, rights or configuration tampered with",
        "AD CS certificate requested for another identity (SAN of another account, or a machine "
        "account on a user template)",
        "AD CS certificate template changed, or a template open to requester-supplied identities "
        "loaded",
        "Certificate private key acquired by an unexpected process (CAPI2 event 70)",
    }
    assert rejected == {r.name for r in rules if r.pack == "reference"} | sentinel_only
    for rule, body in zip(rules, bodies, strict=True):
        text = body["queryCondition"]["queryText"]
        if rule.name in rejected:
            continue
        assert "TimeGenerated" in rule.query
        # the bug: the rule as written reads TimeGenerated, which advanced hunting lacks
        with pytest.raises(KqlSemanticError, match="TimeGenerated"):
            hunting.compile(rule.query)
        statements, _ = hunting.compile(text)
        columns = [name for name, _ in statements[-1].columns]
        assert set(REQUIRED_COLUMNS) | {"DeviceId"} <= set(columns), rule.name
        # only the lets and the table names differ: comments and layout are the rule's
        rewritten = hunting_query(rule.query)
        header = "".join(
            f"let tw_{t} = {t} | extend TimeGenerated = Timestamp;\n" for t in rewritten.tables
        )
        assert text.startswith(header)
        restored = text[len(header) :]
        for table in rewritten.tables:
            restored = restored.replace(f"tw_{table}", table)
        assert restored == rule.query


def _reads(rule: Rule, tables: tuple[str, ...]) -> bool:
    """Whether the rule's query names one of ``tables`` as a word."""
    return any(re.search(rf"\b{table}\b", rule.query) for table in tables)


@pytest.fixture(scope="module")
def scenario_tables() -> dict[str, pa.Table]:
    """The Defender tables of every validate scenario's Defender telemetry, ingested as validate
    ingests it (Sentinel's copies: TimeGenerated is the event time)."""
    from sqlglot import exp

    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace
    from trustwatch.scenarios.model import load_scenarios
    from trustwatch.scenarios.render import DEFAULT_SEED, FILE_NAMES, render

    tables: dict[str, pa.Table] = {}
    with tempfile.TemporaryDirectory(prefix="trustwatch-hunting-") as tmp:
        for scenario in load_scenarios(host="windows"):
            path = Path(tmp) / FILE_NAMES["defender"].format(id=scenario.id)
            path.write_text(render(scenario, "defender", DEFAULT_SEED), encoding="utf-8")
        ws = Workspace(None)
        try:
            planned, _ = pipeline.plan([tmp])
            ws.ingest(planned)
            for name, sql_name in pipeline.query_views(ws.engine).items():
                if name in hunting_schemas():
                    select = exp.select("*").from_(exp.to_table(sql_name, quoted=True))
                    tables[name] = ws.engine.execute(select)
        finally:
            ws.close()
    return tables


def _rows(table: pa.Table) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def test_rewritten_queries_return_the_original_rows_on_the_scenarios(
    rules: list[Rule], scenario_tables: dict[str, pa.Table]
) -> None:
    from trustwatch.api import Session

    for table in scenario_tables.values():  # the premise of the rewrite
        if "TimeGenerated" in table.column_names and table.num_rows:
            assert table.column("TimeGenerated").equals(table.column("Timestamp"))
    sentinel = Session(scenario_tables)
    hunting = hunting_session(
        {
            name: table.select([c for c in table.column_names if c not in LOG_ANALYTICS_COLUMNS])
            for name, table in scenario_tables.items()
        }
    )
    # the rules advanced hunting can run: not those reading Sentinel-only tables (above)
    compared = [
        r for r in rules if r.pack == "default" and not _reads(r, ("SecurityEvent", "WindowsEvent"))
    ]
    alerting = 0
    for rule in compared:
        expected = sentinel.run(rule.query).tables[-1]
        got = hunting.run(hunting_query(rule.query).text).tables[-1]
        assert sorted(got.column_names) == sorted(expected.column_names), rule.name
        assert _rows(got) == _rows(expected), rule.name
        alerting += bool(expected.num_rows)
    # every rule returns rows on some scenario (the private-key rule on
    # attack-mimikatz-key-export-system32), so the comparison is not of empty tables
    assert alerting == len(compared)
