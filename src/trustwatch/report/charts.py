"""Geometry of the report's two charts: an incident's per-device timeline and the noise chart.

Pure arithmetic on times and counts; the template draws the shapes as inline SVG (a fixed
``viewBox`` scaled to the page width, so a chart never widens the page). Both are bounded:
``MAX_MARKS`` evidence rows per timeline, ``MAX_DAYS`` days in the noise chart (the latest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from trustwatch.report.model import Bar, Grid, Lane, Mark, NoiseChart, Tick, Timeline

MAX_MARKS = 60  # evidence rows drawn on one incident's timeline
MAX_DAYS = 60  # days drawn in the noise chart
LABEL_CHARS = 44  # a timeline label's characters before it is shortened (full text on hover)
WIDTH = 960.0
PLOT_LEFT = 370.0
PLOT_RIGHT = 930.0
ROW = 20.0
LANE_HEAD = 24.0
TOP = 8.0
AXIS = 28.0
SEVERITY_COLORS = {
    "High": "#c62828",
    "Medium": "#e65100",
    "Low": "#9e7c00",
    "Informational": "#1565c0",
}
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One evidence row to draw: its device, time, text and the alert it belongs to."""

    device: str
    time: datetime
    label: str
    href: str
    severity: str


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` cut in the middle to ``limit`` characters (an ellipsis marks the cut)."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: keep - keep // 2] + "\u2026" + text[len(text) - keep // 2 :]


def _time_label(moment: datetime, same_day: bool) -> str:
    return f"{moment:%H:%M:%S}" if same_day else f"{moment:%Y-%m-%d %H:%M}"


def timeline(events: Sequence[Event]) -> Timeline | None:
    """Lanes by device (first seen first), one row per event in time order, x by time."""
    if not events:
        return None
    ordered = sorted(events, key=lambda e: (e.time, e.device, e.label))
    shown = ordered[:MAX_MARKS]
    devices = list(dict.fromkeys(e.device for e in shown))
    start, end = shown[0].time, shown[-1].time
    spread = (end - start).total_seconds()
    same_day = start.date() == end.date()

    def x_of(moment: datetime) -> float:
        if spread <= 0:
            return (PLOT_LEFT + PLOT_RIGHT) / 2
        share = (moment - start).total_seconds() / spread
        return round(PLOT_LEFT + share * (PLOT_RIGHT - PLOT_LEFT), 1)

    lanes: list[Lane] = []
    marks: list[Mark] = []
    y = TOP
    for device in devices:
        mine = [e for e in shown if e.device == device]
        height = LANE_HEAD + ROW * len(mine)
        lanes.append(Lane(label=device, y=y, height=height))
        for n, event in enumerate(mine):
            row_y = y + LANE_HEAD + ROW * n + ROW / 2
            marks.append(
                Mark(
                    x=x_of(event.time),
                    y=row_y,
                    label=shorten(event.label),
                    time=_time_label(event.time, same_day),
                    title=f"{event.time:%Y-%m-%d %H:%M:%S} {event.label}",
                    href=event.href,
                    color=SEVERITY_COLORS.get(event.severity, "#455a64"),
                )
            )
        y += height
    count = 1 if spread <= 0 else 5
    ticks = tuple(
        Tick(
            x=x_of(start + (end - start) * (n / max(count - 1, 1))),
            label=_time_label(start + (end - start) * (n / max(count - 1, 1)), same_day),
        )
        for n in range(count)
    )
    return Timeline(
        width=WIDTH,
        height=y + AXIS,
        plot_left=PLOT_LEFT,
        plot_right=PLOT_RIGHT,
        lanes=tuple(lanes),
        marks=tuple(marks),
        ticks=ticks,
        cut=len(ordered) - len(shown),
    )


def noise_chart(daily: Mapping[tuple[str, str], Mapping[str, int]]) -> NoiseChart | None:
    """Stacked bars of de-duplicated alerts per UTC day, one colour per rule (the latest
    ``MAX_DAYS`` days with alerts), and the same numbers as a grid."""
    rows = sorted((day, rule, counts) for (day, rule), counts in daily.items())
    if not rows:
        return None
    all_days = sorted({day for day, _, _ in rows})
    days = all_days[-MAX_DAYS:]
    rules = sorted({rule for _, rule, _ in rows})
    color = {rule: PALETTE[n % len(PALETTE)] for n, rule in enumerate(rules)}
    per_day = {d: [(r, c.get("alerts", 0)) for dd, r, c in rows if dd == d] for d in days}
    peak = max((sum(n for _, n in v) for v in per_day.values()), default=0) or 1
    left, right, top, base = 48.0, WIDTH - 12, 12.0, 200.0
    slot = (right - left) / len(days)
    width = min(36.0, slot * 0.7)
    bars: list[Bar] = []
    for i, day in enumerate(days):
        x = left + slot * i + (slot - width) / 2
        y = base
        for rule, n in per_day[day]:
            if n <= 0:
                continue
            height = (base - top) * n / peak
            y -= height
            title = f"{day}: {n} alert(s) of {rule}"
            bars.append(
                Bar(round(x, 1), round(y, 1), round(width, 1), round(height, 1), color[rule], title)
            )
    every = max(1, math.ceil(len(days) * 76 / (right - left)))
    ticks = tuple(
        Tick(round(left + slot * i + slot / 2, 1), day)
        for i, day in enumerate(days)
        if i % every == 0
    )
    step = max(1, math.ceil(peak / 4))
    levels = tuple(
        (round(base - (base - top) * v / peak, 1), str(v)) for v in range(0, peak + 1, step)
    )
    grid = Grid(
        columns=("day", "rule", "alerts", "without de-duplication"),
        rows=tuple(
            (day, rule, str(c.get("alerts", 0)), str(c.get("results", 0))) for day, rule, c in rows
        ),
        total=len(rows),
    )
    return NoiseChart(
        width=WIDTH,
        height=base + 30,
        base=base,
        bars=tuple(bars),
        ticks=ticks,
        levels=levels,
        legend=tuple((color[r], r) for r in rules),
        grid=grid,
        cut_days=len(all_days) - len(days),
    )
