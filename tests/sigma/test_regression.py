"""SigmaHQ's regression cases (../shared/reference/sigma/regression) hunted through trustwatch.

Every case whose rule converts and compiles matches exactly its expected count (at least one
where the case gives none); the cases that do not are listed, each with its reason, in
``regression_failures.yaml``, and that list must be exactly the set that fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch import yamlio
from trustwatch.sigma import regression

# one worker builds the module fixture (ingests, hunts) under --dist loadgroup, not both
pytestmark = [needs_shared, pytest.mark.xdist_group("sigma_regression")]

SIGMA = SHARED / "reference" / "sigma"
MANIFEST = SIGMA / "regression" / "manifest.csv"
KNOWN = Path(__file__).with_name("regression_failures.yaml")


def known_failures() -> dict[str, dict[str, str]]:
    cases: dict[str, dict[str, str]] = yamlio.load(KNOWN.read_text(encoding="utf-8"))["cases"]
    return cases


def manifest_cases() -> list[regression.RegressionCase]:
    return regression.load_manifest(MANIFEST) if MANIFEST.is_file() else []


@pytest.fixture(scope="session")  # once: one worker runs the group (below)
def outcomes() -> dict[str, regression.CaseOutcome]:
    cases = manifest_cases()
    files = regression.find_rule_files([SIGMA / "rules"], [c.rule_id for c in cases])
    return {o.case.rule_id: o for o in regression.run_regression(list(files.values()), cases)}


def test_manifest_has_every_case() -> None:
    cases = manifest_cases()
    assert len(cases) == 90
    assert all(c.evtx.is_file() for c in cases)
    assert sum(c.expected is None for c in cases) == 15


@pytest.mark.parametrize(
    "case", manifest_cases(), ids=lambda c: c.rule_id[:8] + "/" + c.name.rsplit("/", 1)[-1]
)
def test_case(case: regression.RegressionCase, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.rule_id]
    known = known_failures().get(case.rule_id)
    if known is not None:
        assert not outcome.passed, f"listed as failing but passes: {outcome.detail}"
        assert outcome.stage == known["stage"], outcome.detail
        return
    assert outcome.passed, f"{outcome.stage}: {outcome.detail}"
    assert outcome.matches == (case.expected or outcome.matches)


def test_known_failures_are_exactly_the_failing_cases(outcomes: dict[str, Any]) -> None:
    failing = {rule_id for rule_id, o in outcomes.items() if not o.passed}
    assert failing == set(known_failures())
    assert all(entry["reason"].strip() for entry in known_failures().values())
