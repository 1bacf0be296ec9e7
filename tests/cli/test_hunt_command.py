"""`trustwatch hunt` and `trustwatch rules list|show|lint|test` from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from trustwatch.cli.main import cli

EVENT = """<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>
<Provider Name="Microsoft-Windows-Sysmon" Guid="{{5770385F-C22A-43E0-BF4C-06F5698FFBD9}}"/>
<EventID>13</EventID><Version>2</Version><Level>4</Level><Task>13</Task><Opcode>0</Opcode>
<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2024-05-01T10:{m:02d}:00.1Z"/>
<EventRecordID>{m}</EventRecordID><Execution ProcessID="3044" ThreadID="4012"/>
<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>WS01.corp.local</Computer>
<Security UserID="S-1-5-18"/></System><EventData>
<Data Name="EventType">SetValue</Data><Data Name="UtcTime">2024-05-01 10:{m:02d}:00.100</Data>
<Data Name="ProcessGuid">{{11111111-2222-3333-4444-55555555555{m}}}</Data>
<Data Name="ProcessId">4242</Data><Data Name="Image">{image}</Data>
<Data Name="TargetObject">{keys}\\{store}\\Certificates\\{thumb}\\Blob</Data>
<Data Name="Details">Binary Data</Data><Data Name="User">CORP\\bob</Data></EventData></Event>
"""
PLANTED = "3B1EFD3A66EA28B16697394703A72CA340A05BD5"
KEYS = "HKLM\\SOFTWARE\\Microsoft\\SystemCertificates"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def telemetry(tmp_path: Path) -> Path:
    """A planted root (svchost outside System32), Windows' own AuthRoot update, and Zscaler."""
    events = [
        EVENT.format(
            keys=KEYS, m=1, image=r"C:\Users\Public\svchost.exe", store="ROOT", thumb=PLANTED
        ),
        EVENT.format(
            keys=KEYS,
            m=2,
            image=r"C:\Windows\System32\svchost.exe",
            store="AuthRoot",
            thumb="AD" * 20,
        ),
        EVENT.format(
            keys=KEYS,
            m=3,
            image=r"C:\Program Files\Zscaler\ZSATunnel\ZSATunnel.exe",
            store="ROOT",
            thumb="CC" * 20,
        ),
    ]
    path = tmp_path / "sysmon.xml"
    path.write_text("<Events>" + "".join(events) + "</Events>", encoding="utf-8")
    return path


def test_hunt_prints_alerts_writes_security_alerts_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    code, stdout, stderr = run("hunt", str(telemetry(tmp_path)), "--out", str(out))
    assert code == 1, stderr
    assert PLANTED in stdout and "High" in stdout and "ws01.corp.local" in stdout
    assert "AuthRoot" not in stdout
    assert "tls-inspection-and-vpn-agents: suppressed 1" in stderr
    alerts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [a["AlertName"] for a in alerts] == ["Certificate added to a Windows trust store"]
    assert alerts[0]["Evidence"][0]["ProcessPath"] == r"C:\Users\Public\svchost.exe"
    assert alerts[0]["Type"] == "SecurityAlert"


def test_hunt_without_tuning_shows_the_agent(tmp_path: Path) -> None:
    code, stdout, _ = run("hunt", str(telemetry(tmp_path)), "--no-tuning", "--format", "json")
    assert code == 1
    stores = sorted(a["Evidence"][0]["CertThumbprint"] for a in json.loads(stdout))
    assert stores == sorted([PLANTED, "CC" * 20])


def test_hunt_with_nothing_found_exits_0(tmp_path: Path) -> None:
    code, stdout, stderr = run("hunt", str(telemetry(tmp_path)), "--now", "2030-01-01T00:00:00Z")
    assert code == 0, stderr
    assert "0 alerts" in stdout


def test_hunt_replay_prints_alerts_per_day(tmp_path: Path) -> None:
    code, stdout, _ = run("hunt", str(telemetry(tmp_path)), "--replay", "--format", "csv")
    assert code == 1
    assert "2024-05-01" in stdout and "without de-duplication" in stdout


def test_hunt_runs_the_reference_rule(tmp_path: Path) -> None:
    code, stdout, _ = run(
        "hunt", str(telemetry(tmp_path)), "--rules", "reference", "--format", "jsonl", "--no-tuning"
    )
    assert code == 1
    names = {json.loads(line)["AlertName"] for line in stdout.splitlines()}
    assert names == {
        "Unauthorized certificate installation in Windows certificate trust stores "
        "(specification, verbatim)"
    }


def test_hunt_refuses_bad_input(tmp_path: Path) -> None:
    data = str(telemetry(tmp_path))
    assert run("hunt")[0] == 2
    code, _, stderr = run("hunt", data, "--now", "2024-01-01T00:00:00Z", "--replay")
    assert code == 2 and "not both" in stderr
    code, _, stderr = run("hunt", data, "--rules", str(tmp_path / "nope"))
    assert code == 2 and "no rules at" in stderr
    bad_tuning = tmp_path / "t.yaml"
    bad_tuning.write_text("exclusions:\n  - id: x\n    when: {colour: red}\n", encoding="utf-8")
    code, _, stderr = run("hunt", data, "--tuning", str(bad_tuning))
    assert code == 2 and "unknown condition 'colour'" in stderr
    code, _, stderr = run("hunt", data, "--report", "r.pdf")
    assert code == 2 and "extension chooses the format" in stderr
    code, _, stderr = run("hunt", data, "--report", str(tmp_path / "no" / "r.html"))
    assert code == 2 and "does not exist" in stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not telemetry\n", encoding="utf-8")
    code, _, stderr = run("hunt", str(notes))
    assert code == 2 and "nothing could be read" in stderr and "skipped:" in stderr


def test_hunt_ingests_into_a_workspace_and_hunts_it_again(tmp_path: Path) -> None:
    ws = str(tmp_path / "case.duckdb")
    assert run("hunt", str(telemetry(tmp_path)), "--workspace", ws)[0] == 1
    code, stdout, _ = run("hunt", "--workspace", ws)
    assert code == 1 and PLANTED in stdout


def test_hunt_memory_limit_bounds_the_ingest_and_the_workspace_queries(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws.duckdb")
    folder = str(telemetry(tmp_path))
    assert run("hunt", folder, "--workspace", ws, "--memory-limit", "256MB")[0] == 1
    code, stdout, _ = run("hunt", "--workspace", ws, "--memory-limit", "300MB", "--format", "json")
    assert code == 1
    assert len(json.loads(stdout)) >= 1
    code, _, stderr = run("hunt", "--workspace", ws, "--memory-limit", "lots")
    assert code == 2
    assert "--memory-limit 'lots' is not a size DuckDB accepts" in stderr
    code, _, stderr = run("hunt", folder, "--memory-limit", "lots")
    assert code == 2
    assert "--memory-limit 'lots' is not a size DuckDB accepts" in stderr


def test_rules_list_show_lint_and_test() -> None:
    code, stdout, _ = run("rules", "list")
    assert code == 0 and "trust_store_certificate_write" in stdout and "reference" in stdout
    code, stdout, _ = run("rules", "show", "trust_store_certificate_write")
    assert code == 0 and "queryFrequency" in stdout
    code, stdout, _ = run("rules", "show", "spec_certificate_trust_store_modification")
    assert "let DeviceRegistryEvents = DeviceRegistryEvents" in stdout
    code, _, stderr = run("rules", "show", "nope")
    assert code == 2 and "no rule 'nope'" in stderr
    code, stdout, stderr = run("rules", "lint", "--rules", "reference")
    assert code == 0, stdout
    assert "known KQL202" in stdout


def test_rules_lint_and_test_fail_on_a_broken_rule(tmp_path: Path) -> None:
    rule = tmp_path / "broken.yaml"
    rule.write_text(
        "id: not-a-guid\nname: broken\nkind: Scheduled\nquery: |\n  DeviceProcessEvents\n"
        "  | project Nope\n",
        encoding="utf-8",
    )
    (tmp_path / "broken.tests.yaml").write_text(
        "cases:\n  - name: one\n    expect: alert\n    tables: {}\n", encoding="utf-8"
    )
    code, stdout, _ = run("rules", "lint", "--rules", str(rule))
    assert code == 1
    assert "RULE102" in stdout
    assert f"{rule}:6:" in stdout  # the unknown column, located in the rule file
    code, stdout, _ = run("rules", "test", "--rules", str(rule))
    assert code == 1 and "FAIL broken: one:" in stdout


def hostile_folder(tmp_path: Path, attack: bool) -> Path:
    """Telemetry beside a file sniffed as JSON lines whose every line is garbage, an empty file
    and an EVTX file with nothing readable after its signature.

    With ``attack`` the telemetry holds the planted root; without, only Windows' own update.
    """
    folder = tmp_path / "triage"
    folder.mkdir()
    if attack:
        telemetry(folder)
    else:
        benign = EVENT.format(
            keys=KEYS,
            m=2,
            image=r"C:\Windows\System32\svchost.exe",
            store="AuthRoot",
            thumb="AD" * 20,
        )
        (folder / "benign.xml").write_text(f"<Events>{benign}</Events>", encoding="utf-8")
    (folder / "garbage.jsonl").write_text(
        '{"record_id": 1, "provider": "p", "event_id": 1, "fields": {}}\n{{{{\n[[[\nnot json\n',
        encoding="utf-8",
    )
    (folder / "empty.evtx").write_bytes(b"")
    (folder / "damaged.evtx").write_bytes(b"ElfFile\x00" + b"\xff" * 5000)
    return folder


def test_hunt_reports_skipped_input_and_still_exits_1_with_the_alert(tmp_path: Path) -> None:
    code, stdout, stderr = run("hunt", str(hostile_folder(tmp_path, attack=True)))
    assert code == 1, stderr
    assert PLANTED in stdout
    last = stderr.rstrip().splitlines()[-1]
    assert re.match(
        r"input skipped: 1 file\(s\) not read, 1 file\(s\) unreadable \(whole or in part\), "
        r"\d record\(s\) quarantined in 2 file\(s\)",
        last,
    )
    assert "--workspace W" in last  # where every quarantined record could be kept
    assert "skipped: " in stderr and "empty.evtx: the file is empty" in stderr
    assert "garbage.jsonl" in stderr
    assert "unreadable: " in stderr and "damaged.evtx: the rest of the file" in stderr


def test_hunt_with_nothing_found_but_input_skipped_exits_3(tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path, attack=False)
    code, stdout, stderr = run("hunt", str(folder))
    assert code == 3, stderr
    assert "0 alerts" in stdout
    assert stderr.rstrip().splitlines()[-1].startswith("input skipped: ")
    ws = tmp_path / "case.duckdb"
    code, _, stderr = run("hunt", str(folder), "--workspace", str(ws))
    assert code == 3
    assert f"{ws}, table _quarantine" in stderr.rstrip().splitlines()[-1]
    code, _, stderr = run("hunt", str(folder / "benign.xml"))
    assert code == 0 and "input skipped" not in stderr


def test_hunt_help_documents_exit_3() -> None:
    code, stdout, _ = run("hunt", "--help")
    assert code == 0
    assert "3 when there are none but input" in " ".join(stdout.split())
