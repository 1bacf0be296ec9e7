"""A row-local rule's schedule replayed from one evaluation, each row given to the runs seeing it.

A row-local query (``rules.locality``) returns a row in a run exactly when the row's source
event is in that run's window, so one evaluation over the whole span, with each row's source
time, says what every run returns: a row at ``t`` is in grid runs ``first .. end-1``
(``schedule.first_run``/``end_run``). From there this module computes what the per-run replay
(``runner.Hunter``) computes, run for run, without visiting the runs one by one:

* suppression is a property of the row: each row is checked once, and counted once per
  distinct row (``row_key``), as the replay counts it the first time a run shows it;
* the rows a run keeps change only where a kept row enters or leaves the window, so the runs
  fall into segments of equal count ``n``: a segment triggers, or not, as a whole, and adds
  ``n`` (AlertPerResult) or 1 result per run, spread over its days;
* a row alerts in the first triggered run whose window holds it - the first triggered segment
  starting in ``[first, end)`` (its entry is a segment boundary) - and rows with equal keys
  alert once, in the earliest such run, as the replay's de-duplication does.

Cost: sorting the rows and the segment boundaries, plus one step per day a triggered segment
spans; never one step per scheduled run.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from trustwatch.rules import schedule
from trustwatch.rules.alerts import build_alert, row_key
from trustwatch.rules.model import Rule

Suppressing = Callable[[Mapping[str, Any]], str | None]  # row -> id of the exclusion, if any


@dataclass(slots=True)
class Replayed:
    """What replaying one rule's schedule produced (``runner`` merges it into the hunt)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    results: int = 0
    suppressed: int = 0
    exclusions: dict[str, int] = field(default_factory=dict)  # exclusion id -> rows
    daily: dict[tuple[date, str], int] = field(default_factory=dict)  # (day, what) -> count

    def count_daily(self, day: date, what: str, count: int) -> None:
        if count:
            self.daily[day, what] = self.daily.get((day, what), 0) + count


@dataclass(frozen=True, slots=True)
class _Kept:
    index: int  # position in the evaluation's result (a run lists its rows in that order)
    row: dict[str, Any]
    key: str
    first: int
    end: int


@dataclass(frozen=True, slots=True)
class _Segment:
    start: int  # grid runs start .. stop-1 keep the same n rows
    stop: int
    n: int


def exact(times_us: Sequence[int], rule: Rule) -> bool:
    """Do the runs that see these times lie inside the datetime range (no clamped run time)?"""
    if not times_us:
        return True
    f_us, p_us = schedule.micros(rule.query_frequency), schedule.micros(rule.query_period)
    lo, hi = schedule.representable_us()
    return lo + p_us + f_us < min(times_us) and max(times_us) < hi - p_us - 2 * f_us


def replay(
    rule: Rule, rows: Sequence[tuple[dict[str, Any], int]], suppressing: Suppressing
) -> Replayed:
    """The per-run replay's alerts and counts, from each result row and its source time.

    Args:
        rule: the rule (schedule, trigger, grouping).
        rows: the row-local query's rows over the whole span, in result order, each with its
            source ``TimeGenerated`` in microseconds since 1970 (see :func:`exact`).
        suppressing: the exclusion that suppresses a row, if any.
    """
    out = Replayed()
    kept = _suppress(rule, rows, suppressing, out)
    per_result = rule.grouping == "AlertPerResult"
    triggered = [s for s in _segments(kept) if rule.triggered(s.n)]
    for segment in triggered:
        per_run = segment.n if per_result else 1
        out.results += per_run * (segment.stop - segment.start)
        for day, runs in schedule.runs_per_day(segment.start, segment.stop, rule.query_frequency):
            out.count_daily(day, "results", per_run * runs)
    _alert(rule, kept, triggered, out)
    return out


def _suppress(
    rule: Rule,
    rows: Sequence[tuple[dict[str, Any], int]],
    suppressing: Suppressing,
    out: Replayed,
) -> list[_Kept]:
    """The rows no exclusion removes; the others counted once per distinct row."""
    f_us, p_us = schedule.micros(rule.query_frequency), schedule.micros(rule.query_period)
    spans = [
        (schedule.first_run(us, f_us), schedule.end_run(us, f_us, p_us), i)
        for i, (_, us) in enumerate(rows)
    ]
    spans.sort(key=lambda s: (s[0], s[2]))  # as the replay first shows them: by run, then order
    kept: list[_Kept] = []
    seen: set[str] = set()
    for first, end, i in spans:
        row = rows[i][0]
        key = row_key(row)
        exclusion = suppressing(row)
        if exclusion is None:
            kept.append(_Kept(i, row, key, first, end))
        elif key not in seen:
            seen.add(key)
            out.suppressed += 1
            out.exclusions[exclusion] = out.exclusions.get(exclusion, 0) + 1
    return kept


def _segments(kept: Sequence[_Kept]) -> list[_Segment]:
    """Maximal stretches of grid runs keeping the same (non-zero) number of rows."""
    delta: dict[int, int] = {}
    for row in kept:
        delta[row.first] = delta.get(row.first, 0) + 1
        delta[row.end] = delta.get(row.end, 0) - 1
    bounds = sorted(delta)
    segments: list[_Segment] = []
    n = 0
    for start, stop in zip(bounds, bounds[1:], strict=False):
        n += delta[start]
        if n:
            segments.append(_Segment(start, stop, n))
    return segments


def _alert(rule: Rule, kept: list[_Kept], triggered: list[_Segment], out: Replayed) -> None:
    """Alerts of the triggered runs: each distinct row once, in the earliest run it alerts in."""
    starts = [s.start for s in triggered]
    count = {s.start: s.n for s in triggered}
    alerting: list[tuple[int, int, _Kept]] = []  # (run, result order, row)
    earliest: dict[str, int] = {}  # row key -> the first run it alerts in
    for row in kept:
        j = bisect_left(starts, row.first)
        if j == len(starts) or starts[j] >= row.end:
            continue  # no triggered run sees it
        run = starts[j]
        alerting.append((run, row.index, row))
        earliest[row.key] = min(run, earliest.get(row.key, run))
    fresh: dict[int, list[dict[str, Any]]] = {}
    done: set[str] = set()
    for run, _, row in sorted(alerting, key=lambda item: item[:2]):
        if earliest[row.key] == run and row.key not in done:
            done.add(row.key)
            fresh.setdefault(run, []).append(row.row)
    per_result = rule.grouping == "AlertPerResult"
    for run, rows in sorted(fresh.items()):
        at = schedule.grid_time(run, rule.query_frequency)
        start = schedule.window_start(at, rule.query_period)
        groups = [[r] for r in rows] if per_result else [rows]
        for group in groups:
            out.alerts.append(
                build_alert(rule, group, run_at=at, window_start=start, results_in_run=count[run])
            )
        out.count_daily(at.date(), "alerts", len(groups))
