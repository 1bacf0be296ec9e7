"""The validation matrix over the shipped scenarios, and the validate / simulate commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustwatch.cli.main import cli
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.validate import FIRED, KNOWN_MISS, Matrix, validate

REFERENCE = "spec_certificate_trust_store_modification"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return validate(load_scenarios())


def test_matrix_is_all_green(matrix: Matrix) -> None:
    bad = [(r.scenario.id, r.source, r.cells, r.problems) for r in matrix.rows if not r.ok]
    assert not bad


def test_every_attack_is_detected_by_a_default_rule_on_both_hosts(matrix: Matrix) -> None:
    for row in matrix.rows:
        if row.scenario.kind in ("attack", "evasion"):
            default = {s: c for s, c in row.cells.items() if s != REFERENCE}
            assert FIRED in default.values(), (row.scenario.id, row.source)


def test_benign_scenarios_raise_nothing_from_the_default_pack(matrix: Matrix) -> None:
    for row in matrix.rows:
        if row.scenario.kind == "benign":
            assert all(c != FIRED for s, c in row.cells.items() if s != REFERENCE)


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
    assert doc["ok"] and {r["source"] for r in doc["rows"]} == {"sysmon", "defender"}
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
        "spec-test-1-certutil-root.sysmon.xml",
    ]
