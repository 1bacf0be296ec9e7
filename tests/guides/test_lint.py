"""Guide lint: a rule without a guide, with unknown names or with a pivot that does not compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.test_lint import VALID_RULE, VALID_TESTS, write
from trustwatch.api import Session
from trustwatch.rules.lint import has_errors, lint_rules
from trustwatch.rules.model import load_rules


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def findings(session: Session, tmp_path: Path, guide: str | None) -> list[tuple[str, str, int]]:
    rule = write(tmp_path, VALID_RULE, VALID_TESTS, guide=guide)
    return [
        (f.code, f.path.name, f.line or 0)
        for f in lint_rules([rule], session_factory=lambda: session)
    ]


def test_a_rule_without_a_guide_fails_lint(session: Session, tmp_path: Path) -> None:
    assert findings(session, tmp_path, None) == [("RULE501", "rule.yaml", 0)]
    rule = load_rules((str(tmp_path / "rule.yaml"),), strict=False)
    assert has_errors(lint_rules(rule, session_factory=lambda: session))


def test_unknown_names_are_located(session: Session, tmp_path: Path) -> None:
    guide = (
        "meaning: m\ntriage: [q]\npivots:\n  - process-tree\n  - no-such-pivot\n"
        "playbook:\n  - isolate-device\n  - no-such-step\n"
    )
    assert findings(session, tmp_path, guide) == [
        ("RULE505", "rule.guide.yaml", 5),
        ("RULE505", "rule.guide.yaml", 8),
    ]


def test_a_pivot_that_does_not_compile_fails(session: Session, tmp_path: Path) -> None:
    guide = (
        "meaning: m\ntriage: [q]\npivots:\n  - id: broken\n    title: t\n"
        "    query: DeviceProcessEvents | where NoSuchColumn == AlertDevice\n"
        "playbook: [isolate-device]\n"
    )
    found = findings(session, tmp_path, guide)
    assert found == [("RULE506", "rule.guide.yaml", 4)]


def test_empty_guide_and_bad_steps(session: Session, tmp_path: Path) -> None:
    guide = (
        "rule: 00000000-0000-0000-0000-000000000000\npivots: []\nplaybook:\n"
        "  - {id: s, phase: later, shell: zsh, title: t, command: [x, '{Nope}']}\n"
    )
    codes = sorted({c for c, _, _ in findings(session, tmp_path, guide)})
    assert codes == ["RULE502", "RULE503", "RULE504", "RULE507"]


def test_every_shipped_rule_has_a_guide_with_pivots_and_steps() -> None:
    from trustwatch.guides.investigate import guides_of

    rules = load_rules(("all",))
    guides = guides_of(rules)
    assert {r.id for r in rules} == set(guides)
    for guide in guides.values():
        assert guide.meaning and guide.triage and guide.pivots and guide.steps
        assert not guide.unresolved
