"""Reassembled PowerShell script blocks keep their own text (mv-apply numbered rows twice).

The telemetry has split blocks (in three and in two parts) next to single-part ones, on four
simulated hosts. Before the fix, about one ingest in eight swapped two blocks' texts; the test
ingests it repeatedly so the bug shows reliably.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import DEFAULT_SEED, render

SCENARIOS = [
    "evasion-split-script-block",
    "art-t1553-004-7-wmi-cloned-root",
    "spec-test-1-certutil-root",
    "spec-test-2-import-certificate",
]
KQL = """DeviceEvents | where ActionType == "PowerShellScriptBlock"
| project id = tostring(AdditionalFields.ScriptBlockId),
          text = tostring(AdditionalFields.ScriptBlockText)"""


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("blocks")
    for scenario in load_scenarios(SCENARIOS):
        text = render(scenario, "sysmon", DEFAULT_SEED)
        (folder / f"{scenario.id}.xml").write_text(text, encoding="utf-8")
    return folder


def session_over(folder: Path) -> Session:
    planned, _ = pipeline.plan([str(folder)])
    ws = Workspace(None)
    ws.ingest(planned)
    return Session(engine=ws.engine, views=pipeline.query_views(ws.engine))


def blocks(folder: Path) -> dict[str, str]:
    return {r["id"]: r["text"] for r in session_over(folder).run(KQL).tables[-1].to_pylist()}


def test_every_ingest_pairs_each_block_with_its_text(telemetry: Path) -> None:
    first = blocks(telemetry)
    assert len(first) >= 4
    assert any("Import-Certificate" in t for t in first.values())
    assert any("SetBinaryValue" in t for t in first.values())
    for _ in range(15):
        assert blocks(telemetry) == first


def test_script_blocks_get_their_process_by_id(telemetry: Path) -> None:
    """4104 names its process only by id: the latest process with that id on the device."""
    rows = (
        session_over(telemetry)
        .run(
            """DeviceEvents | where ActionType == "PowerShellScriptBlock"
        | project DeviceName, InitiatingProcessId, InitiatingProcessFileName,
                  InitiatingProcessAccountName, InitiatingProcessParentFileName"""
        )
        .tables[-1]
        .to_pylist()
    )
    users = {}
    for scenario in load_scenarios(SCENARIOS):
        host = make_host(scenario, DEFAULT_SEED)
        users[host.device] = host.user.name
    assert {r["DeviceName"] for r in rows} == set(users)
    assert all(r["InitiatingProcessFileName"] == "powershell.exe" for r in rows)
    assert all(r["InitiatingProcessAccountName"] == users[r["DeviceName"]] for r in rows)
