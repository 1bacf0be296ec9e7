"""Running a rule's tests file: each case's rows in a fresh session, the rule run as ``hunt``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from trustwatch.api import Session
from trustwatch.errors import TrustwatchError
from trustwatch.kql.literals import parse_datetime_text
from trustwatch.rules.alerts import json_value
from trustwatch.rules.model import Rule, TestCase
from trustwatch.rules.runner import Hunter
from trustwatch.tables import rows_to_arrow


@dataclass(frozen=True, slots=True)
class CaseResult:
    rule: Rule
    case: TestCase
    passed: bool
    detail: str  # what was wrong, or the alert count when it passed
    alerts: tuple[dict[str, Any], ...] = ()  # the alerts the case raised (SecurityAlert records)


def case_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with TimeGenerated and Timestamp both set when one is given."""
    out = []
    for row in rows:
        copy = dict(row)
        for a, b in (("TimeGenerated", "Timestamp"), ("Timestamp", "TimeGenerated")):
            if a in copy and b not in copy:
                copy[b] = copy[a]
        for key, value in copy.items():
            if isinstance(value, datetime):  # YAML timestamps: naive means UTC
                copy[key] = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        out.append(copy)
    return out


def run_case(
    rule: Rule, case: TestCase, watchlists: Mapping[str, pa.Table] | None = None
) -> CaseResult:
    """Run one case; a compile or data error is a failure with its message.

    ``watchlists``: the catalog tables ``_GetWatchlist`` reads (a tuning file's,
    :meth:`~trustwatch.rules.tuning.Tuning.tables`); the case's own tables come after them.
    """
    try:
        tables = {
            name: rows_to_arrow(case_rows(rows), f"{name} rows")
            for name, rows in case.tables.items()
        }
        session = Session({**(watchlists or {}), **tables})
        now = parse_datetime_text(case.now) if case.now else None
        result = Hunter(session).run([rule], now=now)
    except TrustwatchError as exc:
        return CaseResult(rule, case, False, exc.render())
    alerts = result.alerts
    problems = []
    if case.expect_alert and not alerts:
        problems.append("expected an alert, got none")
    if not case.expect_alert and alerts:
        problems.append(f"expected no alert, got {len(alerts)}: {alerts[0]['DisplayName']}")
    if case.alerts is not None and len(alerts) != case.alerts:
        problems.append(f"expected {case.alerts} alert(s), got {len(alerts)}")
    if case.fields and alerts:
        row = alerts[0]["Evidence"][0]
        for column, expected in case.fields.items():
            if column not in row:
                problems.append(f"the result has no column {column}")
            elif not _same(row[column], expected):
                problems.append(f"{column} is {row[column]!r}, expected {expected!r}")
    detail = "; ".join(problems) if problems else f"{len(alerts)} alert(s)"
    return CaseResult(rule, case, not problems, detail, tuple(alerts))


def _same(actual: Any, expected: Any) -> bool:
    expected = json_value(expected)
    if isinstance(expected, str) and isinstance(actual, str):
        return actual == expected
    return bool(actual == expected) or str(actual) == str(expected)


def run_tests(
    rules: Sequence[Rule], watchlists: Mapping[str, pa.Table] | None = None
) -> Iterator[CaseResult]:
    """Every case of every rule, in order; a rule without a tests file yields a failure."""
    for rule in rules:
        if rule.tests.path is None:
            missing = TestCase("(tests file)", True, {})
            yield CaseResult(rule, missing, False, f"no tests file beside {rule.path.name}")
            continue
        for case in rule.tests.cases:
            yield run_case(rule, case, watchlists)
