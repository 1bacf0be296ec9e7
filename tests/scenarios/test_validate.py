"""The validation matrix over the shipped scenarios, and the validate / simulate commands."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustwatch.cli.main import cli
from trustwatch.rules.model import load_rules
from trustwatch.scenarios.model import ALL_SOURCES, HOSTS, SOURCES, load_scenarios
from trustwatch.scenarios.validate import FIRED, KNOWN_MISS, Matrix, validate

REFERENCE = "spec_certificate_trust_store_modification"
RULES = Path(str(resources.files("trustwatch.content"))) / "rules"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return validate(load_scenarios())


def test_matrix_is_all_green(matrix: Matrix) -> None:
    bad = [(r.scenario.id, r.source, r.cells, r.problems) for r in matrix.rows if not r.ok]
    assert not bad


# Attacks no shipped rule detects: each row says so with a documented miss (docs/scenarios.md).
# None today: the look-alike domain on a Let's Encrypt certificate was one until the network rule
# tls_brand_lookalike_free_ca.
UNDETECTED: set[str] = set()


def test_every_scenario_runs_on_every_host(matrix: Matrix) -> None:
    assert [(r.scenario.id, r.source) for r in matrix.rows] == [
        (s.id, src) for s in load_scenarios() for src in s.sources
    ]
    assert {r.source for r in matrix.rows} == set(ALL_SOURCES)


def test_every_attack_is_detected_by_a_default_rule_on_every_host(matrix: Matrix) -> None:
    for row in matrix.rows:
        if row.scenario.kind in ("attack", "evasion") and row.scenario.id not in UNDETECTED:
            default = {s: c for s, c in row.cells.items() if s != REFERENCE}
            assert FIRED in default.values(), (row.scenario.id, row.source)


def test_undetected_attacks_are_documented_misses_not_passes(matrix: Matrix) -> None:
    """Nothing fires on them, and the row shows it: a known miss with its reason."""
    rows = [r for r in matrix.rows if r.scenario.id in UNDETECTED]
    assert len(rows) == len(UNDETECTED) * 3
    for row in rows:
        assert FIRED not in row.cells.values(), "a rule detects it now: update UNDETECTED"
        misses = row.scenario.expect[row.source].known_misses
        assert KNOWN_MISS in row.cells.values()
        assert all("NOT DETECTED" in m for m in misses.values())


def test_network_scenarios_fire_the_network_pack_only(matrix: Matrix) -> None:
    """Network rows: what fires is network rules; Windows rows: no network rule fires."""
    network = {r.path.stem for r in load_rules(["network"])}
    fired = {
        (r.scenario.id, r.source): {stem for stem, c in r.cells.items() if c == FIRED}
        for r in matrix.rows
    }
    for row in matrix.rows:
        got = fired[(row.scenario.id, row.source)]
        assert got <= network if row.scenario.host == "network" else not got & network
    expected = {
        "attack-c2-cobalt-strike-default-certificate": {
            "tls_known_bad_certificate",
            "tls_self_signed_external_server",
        },
        "attack-c2-asyncrat-default-certificate": {
            "tls_known_bad_certificate",
            "tls_self_signed_external_server",
        },
        "evasion-c2-cobalt-strike-regenerated-keystore": {"tls_known_bad_certificate"},
        "evasion-c2-openssl-default-certificate-with-sni": {"tls_placeholder_subject"},
        "attack-lookalike-domain-free-ca-certificate": {"tls_brand_lookalike_free_ca"},
        "benign-vmware-esx-default-certificate": set(),
        "benign-rdp-host-certificate": set(),
        "benign-printer-self-signed-certificate": set(),
        "benign-public-site-free-ca-certificate": set(),
    }
    for scenario_id, stems in expected.items():
        for source in HOSTS["network"]:
            assert fired[(scenario_id, source)] == stems, (scenario_id, source)


def test_validate_runs_a_network_scenario_on_the_sensors() -> None:
    args = ["validate", "benign-rdp-host-certificate", "--format", "json", "--rules", "network"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] and [r["source"] for r in doc["rows"]] == ["zeek", "zeek-json", "suricata"]


def test_benign_scenarios_raise_nothing_from_the_default_pack(matrix: Matrix) -> None:
    """Except where the scenario documents why its exclusion cannot apply on that host."""
    kept = []
    for row in matrix.rows:
        fired = sorted(s for s, c in row.cells.items() if s != REFERENCE and c == FIRED)
        if row.scenario.kind == "benign" and fired:
            assert row.scenario.expect[row.source].fp_not_removed, (row.scenario.id, row.source)
            kept.append((row.scenario.id, row.source, fired))
    # Security 4657 rows get their parent and command line from the 4688 of the same process
    # id, so the SCCM exclusions match there too: no benign scenario needs the escape hatch
    assert kept == []


def test_known_false_positives_are_removed_by_their_exclusion(matrix: Matrix) -> None:
    for row in matrix.rows:
        fp = row.scenario.known_false_positive
        if fp and not row.scenario.expect[row.source].fp_not_removed:
            assert row.suppressed.get(fp["exclusion"]), (row.scenario.id, row.source)
    dlp = [r for r in matrix.rows if r.scenario.id == "benign-dlp-endpoint-inspection-root"]
    assert all(r.suppressed.get("edr-dlp-enrolment") for r in dlp) and len(dlp) == len(SOURCES)


def test_the_security_host_blind_spots_are_telemetry_not_rules(matrix: Matrix) -> None:
    """Misses on the Security host only where its logs lack the evidence, each with a reason."""
    misses = {
        (r.scenario.id, stem)
        for r in matrix.rows
        if r.source == "security"
        for stem, state in r.cells.items()
        if state == KNOWN_MISS and stem != REFERENCE
    }
    assert misses == {
        ("evasion-per-user-root-store", "trust_store_certificate_write"),
        ("evasion-renamed-certutil", "certutil_certificate_install"),
        ("evasion-renamed-certutil", "renamed_certutil"),
        ("spec-test-1-certutil-root", "certificate_file_written_by_script_host"),
        ("spec-test-2-import-certificate", "certificate_file_written_by_script_host"),
        ("attack-mimikatz-key-export-system32", "key_file_written_by_unexpected_process"),
    }


def test_the_specification_rule_blind_spots_show(matrix: Matrix) -> None:
    misses = {r.scenario.id for r in matrix.rows if r.cells[REFERENCE] == KNOWN_MISS}
    assert {"spec-test-3-store-enumeration", "spec-test-4-certutil-urlcache"} <= misses


def test_another_seed_gives_the_same_matrix(matrix: Matrix) -> None:
    other = validate(load_scenarios(), seed=987)
    assert [(r.scenario.id, r.source, r.cells) for r in other.rows] == [
        (r.scenario.id, r.source, r.cells) for r in matrix.rows
    ]


def test_validate_command_json() -> None:
    args = ["validate", "spec-test-4-certutil-urlcache", "--format", "json", "--rules", "default"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] and [r["source"] for r in doc["rows"]] == list(SOURCES)
    assert doc["rows"][0]["cells"]["certutil_download"] == FIRED


def test_validate_unknown_scenario_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["validate", "no-such-scenario"])
    assert result.exit_code == 2


def test_simulate_writes_both_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["simulate", "spec-test-1-certutil-root", "--out", str(out), "--seed", "3"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "spec-test-1-certutil-root.defender.json",
        "spec-test-1-certutil-root.security.jsonl",
        "spec-test-1-certutil-root.sysmon.xml",
    ]


def test_simulate_writes_a_network_scenarios_sensor_logs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["simulate", "attack-c2-asyncrat-default-certificate", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    stem = "attack-c2-asyncrat-default-certificate"
    assert sorted(p.name for p in out.iterdir()) == [
        f"{stem}.eve.json",
        f"{stem}.ssl.json",
        f"{stem}.ssl.log",
        f"{stem}.x509.json",
        f"{stem}.x509.log",
    ]
    # a Windows source asked of a network scenario writes nothing for it
    other = tmp_path / "other"
    args = ["simulate", stem, "--out", str(other), "--source", "sysmon"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert not list(other.iterdir())


def test_a_file_read_as_another_format_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import trustwatch.scenarios.validate as module

    monkeypatch.setitem(module.INGEST_FORMATS, "security", "xml")
    scenarios = load_scenarios(["benign-gpo-root-certificate"])
    one_rule = str(RULES / "default" / "trust_store_certificate_write.yaml")
    rows = validate(scenarios, (one_rule,), sources=("security",)).rows
    assert rows[0].problems == ["read as evtx-json, not as xml"] and not rows[0].ok


def test_certificate_verdicts_per_host(matrix: Matrix) -> None:
    """The forged root is a lookalike where its script block is logged; ART's clone is listed."""
    verdicts = {
        (r.scenario.id, r.source): r.certificate_verdict
        for r in matrix.rows
        if r.scenario.id in ("evasion-forged-microsoft-root", "art-t1553-004-7-wmi-cloned-root")
    }
    assert verdicts == {
        ("evasion-forged-microsoft-root", "sysmon"): "lookalike",
        ("evasion-forged-microsoft-root", "defender"): "unknown",
        ("evasion-forged-microsoft-root", "security"): "lookalike",
        ("art-t1553-004-7-wmi-cloned-root", "sysmon"): "known-bad",
        ("art-t1553-004-7-wmi-cloned-root", "defender"): "known-bad",
        ("art-t1553-004-7-wmi-cloned-root", "security"): "known-bad",
    }
    benign = {r.certificate_verdict for r in matrix.rows if r.scenario.kind == "benign"}
    # corporate and agent roots (the reference rule alerts on some) are unknown, never worse
    assert benign <= {"", "unknown", "public-root", "microsoft-root"}


def test_a_wrong_certificate_verdict_is_a_mismatch() -> None:
    [scenario] = load_scenarios(["art-t1553-004-7-wmi-cloned-root"])
    wrong = {
        s: dataclasses.replace(e, certificate_verdict="public-root")
        for s, e in scenario.expect.items()
    }
    result = validate(
        [dataclasses.replace(scenario, expect=wrong)], ("default",), sources=("defender",)
    )
    [row] = result.rows
    assert not result.ok
    assert row.problems == ["certificate verdict: known-bad, expected public-root"]


def test_scenario_certificate_verdicts_are_checked_when_read(tmp_path: Path) -> None:
    from trustwatch.scenarios.model import ScenarioError, load_scenario

    path = tmp_path / "x.yaml"
    path.write_text(
        "id: x\ntitle: t\nkind: attack\nsource: s\ncertificate_verdict: evil\n"
        "steps:\n  - id: p\n    process: {image: a.exe, command_line: a}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match="certificate_verdict: 'evil' is not one of"):
        load_scenario(path)
