"""The workspace: EVTX in, Defender tables out; idempotence, atomicity, quarantine, views."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.readers.evtx import read_evtx
from trustwatch.ingest.records import EventBatch, Item, Rejected
from trustwatch.ingest.workspace import Workspace

DATA = SHARED / "data"
PANACHE = DATA / "evtx_attack_samples" / "panache_sysmon_vs_EDRTestingScript.evtx"
CERTUTIL_4688 = DATA / "evtx_to_mitre_attack" / "ID4688-Certutil download.evtx"
APPLICATION = DATA / "hayabusa_sample_evtx" / "many-events-application.evtx"


def ingest(ws: Workspace, *paths: Path) -> list[Any]:
    return ws.ingest([(p, "evtx", read_evtx) for p in paths])


def rows(ws: Workspace, kql: str, now: str = "2030-01-01T00:00:00Z") -> list[dict[str, Any]]:
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    table = session.run(kql, now).tables[-1]
    return table.to_pylist()


def doc(
    record: int,
    event_id: int,
    data: dict[str, Any],
    *,
    computer: str = "WS1.corp.local",
    provider: str = "Microsoft-Windows-Sysmon",
    channel: str = "Microsoft-Windows-Sysmon/Operational",
    time: str = "2024-05-01T10:00:00.000000Z",
    user: str = "S-1-5-18",
) -> str:
    system = {
        "Provider": {"#attributes": {"Name": provider}},
        "EventID": event_id,
        "TimeCreated": {"#attributes": {"SystemTime": time}},
        "EventRecordID": record,
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
        "Channel": channel,
        "Computer": computer,
        "Security": {"#attributes": {"UserID": user}},
    }
    return json.dumps({"Event": {"System": system, "EventData": data}})


def reader(*items: Item) -> Any:
    def read(_: Path) -> Iterator[Item]:
        yield from items

    return read


def batch(*docs: str) -> EventBatch:
    return EventBatch("record", list(range(1, len(docs) + 1)), list(docs))


SYSMON_1 = {
    "UtcTime": "2024-05-01 09:59:59.500",
    "ProcessGuid": "{11111111-2222-3333-4444-555555555555}",
    "ProcessId": 4242,
    "Image": r"C:\Windows\System32\certutil.exe",
    "OriginalFileName": "CertUtil.exe",
    "CommandLine": r"certutil -addstore -f root C:\Users\bob\AppData\Local\Temp\cert.cer",
    "User": r"CORP\bob",
    "LogonId": "0x3e7",
    "IntegrityLevel": "High",
    "Hashes": "SHA1=AAAA,MD5=BBBB,SHA256=CCCC,IMPHASH=DDDD",
    "ParentProcessGuid": "{99999999-2222-3333-4444-555555555555}",
    "ParentProcessId": 100,
    "ParentImage": r"C:\Windows\System32\cmd.exe",
    "ParentCommandLine": "cmd.exe /c install.bat",
}
THUMB = "AD7E1C28B064EF8F6003402014C3D0E3370EB58A"


def registry_event(record: int, event_type: str, target: str, details: str = "") -> str:
    data = {
        "EventType": event_type,
        "UtcTime": "2024-05-01 10:00:00.250",
        "ProcessGuid": "11111111-2222-3333-4444-555555555555",
        "ProcessId": 4242,
        "Image": r"C:\Windows\System32\certutil.exe",
        "TargetObject": target,
        "User": r"CORP\bob",
    }
    if details:
        data["Details"] = details
    return doc(record, 13 if event_type == "SetValue" else 12, data)


def test_registry_rules_split_hives_and_fill_the_initiating_process(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws.duckdb")
    cert_key = rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates\{THUMB}"
    docs = [
        doc(1, 1, SYSMON_1),
        registry_event(2, "SetValue", cert_key + r"\Blob", "Binary Data"),
        registry_event(3, "CreateKey", cert_key),
        registry_event(
            4,
            "SetValue",
            r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\SystemCertificates\Root"
            rf"\Certificates\{THUMB}\Blob",
            "Binary Data",
        ),
        registry_event(
            5, "SetValue", r"\REGISTRY\MACHINE\SOFTWARE\X\Y\Count", "DWORD (0x0000000a)"
        ),
        registry_event(
            6,
            "SetValue",
            r"HKLM\System\CurrentControlSet\Services\bam\State\UserSettings\S-1"
            r"\\Device\HarddiskVolume3\Windows\System32\conhost.exe",
            "QWORD (0x00000001-0x00000002)",
        ),
        registry_event(7, "SetValue", r"HKU\.DEFAULT\Software\V\(Default)", "(Empty)"),
    ]
    ws.ingest([(tmp_path / "x.jsonl", "test", reader(batch(*docs)))])
    got = rows(
        ws,
        "DeviceRegistryEvents | sort by ReportId asc | project ReportId, ActionType, "
        "RegistryKey, RegistryValueName, RegistryValueData, RegistryValueType, "
        "InitiatingProcessFileName, InitiatingProcessCommandLine, "
        "InitiatingProcessIntegrityLevel, InitiatingProcessSHA256, "
        "InitiatingProcessParentFileName, InitiatingProcessAccountName, DeviceName",
    )
    machine_key = (
        rf"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates\{THUMB}"
    )
    assert [
        (
            r["ActionType"],
            r["RegistryKey"],
            r["RegistryValueName"],
            r["RegistryValueData"],
            r["RegistryValueType"],
        )
        for r in got
    ] == [
        ("RegistryValueSet", machine_key, "Blob", "", "Binary"),
        ("RegistryKeyCreated", machine_key, "", "", ""),
        (
            "RegistryValueSet",
            r"HKEY_CURRENT_USER\S-1-5-21-1-2-3-1001\Software\Microsoft"
            rf"\SystemCertificates\Root\Certificates\{THUMB}",
            "Blob",
            "",
            "Binary",
        ),
        ("RegistryValueSet", r"HKEY_LOCAL_MACHINE\SOFTWARE\X\Y", "Count", "10", "Dword"),
        (
            "RegistryValueSet",
            r"HKEY_LOCAL_MACHINE\System\CurrentControlSet\Services\bam\State"
            r"\UserSettings\S-1",
            r"\Device\HarddiskVolume3\Windows\System32\conhost.exe",
            str(2**32 + 2),
            "QWord",
        ),
        ("RegistryValueSet", r"HKEY_USERS\.DEFAULT\Software\V", "", "", "String"),
    ]
    first = got[0]
    assert first["InitiatingProcessFileName"] == "certutil.exe"
    assert first["InitiatingProcessCommandLine"] == SYSMON_1["CommandLine"]
    assert first["InitiatingProcessIntegrityLevel"] == "High"
    assert first["InitiatingProcessSHA256"] == "cccc"
    assert first["InitiatingProcessParentFileName"] == "cmd.exe"
    assert first["InitiatingProcessAccountName"] == "bob"
    assert first["DeviceName"] == "ws1.corp.local"
    proc = rows(
        ws,
        "DeviceProcessEvents | project FileName, FolderPath, AccountDomain, "
        "AccountName, LogonId, SHA1, MD5, InitiatingProcessFileName, "
        "InitiatingProcessCommandLine, ProcessVersionInfoOriginalFileName, Timestamp",
    )
    assert len(proc) == 1
    assert proc[0]["FileName"] == "certutil.exe"
    assert proc[0]["AccountDomain"] == "CORP" and proc[0]["AccountName"] == "bob"
    assert proc[0]["LogonId"] == 999
    assert (proc[0]["SHA1"], proc[0]["MD5"]) == ("aaaa", "bbbb")
    assert proc[0]["InitiatingProcessCommandLine"] == "cmd.exe /c install.bat"
    assert proc[0]["ProcessVersionInfoOriginalFileName"] == "CertUtil.exe"
    assert proc[0]["Timestamp"].isoformat() == "2024-05-01T09:59:59.500000+00:00"


def test_spec_query_gives_the_thumbprint_not_blob(tmp_path: Path) -> None:
    """The specification's query over Sysmon-derived rows: the thumbprint, not "Blob".

    One change to the text: the projection of AccountName, a column DeviceRegistryEvents
    does not have (Defender and Sentinel reject the verbatim query for it too).
    """
    from tests.kql.test_spec_query import SPEC_QUERY

    ws = Workspace(None)
    cert_key = rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates\{THUMB}"
    ws.ingest(
        [
            (
                tmp_path / "x",
                "test",
                reader(
                    batch(
                        doc(1, 1, SYSMON_1),
                        registry_event(2, "SetValue", cert_key + r"\Blob", "Binary Data"),
                    )
                ),
            )
        ]
    )
    query = SPEC_QUERY.replace("\nAccountName,", "")
    assert query.count("\n") == SPEC_QUERY.count("\n") - 1
    got = rows(ws, query, now="2024-05-01T12:00:00Z")
    assert [(r["CertStoreType"], r["CertThumbprint"]) for r in got] == [("Trusted Root CA", THUMB)]


def test_reingest_adds_nothing_and_counts_duplicates(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws.duckdb")
    docs = [
        doc(1, 1, SYSMON_1),
        doc(1, 1, SYSMON_1),
        doc(2, 4097, {"x": "y"}, provider="Microsoft-Windows-CAPI2", channel="Application"),
    ]
    first = ws.ingest([(tmp_path / "a", "test", reader(batch(*docs)))])[0]
    assert (first.read, first.stored, first.duplicates, first.unmapped) == (3, 2, 1, 1)
    second = ws.ingest([(tmp_path / "a", "test", reader(batch(*docs)))])[0]
    assert (second.read, second.stored, second.duplicates) == (3, 0, 3)
    assert rows(ws, "DeviceProcessEvents | count")[0]["Count"] == 1
    assert rows(ws, "WindowsEvent | count")[0]["Count"] == 2


def test_interrupted_ingest_leaves_the_workspace_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "ws.duckdb"
    ws = Workspace(path)
    ws.ingest([(tmp_path / "a", "test", reader(batch(doc(1, 1, SYSMON_1))))])

    def broken(_: Path) -> Iterator[Item]:
        yield batch(doc(2, 1, {**SYSMON_1, "ProcessGuid": "{AAAAAAAA-2222-3333-4444-5555}"}))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ws.ingest([(tmp_path / "b", "test", broken)])
    ws.close()
    again = Workspace(path)
    assert rows(again, "DeviceProcessEvents | count")[0]["Count"] == 1
    assert rows(again, "WindowsEvent | count")[0]["Count"] == 1


def test_unreadable_records_are_quarantined_with_their_location(tmp_path: Path) -> None:
    ws = Workspace(None)
    items: list[Item] = [
        EventBatch(
            "line",
            [1, 2, 3, 4],
            [
                doc(1, 1, SYSMON_1),
                "{not json",
                '{"a": 1}',
                json.dumps({"Event": {"System": {"Computer": "x"}}}),
            ],
        ),
        Rejected("line", 9, "bad UTF-8", "\\xff"),
    ]
    stats = ws.ingest([(tmp_path / "f.jsonl", "test", reader(*items))])[0]
    assert (stats.read, stats.stored, stats.quarantined, stats.duplicates) == (5, 1, 4, 0)
    got = ws.con.execute("SELECT ref_kind, ref, reason FROM _quarantine ORDER BY ref").fetchall()
    assert [(k, r) for k, r, _ in got] == [("line", 2), ("line", 3), ("line", 4), ("line", 9)]
    assert [reason for _, _, reason in got[:3]] == [
        "not JSON",
        "not a Windows event (no Event.System)",
        "event has no System/TimeCreated",
    ]


def test_script_blocks_are_reassembled_across_ingests(tmp_path: Path) -> None:
    ws = Workspace(None)

    def part(record: int, n: int, text: str) -> str:
        return doc(
            record,
            4104,
            {
                "MessageNumber": n,
                "MessageTotal": 3,
                "ScriptBlockText": text,
                "ScriptBlockId": "abcd-ef",
                "Path": "",
            },
            provider="Microsoft-Windows-PowerShell",
            channel="Microsoft-Windows-PowerShell/Operational",
            user="S-1-5-21-1-2-3-1001",
        )

    ws.ingest([(tmp_path / "a", "t", reader(batch(part(12, 3, "Root"), part(10, 1, "Import-"))))])
    first = rows(ws, "DeviceEvents | project AdditionalFields")
    assert json.loads(first[0]["AdditionalFields"])["Complete"] is False
    ws.ingest(
        [
            (
                tmp_path / "b",
                "t",
                reader(
                    EventBatch(
                        "record",
                        [11],
                        [part(11, 2, "Certificate -CertStoreLocation Cert:\\LocalMachine\\")],
                    )
                ),
            )
        ]
    )
    got = rows(ws, "DeviceEvents | project ActionType, AccountSid, AdditionalFields")
    assert len(got) == 1
    assert got[0]["ActionType"] == "PowerShellScriptBlock"
    assert got[0]["AccountSid"] == "S-1-5-21-1-2-3-1001"
    fields = json.loads(got[0]["AdditionalFields"])
    assert (
        fields["ScriptBlockText"]
        == "Import-Certificate -CertStoreLocation Cert:\\LocalMachine\\Root"
    )
    assert (fields["MessagesSeen"], fields["MessageTotal"], fields["Complete"]) == (3, 3, True)


@needs_shared
def test_panache_certutil_download_and_its_connection() -> None:
    ws = Workspace(None)
    ingest(ws, PANACHE)
    procs = rows(
        ws,
        'DeviceProcessEvents | where FileName == "certutil.exe" and '
        'ProcessCommandLine has "urlcache" | project ProcessCommandLine, '
        "InitiatingProcessFileName, AccountName",
    )
    assert len(procs) == 1
    assert procs[0]["ProcessCommandLine"].startswith(
        "certutil.exe  -urlcache -split -f https://raw.githubusercontent.com/op7ic/"
    )
    assert procs[0]["InitiatingProcessFileName"] == "cmd.exe"
    net = rows(
        ws,
        'DeviceNetworkEvents | where InitiatingProcessFileName == "certutil.exe" '
        "| sort by LocalPort asc | project RemoteIP, RemotePort, Protocol, ActionType, "
        "RemoteIPType, InitiatingProcessCommandLine, InitiatingProcessParentFileName",
    )
    assert [
        (r["RemoteIP"], r["RemotePort"], r["Protocol"], r["ActionType"], r["RemoteIPType"])
        for r in net
    ] == [("151.101.0.133", 443, "Tcp", "ConnectionSuccess", "Public")] * 2
    assert all("-urlcache" in r["InitiatingProcessCommandLine"] for r in net)
    assert {r["InitiatingProcessParentFileName"] for r in net} == {"cmd.exe"}


@needs_shared
def test_security_4688_certutil_download_and_security_event_view() -> None:
    ws = Workspace(None)
    ingest(ws, CERTUTIL_4688)
    got = rows(
        ws,
        "DeviceProcessEvents | project FileName, FolderPath, ProcessCommandLine, "
        "AccountDomain, AccountName, ProcessTokenElevation, ProcessId",
    )
    assert got == [
        {
            "FileName": "certutil.exe",
            "FolderPath": r"C:\Windows\System32\certutil.exe",
            "ProcessCommandLine": got[0]["ProcessCommandLine"],
            "AccountDomain": "OFFSEC",
            "AccountName": "admmig",
            "ProcessTokenElevation": "TokenElevationTypeFull",
            "ProcessId": 3804,
        }
    ]
    assert got[0]["ProcessCommandLine"].startswith(
        "certutil  -urlcache -split -f https://github.com"
    )
    sec = rows(
        ws,
        "SecurityEvent | where EventID == 4688 | project Account, NewProcessName, "
        "CommandLine, Process",
    )
    assert sec[0]["Account"] == r"OFFSEC\admmig"
    assert sec[0]["Process"] == "certutil.exe"
    assert sec[0]["CommandLine"] == got[0]["ProcessCommandLine"]


@needs_shared
def test_capi2_root_auto_updates_are_in_event() -> None:
    ws = Workspace(None)
    stats = ingest(ws, APPLICATION)[0]
    assert stats.read == stats.stored == stats.unmapped == 2216
    got = rows(
        ws,
        'Event | where Source == "Microsoft-Windows-CAPI2" and EventID == 4097 '
        "| sort by TimeGenerated asc | project EventLog, EventData",
    )
    assert len(got) == 26
    assert got[0]["EventLog"] == "Application"
    assert "<Data>D4DE20D05E66FC53FE1A50882C78DB2852CAE474</Data>" in got[0]["EventData"]
    bag = rows(
        ws,
        "WindowsEvent | where EventID == 4097 | top 1 by TimeGenerated asc "
        '| project d = tostring(EventData.Data["#text"][1])',
    )
    assert bag[0]["d"] == "D4DE20D05E66FC53FE1A50882C78DB2852CAE474"


def _damaged(tmp_path: Path, name: str, edit: Any) -> Path:
    data = bytearray(
        (DATA / "evtx_attack_samples" / "PanacheSysmon_vs_AtomicRedTeam01.evtx").read_bytes()
    )
    edit(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


@needs_shared
@pytest.mark.parametrize(
    ("name", "edit", "kept", "reason"),
    [
        # the 17 whole records of the partial last chunk are kept too (319 full-chunk ones)
        ("truncated", lambda d: d.__delitem__(slice(len(d) // 2, None)), 336, "cut short"),
        (
            "bitflip",
            lambda d: d.__setitem__(
                slice(4096 + 65536 + 600, 4096 + 65536 + 700),
                bytes(b ^ 0xFF for b in d[4096 + 65536 + 600 : 4096 + 65536 + 700]),
            ),
            522,
            "Failed to parse chunk",
        ),
        (
            "zerochunk",
            lambda d: d.__setitem__(slice(4096 + 2 * 65536, 4096 + 3 * 65536), bytes(65536)),
            528,
            "zero-filled",
        ),
        ("zeroheader", lambda d: d.__setitem__(slice(0, 4096), bytes(4096)), 565, "rebuilt header"),
    ],
)
def test_damaged_evtx_keeps_the_good_records(
    tmp_path: Path, name: str, edit: Any, kept: int, reason: str
) -> None:
    ws = Workspace(None)
    stats = ingest(ws, _damaged(tmp_path, name, edit))[0]
    assert stats.stored == kept
    assert stats.read == stats.stored + stats.quarantined + stats.duplicates
    reasons = [r[0] for r in ws.con.execute("SELECT reason FROM _quarantine").fetchall()]
    assert any(reason in r for r in reasons), reasons


@needs_shared
def test_parquet_export_is_partitioned_by_table_and_day(tmp_path: Path) -> None:
    ws = Workspace(None)
    ingest(ws, PANACHE)
    written = ws.export_parquet(tmp_path / "pq")
    assert written["DeviceProcessEvents"] == 96
    days = sorted(p.name for p in (tmp_path / "pq" / "DeviceProcessEvents").iterdir())
    assert days == ["day=2019-07-29"]


def test_prefetch_keeps_order_and_hands_reader_errors_to_the_consumer() -> None:
    from trustwatch.ingest.workspace import prefetch

    def items() -> Iterator[Item]:
        for i in range(5):
            yield Rejected("line", i, "x")
        raise ValueError("disk gone")

    got: list[int] = []
    with pytest.raises(ValueError, match="disk gone"):
        for item in prefetch(items()):
            assert isinstance(item, Rejected)
            got.append(item.ref)
    assert got == [0, 1, 2, 3, 4]
    endless = prefetch(Rejected("line", i, "x") for i in range(10**9))
    assert next(endless).ref == 0
    endless.close()  # the consumer stopping early stops the reader thread


def test_a_process_read_after_its_events_still_fills_them(tmp_path: Path) -> None:
    """The registry event's file comes first; its process-creation event is in a later file."""
    ws = Workspace(None)
    key = rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates\{THUMB}\Blob"
    ws.ingest(
        [
            (tmp_path / "registry", "t", reader(batch(registry_event(2, "SetValue", key, "x")))),
            (tmp_path / "process", "t", reader(batch(doc(1, 1, SYSMON_1)))),
        ]
    )
    got = rows(
        ws,
        "DeviceRegistryEvents | project InitiatingProcessCommandLine, "
        "InitiatingProcessParentFileName, InitiatingProcessSHA1, InitiatingProcessCreationTime",
    )
    assert got == [
        {
            "InitiatingProcessCommandLine": SYSMON_1["CommandLine"],
            "InitiatingProcessParentFileName": "cmd.exe",
            "InitiatingProcessSHA1": "aaaa",
            "InitiatingProcessCreationTime": got[0]["InitiatingProcessCreationTime"],
        }
    ]
    assert got[0]["InitiatingProcessCreationTime"].isoformat() == "2024-05-01T09:59:59.500000+00:00"


def test_exported_rows_are_stored_once_across_files_and_times(tmp_path: Path) -> None:
    from trustwatch.ingest import workspace
    from trustwatch.ingest.readers import by_name
    from trustwatch.schema.model import builtin_schemas

    def props(n: int, time: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "DeviceName": f"ws{n}",
            "ActionType": "RegistryValueSet",
            "RegistryKey": f"HKEY_LOCAL_MACHINE\\SOFTWARE\\K{n}",
            "ReportId": n,
        }
        if time is not None:
            row["Timestamp"] = time
        return row

    rows = [props(1, "2024-05-01T10:00:01Z"), props(2, "2024-05-03T10:00:00Z")]
    rows += [props(3, None), props(4, "1601-01-01T00:00:00Z"), props(1, "2024-05-01T10:00:01Z")]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(rows))
    second.write_text(json.dumps(list(reversed(rows))))  # the same rows, another file
    ws = Workspace(None)
    read = by_name("defender-csv").read
    stats = ws.ingest([(p, "defender-csv", read) for p in (first, second)])
    assert [(s.read, s.stored, s.duplicates) for s in stats] == [(5, 4, 1), (5, 0, 5)]
    assert ws.con.execute('SELECT count(*) FROM "DeviceRegistryEvents"').fetchall() == [(4,)]
    # the stored rows compared are those of the batch's time range, as literals (pruned by the
    # scan's row-group statistics), and those without a time
    typed = ws.con.sql('SELECT * FROM "DeviceRegistryEvents"').to_arrow_table()
    schema = builtin_schemas()["DeviceRegistryEvents"]
    sql = workspace._new_rows_sql("DeviceRegistryEvents", schema, typed)
    assert "BETWEEN" in sql and "2024-05-01" in sql and "2024-05-03" in sql
    assert "Timestamp IS NULL" in sql
