"""`trustwatch hunt --sigma`: Sigma rules run beside (or instead of) the native pack."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from tests.sigma.sigma_rules import CERTUTIL_URLCACHE, SECURITY_ONLY, write
from trustwatch.cli.main import cli

SAMPLE = Path(str(resources.files("trustwatch.content.samples"))) / "hunt"
URLCACHE = str(SAMPLE / "spec-test-4-certutil-urlcache.sysmon.xml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sigma_alone_runs_only_the_sigma_rules(tmp_path: Path) -> None:
    write(tmp_path, "rules/urlcache.yml", CERTUTIL_URLCACHE)
    write(tmp_path, "rules/security.yml", SECURITY_ONLY)
    code, out, err = run("hunt", URLCACHE, "--sigma", str(tmp_path / "rules"), "--format", "jsonl")
    assert code == 1, err
    alerts = [json.loads(line) for line in out.splitlines()]
    assert [a["AlertName"] for a in alerts] == ["Certutil fetches a URL into its cache"]
    assert json.loads(alerts[0]["ExtendedProperties"])["Sigma Level"] == "critical"
    assert "sigma: 2 file(s), 1 rule(s) converted and compiled, 1 not run:" in err
    assert "  1 x no Defender XDR table for the rule's logsource" in err
    assert "security.yml" not in err  # each rule only with --verbose


def test_sigma_with_rules_runs_both_and_verbose_lists_each_rule(tmp_path: Path) -> None:
    write(tmp_path, "urlcache.yml", CERTUTIL_URLCACHE)
    security = write(tmp_path, "security.yml", SECURITY_ONLY)
    code, out, err = run(
        "hunt",
        URLCACHE,
        "--rules",
        "default",
        "--sigma",
        str(tmp_path / "urlcache.yml"),
        "--sigma",
        str(security),
        "--verbose",
        "--format",
        "jsonl",
    )
    assert code == 1, err
    names = {json.loads(line)["AlertName"] for line in out.splitlines()}
    assert "Certutil fetches a URL into its cache" in names
    assert "Certutil downloads a file from a URL" in names  # the native pack's
    assert f"    {security} (A security-log rule the XDR pipeline has no table for): " in err


def test_hostile_rule_text_reaches_the_terminal_inert(tmp_path: Path) -> None:
    title = "title: A security-log rule the XDR pipeline has no table for"
    hostile = SECURITY_ONLY.replace(title, 'title: "\\e[2J\\u202eA security-log rule"')
    write(tmp_path, "hostile.yml", hostile)
    code, _, err = run("hunt", URLCACHE, "--sigma", str(tmp_path), "--verbose")
    assert code == 0, err
    assert "\x1b" not in err and "\u202e" not in err
    assert "\\x1b[2J\\u202eA security-log" in err


def test_a_missing_sigma_path_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("hunt", URLCACHE, "--sigma", str(tmp_path / "nope"))
    assert code == 2
    assert "no Sigma rules at" in err


def test_rules_test_sigma_runs_regression_cases(tmp_path: Path) -> None:
    """``rules test --sigma RULES --regression manifest.csv``: a case that matches passes, one
    that does not is a FAIL line with its count, exit 1 (cases copied from ../shared)."""
    import csv
    import shutil

    import pytest

    from tests.conftest import SHARED

    regression = SHARED / "reference" / "sigma" / "regression"
    if not (regression / "manifest.csv").is_file():
        pytest.skip("needs ../shared/reference/sigma (the SigmaHQ regression cases)")
    wanted = {
        "proc_creation_win_discovery_via_reg_queries",  # passes
        "file_event_win_anydesk_artefact",  # 3 events match; the case says 1
    }
    with (regression / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["case_path"].rsplit("/", 1)[-1] in wanted]
        fields = reader.fieldnames
    assert len(rows) == 2 and fields
    with (tmp_path / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    rules = []
    for row in rows:
        evtx = Path(row["case_path"]) / f"{row['rule_id']}.evtx"
        (tmp_path / evtx).parent.mkdir(parents=True)
        shutil.copy(regression / evtx, tmp_path / evtx)
        rules += ["--sigma", str(SHARED / "reference" / "sigma" / "rules" / row["rule_file"])]
    result = CliRunner().invoke(
        cli, ["rules", "test", *rules, "--regression", str(tmp_path / "manifest.csv"), "-v"]
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert any(
        ln.startswith("ok   ") and "discovery_via_reg_queries: expected 1, matched 1" in ln
        for ln in lines
    )
    assert any(
        ln.startswith("FAIL ") and "anydesk_artefact: expected 1, matched 3" in ln for ln in lines
    )
    assert "1 of 2 regression case(s) passed" in result.stderr


def test_rules_test_sigma_needs_both_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rules", "test", "--sigma", str(tmp_path)])
    assert result.exit_code == 2
    assert "give both --sigma RULES and --regression CASES" in result.stderr
