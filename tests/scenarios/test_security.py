"""The Security-auditing host (evtx_dump JSON lines) and CAPI2 4097, through the real readers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import Scenario, load_scenarios
from trustwatch.scenarios.render import INGEST_FORMATS, render, write

SCENARIOS = {s.id: s for s in load_scenarios()}
DATA = SHARED / "data"
DIGICERT_G2 = "DF3C24F9BFD666761B268073FE06D1CC8D4F82A4"


def ingested(scenario: Scenario, source: str, tmp_path: Path, seed: int = 5) -> Workspace:
    """A workspace holding one scenario's file for ``source``, read as its format."""
    paths = write(scenario, tmp_path, seed, (source,))[source]
    planned, _ = pipeline.plan(paths)
    assert [fmt for _, fmt, _ in planned] == [INGEST_FORMATS[source]]
    ws = Workspace(None)
    ws.ingest(planned)
    return ws


def rows(ws: Workspace, kql: str) -> list[dict[str, Any]]:
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    return session.run(kql, "2030-01-01T00:00:00Z").tables[-1].to_pylist()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def spec_test_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = ingested(SCENARIOS["spec-test-1-certutil-root"], "security", tmp_path_factory.mktemp("s"))
    yield ws
    ws.close()


def test_each_line_is_one_compact_evtx_document() -> None:
    text = render(SCENARIOS["spec-test-2-import-certificate"], "security", 5)
    docs = [json.loads(line) for line in text.splitlines()]
    assert all(
        line == json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        for line, d in zip(text.splitlines(), docs, strict=True)
    )
    channels = [d["Event"]["System"]["Channel"] for d in docs]
    # Security.evtx, then the PowerShell log: each log's records in record-id order
    assert channels == sorted(channels, key=lambda c: c != "Security")
    for channel in set(channels):
        ids = [
            d["Event"]["System"]["EventRecordID"]
            for d in docs
            if d["Event"]["System"]["Channel"] == channel
        ]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert {d["Event"]["System"]["EventID"] for d in docs} == {4688, 4657, 4104}


def test_processes_become_device_process_events_with_command_line_and_parent(
    spec_test_1: Workspace,
) -> None:
    got = rows(
        spec_test_1,
        "DeviceProcessEvents | sort by Timestamp asc | project FileName, ProcessCommandLine, "
        "InitiatingProcessFileName, InitiatingProcessFolderPath, AccountName, "
        "ProcessIntegrityLevel, ProcessTokenElevation",
    )
    host = make_host(SCENARIOS["spec-test-1-certutil-root"], 5)
    assert [(r["FileName"], r["InitiatingProcessFileName"]) for r in got] == [
        ("powershell.exe", "explorer.exe"),
        ("certutil.exe", "powershell.exe"),
    ]
    assert "New-SelfSignedCertificate" in got[0]["ProcessCommandLine"]
    assert got[1]["ProcessCommandLine"].endswith(
        r"-addstore Root " + host.expand(r"%TEMP%\atomic-root.cer")
    )
    assert got[1]["InitiatingProcessFolderPath"].endswith(r"\WindowsPowerShell\v1.0\powershell.exe")
    assert {r["AccountName"] for r in got} == {host.user.name}
    assert {(r["ProcessIntegrityLevel"], r["ProcessTokenElevation"]) for r in got} == {
        ("High", "TokenElevationTypeFull")
    }


def test_audited_value_sets_become_registry_value_set_rows(spec_test_1: Workspace) -> None:
    got = rows(
        spec_test_1,
        "DeviceRegistryEvents | sort by Timestamp asc | project ActionType, RegistryKey, "
        "RegistryValueName, RegistryValueType, InitiatingProcessFileName, InitiatingProcessId",
    )
    thumb = make_host(SCENARIOS["spec-test-1-certutil-root"], 5).thumbprint
    store = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates"
    # 4657 has no key creation: only the two Blob values, My by PowerShell, then Root by certutil
    assert [tuple(r.values())[:-1] for r in got] == [
        ("RegistryValueSet", rf"{store}\{name}\Certificates\{thumb}", "Blob", "Binary", writer)
        for name, writer in (("MY", "powershell.exe"), ("ROOT", "certutil.exe"))
    ]
    pids = rows(spec_test_1, "DeviceProcessEvents | project FileName, ProcessId")
    assert got[1]["InitiatingProcessId"] == next(
        r["ProcessId"] for r in pids if r["FileName"] == "certutil.exe"
    )


def test_script_blocks_are_linked_to_their_4688_process(spec_test_1: Workspace) -> None:
    got = rows(
        spec_test_1,
        'DeviceEvents | where ActionType == "PowerShellScriptBlock" '
        "| project InitiatingProcessFileName, "
        "Text = tostring(parse_json(AdditionalFields).ScriptBlockText)",
    )
    assert len(got) == 1 and got[0]["InitiatingProcessFileName"] == "powershell.exe"
    assert "Export-Certificate" in got[0]["Text"]


def test_user_hive_writes_and_connections_leave_no_security_record() -> None:
    per_user = render(SCENARIOS["evasion-per-user-root-store"], "security", 5)
    assert {json.loads(x)["Event"]["System"]["EventID"] for x in per_user.splitlines()} == {4688}
    wmi = render(SCENARIOS["art-t1553-004-7-wmi-cloned-root"], "security", 5)
    names = [json.loads(x)["Event"]["EventData"].get("ObjectName", "") for x in wmi.splitlines()]
    assert [n.split("\\")[2] for n in names if n] == ["MACHINE"]  # HKLM audited, HKCU not


def test_system_processes_act_as_the_computer_account() -> None:
    host = make_host(SCENARIOS["benign-authroot-auto-update"], 5)
    docs = [
        json.loads(x)
        for x in render(SCENARIOS["benign-authroot-auto-update"], "security", 5).splitlines()
    ]
    created = next(d["Event"]["EventData"] for d in docs if d["Event"]["System"]["EventID"] == 4688)
    # services.exe (SYSTEM) starts CryptSvc's svchost as NETWORK SERVICE: Subject and Target
    assert created["SubjectUserSid"] == "S-1-5-18"
    assert created["SubjectUserName"] == host.device.split(".")[0].upper() + "$"
    assert (created["TargetUserSid"], created["TargetUserName"]) == ("S-1-5-20", "NETWORK SERVICE")
    assert created["MandatoryLabel"] == "S-1-16-16384"


@pytest.mark.parametrize("source", ["sysmon", "security"])
def test_capi2_4097_lands_in_event_and_windows_event_with_its_thumbprint(
    source: str, tmp_path: Path
) -> None:
    ws = ingested(SCENARIOS["benign-authroot-auto-update"], source, tmp_path)
    try:
        event = rows(
            ws,
            'Event | where Source == "Microsoft-Windows-CAPI2" and EventID == 4097 '
            "| project EventLog, EventData",
        )
        bag = rows(
            ws,
            "WindowsEvent | where EventID == 4097 "
            '| project Channel, s = tostring(EventData.Data["#text"][0]), '
            't = tostring(EventData.Data["#text"][1])',
        )
    finally:
        ws.close()
    assert len(event) == 1 and event[0]["EventLog"] == "Application"
    assert f"<Data>{DIGICERT_G2}</Data>" in event[0]["EventData"]
    assert bag == [
        {
            "Channel": "Application",
            "s": "CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US",
            "t": DIGICERT_G2,
        }
    ]


def test_defender_has_no_capi2_event() -> None:
    text = render(SCENARIOS["benign-authroot-auto-update"], "defender", 5)
    assert "DigiCert Global Root G2" not in text and DIGICERT_G2 in text  # the key is there


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # opens are CreateKey for Sysmon only; Defender and 4657 see real changes only
        ("sysmon", {"RegistryKeyCreated": 6, "RegistryKeyDeleted": 2, "RegistryValueSet": 2}),
        ("defender", {"RegistryKeyCreated": 2, "RegistryKeyDeleted": 2, "RegistryValueSet": 2}),
        ("security", {"RegistryValueSet": 2}),
    ],
)
def test_opened_and_deleted_keys_per_source(
    source: str, expected: dict[str, int], tmp_path: Path
) -> None:
    ws = ingested(SCENARIOS["benign-windows-live-id-token-issuer"], source, tmp_path)
    try:
        got = rows(ws, "DeviceRegistryEvents | summarize n = count() by ActionType")
    finally:
        ws.close()
    assert {r["ActionType"]: r["n"] for r in got} == expected


# -- the shape of real records (../shared/data) ------------------------------------------------


def _real(path: Path, event_id: int) -> dict[str, Any]:
    import evtx

    for record in evtx.PyEvtxParser(str(path)).records_json():
        doc = json.loads(record["data"])
        found = doc["Event"]["System"]["EventID"]
        if (found.get("#text") if isinstance(found, dict) else found) == event_id:
            return doc  # type: ignore[no-any-return]
    raise AssertionError(f"no {event_id} in {path}")


def _shape(value: Any) -> Any:
    """Keys in order and value types, not values."""
    if isinstance(value, dict):
        return [(k, _shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _ours(scenario: str, event_id: int) -> dict[str, Any]:
    for line in render(SCENARIOS[scenario], "security", 5).splitlines():
        doc = json.loads(line)
        found = doc["Event"]["System"]["EventID"]
        if (found.get("#text") if isinstance(found, dict) else found) == event_id:
            return doc  # type: ignore[no-any-return]
    raise AssertionError(event_id)


@needs_shared
def test_4688_has_the_shape_evtx_gives_a_real_record() -> None:
    real = _real(DATA / "evtx_to_mitre_attack" / "ID4688-Certutil download.evtx", 4688)["Event"]
    ours = _ours("spec-test-1-certutil-root", 4688)["Event"]
    assert _shape(ours["System"]) == _shape(real["System"])
    assert ours["System"]["Provider"] == real["System"]["Provider"]
    # the real record is version 1; version 2 appends the Target, parent and label fields
    assert _shape(ours["EventData"])[: len(real["EventData"])] == _shape(real["EventData"])
    assert list(ours["EventData"])[len(real["EventData"]) :] == [
        "TargetUserSid",
        "TargetUserName",
        "TargetDomainName",
        "TargetLogonId",
        "ParentProcessName",
        "MandatoryLabel",
    ]


@needs_shared
def test_4097_has_the_shape_evtx_gives_a_real_record() -> None:
    real = _real(DATA / "hayabusa_sample_evtx" / "many-events-application.evtx", 4097)["Event"]
    ours = _ours("benign-authroot-auto-update", 4097)["Event"]
    assert _shape(ours) == _shape(real)
    for key in ("Provider", "EventID", "Version", "Level", "Task", "Opcode", "Keywords", "Channel"):
        assert ours["System"][key] == real["System"][key], key
