"""Incidents: grouping, stable ids, the demo's stories and narratives, the terminal layout."""

from __future__ import annotations

import io
import json
import random
import re
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from trustwatch.cli.alert_view import print_alerts, print_incidents, shorten_middle
from trustwatch.cli.main import cli
from trustwatch.incidents import find, group, incident_id, shipped_catalog
from trustwatch.records import SecurityAlert, SecurityIncident
from trustwatch.rules.model import load_rules
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import DEFAULT_SEED
from trustwatch.scenarios.samples import DEMO

FOLDER = Path(str(resources.files("trustwatch.content.samples").joinpath("hunt")))

# what each attack scenario of the demo did, as its incident's narrative must tell it
STORIES = {
    "spec-test-1-certutil-root": [
        "powershell.exe run by CONTOSO\\erin.tan created a self-signed certificate "
        "atomic-root.test and exported it to C:\\Users\\erin.tan\\AppData\\Local\\Temp\\"
        "atomic-root.cer at 10:45:38.",
        "certutil.exe run by CONTOSO\\erin.tan added certificate "
        "EA8B4616FBF8679CFCB03CA7DCB65A335227A7DB from "
        "C:\\Users\\erin.tan\\AppData\\Local\\Temp\\atomic-root.cer to LocalMachine\\Root "
        "(certutil -addstore) at 10:45:58.",
    ],
    "spec-test-2-import-certificate": [
        "created a self-signed certificate and exported it",
        "with Import-Certificate",
        "wrote the certificate file C:\\Users\\bob.lindqvist\\AppData\\Local\\Temp\\"
        "atomic-import.cer",
        "wrote certificate 7599F6D26D024CB1A2276DBB2B02BFC1AB891B2E into the LocalMachine\\Root",
    ],
    "spec-test-3-store-enumeration": [
        "certutil.exe run by WOODGROV\\carol.haddad enumerated certificates in "
        "LocalMachine\\Root and enumerated certificates in LocalMachine\\CA",
        "powershell.exe run by WOODGROV\\carol.haddad enumerated certificates at 10:46:08.",
    ],
    "spec-test-4-certutil-urlcache": [
        "certutil.exe run by CONTOSO\\frank.kowalski downloaded "
        "http://127.0.0.1:8080/atomic-root.cer to "
        "C:\\Users\\frank.kowalski\\AppData\\Local\\Temp\\atomic-root.cer"
    ],
    "art-t1553-004-7-wmi-cloned-root": [
        "wmiprvse.exe run by nt authority\\system wrote certificate "
        "1F3D38F280635F275BE92B87CF83E40E40458400",
        "into the LocalMachine\\Root store",
        "into the CurrentUser\\Root store",
    ],
    "evasion-renamed-certutil": [
        "cu.exe run by NORTHWIN\\heidi.moreau ran as a renamed copy of certutil.exe",
        "added certificate 0F2AD798A52EC9E05BA5280EB8B5328743EED360 from C:\\Users\\Public\\r.cer "
        "to LocalMachine\\Root",
    ],
    "evasion-forged-microsoft-root": [
        "powershell.exe run by TAILSPIN\\erin.ng",
        'wrote certificate 7C95805E4F31812C2CF2ACCDDDF7B0591710D668 "Microsoft Root Certificate '
        'Authority 2010" (lookalike) into the LocalMachine\\Root store',
    ],
}


@pytest.fixture(scope="module")
def demo_records() -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--format", "json"])
    assert result.exit_code == 1, result.stderr
    records: list[dict[str, object]] = json.loads(result.stdout)
    return records


@pytest.fixture(scope="module")
def demo(demo_records: list[dict[str, object]]) -> list[SecurityIncident]:
    return group([SecurityAlert.from_record(r) for r in demo_records])


def test_typed_alerts_give_back_the_same_json(demo_records: list[dict[str, object]]) -> None:
    for record in demo_records:
        typed = SecurityAlert.from_record(record)
        assert json.dumps(typed.to_record(), ensure_ascii=False) == json.dumps(
            record, ensure_ascii=False
        )


def test_demo_is_one_incident_per_attacked_device(demo: list[SecurityIncident]) -> None:
    scenarios = load_scenarios(sorted({sid for sid, _ in DEMO}))
    attacked = {make_host(s, DEFAULT_SEED).device for s in scenarios if s.kind != "benign"}
    assert len(demo) == len(attacked) == 7
    assert sorted(d for i in demo for d in i.entities.devices) == sorted(attacked)
    assert sum(len(i.alerts) for i in demo) == 22
    assert [i.incident_number for i in demo] == list(range(1, 8))


@pytest.mark.parametrize("scenario", sorted(STORIES))
def test_each_narrative_tells_its_scenario(demo: list[SecurityIncident], scenario: str) -> None:
    [loaded] = load_scenarios([scenario])
    device = make_host(loaded, DEFAULT_SEED).device
    [incident] = [i for i in demo if device in i.entities.devices]
    for part in STORIES[scenario]:
        assert part in incident.description, incident.description


def test_severity_chain_and_entities(demo: list[SecurityIncident]) -> None:
    by_device = {i.entities.devices[0]: i for i in demo}
    story = by_device["ws-hr-749.hq.contoso.com"]
    assert story.severity == "High"
    techniques = [s.technique for s in story.chain]
    assert techniques.index("T1588.004") < techniques.index("T1553.004")
    assert techniques.index("T1553.004") < techniques.index("T1105")
    assert story.entities.certificates == ("EA8B4616FBF8679CFCB03CA7DCB65A335227A7DB",)
    assert story.entities.accounts == ("CONTOSO\\erin.tan",)
    enumeration = by_device["ws-eng-399.ad.woodgrove.com"]
    assert enumeration.severity == "Medium"  # the highest of Low, Low, Medium
    record = story.to_record()
    assert record["Type"] == "SecurityIncident" and record["IncidentName"] == story.incident_name
    assert record["AdditionalData"]["alertsCount"] == 5
    assert set(record["AlertIds"]) == {a.system_alert_id for a in story.alerts}


def test_ids_are_stable_and_found_by_prefix(demo: list[SecurityIncident]) -> None:
    alerts = [a for i in demo for a in i.alerts]
    random.Random(7).shuffle(alerts)
    again = group(alerts)
    assert [i.incident_name for i in again] == [i.incident_name for i in demo]
    first = demo[0]
    assert first.incident_name == incident_id(a.system_alert_id for a in first.alerts)
    assert find(demo, first.incident_name[:8].upper()) is first
    assert find(demo, "") is None


def _moved(alert: SecurityAlert, start: str, device: str, thumbprint: str) -> SecurityAlert:
    row = {**alert.main_row, "DeviceName": device, "CertThumbprint": thumbprint}
    return replace(
        alert,
        start_time=start,
        end_time=start,
        compromised_entity=device,
        evidence=(row,),
        certificates=None,
        system_alert_id=f"{device}-{start}",
    )


def test_window_device_and_thumbprint(demo: list[SecurityIncident]) -> None:
    base = demo[0].alerts[0]
    a = _moved(base, "2026-01-01T00:00:00Z", "ws1", "")
    b = _moved(base, "2026-01-02T12:00:00Z", "ws1", "")  # 36 hours later, same device
    c = _moved(base, "2026-01-02T13:00:00Z", "ws2", "AB" * 20)
    d = _moved(base, "2026-01-02T14:00:00Z", "WS1", "ab" * 20)  # joins b's and c's incidents
    assert [len(i.alerts) for i in group([a, b, c, d], timedelta(hours=24))] == [1, 3]
    assert [len(i.alerts) for i in group([a, b, c, d], timedelta(hours=72))] == [4]
    assert len(group([a, b, c, d], None)) == 4


def _render(incidents: list[SecurityIncident], width: int) -> list[str]:
    out = io.StringIO()
    print_incidents(Console(file=out, width=width, color_system=None), incidents)
    return out.getvalue().splitlines()


@pytest.mark.parametrize(("width", "most"), [(80, 170), (200, 150)])
def test_view_never_breaks_a_token(demo: list[SecurityIncident], width: int, most: int) -> None:
    lines = _render(demo, width)
    assert len(lines) <= most  # measured 161 at 80 columns, 124 at 200
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for incident in demo:
        assert incident.incident_name in text
        for thumbprint in incident.entities.certificates:
            for line in lines:  # a thumbprint is whole wherever it starts
                if thumbprint[:8] in line:
                    assert thumbprint in line, line
        for path in incident.entities.files:
            assert any(path in line for line in lines), path
        for alert in incident.alerts:
            clock = alert.start_time[11:19]
            assert re.search(rf"(^|\s){clock}(\s|$)", text), clock
    assert "22 alerts in 7 incidents" in text


@pytest.mark.parametrize("width", [120, 160, 200])
def test_a_certificate_cell_never_wraps(demo: list[SecurityIncident], width: int) -> None:
    """The certificate column shows "verdict (CN)" on one line, or the verdict alone; the CN is
    in the incident's header (it wrapped to one word a line at 160 and 200 columns)."""
    lines = _render(demo, width)
    assert (
        "certificates: 7C95805E4F31812C2CF2ACCDDDF7B0591710D668 (lookalike: Microsoft Root "
        "Certificate Authority 2010)" in " ".join(line.strip() for line in lines)
    )
    row = re.compile(r"^  \d\d:\d\d:\d\d  ")
    for n, line in enumerate(lines):
        if not row.match(line):
            continue
        block = [line]
        for after in lines[n + 1 :]:
            if not after.strip() or row.match(after):
                break
            block.append(after)
        for part in ("(Microsoft", "Authority", "2010)"):
            assert all(part not in b for b in block[1:]), "\n".join(block)


def test_columns_and_wide(demo: list[SecurityIncident]) -> None:
    """--columns: those columns in that order, fitted to the width; --wide: every column whole."""
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    print_incidents(console, demo, columns=["time", "thumbprint", "why"])
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    headers = [line.split() for line in lines if line.strip().startswith("time ")]
    assert headers and all(h == ["time", "thumbprint", "why"] for h in headers)
    assert "  10:45:59  EA8B4616FBF8679CFCB03CA7DCB65A335227A7DB  " in out.getvalue()
    out = io.StringIO()  # the order asked for; tokens too wide for the screen are not cut
    print_incidents(Console(file=out, width=40, color_system=None), demo, columns=["why", "time"])
    text = out.getvalue()
    assert "  why " in text and "  time " not in text.split("  why ")[0].splitlines()[-1]
    assert "10:45:59" in text and "…" in text
    out = io.StringIO()
    print_incidents(Console(file=out, width=40, color_system=None), demo, columns=["thumbprint"])
    assert "EA8B4616FBF8679CFCB03CA7DCB65A335227A7DB" in out.getvalue()
    out = io.StringIO()
    print_incidents(Console(file=out, width=80, color_system=None), demo, wide=True)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) > 200  # past the console's width
    command = (
        '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoProfile '
        "-ExecutionPolicy Bypass -File C:\\Users\\bob.lindqvist\\AppData\\Local\\Temp\\"
        "install-root.ps1"
    )
    assert command in text and "…" not in text  # nothing shortened
    piped = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--columns", "time,device,why"])
    assert piped.exit_code == 1, piped.stderr
    assert "  time      device                         why" in piped.stdout
    assert "ws-hr-749.hq.contoso.com" in piped.stdout and "severity" not in piped.stdout


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_flat_view_names_each_alerts_device(demo: list[SecurityIncident], width: int) -> None:
    """--no-grouping has no incident header: the device is a column, or starts the line under
    a stacked rule (it was the last optional column: at 80 and 200 columns no device showed)."""
    alerts = sorted((a for i in demo for a in i.alerts), key=lambda a: a.start_time)
    out = io.StringIO()
    print_alerts(Console(file=out, width=width, color_system=None), alerts)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    starts = [n for n, line in enumerate(lines) if re.match(r"^2026-03-09 \d\d:\d\d:\d\d ", line)]
    assert len(starts) == 22
    for alert, n, end in zip(alerts, starts, [*starts[1:], len(lines) - 1], strict=True):
        block = "\n".join(lines[n:end])
        assert alert.compromised_entity in block, block


def test_narrow_view_puts_why_under_the_rule(demo: list[SecurityIncident]) -> None:
    narrow = "\n".join(_render(demo, 80))
    assert "rule / why" in narrow
    assert '"C:\\…\\certutil.exe" -addstore Root C:\\…\\atomic-root.cer' in narrow
    wide = "\n".join(_render(demo, 200))
    assert "thumbprint" in wide and "rule / why" not in wide


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("a\\b\\c\\d\\e.exe -x C:\\p\\q\\r.cer", 23, "a\\…\\e.exe -x C:\\…\\r.cer"),
        ("HKEY\\S\\M\\" + "AB" * 20, 44, "…\\" + "AB" * 20),
        ("one two three four five six", 15, "one two … six"),
        ("x" * 30, 9, "xxxx…xxxx"),
    ],
)
def test_shorten_middle(text: str, width: int, expected: str) -> None:
    assert shorten_middle(text, width) == expected
    assert len(shorten_middle(text, width)) <= width


def test_hunt_cli_incidents_file_csv_and_options(tmp_path: Path) -> None:
    path = tmp_path / "incidents.jsonl"
    result = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--incidents", str(path)])
    assert result.exit_code == 1, result.stderr
    assert "incidents: 7" in result.stderr and "22 alerts in 7 incidents" in result.stdout
    incidents = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(incidents) == 7 and sum(len(i["AlertIds"]) for i in incidents) == 22
    flat = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--no-grouping", "--format", "csv"])
    header = flat.stdout.splitlines()[0]
    assert header.startswith("time,rule,severity,device,") and header.endswith(",incident,why")
    bad = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--columns", "time,colour"])
    assert bad.exit_code == 2 and "unknown column 'colour'" in bad.stderr
    bad = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--group-window", "soon"])
    assert bad.exit_code == 2 and "--group-window 'soon'" in bad.stderr


def test_every_shipped_rule_has_a_narrative() -> None:
    """Each rule of the default and network packs has its phrase (tests/rules/
    test_shipped_pack.py checks every alert of their tests files reads in it)."""
    catalog = shipped_catalog()
    rules = load_rules(["default", "network"])
    assert [r.path.name for r in rules if r.id not in catalog.narratives] == []
