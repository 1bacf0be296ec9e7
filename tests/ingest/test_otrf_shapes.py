"""Telemetry shapes that would blind the rules: Sysmon registry events without ``EventType``,
and the OTRF Security-Datasets zip variants (NXLog without a source name, Log Analytics table
exports, small JSON members).

Real records come from ../shared/data (12 Sysmon 13 records in two OTRF zips have no
EventType: NXLog could not render their Message); the other variants are rendered here from the
documented shapes, each one real record's fields changed only where the variant differs.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.readers.events import FORMATS
from trustwatch.ingest.readers.nxlog import NO_PROVIDER, UNKNOWN_RECORD
from trustwatch.ingest.records import EventBatch, Rejected
from trustwatch.ingest.workspace import FileStats, Workspace
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import default_tuning_path, load_tuning

OTRF = SHARED / "data" / "otrf_security_datasets"
FORMAT = {f.name: f for f in FORMATS}
NS = "http://schemas.microsoft.com/win/2004/08/events/event"
THUMB = "D4DE20D05E66FC53FE1A50882C78DB2852CAE474"
ROOT_KEY = rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates\{THUMB}"
POWERSHELL = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
TRUST_STORE_RULE = "Certificate added to a Windows trust store"

# OTRF covenant_dcom_iertutil_dll_hijack.zip line 13319 (RecordNumber 669942): a Sysmon 13
# whose Message NXLog could not render (ERROR_EVT_UNRESOLVED), so it has no EventType (nor
# ProcessId): the shape of the EventType-less records. Only TargetObject, Details, Image,
# RecordNumber and the times are changed below.
UNRESOLVED_13: dict[str, Any] = {
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Domain": "NT AUTHORITY",
    "RecordNumber": 669942,
    "ProviderGuid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
    "SeverityValue": 2,
    "TargetObject": "HKU\\S-1-5-21-1966984447-233561266-573182232-500\\Software\\BGInfo.tmp"
    "\\DatabaseMRU",
    "ProcessGuid": "{42c2e005-e3f8-5f80-4708-000000000400}",
    "Hostname": "WORKSTATION5.theshire.local",
    "ExecutionProcessID": 3120,
    "RuleName": "-",
    "SourceName": "Microsoft-Windows-Sysmon",
    "SourceModuleName": "eventlog",
    "Task": 13,
    "EventTypeOrignal": "INFO",
    "EventTime": "2020-10-09 18:28:11",
    "UserID": "S-1-5-18",
    "@timestamp": "2020-10-09T22:30:34.420Z",
    "Severity": "INFO",
    "host": "wec.internal.cloudapp.net",
    "port": 58623,
    "Category": "Registry value set (rule: RegistryEvent)",
    "EventReceivedTime": "2020-10-09 18:30:34",
    "tags": ["mordorDataset"],
    "ThreadID": 820,
    "Version": 2,
    "OpcodeValue": 0,
    "Image": "C:\\ProgramData\\bginfo.exe",
    "ERROR_EVT_UNRESOLVED": True,
    "@version": "1",
    "Keywords": -9223372036854775808,
    "Opcode": "Info",
    "EventID": 13,
    "AccountName": "SYSTEM",
    "AccountType": "User",
    "UtcTime": "2020-10-09 22:28:11.509",
    "SourceModuleType": "im_msvistalog",
}


def unresolved(
    record: int, event_id: int, target: str, details: str | None = None
) -> dict[str, Any]:
    """The EventType-less NXLog shape of a Sysmon registry event."""
    out = {**UNRESOLVED_13, "RecordNumber": record, "EventID": event_id, "Task": event_id}
    out |= {"TargetObject": target, "Image": POWERSHELL}
    out["Category"] = (
        "Registry value set (rule: RegistryEvent)"
        if event_id == 13
        else "Registry object added or deleted (rule: RegistryEvent)"
    )
    if details is not None:
        out["Details"] = details
    return out


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def lines(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def ingest(*paths: Path) -> tuple[Workspace, list[FileStats]]:
    planned, skipped = pipeline.plan(list(paths))
    assert skipped == [] and [fmt for _, fmt, _ in planned] == ["otrf-zip"] * len(paths)
    ws = Workspace(None)
    stats = ws.ingest(planned)
    for s in stats:
        assert s.read == s.stored + s.quarantined + s.duplicates, s
    return ws, stats


def rows(ws: Workspace, kql: str) -> list[dict[str, Any]]:
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    return session.run(kql, "2030-01-01T00:00:00Z").tables[-1].to_pylist()


REGISTRY = (
    "DeviceRegistryEvents | sort by ReportId asc | project ReportId, ActionType, RegistryKey, "
    "RegistryValueName, RegistryValueData, RegistryValueType, InitiatingProcessFileName"
)


# --- Sysmon registry events without EventType ----------------------------------------------


@needs_shared
def test_real_eventtype_less_records_are_value_sets_with_the_key_split() -> None:
    """The 12 real EventType-less Sysmon 13 records of ../shared/data: key and value apart."""
    ws, stats = ingest(
        OTRF / "covenant_dcom_iertutil_dll_hijack.zip",
        OTRF / "empire_persistence_registry_modification_run_keys_standard_user.zip",
    )
    assert [(s.read, s.stored, s.quarantined) for s in stats] == [
        (37814, 37814, 0),
        (40569, 40569, 0),
    ]
    got = rows(
        ws,
        "DeviceRegistryEvents | where ReportId in (659137, 669942, 688227, 137872, 138080) "
        "| sort by ReportId asc | project ReportId, ActionType, RegistryKey, RegistryValueName, "
        "RegistryValueType, InitiatingProcessFileName",
    )
    user = r"HKEY_CURRENT_USER\S-1-5-21-1966984447-233561266-573182232-500\Software"
    cookies = user + r"\Microsoft\AuthCookies\Live\Default\DIDC"
    diag = (
        r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Diagnostics\DiagTrack"
        r"\SettingsRequests"
    )
    assert [(r["ReportId"], r["RegistryKey"], r["RegistryValueName"]) for r in got] == [
        (137872, diag + r"\utc.app", "ETagQueryParameters"),
        (138080, diag + r"\utc.tracing", "ETagQueryParameters"),
        (659137, cookies, "Data"),
        (669942, user + r"\BGInfo.tmp", "DatabaseMRU"),
        (688227, cookies, "Data"),
    ]
    assert {(r["ActionType"], r["RegistryValueType"]) for r in got} == {
        ("RegistryValueSet", "String")
    }
    # the raw events keep their fields as logged: no EventType was invented
    raw = rows(
        ws,
        "Event | where Source == 'Microsoft-Windows-Sysmon' and EventID in (12, 13, 14) "
        "and EventData !has 'EventType' | count",
    )
    assert raw == [{"Count": 12}]


def test_eventtype_less_root_blob_write_alerts(tmp_path: Path) -> None:
    """A certificate written into Root in the EventType-less shape alerts, as with EventType."""
    path = write_zip(
        tmp_path / "blob.zip",
        {
            "sysmon.json": lines(
                unresolved(700001, 12, ROOT_KEY),
                unresolved(700002, 13, ROOT_KEY + r"\Blob", "Binary Data"),
            )
        },
    )
    ws, [stats] = ingest(path)
    assert (stats.read, stats.stored, stats.quarantined, stats.duplicates) == (2, 2, 0, 0)
    assert stats.unmapped == 1  # the key's creation (event 12): create or delete, key or value
    got = rows(ws, REGISTRY)
    assert got == [
        {
            "ReportId": 700002,
            "ActionType": "RegistryValueSet",
            "RegistryKey": ROOT_KEY.replace("HKLM", "HKEY_LOCAL_MACHINE"),
            "RegistryValueName": "Blob",
            "RegistryValueData": "",
            "RegistryValueType": "Binary",
            "InitiatingProcessFileName": "powershell.exe",
        }
    ]
    tuning = load_tuning(default_tuning_path())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    result = Hunter(session, tuning).run(load_rules(["default"]))
    alerts = [a for a in result.alerts if a["AlertName"].startswith("Certificate ")]
    assert len(alerts) == 1, [a["AlertName"] for a in result.alerts]
    evidence = alerts[0]["Evidence"][0]
    assert (evidence["CertThumbprint"], evidence["CertStore"]) == (THUMB, "Root")
    assert evidence["ProcessPath"] == POWERSHELL


def test_eventtype_less_events_by_event_id(tmp_path: Path) -> None:
    """13: a value set (key, value name, Details); 14: a rename; 12: create or delete of a key
    or a value, which nothing in the record tells apart: no row, the raw event is kept."""
    rename = unresolved(3, 14, r"HKLM\SOFTWARE\Old")
    rename["NewName"] = r"HKLM\SOFTWARE\New"
    path = write_zip(
        tmp_path / "registry.zip",
        {
            "sysmon.json": lines(
                unresolved(1, 13, r"HKLM\SOFTWARE\Vendor\Run\Updater", "DWORD (0x0000000a)"),
                unresolved(2, 13, r"HKU\.DEFAULT\Software\V\(Default)", "(Empty)"),
                rename,
                unresolved(4, 12, r"HKLM\SOFTWARE\Vendor\Maybe"),
            )
        },
    )
    ws, [stats] = ingest(path)
    assert (stats.read, stats.stored, stats.unmapped) == (4, 4, 1)
    assert stats.tables == {"DeviceRegistryEvents": 3}
    got = [
        (r["ActionType"], r["RegistryKey"], r["RegistryValueName"], r["RegistryValueData"])
        for r in rows(ws, REGISTRY)
    ]
    assert got == [
        ("RegistryValueSet", r"HKEY_LOCAL_MACHINE\SOFTWARE\Vendor\Run", "Updater", "10"),
        ("RegistryValueSet", r"HKEY_USERS\.DEFAULT\Software\V", "", ""),
        ("RegistryKeyRenamed", r"HKEY_LOCAL_MACHINE\SOFTWARE\New", "", ""),
    ]
    kept = rows(ws, "Event | where EventID == 12 | project EventData")
    assert len(kept) == 1 and r"SOFTWARE\Vendor\Maybe" in kept[0]["EventData"]


def test_nxlog_level_name_in_eventtype_is_not_sysmons(tmp_path: Path) -> None:
    """NXLog's EventType (INFO) over Sysmon's: taken from the Message when it has it, else the
    event id decides, for records without NXLog's own markers too."""
    base = {k: v for k, v in UNRESOLVED_13.items() if k not in {"ERROR_EVT_UNRESOLVED"}}
    plain = {k: v for k, v in base.items() if k not in {"SourceModuleType", "SeverityValue"}}
    plain.pop("EventReceivedTime")
    message = "Registry object added or deleted:\r\nRuleName: -\r\nEventType: DeleteValue\r\n"
    records = [
        {
            **plain,
            "EventType": "INFO",
            "RecordNumber": 1,
            "EventID": 12,
            "Message": message,
            "TargetObject": r"HKLM\SOFTWARE\K\V",
        },
        {
            **plain,
            "EventType": "INFO",
            "RecordNumber": 2,
            "Details": "x",
            "TargetObject": r"HKLM\SOFTWARE\K\W",
        },
    ]
    ws, [stats] = ingest(write_zip(tmp_path / "info.zip", {"a.json": lines(*records)}))
    assert (stats.read, stats.stored) == (2, 2)
    got = [(r["ActionType"], r["RegistryKey"], r["RegistryValueName"]) for r in rows(ws, REGISTRY)]
    assert got == [
        ("RegistryValueDeleted", r"HKEY_LOCAL_MACHINE\SOFTWARE\K", "V"),
        ("RegistryValueSet", r"HKEY_LOCAL_MACHINE\SOFTWARE\K", "W"),
    ]


# --- OTRF zip variants ----------------------------------------------------------------------


def test_nxlog_without_a_source_name(tmp_path: Path) -> None:
    """The NXLog variant without SourceName: the provider from ProviderGuid, else from Channel."""
    no_name = unresolved(10, 13, ROOT_KEY + r"\Blob", "Binary Data")
    del no_name["SourceName"]
    no_guid = {k: v for k, v in unresolved(11, 12, ROOT_KEY).items() if k != "SourceName"}
    no_guid["EventType"] = "CreateKey"
    del no_guid["ProviderGuid"]
    nothing = {k: v for k, v in no_guid.items() if k != "Channel"}
    nothing["RecordNumber"] = 12
    path = write_zip(tmp_path / "nosource.zip", {"sysmon.json": lines(no_name, no_guid, nothing)})
    ws, [stats] = ingest(path)
    assert (stats.read, stats.stored, stats.quarantined) == (3, 2, 1)
    assert stats.tables == {"DeviceRegistryEvents": 2}
    got = [(r["ReportId"], r["ActionType"], r["RegistryValueName"]) for r in rows(ws, REGISTRY)]
    assert got == [(10, "RegistryValueSet", "Blob"), (11, "RegistryKeyCreated", "")]
    batches = list(FORMAT["otrf-zip"].read(path))
    [rejected] = [b for b in batches if isinstance(b, Rejected)]
    assert rejected.ref == 3 and rejected.reason == f"sysmon.json: line 3: {NO_PROVIDER}"


def event_row(record: int, event_id: int, data: dict[str, str]) -> dict[str, Any]:
    """A Log Analytics ``Event`` row (legacy agent) as the query API returns it."""
    items = "".join(f'<Data Name="{k}">{v}</Data>' for k, v in data.items())
    return {
        "TenantId": "00000000-0000-0000-0000-000000000000",
        "SourceSystem": "OpsManager",
        "TimeGenerated": "2021-12-12T04:31:14.266Z",
        "Source": "Microsoft-Windows-Sysmon",
        "EventLog": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WORKSTATION6.mssentinel.local",
        "EventLevel": 4,
        "EventLevelName": "Information",
        "ParameterXml": "",
        "EventData": f'<DataItem type="System.XmlData" time="2021-12-12T04:31:14.2660000Z" '
        f'sourceHealthServiceId="00000000-0000-0000-0000-000000000000"><EventData xmlns="{NS}">'
        f"{items}</EventData></DataItem>",
        "EventID": event_id,
        "RenderedDescription": "",
        "EventCategory": event_id,
        "UserName": "NT AUTHORITY\\SYSTEM",
        "MG": "00000000-0000-0000-0000-000000000001",
        "Type": "Event",
        "_ResourceId": "",
    } | ({"EventRecordId": str(record)} if record else {})


SYSMON_1 = {
    "RuleName": "-",
    "UtcTime": "2021-12-12 04:31:14.259",
    "ProcessGuid": "{03bfca49-8dd2-632c-550d-000000000b00}",
    "ProcessId": "12372",
    "Image": POWERSHELL,
    "CommandLine": "powershell.exe -nop -c Import-Certificate -FilePath c.cer",
    "User": "MSSENTINEL\\wardog",
    "ParentProcessGuid": "{03bfca49-8c7c-632c-430d-000000000b00}",
    "ParentProcessId": "11720",
    "ParentImage": r"C:\Program Files\Java\jre\bin\java.exe",
}
SYSMON_13 = {
    "RuleName": "-",
    "EventType": "SetValue",
    "UtcTime": "2021-12-12 04:31:15.001",
    "ProcessGuid": "{03bfca49-8dd2-632c-550d-000000000b00}",
    "ProcessId": "12372",
    "Image": POWERSHELL,
    "TargetObject": ROOT_KEY + r"\Blob",
    "Details": "Binary Data",
    "User": "MSSENTINEL\\wardog",
}


def winlogbeat6(record: int, event_id: int, data: dict[str, str]) -> dict[str, Any]:
    """Winlogbeat 5/6 (before ECS), as early Mordor / OTRF datasets hold it: the fields of a
    real 2018 Sysmon 1 record of that shape, with this event's id and data."""
    return {
        "@timestamp": "2018-10-09T04:26:40.523Z",
        "beat": {"hostname": "COM600-PC", "name": "COM600-PC", "version": "5.4.0"},
        "computer_name": "COM600-PC",
        "event_data": data,
        "event_id": event_id,
        "level": "Information",
        "log_name": "Microsoft-Windows-Sysmon/Operational",
        "message": "",
        "opcode": "Info",
        "process_id": 940,
        "provider_guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
        "record_number": str(record),
        "source_name": "Microsoft-Windows-Sysmon",
        "task": "Registry value set (rule: RegistryEvent)",
        "thread_id": 2500,
        "type": "wineventlog",
        "user": {"domain": "NT AUTHORITY", "identifier": "S-1-5-18", "name": "SYSTEM"},
        "version": 2,
    }


def la_api(table: str, *records: dict[str, Any]) -> str:
    columns = list(records[0])
    body = {
        "tables": [
            {
                "name": table,
                "columns": [{"name": c, "type": "string"} for c in columns],
                "rows": [[r.get(c) for c in columns] for r in records],
            }
        ]
    }
    return json.dumps(body, indent=2)


def security_row(record: int) -> dict[str, Any]:
    """A Log Analytics ``SecurityEvent`` row (OTRF's Log4Shell Security-auditing set)."""
    return {
        "TimeGenerated": "2021-12-12T04:31:14.3Z",
        "Account": "MSSENTINEL\\wardog",
        "Computer": "WORKSTATION6.mssentinel.local",
        "EventSourceName": "Microsoft-Windows-Security-Auditing",
        "Channel": "Security",
        "Task": 13312,
        "Level": "8",
        "EventID": 4688,
        "Activity": "4688 - A new process has been created.",
        "NewProcessName": POWERSHELL,
        "CommandLine": "powershell.exe -nop",
        "NewProcessId": "0x3054",
        "ProcessId": "0x2dc8",
        "SubjectUserName": "wardog",
        "SubjectDomainName": "MSSENTINEL",
        "EventRecordId": str(record),
        "Type": "SecurityEvent",
    }


def windows_2022(record: int, event_id: int, data: dict[str, str]) -> dict[str, Any]:
    """OTRF's 2022 Sentinel-lab export: System values, EventData XML and the fields, flat."""
    items = "".join(f'<Data Name="{k}">{v}</Data>' for k, v in data.items())
    return {
        "EventSourceName": "Microsoft-Windows-Sysmon",
        "Provider": "Microsoft-Windows-Sysmon",
        "ProviderGuid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
        "Level": "4",
        "Keywords": "0x8000000000000000",
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WORKSTATION6.mssentinel.local",
        "TimeCreated": "2022-09-22T12:31:14.074Z",
        "TimeGenerated": "2022-09-22T04:31:14.074Z",
        "EventRecordID": str(record),
        "EventID": event_id,
        "Message": "",
        "EventData": f'<EventData xmlns="{NS}">{items}</EventData>',
        "Task": str(event_id),
        **data,
    }


@pytest.mark.parametrize(
    ("members", "stored", "tables"),
    [
        pytest.param(
            {
                "sysmon_log4shell.json": lines(
                    event_row(0, 1, SYSMON_1), event_row(0, 13, SYSMON_13)
                )
            },
            2,
            {"DeviceProcessEvents": 1, "DeviceRegistryEvents": 1},
            id="log-analytics-Event-rows",
        ),
        pytest.param(
            {
                "export.json": la_api(
                    "Event", event_row(0, 1, SYSMON_1), event_row(0, 13, SYSMON_13)
                )
            },
            2,
            {"DeviceProcessEvents": 1, "DeviceRegistryEvents": 1},
            id="log-analytics-query-api-response",
        ),
        pytest.param(
            {"securityauditing.json": json.dumps([security_row(1), security_row(2)])},
            2,
            {"DeviceProcessEvents": 2},
            id="log-analytics-SecurityEvent-array",
        ),
        pytest.param(
            {
                "WORKSTATION6_Sysmon.json": json.dumps(
                    [windows_2022(3327974, 1, SYSMON_1), windows_2022(3327975, 13, SYSMON_13)]
                )
            },
            2,
            {"DeviceProcessEvents": 1, "DeviceRegistryEvents": 1},
            id="otrf-2022-sentinel-lab-array",
        ),
        pytest.param(
            {
                "dataset/": "",
                "dataset/sysmon.json": json.dumps(
                    unresolved(5, 13, ROOT_KEY + r"\Blob", "Binary Data"), indent=2
                ),
                "__MACOSX/dataset/._sysmon.json": "\x00\x05\x16\x07",
            },
            1,
            {"DeviceRegistryEvents": 1},
            id="folder-first-pretty-printed-object",
        ),
        pytest.param(
            {
                "mordor.json": lines(
                    winlogbeat6(109671, 1, SYSMON_1), winlogbeat6(109672, 13, SYSMON_13)
                )
            },
            2,
            {"DeviceProcessEvents": 1, "DeviceRegistryEvents": 1},
            id="winlogbeat-6-mordor",
        ),
        pytest.param(
            {
                "README.md": "# notes\n",
                "sysmon_events": "\ufeff" + lines(event_row(0, 1, SYSMON_1)),
            },
            2,
            {"DeviceProcessEvents": 1},
            id="member-without-json-name",
        ),
    ],
)
def test_otrf_zip_variants_are_read(
    tmp_path: Path, members: dict[str, str], stored: int, tables: dict[str, int]
) -> None:
    ws, [stats] = ingest(write_zip(tmp_path / "variant.zip", members))
    notes = int("README.md" in members)  # a member that is not JSON: one quarantined record
    assert (stats.read, stats.stored, stats.quarantined, stats.duplicates) == (
        stored,
        stored - notes,
        notes,
        0,
    )
    assert stats.tables == tables
    if "DeviceRegistryEvents" in tables:
        [row] = rows(ws, REGISTRY)
        assert (row["RegistryValueName"], row["InitiatingProcessFileName"]) == (
            "Blob",
            "powershell.exe",
        )


def test_unknown_variant_says_what_was_expected(tmp_path: Path) -> None:
    """A record no reader knows is quarantined with the fields that were expected, never its
    own text as the reason; the other records are read."""
    odd = {"when": "2021-12-12", "what": "\x1b[31mred\x1b[0m", "host": "x"}
    path = write_zip(
        tmp_path / "odd.zip",
        {"a.json": lines(odd, unresolved(1, 13, r"HKLM\SOFTWARE\K\V", "x"))},
    )
    ws, [stats] = ingest(path)
    assert (stats.read, stats.stored, stats.quarantined) == (2, 1, 1)
    items = list(FORMAT["otrf-zip"].read(path))
    [rejected] = [i for i in items if isinstance(i, Rejected)]
    assert rejected.reason == f"a.json: line 1: {UNKNOWN_RECORD}"
    assert "\x1b" not in rejected.reason
    assert sum(len(i.docs) for i in items if isinstance(i, EventBatch)) == 1


def test_nxlog_file_without_a_source_name(tmp_path: Path) -> None:
    """The same variant outside a zip, without NXLog's own markers: still recognised as NXLog
    (EventID, Hostname and Channel beside a ProviderGuid) and read."""
    native = {"SourceModuleType", "EventReceivedTime", "SeverityValue", "SourceName"}
    record = {
        k: v
        for k, v in unresolved(20, 13, ROOT_KEY + r"\Blob", "Binary Data").items()
        if k not in native
    }
    path = tmp_path / "sysmon.json"
    path.write_text(lines(record))
    planned, _ = pipeline.plan([path])
    assert [fmt for _, fmt, _ in planned] == ["nxlog"]
    ws = Workspace(None)
    [stats] = ws.ingest(planned)
    assert (stats.read, stats.stored, stats.tables) == (1, 1, {"DeviceRegistryEvents": 1})
    [row] = rows(ws, REGISTRY)
    assert (row["RegistryValueName"], row["RegistryValueType"]) == ("Blob", "Binary")


def test_sentinel_row_of_unknown_columns_says_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    good = event_row(7, 13, SYSMON_13)
    path.write_text(lines(good, {"EventID": 1, "Computer": "x"}))
    items = list(FORMAT["sentinel-rows"].read(path))
    [rejected] = [i for i in items if isinstance(i, Rejected)]
    assert rejected.ref == 2
    assert "expected a Type column, or EventData with Source / EventLog" in rejected.reason


def test_winlogbeat6_file_is_read_as_ecs(tmp_path: Path) -> None:
    path = tmp_path / "mordor.json"
    path.write_text(lines(winlogbeat6(109672, 13, SYSMON_13)))
    planned, _ = pipeline.plan([path])
    assert [fmt for _, fmt, _ in planned] == ["ecs"]
    ws = Workspace(None)
    [stats] = ws.ingest(planned)
    assert (stats.read, stats.stored, stats.tables) == (1, 1, {"DeviceRegistryEvents": 1})
    [row] = rows(ws, "DeviceRegistryEvents | project ReportId, DeviceName, RegistryValueName")
    assert row == {"ReportId": 109672, "DeviceName": "com600-pc", "RegistryValueName": "Blob"}
