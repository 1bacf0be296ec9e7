"""The shipped rules: lint clean, every tests-file case passes, the reference rule is verbatim."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.incidents import DEFAULT_PHRASE, narrate
from trustwatch.records import SecurityAlert
from trustwatch.rules.lint import lint_rules
from trustwatch.rules.model import load_rules
from trustwatch.rules.testing import run_case
from trustwatch.rules.tuning import default_tuning_path, load_tuning

RULES = load_rules(["all", "network"])
# the watchlists `rules lint` and `rules test` give the rules: the shipped tuning's and the
# built-in CertificateIntel (the network rules read it)
WATCHLISTS = load_tuning(default_tuning_path()).tables()
CASES = [(rule, case) for rule in RULES for case in rule.tests.cases]
FALLBACK = DEFAULT_PHRASE.split("{{")[0]  # "raised '": the narrative of a rule without a phrase


def test_the_packs_hold_the_expected_rules() -> None:
    packs = {r.path.stem: r.pack for r in RULES}
    assert packs["spec_certificate_trust_store_modification"] == "reference"
    assert packs["trust_store_certificate_write"] == "default"
    assert packs["tls_known_bad_certificate"] == "network"
    assert sum(p == "default" for p in packs.values()) >= 9


def test_lint_finds_no_error() -> None:
    findings = lint_rules(RULES, lambda: Session(WATCHLISTS))
    errors = [f.render() for f in findings if f.severity != "known"]
    assert errors == []
    known = [f for f in findings if f.severity == "known"]
    assert [f.rule.path.stem for f in known] == ["spec_certificate_trust_store_modification"]


def test_every_rule_has_two_matching_and_two_non_matching_cases() -> None:
    for rule in RULES:
        cases = rule.tests.cases
        assert sum(c.expect_alert for c in cases) >= 2, rule.path.name
        assert sum(not c.expect_alert for c in cases) >= 2, rule.path.name


@pytest.mark.parametrize(
    ("rule", "case"), CASES, ids=[f"{r.path.stem}:{c.name[:60]}" for r, c in CASES]
)
def test_case(rule, case) -> None:  # type: ignore[no-untyped-def]
    result = run_case(rule, case, WATCHLISTS)
    assert result.passed, result.detail
    if rule.pack in ("default", "network"):  # each alert reads in its rule's own words
        for alert in result.alerts:  # (content/incidents.yaml; not the fallback "raised ...")
            story = narrate([SecurityAlert.from_record(alert)])
            assert not story.startswith(FALLBACK) and f" {FALLBACK}" not in story, story


@needs_shared
def test_the_reference_rule_is_the_specifications_query_verbatim() -> None:
    spec = (SHARED / "spec" / "T1588.004-detection-spec.txt").read_text(encoding="utf-8")
    start = spec.index("// Detection: Unauthorized certificate installation")
    end = spec.index("| sort by Timestamp desc") + len("| sort by Timestamp desc")
    published = spec[start:end]
    rule = next(r for r in RULES if r.pack == "reference")
    assert rule.query.strip() == published.strip()
    assert re.search(r"AccountName", rule.query)  # the defect is kept, documented, not fixed
