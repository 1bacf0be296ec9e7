"""One rule model: a rule's values are parsed and checked once, when it is loaded.

A value the rule cannot run with (schedule, trigger, severity, mappings, no query) is refused at
load with a located error naming the lint code, not in the middle of a hunt; lint loads leniently
and reports the same problems as findings.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.rules.test_lint import VALID_RULE, line_of, mutated
from trustwatch.cli.main import cli
from trustwatch.errors import RuleFileError
from trustwatch.rules.model import load_rule, rule_from_doc


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rule.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_values_are_typed_at_load(tmp_path: Path) -> None:
    rule = load_rule(write(tmp_path, VALID_RULE))
    assert rule.query_frequency == timedelta(hours=1)
    assert rule.trigger_operator == "gt" and rule.trigger_threshold == 0
    assert rule.severity == "Medium"
    assert rule.tactics and all(isinstance(t, str) for t in rule.tactics)
    assert rule.triggered(1) and not rule.triggered(0)


@pytest.mark.parametrize(
    ("old", "new", "code", "says"),
    [
        ("triggerOperator: gt", "triggerOperator: above", "RULE114", "triggerOperator 'above'"),
        ("queryFrequency: 1h", "queryFrequency: 1x", "RULE110", "queryFrequency '1x'"),
        ("queryFrequency: 1h", "queryFrequency: 1:00:00", "RULE110", "queryFrequency 3600"),
        ("severity: Medium", "severity: Critical", "RULE106", "severity 'Critical'"),
        ("triggerThreshold: 0", "triggerThreshold: -1", "RULE115", "triggerThreshold -1"),
        (
            "aggregationKind: AlertPerResult",
            "aggregationKind: PerRow",
            "RULE133",
            "eventGroupingSettings",
        ),
    ],
)
def test_a_value_the_rule_cannot_run_with_is_refused_at_load_located(
    tmp_path: Path, old: str, new: str, code: str, says: str
) -> None:
    text = mutated(old, new)
    path = write(tmp_path, text)
    with pytest.raises(RuleFileError) as info:
        load_rule(path)
    diag = info.value.diagnostic
    assert diag.code == code
    key = says.split()[0]  # the top-level key: its line locates the error
    assert f"{path}:{line_of(text, key + ':')}: " in diag.message
    assert says in diag.message
    lenient = load_rule(path, strict=False)  # what lint loads: the document as written
    assert lenient.doc[key] is not None


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = mutated("triggerOperator: gt", "triggerOperator: above")
    text = text.replace("severity: Medium", "severity: Critical", 1)
    with pytest.raises(RuleFileError) as info:
        load_rule(write(tmp_path, text))
    assert {d.code for d in info.value.diagnostics} == {"RULE106", "RULE114"}


def test_a_document_without_a_query_is_refused() -> None:
    with pytest.raises(RuleFileError, match="no query"):
        rule_from_doc({"id": "x", "name": "n"}, Path("converted.yml"))


def test_hunt_refuses_the_rule_before_reading_any_data(tmp_path: Path) -> None:
    path = write(tmp_path, mutated("triggerOperator: gt", "triggerOperator: above"))
    missing = tmp_path / "no-such-folder"
    result = CliRunner().invoke(cli, ["hunt", str(missing), "--rules", str(path)])
    assert result.exit_code == 2
    assert "RULE114" in result.stderr and "triggerOperator 'above'" in result.stderr
