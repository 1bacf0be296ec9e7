"""Reassembled PowerShell script blocks keep their own text (mv-apply numbered rows twice).

The sample has a split block next to single-part ones. Before the fix, about one ingest in
eight swapped two blocks' texts; the test ingests it repeatedly so the bug shows reliably.
"""

from __future__ import annotations

from importlib import resources

from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace

SAMPLE = resources.files("trustwatch.content.samples").joinpath("hunt/powershell_attack.xml")
KQL = """DeviceEvents | where ActionType == "PowerShellScriptBlock"
| project id = tostring(AdditionalFields.ScriptBlockId),
          text = tostring(AdditionalFields.ScriptBlockText)"""


def blocks() -> dict[str, str]:
    planned, _ = pipeline.plan([str(SAMPLE)])
    ws = Workspace(None)
    ws.ingest(planned)
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    return {r["id"]: r["text"] for r in session.run(KQL).tables[-1].to_pylist()}


def test_every_ingest_pairs_each_block_with_its_text() -> None:
    first = blocks()
    assert len(first) >= 3
    assert any("Import-Certificate" in t for t in first.values())
    for _ in range(15):
        assert blocks() == first


def test_script_blocks_get_their_process_by_id() -> None:
    """4104 names its process only by id: the latest process with that id on the device."""
    folder = resources.files("trustwatch.content.samples").joinpath("hunt")
    planned, _ = pipeline.plan([str(folder)])
    ws = Workspace(None)
    ws.ingest(planned)
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    rows = (
        session.run(
            """DeviceEvents | where ActionType == "PowerShellScriptBlock"
        | project InitiatingProcessId, InitiatingProcessFileName, InitiatingProcessAccountName,
                  InitiatingProcessParentFileName"""
        )
        .tables[-1]
        .to_pylist()
    )
    assert rows and all(r["InitiatingProcessFileName"] == "powershell.exe" for r in rows)
    assert {r["InitiatingProcessAccountName"] for r in rows} == {"alice"}
