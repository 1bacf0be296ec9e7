"""ps_script rules read trustwatch's script-block rows (trustwatch.sigma.pipeline).

The Microsoft XDR pipeline has no table for Sigma's ps_script log source (PowerShell 4104), and
Defender records no script blocks. trustwatch's ingest writes each block as a DeviceEvents row,
ActionType "PowerShellScriptBlock", the event's ScriptBlockText and Path in AdditionalFields
(ingest/maps/powershell.yaml). Each Sigma rule here is converted by trustwatch's pipeline and
hunted over such rows, next to other DeviceEvents rows, and must match the blocks Sigma matches
on the 4104 events the rows stand for; fused and alone give the same alerts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.rules.test_fusion import spy_fused
from tests.rules.test_runner import session_of
from tests.sigma.sigma_rules import converted, write
from tests.sigma.sigma_rules import matched as matched_ids
from trustwatch.kql.parser import parse_query
from trustwatch.rules import fusion
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning
from trustwatch.sigma.load import load_sigma


def row(n: int, action: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "TimeGenerated": f"2024-05-01T10:00:{n:02d}Z",
        "Timestamp": f"2024-05-01T10:00:{n:02d}Z",
        "DeviceName": "ws01",
        "ReportId": n,
        "ActionType": action,
        "AdditionalFields": json.dumps(fields),
    }


def block(n: int, text: str, path: str = "") -> dict[str, Any]:
    fields = {"ScriptBlockText": text, "ScriptBlockId": f"id-{n}", "Path": path}
    return row(n, "PowerShellScriptBlock", {**fields, "MessageTotal": 1, "Complete": True})


ROWS = [
    block(1, "Invoke-Mimikatz -Command 'crypto::capi'"),
    block(2, "Get-ChildItem Cert:\\LocalMachine\\Root", r"C:\Users\bob\tools\list-roots.ps1"),
    block(3, "Write-Host hello", r"C:\Program Files\Contoso\hello.ps1"),
    # not script blocks: no ps_script rule may match them, whatever their AdditionalFields hold
    row(4, "PowerShellCommand", {"Command": "Invoke-Mimikatz"}),
    row(5, "NamedPipeEvent", {"ScriptBlockText": "Invoke-Mimikatz", "Path": "x.ps1"}),
]

# Sigma detection -> the ReportIds Sigma matches on the 4104 events rows 1-3 stand for
CASES: dict[str, tuple[str, list[int]]] = {
    "text": ("ScriptBlockText|contains: 'invoke-mimikatz'", [1]),
    "text-all": ("ScriptBlockText|contains|all: ['Get-ChildItem', 'Cert:\\']", [2]),
    "path": ("Path|endswith: '.ps1'", [2, 3]),
    "path-and-text": ("Path|contains: '\\Users\\'\n        ScriptBlockText|contains: 'Cert:'", [2]),
    "nothing": ("ScriptBlockText|contains: 'Export-PfxCertificate'", []),
}

RULE = """\
title: script {name}
id: 00000000-0000-4000-9000-{n:012d}
status: test
logsource:
    category: ps_script
    product: windows
detection:
    selection:
        {detection}
    condition: selection
level: high
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return converted(tmp_path_factory.mktemp("ps_script"), RULE, CASES, {"DeviceEvents": ROWS})


def matched(result: HuntResult) -> dict[str, list[int]]:
    return matched_ids(result, "script ")


def test_rules_match_the_script_blocks_sigma_matches(rules: list[Any]) -> None:
    result = Hunter(session_of(DeviceEvents=ROWS), Tuning()).run(rules)
    assert matched(result) == {name: ids for name, (_, ids) in CASES.items() if ids}


def test_fused_and_alone_agree(rules: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_fused(monkeypatch)
    fused = Hunter(session_of(DeviceEvents=ROWS), Tuning()).run(rules)
    assert calls == [set(range(len(rules)))]  # every rule in the fused evaluation
    alone = Hunter(session_of(DeviceEvents=ROWS), Tuning(), fuse=False).run(rules)
    assert fused.alerts == alone.alerts


def test_the_query_reads_script_block_rows_and_computes_the_fields(rules: list[Any]) -> None:
    by_name = {r.name.removeprefix("script "): r for r in rules}
    text = by_name["text"].query
    assert text.startswith("DeviceEvents\n| extend ScriptBlockText = iff(")
    assert 'ActionType =~ "PowerShellScriptBlock"' in text
    assert text.endswith("\n| project-away ScriptBlockText")
    assert "Path" not in text  # only the fields the rule reads
    for rule in rules:  # each is a filter the fused evaluation takes
        assert fusion.filter_table(parse_query(rule.query)) == "DeviceEvents"


def test_a_field_script_block_rows_lack_is_still_refused(tmp_path: Path) -> None:
    text = RULE.format(name="other", n=99, detection="CommandLine|contains: 'x'\n        Foo: y")
    found = load_sigma([write(tmp_path, "other.yml", text)])
    assert not found.rules
    (failure,) = found.failures
    assert "does not map" in failure.reason and "Foo" in failure.detail
