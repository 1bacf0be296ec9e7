"""Sigma rules converted (pySigma Kusto backend, Microsoft XDR pipeline) and run as rules."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from tests.sigma.sigma_rules import CERTUTIL_URLCACHE, SECURITY_ONLY, UNFILLED, write
from trustwatch import compiled, limits
from trustwatch.api import Session
from trustwatch.errors import RuleFileError
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules.model import rule_from_doc
from trustwatch.rules.runner import Hunter
from trustwatch.sigma import convert, document
from trustwatch.sigma.load import load_sigma, reason_counts, report_lines, runnable

SAMPLE = Path(str(resources.files("trustwatch.content.samples"))) / "hunt"
URLCACHE = SAMPLE / "spec-test-4-certutil-urlcache.sysmon.xml"


def test_a_rule_becomes_a_sentinel_rule(tmp_path: Path) -> None:
    found = load_sigma([write(tmp_path, "r.yml", CERTUTIL_URLCACHE)])
    assert not found.failures
    (rule,) = found.rules
    assert rule.pack == "sigma"
    assert rule.id == "6d1c2f0e-3b7a-4d2e-9a51-0c7e8f9b1a23"
    assert rule.name == "Certutil fetches a URL into its cache"
    assert rule.severity == "High"  # critical: Sentinel has no Critical
    assert rule.tactics == ["CommandAndControl", "DefenseEvasion"]  # stealth: DefenseEvasion
    assert rule.techniques == ["T1105", "T1027.013"]
    assert (rule.query_frequency, rule.query_period) == (rule.query_period, rule.query_frequency)
    assert rule.query_frequency.total_seconds() == 3600
    assert rule.triggered(1) and not rule.triggered(0)
    assert rule.query.startswith("DeviceProcessEvents\n| where FolderPath endswith")
    assert "Converted from Sigma rule 6d1c2f0e" in str(rule.doc["description"])


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        ("informational", "Informational"),
        ("low", "Low"),
        ("medium", "Medium"),
        ("high", "High"),
        ("critical", "High"),
        ("", "Medium"),
    ],
)
def test_levels_map_to_severities(level: str, severity: str) -> None:
    assert document.severity(level) == severity


def test_rules_that_do_not_convert_are_counted_by_reason(tmp_path: Path) -> None:
    write(tmp_path, "ok.yml", CERTUTIL_URLCACHE)
    write(tmp_path, "sub/security.yaml", SECURITY_ONLY)
    write(tmp_path, "sub/broken.yml", "title: [unclosed\n")
    (tmp_path / "sub" / "latin1.yml").write_bytes(b"title: caf\xe9\n")
    write(tmp_path, "ignored.txt", "not a rule")
    found = load_sigma([tmp_path])
    assert found.files == 4
    assert [r.id for r in found.rules] == ["6d1c2f0e-3b7a-4d2e-9a51-0c7e8f9b1a23"]
    stages = {f.path.name: (f.stage, f.reason) for f in found.failures}
    assert stages["security.yaml"][0] == "convert"
    assert stages["security.yaml"][1].startswith("no Defender XDR table")
    assert stages["latin1.yml"] == ("read", "not UTF-8 text")
    assert stages["broken.yml"][0] == "convert"
    assert sum(n for _, n in reason_counts(found.failures)) == 3


def test_a_file_past_the_yaml_limit_is_refused_before_pysigma(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yml", CERTUTIL_URLCACHE + "#" * 2000 + "\n")
    with limits.using(limits.parse(["yaml-bytes=1000"])):
        found = load_sigma([path])
    (failure,) = found.failures
    assert failure.stage == "read"
    assert "yaml-bytes" in failure.detail


def test_a_billion_laughs_is_refused_at_its_alias(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 9)]
    found = load_sigma([write(tmp_path, "lol.yml", "\n".join(lines) + "\n")])
    (failure,) = found.failures
    assert failure.reason == "over a YAML limit"
    assert failure.detail.startswith("line ")


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="no Sigma rules at"):
        load_sigma([tmp_path / "nowhere"])
    with pytest.raises(RuleFileError, match="no Sigma rule files"):
        load_sigma([tmp_path])


def test_conversion_is_cached_by_content(
    tmp_path: Path, compile_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "r.yml", CERTUTIL_URLCACHE)
    first = convert.convert_file(path)
    assert list((compiled.version_folder(compile_cache) / "sigma").iterdir())

    def refuse(text: str) -> str:
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "_convert_text", refuse)
    compiled.clear_memo()  # from the disk entry
    assert convert.convert_file(path) == first
    write(tmp_path, "r.yml", CERTUTIL_URLCACHE.replace("level: critical", "level: low"))
    with pytest.raises(AssertionError, match="converted again"):
        convert.convert_file(path)


def hunter_over(*paths: Path) -> Hunter:
    ws = Workspace(None)
    ws.ingest(pipeline.plan(list(paths))[0])
    return Hunter(Session(engine=ws.engine, views=pipeline.query_views(ws.engine)))


def test_alerts_carry_the_sigma_metadata(tmp_path: Path) -> None:
    found = load_sigma([write(tmp_path, "r.yml", CERTUTIL_URLCACHE)])
    hunter = hunter_over(URLCACHE)
    result = hunter.run(runnable(hunter, found).rules)
    (alert,) = result.alerts
    extended = json.loads(alert["ExtendedProperties"])
    assert extended["Sigma Rule Id"] == "6d1c2f0e-3b7a-4d2e-9a51-0c7e8f9b1a23"
    assert extended["Sigma Title"] == "Certutil fetches a URL into its cache"
    assert extended["Sigma Level"] == "critical"
    assert json.loads(extended["Sigma Tags"])[:2] == ["attack.command-and-control", "attack.t1105"]
    assert alert["AlertSeverity"] == "High"
    assert alert["Tactics"] == "CommandAndControl, DefenseEvasion"
    assert [row["FileName"] for row in alert["Evidence"]] == ["certutil.exe"]
    entities = {e["Type"] for e in json.loads(alert["Entities"])}
    assert {"host", "account", "process"} <= entities


def test_a_query_that_does_not_compile_is_a_failure(tmp_path: Path) -> None:
    found = load_sigma([write(tmp_path, "r.yml", CERTUTIL_URLCACHE)])
    rule = found.rules[0]
    broken = rule_from_doc(
        {**rule.doc, "id": "x", "query": "DeviceLogonEvents | where LogonType > 9"},
        rule.path,
        "sigma",
    )
    found.rules.append(broken)
    kept = runnable(Hunter(Session()), found)
    assert [r.id for r in kept.rules] == [rule.id]
    (failure,) = kept.failures
    assert failure.stage == "compile"
    assert failure.reason == "KQL does not compile here: cannot compare string with long using '>'"


def test_columns_ingest_never_fills_are_reported(tmp_path: Path) -> None:
    found = load_sigma(
        [write(tmp_path, "u.yml", UNFILLED), write(tmp_path, "c.yml", CERTUTIL_URLCACHE)]
    )
    assert found.unfilled() == {
        "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d": (
            "DeviceProcessEvents",
            ["ProcessVersionInfoInternalFileName"],
        )
    }
    lines = report_lines(found, verbose=True)
    assert lines[0] == "sigma: 2 file(s), 2 rule(s) converted and compiled, 0 not run"
    assert "ProcessVersionInfoInternalFileName (1)" in lines[1]
    assert lines[2].endswith("DeviceProcessEvents ProcessVersionInfoInternalFileName")
