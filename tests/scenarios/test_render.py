"""Scenario rendering: determinism, the shape of both telemetry sources, and the real ingest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.scenarios.model import ALL_SOURCES, SOURCES, load_scenarios
from trustwatch.scenarios.render import INGEST_FORMATS, render, write

SCENARIOS = load_scenarios()
WINDOWS = load_scenarios(host="windows")
SPEC_TESTS = [s for s in SCENARIOS if s.source.startswith("specification test")]


def test_the_required_scenarios_ship() -> None:
    ids = {s.id for s in SCENARIOS}
    assert len(SPEC_TESTS) == 4
    assert {
        "art-t1553-004-5-move-item-root",
        "art-t1553-004-6-certutil-addstore-my",
        "art-t1553-004-7-wmi-cloned-root",
        "benign-authroot-auto-update",
        "benign-gathernetworkinfo",
        "benign-zscaler-root-install",
        "benign-gpo-root-certificate",
        "benign-dlp-endpoint-inspection-root",
        "benign-edge-updater",
        "benign-firefox-maintenance-service",
        "benign-windows-live-id-token-issuer",
    } <= ids


def test_every_source_renders_every_scenario_as_its_ingest_format(tmp_path: Path) -> None:
    """Each source's files are recognised as the format validate reads them with."""
    written: dict[Path, str] = {}
    for scenario in SCENARIOS:
        for source, paths in write(scenario, tmp_path, 2).items():
            written.update(dict.fromkeys(paths, source))
    planned, _ = pipeline.plan([tmp_path])
    by_source: dict[str, set[str]] = {}
    for path, fmt, _ in planned:
        by_source.setdefault(written[path], set()).add(fmt)
    assert by_source == {src: {INGEST_FORMATS[src]} for src in ALL_SOURCES}
    files_per_source = {"zeek": 2, "zeek-json": 2}  # ssl and x509 logs
    assert len(planned) == sum(files_per_source.get(src, 1) for s in SCENARIOS for src in s.sources)


@pytest.mark.parametrize("source", SOURCES)
def test_same_seed_gives_byte_identical_output(source: str) -> None:
    for scenario in WINDOWS:
        assert render(scenario, source, 11) == render(scenario, source, 11)


def _guids(text: str) -> set[str]:
    return set(re.findall(r'<Data Name="(?:Parent)?ProcessGuid">([^<]+)</Data>', text))


def test_a_different_seed_changes_the_host_not_the_activity() -> None:
    scenario = next(s for s in SCENARIOS if s.id == "spec-test-1-certutil-root")
    a, b = render(scenario, "sysmon", 1), render(scenario, "sysmon", 2)
    assert a != b
    computer = re.compile(r"<Computer>([^<]+)</Computer>")
    assert computer.findall(a)[0] != computer.findall(b)[0]
    assert not _guids(a) & _guids(b)
    ids = re.compile(r"<EventID>(\d+)</EventID>")
    assert ids.findall(a) == ids.findall(b)  # the same events, in the same order
    images = re.compile(r'<Data Name="Image">([^<]+)</Data>')
    assert images.findall(a) == images.findall(b)
    da, db = (json.loads(render(scenario, "defender", n)) for n in (1, 2))
    assert [r["category"] for r in da["records"]] == [r["category"] for r in db["records"]]
    assert (
        da["records"][0]["properties"]["DeviceName"] != db["records"][0]["properties"]["DeviceName"]
    )
    sids = {r["properties"]["AccountSid"] for r in da["records"] if "AccountSid" in r["properties"]}
    assert sids and not sids & {r["properties"].get("AccountSid") for r in db["records"]}


def test_sources_are_independent_of_render_order() -> None:
    scenario = WINDOWS[0]
    first = {src: render(scenario, src, 3) for src in SOURCES}
    assert {src: render(scenario, src, 3) for src in reversed(SOURCES)} == first


def test_a_different_seed_changes_the_security_host_not_its_events() -> None:
    scenario = next(s for s in SCENARIOS if s.id == "spec-test-2-import-certificate")
    a, b = ([json.loads(x) for x in render(scenario, "security", n).splitlines()] for n in (1, 2))
    assert [d["Event"]["System"]["EventID"] for d in a] == [
        d["Event"]["System"]["EventID"] for d in b
    ]
    assert a[0]["Event"]["System"]["Computer"] != b[0]["Event"]["System"]["Computer"]
    assert (
        a[0]["Event"]["EventData"]["NewProcessName"] == b[0]["Event"]["EventData"]["NewProcessName"]
    )


def test_sysmon_render_goes_through_ingest_with_linked_processes(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.id == "art-t1553-004-7-wmi-cloned-root")
    files = write(scenario, tmp_path, 5)
    planned, _ = pipeline.plan(files["sysmon"])
    assert [fmt for _, fmt, _ in planned] == ["xml"]
    ws = Workspace(None)
    try:
        ws.ingest(planned)
        rows = ws.con.execute(
            "SELECT RegistryKey, RegistryValueName, InitiatingProcessFileName, "
            "InitiatingProcessCommandLine, InitiatingProcessParentFileName "
            "FROM DeviceRegistryEvents WHERE ActionType = 'RegistryValueSet' ORDER BY 1"
        ).fetchall()
    finally:
        ws.close()
    thumb = "1F3D38F280635F275BE92B87CF83E40E40458400"
    assert [r[0].split("\\")[0] for r in rows] == ["HKEY_CURRENT_USER", "HKEY_LOCAL_MACHINE"]
    assert all(r[0].endswith(f"Root\\Certificates\\{thumb}") and r[1] == "Blob" for r in rows)
    assert {r[2] for r in rows} == {"WmiPrvSE.exe"}
    assert all("-Embedding" in r[3] and r[4] == "svchost.exe" for r in rows)


def test_defender_render_is_an_event_hub_message(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.id == "spec-test-4-certutil-urlcache")
    paths = write(scenario, tmp_path, 5)["defender"]
    planned, _ = pipeline.plan(paths)
    assert [fmt for _, fmt, _ in planned] == ["defender-stream"]
    ws = Workspace(None)
    try:
        ws.ingest(planned)
        net = ws.con.execute(
            "SELECT RemoteIP, RemotePort, InitiatingProcessFileName FROM DeviceNetworkEvents"
        ).fetchall()
    finally:
        ws.close()
    assert net == [("127.0.0.1", 8080, "certutil.exe")]
