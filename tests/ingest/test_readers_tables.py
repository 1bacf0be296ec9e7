"""Readers of tabular exports: Defender streaming API, Graph/AH API, portal CSV, Log Analytics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch import limits
from trustwatch.errors import IngestError, InputError
from trustwatch.ingest.readers import defender, loganalytics, tabular
from trustwatch.ingest.records import EventBatch, Item, Rejected, RowBatch

EXAMPLES = SHARED / "reference" / "examples"
FORMAT = {f.name: f for f in tabular.FORMATS}


def run(items: Iterator[Item]) -> tuple[list[RowBatch], list[EventBatch], list[Rejected]]:
    rows, events, rejected = [], [], []
    for item in items:
        if isinstance(item, RowBatch):
            rows.append(item)
        elif isinstance(item, EventBatch):
            events.append(item)
        else:
            rejected.append(item)
    return rows, events, rejected


def read(fmt: str, path: Path) -> tuple[list[RowBatch], list[EventBatch], list[Rejected]]:
    return run(FORMAT[fmt].read(path))


def only_rows(batches: list[RowBatch], table: str) -> list[dict[str, Any]]:
    assert {b.table for b in batches} == {table}
    return [row for b in batches for row in b.rows]


def sniffed(path: Path) -> list[str]:
    head = path.read_bytes()[:65536]
    return [f.name for f in tabular.FORMATS if f.sniff(path, head)]


def record(table: str, props: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "time": "2024-05-01T10:00:05Z",
        "tenantId": "t-1",
        "operationName": "Publish",
        "category": f"AdvancedHunting-{table}",
        **envelope,
        "properties": props,
    }


def reg_props(n: int) -> dict[str, Any]:
    return {
        "Timestamp": f"2024-05-01T10:00:0{n % 10}Z",
        "DeviceName": f"ws{n}",
        "ActionType": "RegistryValueSet",
        "RegistryKey": f"HKEY_LOCAL_MACHINE\\SOFTWARE\\K{n}",
        "ReportId": n,
    }


# --- the reference examples ----------------------------------------------------------------


@needs_shared
def test_eventhub_message_example() -> None:
    path = EXAMPLES / "mde_eventhub_message_DeviceRegistryEvents.json"
    assert sniffed(path) == ["defender-stream"]
    batches, events, rejected = read("defender-stream", path)
    assert rejected == [] and events == []
    [row] = only_rows(batches, "DeviceRegistryEvents")
    assert batches[0].ref_kind == "record" and batches[0].refs == [1]
    assert batches[0].position == path.stat().st_size
    assert row["Timestamp"] == "2026-07-18T10:58:27.3137769Z"
    assert row["ReportId"] == 3509 and isinstance(row["ReportId"], int)
    assert row["RegistryKey"] == (
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\DataCollection"
    )
    assert row["PreviousRegistryKey"] is None
    assert row["InitiatingProcessFileSize"] == 454656
    assert row["IsInitiatingProcessRemoteSession"] is False
    assert row["MachineGroup"] == "main"
    assert row["TenantId"] == "00000000-0000-0000-0000-000000000000"
    assert row["TimeGenerated"] == "2026-07-18T11:00:55.8621636Z"  # envelope time
    for envelope_only in ("time", "tenantId", "operationName", "category", "_TimeReceivedBySvc"):
        assert envelope_only not in row


@needs_shared
def test_storage_blob_example_crlf() -> None:
    path = EXAMPLES / "mde_storage_blob_PT1H.json"
    assert path.read_bytes().endswith(b"\r\n")
    assert sniffed(path) == ["defender-stream"]
    batches, _, rejected = read("defender-stream", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceProcessEvents")
    assert batches[0].ref_kind == "line" and batches[0].refs == [1]
    assert row["Timestamp"] == "2021-04-14T18:49:17.7849324Z"
    assert row["ReportId"] == 30779
    assert row["ProcessCommandLine"] == '"whoami.exe" /user'
    assert row["LogonId"] == 999
    assert row["AdditionalFields"] is None and row["MachineGroup"] is None


@needs_shared
def test_graph_hunting_example_infers_registry_table() -> None:
    path = EXAMPLES / "graph_runHuntingQuery_response.json"
    assert sniffed(path) == ["defender-hunting"]
    batches, _, rejected = read("defender-hunting", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceRegistryEvents")
    assert row == {
        "Timestamp": "2024-03-26T09:39:50.7688641Z",
        "DeviceName": "ws01.contoso.com",
        "ActionType": "RegistryValueSet",
        "RegistryKey": "HKEY_CURRENT_USER\\S-1-5-21-1111111111-2222222222-3333333333-1001"
        "\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
        "RegistryValueName": "Updater",
        "ReportId": 1234,
    }


@needs_shared
def test_log_analytics_query_api_example() -> None:
    path = EXAMPLES / "log_analytics_query_api_response.json"
    assert sniffed(path) == ["la-query-api"]
    batches, _, rejected = read("la-query-api", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceRegistryEvents")
    assert batches[0].ref_kind == "row" and batches[0].refs == [1]
    assert row["TimeGenerated"] == "2024-05-01T10:00:01.123Z"
    assert row["RegistryValueData"] == "C:\\Users\\bob\\AppData\\Roaming\\upd.exe"
    assert row["InitiatingProcessId"] == 4242
    assert row["IsInitiatingProcessRemoteSession"] is False


@needs_shared
def test_log_analytics_portal_csv_example() -> None:
    path = EXAMPLES / "log_analytics_portal_export.csv"
    assert sniffed(path) == ["la-portal-csv"]
    batches, _, rejected = read("la-portal-csv", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceRegistryEvents")  # from the Type column
    assert batches[0].ref_kind == "line" and batches[0].refs == [2]
    assert row["TimeGenerated"] == "2024-05-01T10:00:03.500Z"
    assert row["Timestamp"] == "2024-05-01T10:00:01.123Z"
    assert "Timestamp [UTC]" not in row
    assert row["ReportId"] == "1234"  # CSV text; the table schema types it
    assert row["SourceSystem"] is None  # empty cell
    assert row["Type"] == "DeviceRegistryEvents"


@needs_shared
def test_other_examples_are_not_claimed() -> None:
    mine = {
        "mde_eventhub_message_DeviceRegistryEvents.json",
        "mde_storage_blob_PT1H.json",
        "graph_runHuntingQuery_response.json",
        "log_analytics_query_api_response.json",
        "log_analytics_portal_export.csv",
    }
    for path in sorted(EXAMPLES.iterdir()):
        if path.name not in mine:
            assert sniffed(path) == [], path.name


# --- Defender streaming API ----------------------------------------------------------------


def test_big_report_id_stays_exact(tmp_path: Path) -> None:
    path = tmp_path / "msg.json"
    props = (
        '{"Timestamp": "2024-05-01T10:00:00Z", "DeviceId": "d1", "ReportId": 123456789012345678}'
    )
    path.write_text(
        f'{{"records": [{{"category": "AdvancedHunting-DeviceInfo", "properties": {props}}}]}}'
    )
    batches, _, rejected = read("defender-stream", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceInfo")
    assert row["ReportId"] == 123456789012345678 and type(row["ReportId"]) is int


def test_blob_bad_lines_in_the_middle(tmp_path: Path) -> None:
    lines = [
        json.dumps(record("DeviceRegistryEvents", reg_props(1))),
        '{"time": "2024-05-01T10:00:05Z", "category": "AdvancedHunting-Device',  # cut short
        json.dumps(record("DeviceRegistryEvents", reg_props(3))),
        json.dumps({"time": "x", "properties": {"a": 1}}),  # no category
        "",
        json.dumps(record("DeviceRegistryEvents", reg_props(6))),
        json.dumps(record("SecurityAlert", {}, category="Other")),  # not AdvancedHunting-
    ]
    path = tmp_path / "PT1H.json"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    batches, _, rejected = read("defender-stream", path)
    rows = only_rows(batches, "DeviceRegistryEvents")
    assert [r["ReportId"] for r in rows] == [1, 3, 6]
    assert [ref for b in batches for ref in b.refs] == [1, 3, 6]
    assert [(r.ref_kind, r.ref) for r in rejected] == [("line", 2), ("line", 4), ("line", 7)]
    assert "invalid JSON" in rejected[0].reason
    assert rejected[0].excerpt.startswith('{"time": "2024-05-01T10:00:05Z"')
    assert "category" in rejected[1].reason and "'Other'" in rejected[2].reason
    assert batches[-1].position == path.stat().st_size


def test_eventhub_array_of_messages_and_several_tables(tmp_path: Path) -> None:
    proc = {"Timestamp": "2024-05-01T10:00:00Z", "FileName": "whoami.exe", "ReportId": 7}
    messages = [
        {
            "records": [
                record("DeviceRegistryEvents", reg_props(1)),
                record("DeviceProcessEvents", proc),
            ]
        },
        {"records": [record("DeviceRegistryEvents", reg_props(2))]},
    ]
    path = tmp_path / "eh.json"
    path.write_text(json.dumps(messages, indent=2))
    batches, _, rejected = read("defender-stream", path)
    assert rejected == []
    by_table = {b.table: b for b in batches}
    assert by_table["DeviceRegistryEvents"].refs == [1, 3]
    assert by_table["DeviceProcessEvents"].refs == [2]
    assert by_table["DeviceProcessEvents"].rows[0]["FileName"] == "whoami.exe"


def test_eventhub_json_lines_of_messages(tmp_path: Path) -> None:
    path = tmp_path / "eh.jsonl"
    messages = [{"records": [record("DeviceRegistryEvents", reg_props(i))]} for i in (1, 2)]
    path.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    batches, _, rejected = read("defender-stream", path)
    assert rejected == []
    assert [r["ReportId"] for r in only_rows(batches, "DeviceRegistryEvents")] == [1, 2]
    assert batches[0].refs == [1, 2] and batches[0].ref_kind == "line"


def test_bad_record_inside_a_message_is_skipped(tmp_path: Path) -> None:
    good = [json.dumps(record("DeviceRegistryEvents", reg_props(i))) for i in (1, 3)]
    bad = '{"category": "AdvancedHunting-DeviceRegistryEvents", "properties": {"a": tru, "b": "]"}}'
    path = tmp_path / "eh.json"
    path.write_text('{\n "records": [\n  ' + ",\n  ".join([good[0], bad, good[1]]) + "\n ]\n}\n")
    batches, _, rejected = read("defender-stream", path)
    assert [r["ReportId"] for r in only_rows(batches, "DeviceRegistryEvents")] == [1, 3]
    assert batches[0].refs == [1, 3]
    assert [(r.ref_kind, r.ref) for r in rejected] == [("record", 2)]
    assert "invalid JSON" in rejected[0].reason and rejected[0].excerpt.startswith('{"category"')


def test_truncated_document_keeps_what_was_read(tmp_path: Path) -> None:
    text = json.dumps({"records": [record("DeviceRegistryEvents", reg_props(i)) for i in (1, 2)]})
    path = tmp_path / "eh.json"
    path.write_text(text[: len(text) - 40])
    batches, _, rejected = read("defender-stream", path)
    assert [r["ReportId"] for r in only_rows(batches, "DeviceRegistryEvents")] == [1]
    assert [r.ref for r in rejected] == [2, 3]
    assert "invalid JSON" in rejected[0].reason and "cut short" in rejected[1].reason


def test_small_buffers_and_escapes_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defender, "CHUNK", 7)
    tricky = 'C:\\\\a "quoted" ]}, {\\u00e9 \U0001f600'
    props = [dict(reg_props(i), RegistryValueData=f"{tricky}{i}") for i in range(1, 40)]
    path = tmp_path / "eh.json"
    path.write_text(
        json.dumps({"records": [record("DeviceRegistryEvents", p) for p in props]}, indent=1)
    )
    batches, _, rejected = read("defender-stream", path)
    assert rejected == []
    rows = only_rows(batches, "DeviceRegistryEvents")
    assert [r["RegistryValueData"] for r in rows] == [p["RegistryValueData"] for p in props]


def test_oversized_record_is_rejected_and_reading_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defender, "CHUNK", 64)
    big = dict(reg_props(2), RegistryValueData="x" * 5000)
    recs = [record("DeviceRegistryEvents", p) for p in (reg_props(1), big, reg_props(3))]
    path = tmp_path / "eh.json"
    path.write_text(json.dumps({"records": recs}))
    with limits.using(replace(limits.DEFAULT, event_bytes=1000)):
        batches, _, rejected = read("defender-stream", path)
    assert [r["ReportId"] for r in only_rows(batches, "DeviceRegistryEvents")] == [1, 3]
    assert [r.ref for r in rejected] == [2] and "event-bytes limit (1,000)" in rejected[0].reason


def test_batches_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defender, "BATCH_SIZE", 4)
    path = tmp_path / "PT1H.json"
    path.write_text(
        "\n".join(json.dumps(record("DeviceRegistryEvents", reg_props(i))) for i in range(10))
    )
    batches, _, _ = read("defender-stream", path)
    assert [len(b.rows) for b in batches] == [4, 4, 2]
    assert all(b.position is not None for b in batches)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot open"):
        list(FORMAT["defender-stream"].read(tmp_path / "absent.json"))


# --- table inference -----------------------------------------------------------------------


def test_infer_table() -> None:
    assert defender.infer_table(["RegistryKey", "ActionType"], []) == ("DeviceRegistryEvents", "")
    cols = ["Timestamp", "DeviceName", "ActionType", "RegistryKey"]
    assert defender.infer_table(cols, ["PowerShellCommand"])[0] == "DeviceEvents"
    assert defender.infer_table(cols, ["RegistryValueSet"])[0] == "DeviceRegistryEvents"
    assert defender.infer_table(["FileName", "ProcessCommandLine"], [])[0] == "DeviceProcessEvents"
    table, why = defender.infer_table(["Timestamp", "DeviceName"], [])
    assert table is None and "tables" in why
    table, why = defender.infer_table(["Timestamp", "NoSuchColumn"], [])
    assert table is None and "NoSuchColumn" in why


def _hunting(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps({"schema": [{"Name": c, "Type": "String"} for c in columns], "results": rows})
    )
    return path


def test_ambiguous_table_is_one_rejection(tmp_path: Path) -> None:
    rows = [{"Timestamp": "2024-05-01T10:00:00Z", "DeviceName": f"ws{i}"} for i in range(3)]
    path = _hunting(tmp_path / "r.json", ["Timestamp", "DeviceName"], rows)
    batches, _, rejected = read("defender-hunting", path)
    assert batches == []
    [rej] = rejected
    assert rej.ref == 0 and "3 row(s) not loaded" in rej.reason and "--input-table" in rej.reason
    assert rej.count == 3

    forced = tabular.table_hint_reader("defender-hunting", "DeviceNetworkEvents")
    batches, _, rejected = run(forced(path))
    assert rejected == [] and len(only_rows(batches, "DeviceNetworkEvents")) == 3


def test_table_hint_errors() -> None:
    with pytest.raises(InputError, match="unknown table"):
        tabular.table_hint_reader("la-query-api", "DeviceRegistryEvent")
    with pytest.raises(InputError, match="does not apply"):
        tabular.table_hint_reader("evtx", "DeviceRegistryEvents")
    assert callable(tabular.table_hint_reader("la-portal-csv", "MyLogs_CL"))


def test_hunting_error_and_bad_result(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    good = json.dumps(reg_props(1))
    schema = json.dumps([{"Name": c, "Type": "String"} for c in reg_props(1)])
    error = '{"code": "BadRequest", "message": "quota"}'
    path.write_text(
        f'{{"Schema": {schema}, "Results": [{good}, 42, {{"x": nul}}, {good}], "error": {error}}}'
    )
    batches, _, rejected = read("defender-hunting", path)
    assert batches[0].refs == [1, 4]
    assert [(r.ref, r.reason.split(":")[0]) for r in rejected] == [
        (2, "row is not a JSON object"),
        (3, "invalid JSON"),
        (0, "the query reported an error"),
    ]
    assert "BadRequest: quota" in rejected[2].reason


# --- Defender portal exports ---------------------------------------------------------------


def test_defender_csv_for_a_device_table(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Timestamp,DeviceName,ActionType,FileName,ProcessCommandLine,ReportId\r\n"
        "2024-05-01T10:00:00Z,ws01,ProcessCreated,certutil.exe,"
        '"certutil -addstore ""Root"" a.cer",5\r\n'
        "2024-05-01T10:00:01Z,ws01,ProcessCreated,whoami.exe\r\n"
        "2024-05-01T10:00:02Z,ws02,ProcessCreated,cmd.exe,,6\r\n"
    )
    assert sniffed(path) == ["defender-csv"]
    batches, _, rejected = read("defender-csv", path)
    rows = only_rows(batches, "DeviceProcessEvents")
    assert batches[0].refs == [2, 4]
    assert rows[0]["ProcessCommandLine"] == 'certutil -addstore "Root" a.cer'
    assert rows[1]["ProcessCommandLine"] is None and rows[1]["ReportId"] == "6"
    assert [(r.ref_kind, r.ref) for r in rejected] == [("line", 3)]
    assert "4 fields; the header has 6" in rejected[0].reason


def test_defender_json_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps([reg_props(1), reg_props(2)], indent=2))
    assert sniffed(path) == ["defender-csv"]
    batches, _, rejected = read("defender-csv", path)
    assert rejected == []
    assert [r["ReportId"] for r in only_rows(batches, "DeviceRegistryEvents")] == [1, 2]
    path.write_text("\n".join(json.dumps(reg_props(i)) for i in (1, 2)) + "\n[1]\n")
    batches, _, rejected = read("defender-csv", path)
    assert batches[0].refs == [1, 2] and [r.ref for r in rejected] == [3]


# --- Log Analytics -------------------------------------------------------------------------


def _la(path: Path, columns: list[str], rows: list[list[Any]], **extra: Any) -> Path:
    cols = [{"name": c, "type": "string"} for c in columns]
    path.write_text(
        json.dumps({"tables": [{"name": "PrimaryResult", "columns": cols, "rows": rows}], **extra})
    )
    return path


def test_query_api_partial_error_keeps_rows(tmp_path: Path) -> None:
    error = {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{"code": "EngineError", "message": "Query result set has exceeded the limit"}],
    }
    rows: list[list[Any]] = [
        ["2024-05-01T10:00:00Z", "ws01", "DeviceRegistryEvents"],
        ["2024-05-01T10:00:01Z", "ws02"],
        ["2024-05-01T10:00:02Z", "ws03", "DeviceRegistryEvents"],
    ]
    path = _la(tmp_path / "q.json", ["TimeGenerated", "DeviceName", "Type"], rows, error=error)
    batches, _, rejected = read("la-query-api", path)
    assert [r["DeviceName"] for r in only_rows(batches, "DeviceRegistryEvents")] == ["ws01", "ws03"]
    assert [(r.ref_kind, r.ref) for r in rejected] == [("row", 2), ("row", 0)]
    assert "2 values; the table has 3 columns" in rejected[0].reason
    assert "PartialError" in rejected[1].reason and "exceeded the limit" in rejected[1].reason
    assert "rows read are kept" in rejected[1].reason


def test_windows_event_rows_become_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_row_to_doc(table: str, row: dict[str, Any]) -> str | None:
        calls.append((table, row))
        return (
            None
            if row["EventID"] == 0
            else json.dumps({"Event": {"System": {"EventID": row["EventID"]}}})
        )

    monkeypatch.setattr(loganalytics, "row_to_doc", fake_row_to_doc)
    rows: list[list[Any]] = [
        ["SecurityEvent", 4688, "WS01"],
        ["SecurityEvent", 0, "WS01"],
        ["WindowsEvent", 13, "WS02"],
        ["Heartbeat", 1, "WS03"],
    ]
    path = _la(tmp_path / "q.json", ["Type", "EventID", "Computer"], rows)
    batches, events, rejected = read("la-query-api", path)
    assert rejected == []
    [ev] = events
    assert ev.ref_kind == "row" and ev.refs == [1, 3]
    assert json.loads(ev.docs[0])["Event"]["System"]["EventID"] == 4688
    assert {b.table: b.refs for b in batches} == {"SecurityEvent": [2], "Heartbeat": [4]}
    assert [c[0] for c in calls] == ["SecurityEvent", "SecurityEvent", "WindowsEvent"]


def test_portal_csv_times(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "TimeGenerated [UTC],Computer,Category,Type\n"
        '"10/25/2023, 9:43:21.990 PM",WS01,Direct Agent,Heartbeat\n'
        '"1/2/2024, 12:05:00 AM",WS01,Direct Agent,Heartbeat\n'
        '"13/25/2023, 9:43:21 AM",WS01,Direct Agent,Heartbeat\n'
        "2024-01-02T00:05:00Z,WS01,Direct Agent,Heartbeat\n",
        encoding="utf-8-sig",  # a BOM, as Excel-friendly exports have
    )
    assert sniffed(path) == ["la-portal-csv"]
    batches, _, rejected = read("la-portal-csv", path)
    rows = only_rows(batches, "Heartbeat")
    assert [r["TimeGenerated"] for r in rows] == [
        "2023-10-25T21:43:21.990Z",
        "2024-01-02T00:05:00Z",
        "2024-01-02T00:05:00Z",
    ]
    assert batches[0].refs == [2, 3, 5]
    assert [(r.ref_kind, r.ref) for r in rejected] == [("line", 4)]
    assert "13/25/2023" in rejected[0].reason
    assert loganalytics.portal_time("10/25/2023, 9:43:21.990 PM") == "2023-10-25T21:43:21.990Z"
    assert loganalytics.portal_time("1/2/2024, 12:05:00 AM") == "2024-01-02T00:05:00Z"
    assert loganalytics.portal_time("1/2/2024, 12:05:00 PM") == "2024-01-02T12:05:00Z"
    assert loganalytics.portal_time("1/2/2024, 17:05:00") == "2024-01-02T17:05:00Z"
    assert loganalytics.portal_time("2/30/2024, 1:00:00 AM") is None


def test_portal_csv_local_time_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('TimeGenerated [Local Time],DeviceName\n"5/1/2024, 10:00:01.123 AM",ws01\n')
    assert sniffed(path) == ["la-portal-csv"]
    batches, _, rejected = read("la-portal-csv", path)
    assert batches == []
    [rej] = rejected
    assert rej.ref == 0 and "UTC" in rej.reason and "Local Time" in rej.reason
    assert rej.count == 1


def test_portal_csv_without_type_is_inferred(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Timestamp [UTC],DeviceName,RegistryKey,RegistryValueName\n"
        '"5/1/2024, 10:00:01.123 AM",ws01,HKEY_LOCAL_MACHINE\\SOFTWARE\\X,v\n'
    )
    batches, _, rejected = read("la-portal-csv", path)
    assert rejected == []
    [row] = only_rows(batches, "DeviceRegistryEvents")
    assert row["Timestamp"] == "2024-05-01T10:00:01.123Z"
