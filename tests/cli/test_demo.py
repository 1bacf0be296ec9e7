"""The bundled demo telemetry (what `./dev demo` hunts) is the scenarios' own output."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from trustwatch.cli.main import cli
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import DEFAULT_SEED
from trustwatch.scenarios.samples import DEMO, demo_files

FOLDER = Path(str(resources.files("trustwatch.content.samples").joinpath("hunt")))
REGENERATE = "python -m trustwatch.scenarios.samples src/trustwatch/content/samples/hunt"


def test_bundled_files_are_the_rendered_scenarios() -> None:
    expected = demo_files()
    assert sorted(p.name for p in FOLDER.iterdir()) == sorted(expected), REGENERATE
    for name, text in expected.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == text, f"{name}: run {REGENERATE}"


def test_demo_hunt_alerts_on_every_attack_host_and_no_benign_one() -> None:
    result = CliRunner().invoke(cli, ["hunt", str(FOLDER), "--format", "json"])
    assert result.exit_code == 1, result.stderr
    alerts = json.loads(result.stdout)
    devices = {a["CompromisedEntity"] for a in alerts}
    scenarios = load_scenarios(sorted({sid for sid, _ in DEMO}))
    attacked = {make_host(s, DEFAULT_SEED).device for s in scenarios if s.kind != "benign"}
    assert devices == attacked
    assert len(alerts) >= len(attacked)
    assert "tls-inspection-and-vpn-agents: suppressed 1" in result.stderr


def test_simulate_writes_chosen_sources_of_several_scenarios(tmp_path: Path) -> None:
    args = ["simulate", "spec-test-1-certutil-root", "benign-gathernetworkinfo"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path), "--source", "defender"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "benign-gathernetworkinfo.defender.json",
        "spec-test-1-certutil-root.defender.json",
    ]
    bad = CliRunner().invoke(cli, [*args, "--out", str(tmp_path), "--source", "splunk"])
    assert bad.exit_code == 2 and "unknown telemetry source 'splunk'" in bad.stderr
