"""Readers of Windows-event files other than binary EVTX: XML, evtx JSON, ECS, NXLog / OTRF,
flat-events and Sentinel rows."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch import limits
from trustwatch.errors import IngestError
from trustwatch.ingest.readers import evtxjson
from trustwatch.ingest.readers.events import FORMATS
from trustwatch.ingest.readers.sentinel import row_to_doc
from trustwatch.ingest.records import EventBatch, Item, Rejected

EXAMPLES = SHARED / "reference" / "examples"
DATA = SHARED / "data"
FORMAT = {f.name: f for f in FORMATS}
NS = "http://schemas.microsoft.com/win/2004/08/events/event"
SYSMON_GUID = "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"


def run(items: Iterator[Item]) -> tuple[list[EventBatch], list[Rejected]]:
    everything = list(items)
    batches = [item for item in everything if isinstance(item, EventBatch)]
    rejected = [item for item in everything if isinstance(item, Rejected)]
    assert len(batches) + len(rejected) == len(everything)
    return batches, rejected


def read(fmt: str, path: Path) -> tuple[list[dict[str, Any]], list[int], list[Rejected]]:
    """Docs (parsed back), their refs, and the rejected records of ``path`` read as ``fmt``."""
    batches, rejected = run(FORMAT[fmt].read(path))
    docs = [json.loads(doc)["Event"] for b in batches for doc in b.docs]
    refs = [ref for b in batches for ref in b.refs]
    for b in batches:
        assert len(b.docs) == len(b.refs)
        assert all(json.loads(d) for d in b.docs)
    return docs, refs, rejected


def sniffed(path: Path) -> list[str]:
    head = path.read_bytes()[:65536]
    return [f.name for f in FORMATS if f.sniff(path, head)]


def xml_event(record_id: int, data: str = "", event_id: int = 1) -> str:
    return (
        f'<Event xmlns="{NS}"><System><Provider Name="Microsoft-Windows-Sysmon" '
        f'Guid="{SYSMON_GUID}"/><EventID>{event_id}</EventID><Version>5</Version>'
        "<Level>4</Level><Task>1</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>"
        '<TimeCreated SystemTime="2024-05-01T10:00:00.1234567Z"/>'
        f"<EventRecordID>{record_id}</EventRecordID><Correlation/>"
        '<Execution ProcessID="3044" ThreadID="4012"/>'
        "<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>WS01</Computer>"
        f'<Security UserID="S-1-5-18"/></System><EventData>{data}</EventData></Event>'
    )


def evtx_line(record_id: int) -> str:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 1,
        "EventRecordID": record_id,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WS01",
    }
    return json.dumps({"Event": {"System": system, "EventData": {"Image": f"C:\\p{record_id}"}}})


# --- the reference examples ----------------------------------------------------------------


SYSMON13 = {  # sysmon13_event.xml's System, which the other Sysmon 13 examples share in part
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": SYSMON_GUID}},
    "EventID": 13,
    "Version": 2,
    "Level": 4,
    "Task": 13,
    "Opcode": 0,
    "Keywords": "0x8000000000000000",
    "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:01.123456Z"}},
    "EventRecordID": 48211,
    "Correlation": None,
    "Execution": {"#attributes": {"ProcessID": 3044, "ThreadID": 4012}},
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Computer": "WS01.contoso.com",
    "Security": {"#attributes": {"UserID": "S-1-5-18"}},
}
SYSMON_ONLY_NAME = {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}


def at(moment: str) -> dict[str, Any]:
    return {"#attributes": {"SystemTime": moment}}


@needs_shared
def test_sysmon13_xml_example() -> None:
    docs, refs, rejected = read("xml", EXAMPLES / "sysmon13_event.xml")
    assert (refs, rejected) == ([1], [])
    assert docs[0]["System"] == SYSMON13
    data = docs[0]["EventData"]
    assert (data["EventType"], data["ProcessId"]) == ("SetValue", "4242")
    assert data["TargetObject"].endswith("\\CurrentVersion\\Run\\Updater")
    assert data["Details"] == "C:\\Users\\bob\\AppData\\Roaming\\upd.exe"


@needs_shared
def test_powershell_4104_xml_example() -> None:
    docs, refs, rejected = read("xml", EXAMPLES / "powershell_4104_event.xml")
    assert (refs, rejected) == ([1, 2], [])
    assert docs[0]["System"] == {
        "Provider": {
            "#attributes": {
                "Name": "Microsoft-Windows-PowerShell",
                "Guid": "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}",
            }
        },
        "EventID": 4104,
        "Version": 1,
        "Level": 3,
        "Task": 2,
        "Opcode": 15,
        "Keywords": "0x0",
        "TimeCreated": at("2024-05-01T10:05:01.000000Z"),
        "EventRecordID": 398,
        "Correlation": {"#attributes": {"ActivityID": "{cf6cb87c-ae9a-0000-344c-6ecf9aaed801}"}},
        "Execution": {"#attributes": {"ProcessID": 6112, "ThreadID": 532}},
        "Channel": "Microsoft-Windows-PowerShell/Operational",
        "Computer": "WS01.contoso.com",
        "Security": {"#attributes": {"UserID": "S-1-5-21-1111111111-2222222222-3333333333-1001"}},
    }
    assert [d["EventData"]["MessageNumber"] for d in docs] == ["1", "2"]
    assert (docs[0]["EventData"]["Path"], docs[1]["EventData"]["ScriptBlockText"]) == (
        "",
        "; IEX $s",
    )


@needs_shared
def test_evtx_dump_jsonl_example() -> None:
    docs, refs, rejected = read("evtx-json", EXAMPLES / "evtx_dump_sysmon_v6era.jsonl")
    assert (refs, rejected) == ([1, 2, 3, 4, 5], [])
    assert [d["System"]["EventID"] for d in docs] == [1, 3, 11, 12, 13]
    assert docs[4]["System"] == {
        **SYSMON13,
        "Provider": {
            "#attributes": {
                "Name": "Microsoft-Windows-Sysmon",
                "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
            }
        },
        "TimeCreated": at("2017-12-26T13:11:44.567055Z"),
        "EventRecordID": 1769,
        "Execution": {"#attributes": {"ProcessID": 2284, "ThreadID": 5252}},
        "Computer": "DESKTOP-2KGM189",
    }
    assert docs[0]["EventData"]["ProcessId"] == 9112  # typed values are kept
    assert docs[1]["EventData"]["Initiated"] is True
    assert docs[4]["EventData"]["Details"] == "DWORD (0x00000004)"


@needs_shared
def test_winlogbeat_ecs_example() -> None:
    docs, refs, rejected = read("ecs", EXAMPLES / "winlogbeat_sysmon13_ecs.json")
    assert (refs, rejected) == ([1], [])
    assert docs[0]["System"] == {
        **SYSMON13,
        "Task": None,  # ECS has the task's name only
        "Opcode": None,
        "Keywords": None,
        "TimeCreated": at("2020-05-05T14:57:40.589000Z"),
        "EventRecordID": 2682,
        "Execution": {"#attributes": {"ProcessID": 5496, "ThreadID": 876}},
        "Computer": "vagrant",
    }
    assert docs[0]["EventData"] == {
        "Details": "DWORD (0x00000004)",
        "EventType": "SetValue",
        "RuleName": "-",
        "TargetObject": "HKU\\S-1-5-21-1111111111-2222222222-3333333333-1001\\Software\\Key 1",
    }


@needs_shared
def test_nxlog_example_keeps_sysmon_event_type() -> None:
    docs, refs, rejected = read("nxlog", EXAMPLES / "nxlog_im_msvistalog_sysmon13.json")
    assert (refs, rejected) == ([1], [])  # the line where the JSON value (the wrapper) starts
    assert docs[0]["System"] == {
        **SYSMON13,
        "Provider": {
            "#attributes": {
                "Name": "Microsoft-Windows-Sysmon",
                "Guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
            }
        },
        # EventTime is local (UTC+8 here) and there is no @timestamp: Sysmon's UtcTime is used
        "TimeCreated": at("2021-04-05T04:10:09.363000Z"),
        "EventRecordID": 113745,
        "Computer": "DESKTOP-01",
    }
    data = docs[0]["EventData"]
    assert data["EventType"] == "SetValue"  # recovered from Message, not NXLog's "INFO"
    assert "ProcessId" not in data and "ProcessID" not in data  # lost to NXLog's ProcessID
    assert (data["Image"], data["User"]) == ("C:\\Windows\\System32\\reg.exe", "CONTOSO\\bob")
    nxlog_only = {"EventTime", "Hostname", "Severity", "Message", "SourceModuleType", "Category"}
    assert not nxlog_only & set(data)


@needs_shared
def test_sentinel_event_row_example() -> None:
    path = EXAMPLES / "sentinel_Event_sysmon13_row.json"
    docs, refs, rejected = read("sentinel-rows", path)
    assert (refs, rejected) == ([1], [])
    assert docs[0]["System"] == {
        **SYSMON13,
        "Provider": SYSMON_ONLY_NAME,
        "Version": None,
        "Opcode": None,
        "Keywords": None,
        "EventRecordID": None,
        "Execution": None,
        "Security": None,  # UserName is a name, not a SID
    }  # TimeCreated: the DataItem's time (the event's), not TimeGenerated (ingestion)
    data = docs[0]["EventData"]
    assert (data["EventType"], data["ProcessId"]) == ("SetValue", "4242")
    assert data["Details"] == "C:\\Users\\bob\\AppData\\Roaming\\upd.exe"
    text = row_to_doc("Event", json.loads(path.read_text())["row"])
    assert text is not None and json.loads(text)["Event"] == docs[0]


@needs_shared
def test_sentinel_windows_event_row_example() -> None:
    path = EXAMPLES / "sentinel_WindowsEvent_sysmon13_row.json"
    docs, _, rejected = read("sentinel-rows", path)
    assert rejected == []
    assert docs[0]["System"] == {**SYSMON13, "Provider": SYSMON_ONLY_NAME}
    assert docs[0]["EventData"]["TargetObject"].endswith("\\Run\\Updater")
    assert row_to_doc("DeviceRegistryEvents", json.loads(path.read_text())["row"]) is None


# --- real data ------------------------------------------------------------------------------


@needs_shared
def test_splunk_raw_concatenated_events() -> None:
    path = DATA / "splunk_attack_data" / "certutil_exe_certificate_extraction.raw"
    docs, refs, rejected = read("xml", path)
    assert refs == list(range(1, 41))
    providers = [d["System"]["Provider"]["#attributes"]["Name"] for d in docs]
    assert providers.count("Microsoft-Windows-Sysmon") == 20
    assert providers.count("Microsoft-Windows-Security-Auditing") == 20
    assert {d["System"]["EventID"] for d in docs} == {1, 4688}
    sysmon = docs[0]
    assert sysmon["System"]["EventRecordID"] == 19683891
    assert sysmon["EventData"]["RuleName"] == ""
    assert sysmon["EventData"]["CommandLine"].endswith("-p password1234 .\\powershellcert.pfx")
    security = next(d for d in docs if d["System"]["EventID"] == 4688)
    assert security["System"]["Channel"] == "Security"
    assert security["System"]["Keywords"] == "0x8020000000000000"
    # the Splunk key=value text records between the XML events are reported, not parsed
    assert len(rejected) == 4
    assert all(r.ref_kind == "offset" and "outside any <Event>" in r.reason for r in rejected)
    assert rejected[0].excerpt.startswith("01/14/2021")


@needs_shared
def test_sigma_regression_json() -> None:
    paths = sorted((DATA / "sigma_regression").glob("*/*.json"))
    assert len(paths) == 10
    for path in paths:
        docs, refs, rejected = read("evtx-json", path)
        assert (refs, rejected) == ([1], [])
        assert docs[0]["System"]["EventID"] == 1
        assert docs[0]["System"]["Computer"] == "ar-win-dc.attackrange.local"
        assert docs[0]["EventData"]["Image"] == "C:\\Windows\\System32\\certutil.exe"


@needs_shared
def test_flat_events() -> None:
    docs, refs, rejected = read("flat-events", DATA / "extracted" / "cert_related_events.jsonl")
    assert rejected == []
    assert len(docs) == 277 and refs == list(range(1, 278))
    first = docs[0]["System"]
    assert first["EventID"] == 1 and first["EventRecordID"] == 490
    assert first["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert first["Computer"] == ""
    assert first["TimeCreated"] == at("2019-07-19T14:57:03.309488Z")
    channels = {
        d["System"]["Provider"]["#attributes"]["Name"]: d["System"]["Channel"] for d in docs
    }
    assert channels["Microsoft-Windows-Security-Auditing"] == "Security"
    assert channels["Microsoft-Windows-CAPI2"] == ""
    capi70 = next(d for d in docs if d["System"]["EventID"] == 70)
    assert "EventData" not in capi70
    certificate = capi70["UserData"]["CryptAcquireCertificatePrivateKey"]["Certificate"]
    assert certificate["#attributes"]["subjectName"] == "wec02.offsec.lan"
    baltimore = next(d for d in docs if d["System"]["EventRecordID"] == 278)
    assert baltimore["EventData"]["Data"]["#text"][1] == "D4DE20D05E66FC53FE1A50882C78DB2852CAE474"
    otrf = next(d for d in docs if d.get("EventData", {}).get("EventType") == "AUDIT_SUCCESS")
    assert otrf["System"]["EventRecordID"] is None  # "file.json:31071" is no record id


@needs_shared
def test_otrf_zip_authroot_blob_write() -> None:
    path = DATA / "otrf_security_datasets" / "covenant_dcom_iertutil_dll_hijack.zip"
    batches, rejected = run(FORMAT["otrf-zip"].read(path))
    assert rejected == []
    assert sum(len(b.docs) for b in batches) == 37814
    last = batches[-1].position
    assert last is not None and path.stat().st_size - 1024 < last <= path.stat().st_size
    blob = [
        (ref, json.loads(doc)["Event"])
        for b in batches
        for ref, doc in zip(b.refs, b.docs, strict=True)
        if "AuthRoot\\\\Certificates\\\\AD7E1C28" in doc and "\\\\Blob" in doc
    ]
    assert len(blob) == 1
    ref, event = blob[0]
    assert ref == 5120  # line in the zip member
    data = event["EventData"]
    assert data["TargetObject"] == (
        "HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\AuthRoot\\Certificates\\"
        "AD7E1C28B064EF8F6003402014C3D0E3370EB58A\\Blob"
    )
    assert (data["EventType"], data["Details"]) == ("SetValue", "Binary Data")
    assert data["Image"] == "C:\\windows\\system32\\svchost.exe"
    assert data["ProcessId"] == "2464"  # EventData, beside NXLog's ExecutionProcessID
    assert event["System"] == {
        **SYSMON13,
        "Provider": {
            "#attributes": {
                "Name": "Microsoft-Windows-Sysmon",
                "Guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
            }
        },
        # local EventTime 18:27:56, shifted by EventReceivedTime (local) vs @timestamp (UTC)
        "TimeCreated": at("2020-10-09T22:27:56.000000Z"),
        "EventRecordID": 662353,
        "Execution": {"#attributes": {"ProcessID": 3120, "ThreadID": 820}},
        "Computer": "WORKSTATION5.theshire.local",
    }
    assert not {"EventTypeOrignal", "@timestamp", "host", "tags", "Hostname"} & set(data)


@needs_shared
@pytest.mark.parametrize(
    ("path", "name"),
    [
        (EXAMPLES / "sysmon13_event.xml", "xml"),
        (EXAMPLES / "powershell_4104_event.xml", "xml"),
        (EXAMPLES / "evtx_dump_sysmon_v6era.jsonl", "evtx-json"),
        (EXAMPLES / "winlogbeat_sysmon13_ecs.json", "ecs"),
        (EXAMPLES / "nxlog_im_msvistalog_sysmon13.json", "nxlog"),
        (EXAMPLES / "sentinel_Event_sysmon13_row.json", "sentinel-rows"),
        (EXAMPLES / "sentinel_WindowsEvent_sysmon13_row.json", "sentinel-rows"),
        (DATA / "splunk_attack_data" / "certutil_exe_certificate_extraction.raw", "xml"),
        (DATA / "extracted" / "cert_related_events.jsonl", "flat-events"),
        (DATA / "otrf_security_datasets" / "covenant_wmi_wbemcomn_dll_hijack.zip", "otrf-zip"),
        (DATA / "evtx_attack_samples" / "Sysmon_UACME_64.evtx", None),
        (EXAMPLES / "log_analytics_query_api_response.json", None),
        (EXAMPLES / "mde_storage_blob_PT1H.json", None),
        (EXAMPLES / "graph_runHuntingQuery_response.json", None),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_sniff_picks_one_format(path: Path, name: str | None) -> None:
    assert sniffed(path) == ([name] if name else [])


# --- built variants and damage --------------------------------------------------------------


def test_xml_bad_event_between_good_ones(tmp_path: Path) -> None:
    bad = xml_event(2).replace("</EventID>", "</EventId>")
    path = tmp_path / "export.xml"
    path.write_text(f"<Events>\n{xml_event(1)}\n{bad}\n{xml_event(3)}\n</Events>\n")
    docs, refs, rejected = read("xml", path)
    assert refs == [1, 3]
    assert [d["System"]["EventRecordID"] for d in docs] == [1, 3]
    assert len(rejected) == 1
    reason = rejected[0].reason
    assert (rejected[0].ref_kind, rejected[0].ref) == ("event", 2)
    assert "invalid XML" in reason and "mismatched tag" in reason
    offset = len("<Events>\n") + len(xml_event(1)) + 1
    assert f"byte offset {offset}, line 3" in reason
    assert rejected[0].excerpt.startswith("<Event")


def test_xml_unclosed_event_resyncs_at_next(tmp_path: Path) -> None:
    cut = xml_event(2)[:300]
    path = tmp_path / "cat.raw"
    path.write_text(xml_event(1) + cut + xml_event(3) + "<Event><System>")
    docs, refs, rejected = read("xml", path)
    assert [d["System"]["EventRecordID"] for d in docs] == [1, 3]
    assert [(r.ref, "before the next <Event>" in r.reason) for r in rejected[:1]] == [(2, True)]
    assert rejected[1].ref == 4 and "end of the file" in rejected[1].reason


def test_xml_details(tmp_path: Path) -> None:
    data = (
        '<Data Name="A">1</Data><Data Name="A">2</Data><Data Name="Empty"/>'
        "<Data>one</Data><Data>two</Data><Binary>00FF</Binary>"
    )
    event = xml_event(7, data).replace("<EventID>1<", '<EventID Qualifiers="16384">1<')
    user_data = xml_event(8).replace(
        "<EventData></EventData>",
        '<UserData><LogFileCleared xmlns="x"><SubjectUserName>bob</SubjectUserName>'
        '<Flag value="1"/></LogFileCleared></UserData>',
    )
    path = tmp_path / "ev.xml"
    path.write_text(f'<?xml version="1.0"?>\n<!-- <Event> in a comment -->\n{event}{user_data}')
    docs, _, rejected = read("xml", path)
    assert rejected == []
    assert docs[0]["System"]["EventID"] == {"#attributes": {"Qualifiers": 16384}, "#text": 1}
    assert docs[0]["EventData"] == {
        "A": "1",
        "A_1": "2",
        "Empty": "",
        "Data": {"#text": ["one", "two"]},
        "Binary": "00FF",
    }
    assert docs[1]["UserData"] == {
        "LogFileCleared": {"SubjectUserName": "bob", "Flag": {"#attributes": {"value": "1"}}}
    }


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_xml_utf16_and_bom(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "wevtutil.xml"
    text = "<Events>" + xml_event(1, '<Data Name="User">CONTOSO\\bøb</Data>') + xml_event(2)
    path.write_bytes(f"{text}</Events>".encode(encoding))
    assert sniffed(path) == ["xml"]
    docs, refs, rejected = read("xml", path)
    assert (refs, rejected) == ([1, 2], [])
    assert docs[0]["EventData"]["User"] == "CONTOSO\\bøb"


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    xml_path = tmp_path / "bad.xml"
    xml_path.write_bytes(
        xml_event(1, '<Data Name="Image">C:\\\xff\xfe.exe</Data>').encode("latin-1")
    )
    docs, _, rejected = read("xml", xml_path)
    assert rejected == [] and docs[0]["EventData"]["Image"] == "C:\\\ufffd\ufffd.exe"
    json_path = tmp_path / "bad.jsonl"
    json_path.write_bytes(evtx_line(1).replace("p1", "p\xff").encode("latin-1") + b"\n")
    docs, _, rejected = read("evtx-json", json_path)
    assert rejected == [] and docs[0]["EventData"]["Image"] == "C:\\p\ufffd"


def test_huge_field_read_intact(tmp_path: Path) -> None:
    """A 5.4 MB field is read whole under an event-bytes limit above it; the default refuses it."""
    script = "Write-Output 'x'; " * 300_000  # 5.4 MB
    path = tmp_path / "4104.xml"
    path.write_text(xml_event(1, f'<Data Name="ScriptBlockText">{script}</Data>', 4104))
    jsonl = tmp_path / "4104.jsonl"
    event = json.loads(evtx_line(1))
    event["Event"]["EventData"] = {"ScriptBlockText": script}
    jsonl.write_text(json.dumps(event) + "\n" + evtx_line(2) + "\n")
    with limits.using(replace(limits.DEFAULT, event_bytes=8 << 20)):
        docs, _, rejected = read("xml", path)
        assert rejected == [] and docs[0]["EventData"]["ScriptBlockText"] == script
        docs, _, rejected = read("evtx-json", jsonl)
        assert rejected == [] and docs[0]["EventData"]["ScriptBlockText"] == script
    for fmt, file in (("xml", path), ("evtx-json", jsonl)):
        docs, refs, rejected = read(fmt, file)
        assert len(rejected) == 1 and "event-bytes limit (4,194,304)" in rejected[0].reason
        assert len(docs) == (1 if fmt == "evtx-json" else 0)


def test_jsonl_bad_lines_mixed_in(tmp_path: Path) -> None:
    lines = [
        evtx_line(1),
        "this is not json",
        evtx_line(2)[:80],  # cut short
        evtx_line(3),
        "",
        "[1, 2]",
        '{"Event": {"System": {"EventID": "x"}}}',
        '{"Event": {"System": {"EventID": 1',
        evtx_line(4),
    ]
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(lines) + "\n")
    docs, refs, rejected = read("evtx-json", path)
    assert refs == [1, 4, 9]
    assert [d["System"]["EventRecordID"] for d in docs] == [1, 3, 4]
    assert [r.ref for r in rejected] == [2, 3, 6, 6, 7, 8]  # "[1, 2]": two non-objects
    assert {r.ref_kind for r in rejected} == {"line"}
    assert "invalid JSON" in rejected[0].reason and "Unterminated string" in rejected[1].reason
    assert "not a JSON object" in rejected[2].reason and "EventID" in rejected[4].reason
    assert "ends before it is complete" in rejected[5].reason


def test_evtx_dump_pretty_output_and_arrays(tmp_path: Path) -> None:
    pretty = [json.dumps(json.loads(evtx_line(n)), indent=2) for n in (1, 2, 3)]
    broken = pretty[1].replace('"Computer"', "Computer")
    dump = tmp_path / "dump.json"
    dump.write_text(f"Record 1\n{pretty[0]}\nRecord 2\n{broken}\nRecord 3\n{pretty[2]}\n")
    docs, refs, rejected = read("evtx-json", dump)
    assert [d["System"]["EventRecordID"] for d in docs] == [1, 3]
    assert refs == [2, 2 + 2 * len(pretty[0].splitlines()) + 2]
    assert len(rejected) == 1 and rejected[0].ref == len(pretty[0].splitlines()) + 3
    array = tmp_path / "array.json"
    array.write_text(json.dumps([json.loads(evtx_line(n)) for n in range(1, 6)], indent=2))
    docs, _, rejected = read("evtx-json", array)
    assert rejected == [] and [d["System"]["EventRecordID"] for d in docs] == [1, 2, 3, 4, 5]
    records = tmp_path / "records.jsonl"
    rows = [
        {"event_record_id": n, "timestamp": "t", "data": json.dumps(json.loads(evtx_line(n)))}
        for n in (7, 8)
    ]
    records.write_text("\n".join(json.dumps(r) for r in rows))
    assert sniffed(records) == ["evtx-json"]
    docs, _, rejected = read("evtx-json", records)
    assert rejected == [] and [d["System"]["EventRecordID"] for d in docs] == [7, 8]


def test_utf16_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.json"  # PowerShell Out-File writes UTF-16 with a BOM
    path.write_bytes(f"{evtx_line(1)}\r\n{evtx_line(2)}\r\n".encode("utf-16"))
    assert sniffed(path) == ["evtx-json"]
    docs, _, rejected = read("evtx-json", path)
    assert rejected == [] and len(docs) == 2


def test_batches_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evtxjson, "BATCH_SIZE", 10)
    path = tmp_path / "many.jsonl"
    path.write_text("".join(evtx_line(n) + "\n" for n in range(25)))
    batches, _ = run(FORMAT["evtx-json"].read(path))
    assert [len(b.docs) for b in batches] == [10, 10, 5]
    last = batches[-1].position
    assert last is not None and path.stat().st_size - 1024 < last <= path.stat().st_size


def test_nxlog_otrf_2020_record(tmp_path: Path) -> None:
    record = {
        "SourceName": "Microsoft-Windows-Security-Auditing",
        "EventID": 4688,
        "Channel": "Security",
        "Hostname": "WS5.contoso.local",
        "EventTime": "2020-09-04 03:09:34",
        "EventReceivedTime": "2020-09-04 03:10:00",
        "@timestamp": "2020-09-04T07:10:00.500Z",
        "EventType": "AUDIT_SUCCESS",
        "Keywords": -9214364837600034816,
        "RecordNumber": 7,
        "ExecutionProcessID": 4,
        "ThreadID": 164,
        "ProcessId": "0x1c4",
        "NewProcessName": "C:\\Windows\\System32\\certutil.exe",
        "SourceModuleType": "im_msvistalog",
        "host": "wec",
        "tags": ["mordorDataset"],
    }
    path = tmp_path / "nx.json"
    path.write_text(json.dumps(record) + "\n" + json.dumps({"SourceModuleType": "x"}) + "\n")
    docs, _, rejected = read("nxlog", path)
    system = docs[0]["System"]
    assert system["TimeCreated"] == at("2020-09-04T07:09:34.000000Z")
    assert (system["Level"], system["Keywords"]) == (0, "0x8020000000000000")
    assert system["Execution"] == {"#attributes": {"ProcessID": 4, "ThreadID": 164}}
    assert docs[0]["EventData"] == {
        "ProcessId": "0x1c4",
        "NewProcessName": "C:\\Windows\\System32\\certutil.exe",
    }
    assert len(rejected) == 1 and rejected[0].ref == 2 and "SourceName" in rejected[0].reason


def test_otrf_zip_members_and_bad_lines(tmp_path: Path) -> None:
    line = json.dumps({"SourceName": "P", "EventID": 1, "Hostname": "h", "Channel": "c"})
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.json", f"{line}\n{{oops\n{line}\n")
        archive.writestr("b.json", f"{line}\n{line}\n")
        archive.writestr("README.md", "hello")
    assert sniffed(path) == ["otrf-zip"]
    docs, refs, rejected = read("otrf-zip", path)
    assert refs == [1, 3, 4, 5] and len(docs) == 4
    assert [(r.ref, r.reason.split(":")[0]) for r in rejected] == [(2, "a.json"), (5, "README.md")]


def test_ecs_dotted_keys_and_user_data(tmp_path: Path) -> None:
    rows = [
        {
            "@timestamp": "2024-05-01T10:00:00Z",
            "winlog.provider_name": "Microsoft-Windows-Eventlog",
            "winlog.event_id": "1102",
            "winlog.channel": "Security",
            "winlog.computer_name": "dc1",
            "winlog.keywords": ["Audit Success"],
            "winlog.user_data": {"xml_name": "LogFileCleared", "SubjectUserName": "bob"},
        },
        {"winlog": {"event_id": 1}},
    ]
    path = tmp_path / "kibana.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert sniffed(path) == ["ecs"]
    docs, _, rejected = read("ecs", path)
    assert docs[0]["System"]["EventID"] == 1102 and docs[0]["System"]["Level"] == 0
    assert docs[0]["UserData"] == {"LogFileCleared": {"SubjectUserName": "bob"}}
    assert docs[1]["System"]["Provider"] == {"#attributes": {"Name": ""}}
    assert rejected == []


def test_security_event_rows() -> None:
    xml = (
        f'<EventData xmlns="{NS}"><Data Name="NewProcessName">C:\\x.exe</Data>'
        '<Data Name="CommandLine">x -y</Data></EventData>'
    )
    row = {"EventID": 4688, "Computer": "ws", "Level": "8", "EventData": xml, "Activity": "4688"}
    text = row_to_doc("SecurityEvent", {**row, "TimeGenerated": "2024-05-01T10:00:00Z"})
    assert text is not None
    event = json.loads(text)["Event"]
    assert event["EventData"] == {"NewProcessName": "C:\\x.exe", "CommandLine": "x -y"}
    system = event["System"]
    assert system["Provider"]["#attributes"]["Name"] == "Microsoft-Windows-Security-Auditing"
    assert (system["Channel"], system["Level"]) == ("Security", 0)
    assert system["Keywords"] == "0x8020000000000000"  # Level 8: audit success
    promoted = row_to_doc("SecurityEvent", {**row, "EventData": None, "NewProcessName": "C:\\y"})
    assert promoted is not None
    assert json.loads(promoted)["Event"]["EventData"] == {"NewProcessName": "C:\\y"}
    with pytest.raises(ValueError, match="invalid EventData XML"):
        row_to_doc("SecurityEvent", {**row, "EventData": "<EventData><Data>"})


def test_missing_file_is_an_ingest_error(tmp_path: Path) -> None:
    for fmt in FORMATS:
        with pytest.raises(IngestError):
            list(fmt.read(tmp_path / "nothing.here"))
