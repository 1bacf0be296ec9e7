"""The look-alike corpus (``data/names.csv``): precision and recall of ``ct scan``'s name checks.

Every row is a name as a certificate carries it, whether it imitates one of the protected
domains below, the technique expected, and the reason. The figures measured when the corpus was
written are the floors (docs/ct.md, "Measured"); a change that lowers one fails here, and one that
raises it should raise the floor.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from trustwatch.ct.lookalike import WEIGHTS, find_lookalikes, protected_domain
from trustwatch.ct.names import parse_name

CORPUS = Path(__file__).parent / "data" / "names.csv"
PROTECTED = ("contoso.com", "fabrikam.com", "corp.com", "woodgrovebank.com")
# measured: 74 of 79 look-alikes found, 3 of 62 legitimate names flagged (docs/ct.md)
PRECISION_FLOOR = 74 / 77
RECALL_FLOOR = 74 / 79
# names whose outcome differs from their label (the brand joined to text that is no listed word,
# part of the brand; real words one slip from a brand; the company's own tenant elsewhere)
KNOWN_MISSES = {
    "contoso365.com",
    "thecontoso.com",
    "getcontoso.com",
    "woodgrovebanking.com",
    "woodgrove-online.com",
}
KNOWN_FALSE_ALARMS = {"crop.com", "contoso.sharepoint.com", "fabrika.com"}


@dataclass(frozen=True)
class Case:
    name: str
    lookalike: bool
    technique: str
    reason: str


def _cases() -> list[Case]:
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        return [
            Case(r["name"], r["expected"] == "lookalike", r["technique"], r["reason"])
            for r in csv.DictReader(fh)
        ]


CASES = _cases()


def _techniques(name: str) -> list[str]:
    protected = tuple(protected_domain(d) for d in PROTECTED)
    parsed = parse_name(name)
    return [f.technique for f in find_lookalikes(parsed, protected)] if parsed else []


def test_corpus_is_large_enough_and_reasoned() -> None:
    assert sum(c.lookalike for c in CASES) >= 50
    assert sum(not c.lookalike for c in CASES) >= 50
    assert all(c.reason for c in CASES)
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.technique in WEIGHTS for c in CASES if c.lookalike)
    assert all(not c.technique for c in CASES if not c.lookalike)


def test_precision_and_recall() -> None:
    found = {c.name: bool(_techniques(c.name)) for c in CASES}
    tp = sum(found[c.name] for c in CASES if c.lookalike)
    fp = sum(found[c.name] for c in CASES if not c.lookalike)
    fn = sum(not found[c.name] for c in CASES if c.lookalike)
    assert tp / (tp + fp) >= PRECISION_FLOOR
    assert tp / (tp + fn) >= RECALL_FLOOR
    misses = {c.name for c in CASES if c.lookalike and not found[c.name]}
    false_alarms = {c.name for c in CASES if not c.lookalike and found[c.name]}
    assert misses <= KNOWN_MISSES
    assert false_alarms <= KNOWN_FALSE_ALARMS


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.lookalike and c.name not in KNOWN_MISSES],
    ids=lambda c: c.name,
)
def test_lookalike_is_found_with_its_technique(case: Case) -> None:
    assert case.technique in _techniques(case.name), case.reason


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if not c.lookalike and c.name not in KNOWN_FALSE_ALARMS],
    ids=lambda c: c.name,
)
def test_legitimate_name_is_quiet(case: Case) -> None:
    assert _techniques(case.name) == [], case.reason
