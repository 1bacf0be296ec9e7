"""`trustwatch ingest`, and `trustwatch query --workspace / --data` over what it stored."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from trustwatch.cli.main import cli

SAMPLE = str(resources.files("trustwatch.content.samples").joinpath("DeviceRegistryEvents.jsonl"))

EVENT = """<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>
<Provider Name="Microsoft-Windows-Sysmon" Guid="{{5770385F-C22A-43E0-BF4C-06F5698FFBD9}}"/>
<EventID>13</EventID><Version>2</Version><Level>4</Level><Task>13</Task><Opcode>0</Opcode>
<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2024-05-01T10:00:0{n}.1Z"/>
<EventRecordID>{n}</EventRecordID><Execution ProcessID="3044" ThreadID="4012"/>
<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>WS01.corp.local</Computer>
<Security UserID="S-1-5-18"/></System><EventData>
<Data Name="EventType">SetValue</Data><Data Name="UtcTime">2024-05-01 10:00:0{n}.100</Data>
<Data Name="ProcessGuid">{{11111111-2222-3333-4444-555555555555}}</Data>
<Data Name="ProcessId">4242</Data><Data Name="Image">C:\\Temp\\svchost.exe</Data>
<Data Name="TargetObject">{store}\\{thumb}\\Blob</Data>
<Data Name="Details">Binary Data</Data><Data Name="User">CORP\\bob</Data></EventData></Event>
"""


STORE = "HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\ROOT\\Certificates"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def events_file(tmp_path: Path, *, broken: bool = False) -> Path:
    body = EVENT.format(n=1, thumb="AA" * 20, store=STORE)
    if broken:
        body += "<Event><System><EventID>13</EventID></Syst></Event>\n"
    body += EVENT.format(n=2, thumb="BB" * 20, store=STORE)
    path = tmp_path / "sysmon.xml"
    path.write_text(f"<Events>{body}</Events>", encoding="utf-8")
    return path


def test_ingest_then_query_the_workspace(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws.duckdb")
    code, out, err = run("ingest", str(events_file(tmp_path, broken=True)), "--workspace", ws)
    assert code == 0, err
    assert "sysmon.xml" in out and "DeviceRegistryEvents 2" in out
    assert "quarantined:" in err and "event 2" in err
    code, out, _ = run(
        "query",
        "DeviceRegistryEvents | sort by Timestamp asc | project RegistryKey, "
        "RegistryValueName, InitiatingProcessFolderPath",
        "--workspace",
        ws,
        "--format",
        "json",
    )
    assert code == 0
    got = json.loads(out)
    assert [r["RegistryValueName"] for r in got] == ["Blob", "Blob"]
    assert got[0]["RegistryKey"].endswith("Certificates\\" + "AA" * 20)
    assert got[0]["InitiatingProcessFolderPath"] == "C:\\Temp\\svchost.exe"
    # again: nothing added
    code, out, _ = run("ingest", str(events_file(tmp_path, broken=True)), "--workspace", ws)
    assert code == 0
    code, out, _ = run(
        "query", "DeviceRegistryEvents | count", "--workspace", ws, "--format", "json"
    )
    assert json.loads(out) == [{"Count": 2}]


def test_query_data_ingests_in_memory(tmp_path: Path) -> None:
    code, out, _ = run(
        "query",
        "WindowsEvent | summarize count() by Provider",
        "--data",
        str(events_file(tmp_path)),
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out) == [{"Provider": "Microsoft-Windows-Sysmon", "count_": 2}]


def test_parquet_output(tmp_path: Path) -> None:
    code, _, err = run("ingest", str(events_file(tmp_path)), "--parquet", str(tmp_path / "pq"))
    assert code == 0, err
    assert (tmp_path / "pq" / "DeviceRegistryEvents" / "day=2024-05-01").is_dir()


def test_input_table_names_the_table_of_an_export(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws.duckdb")
    code, _, err = run(
        "ingest",
        SAMPLE,
        "--workspace",
        ws,
        "--input-format",
        "defender-csv",
        "--input-table",
        "DeviceRegistryEvents",
    )
    assert code == 0, err
    code, out, _ = run(
        "query", "DeviceRegistryEvents | count", "--workspace", ws, "--format", "json"
    )
    assert json.loads(out) == [{"Count": 26}]
    code, _, err = run(
        "ingest",
        str(events_file(tmp_path)),
        "--workspace",
        ws,
        "--input-table",
        "DeviceRegistryEvents",
    )
    assert code == 2 and "--input-table does not apply" in err


def test_errors_and_nothing_readable(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    code, _, err = run("ingest", str(tmp_path / "missing.evtx"), "--workspace", str(ws))
    assert code == 2 and "no such file" in err
    assert not ws.exists()  # nothing is created when the command is refused
    notes = tmp_path / "notes.md"
    notes.write_text("# not telemetry\n", encoding="utf-8")
    code, _, err = run("ingest", str(notes), "--workspace", str(tmp_path / "ws.duckdb"))
    assert code == 2 and "nothing could be read" in err and "skipped" in err
    code, _, err = run("ingest", str(notes))
    assert code == 2 and "--workspace" in err
    other = tmp_path / "other.duckdb"
    code, _, err = run("ingest", str(notes), "--workspace", str(other), "--input-format", "nope")
    assert code == 2 and "unknown input format" in err
    assert not other.exists()
    assert "Traceback" not in err


def test_list_formats() -> None:
    code, out, _ = run("ingest", "--list-formats")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines()}
    assert {"evtx", "xml", "evtx-json", "otrf-zip", "defender-stream", "la-query-api"} <= names
