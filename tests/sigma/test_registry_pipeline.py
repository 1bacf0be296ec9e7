"""Registry rules keep Sysmon's TargetObject and Details (trustwatch.sigma.pipeline).

Each Sigma rule here is converted by trustwatch's pipeline and hunted over Defender-shaped
DeviceRegistryEvents rows - the key in RegistryKey, the value name in RegistryValueName (empty
for the default value), DWORD data as its decimal text - and must match the rows Sigma matches
on the Sysmon event the row stands for. The fused evaluation (rules.fusion) and each rule's own
give the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.rules.test_fusion import spy_fused
from tests.rules.test_runner import session_of
from tests.sigma.sigma_rules import Cases, converted, write
from tests.sigma.sigma_rules import matched as matched_ids
from trustwatch.kql.parser import parse_query
from trustwatch.rules import fusion
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning
from trustwatch.sigma import pipeline
from trustwatch.sigma.load import load_sigma

PROCDUMP = r"HKEY_LOCAL_MACHINE\SOFTWARE\Sysinternals\ProcDump"
COMMAND = r"HKEY_CURRENT_USER\S-1-5-21-1-2-3-1001\Software\Classes\ms-settings\shell\open\command"


def row(
    n: int, action: str, key: str, name: str = "", kind: str = "", data: str = ""
) -> dict[str, Any]:
    return {
        "TimeGenerated": f"2024-05-01T10:00:{n:02d}Z",
        "Timestamp": f"2024-05-01T10:00:{n:02d}Z",
        "DeviceName": "ws01",
        "ReportId": n,
        "ActionType": action,
        "RegistryKey": key,
        "RegistryValueName": name,
        "RegistryValueType": kind,
        "RegistryValueData": data,
        "InitiatingProcessFolderPath": r"C:\Windows\System32\reg.exe",
    }


# each row stands for the Sysmon event in its comment (TargetObject | Details)
ROWS = [
    row(1, "RegistryKeyCreated", PROCDUMP),  # HKLM\...\ProcDump (a key event: no value name)
    row(
        2, "RegistryValueSet", PROCDUMP, "EulaAccepted", "Dword", "1"
    ),  # ...\EulaAccepted | DWORD (0x00000001)
    row(
        3, "RegistryValueSet", COMMAND, "", "String", "cmd.exe"
    ),  # HKU\...\command\(Default) | cmd.exe
    row(
        4, "RegistryValueSet", COMMAND, "DelegateExecute", "String", ""
    ),  # ...\DelegateExecute | (Empty)
    row(
        5, "RegistryValueSet", PROCDUMP, "Big", "QWord", str(0x1_0000_0002)
    ),  # QWORD (0x00000001-0x00000002)
    row(6, "RegistryValueSet", PROCDUMP, "Blob", "Binary", ""),  # Binary Data
    row(7, "RegistryValueDeleted", PROCDUMP, "EulaAccepted"),  # ...\EulaAccepted, no Details
    row(8, "RegistryValueSet", PROCDUMP, "Level", "Dword", "4294967295"),  # DWORD (0xffffffff)
]

# Sigma detection -> the ReportIds Sigma matches on the Sysmon events above
CASES: dict[str, tuple[str, list[int]]] = {
    "value-name": ("TargetObject|endswith: '\\EulaAccepted'", [2, 7]),
    "key-only": ("TargetObject|endswith: '\\Sysinternals\\ProcDump'", [1]),
    "key-prefix": ("TargetObject|contains: '\\Sysinternals\\ProcDump\\'", [2, 5, 6, 7, 8]),
    "default-value": ("TargetObject|endswith: '\\shell\\open\\command\\(Default)'", [3]),
    "hive-hklm": ("TargetObject|startswith: 'HKLM\\SOFTWARE\\Sysinternals\\'", [1, 2, 5, 6, 7, 8]),
    "hive-hku": ("TargetObject|startswith: 'HKU\\S-1-5-21-'", [3, 4]),
    "dword": ("Details: 'DWORD (0x00000001)'", [2]),
    "dword-high": ("Details: 'DWORD (0xffffffff)'", [8]),
    "dword-any": ("Details|startswith: 'DWORD'", [2, 8]),
    "qword": ("Details: 'QWORD (0x00000001-0x00000002)'", [5]),
    "empty": ("Details: '(Empty)'", [4]),
    "binary": ("Details: 'Binary Data'", [6]),
    "string": ("Details|endswith: 'cmd.exe'", [3]),
    "no-details": ("Details: null", [1, 7]),  # Sysmon logs none for a key or a deletion
    "trailing-backslash": ("TargetObject|contains: '\\Software\\Classes\\ms-settings\\'", [3, 4]),
}

RULE = """\
title: registry {name}
id: 00000000-0000-4000-8000-{n:012d}
status: test
logsource:
    category: registry_event
    product: windows
detection:
    selection:
        {detection}
    condition: selection
level: high
"""


def rules_for(tmp_path: Path, cases: Cases) -> list[Any]:
    return converted(tmp_path, RULE, cases, {"DeviceRegistryEvents": ROWS})


def matched(result: HuntResult) -> dict[str, list[int]]:
    return matched_ids(result, "registry ")


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return rules_for(tmp_path_factory.mktemp("registry"), CASES)


def test_rules_match_what_sigma_matches_on_sysmon(rules: list[Any]) -> None:
    hunter = Hunter(session_of(DeviceRegistryEvents=ROWS), Tuning())
    result = hunter.run(rules)
    want = {name: ids for name, (_, ids) in CASES.items() if ids}
    assert matched(result) == want


def test_fused_and_alone_agree(rules: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_fused(monkeypatch)
    fused = Hunter(session_of(DeviceRegistryEvents=ROWS), Tuning()).run(rules)
    assert calls == [set(range(len(rules)))]  # every rule in the fused evaluation
    alone = Hunter(session_of(DeviceRegistryEvents=ROWS), Tuning(), fuse=False).run(rules)
    assert matched(fused) == matched(alone)
    assert fused.alerts == alone.alerts


def test_the_query_computes_the_sysmon_columns_and_drops_them(rules: list[Any]) -> None:
    by_name = {r.name.removeprefix("registry "): r for r in rules}
    value = by_name["value-name"].query
    assert value.startswith("DeviceRegistryEvents\n| extend TargetObject = strcat(")
    assert 'where TargetObject endswith "\\\\EulaAccepted"' in value
    assert value.endswith("\n| project-away TargetObject")
    assert "Details" not in value  # only the columns the rule reads
    dword = by_name["dword"].query
    assert dword.endswith('| where Details =~ "DWORD (0x00000001)"\n| project-away Details')
    for rule in rules:  # each is a filter the fused evaluation takes
        assert fusion.filter_table(parse_query(rule.query)) == "DeviceRegistryEvents"


def test_other_tables_and_columns_are_as_the_xdr_pipeline_writes_them(tmp_path: Path) -> None:
    text = RULE.format(name="image", n=99, detection="Image|endswith: '\\reg.exe'")
    (rule,) = load_sigma([write(tmp_path, "image.yml", text)]).rules
    assert rule.query == (
        'DeviceRegistryEvents\n| where InitiatingProcessFolderPath endswith "\\\\reg.exe"'
    )


def test_with_sysmon_columns_leaves_other_queries_alone() -> None:
    query = 'DeviceProcessEvents\n| where TargetObject == "x"'
    assert pipeline.with_sysmon_columns(query, {"TargetObject"}) == query
    registry = 'DeviceRegistryEvents\n| where ActionType == "x"'
    assert pipeline.with_sysmon_columns(registry, {"ActionType"}) == registry
