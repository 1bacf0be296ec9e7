"""The report's content as plain values: what the HTML template and the Markdown writer show.

Every string here is raw - taken from the logs, rule files or tuning - and is made safe only by
the renderer (``report.html`` escapes through Jinja2's autoescape, ``report.markdown`` turns it
into code spans, fenced blocks or backslash-escaped text). Nothing here holds markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Grid:
    """Rows of text cells under column names; ``total`` rows existed, ``rows`` are shown."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: int

    @property
    def cut(self) -> int:
        """How many rows are not shown."""
        return self.total - len(self.rows)


@dataclass(frozen=True, slots=True)
class Finding:
    label: str
    evidence: str


@dataclass(frozen=True, slots=True)
class CertificateView:
    thumbprint: str
    verdict: str
    subject: str
    issuer: str
    seen_in: tuple[str, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class StepView:
    """One playbook step, filled in (``command``) or not (``unfilled`` says why)."""

    phase: str
    title: str
    shell: str
    text: str
    command: str
    unfilled: str


@dataclass(frozen=True, slots=True)
class AlertView:
    anchor: str
    alert_id: str
    name: str
    display_name: str
    severity: str
    start: str
    end: str
    device: str
    description: str
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    verdict: str
    severity_reason: str
    evidence: tuple[Grid, ...]  # one column/value grid per evidence row shown
    evidence_total: int
    certificates: tuple[CertificateView, ...]
    meaning: str
    triage: tuple[str, ...]
    steps: tuple[StepView, ...]
    incident_anchor: str = ""


@dataclass(frozen=True, slots=True)
class PivotView:
    title: str
    query: str
    skipped: str
    grid: Grid | None
    alert_anchors: tuple[tuple[str, str], ...]  # (anchor, short id) of the alerts it serves


@dataclass(frozen=True, slots=True)
class Mark:
    """One event on a timeline: where it is drawn and what it links to."""

    x: float
    y: float
    label: str
    time: str
    title: str  # the full text, shown on hover
    href: str
    color: str


@dataclass(frozen=True, slots=True)
class Lane:
    """A device's band of a timeline."""

    label: str
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """A per-device timeline of an incident's evidence rows, as SVG geometry."""

    width: float
    height: float
    plot_left: float
    plot_right: float
    lanes: tuple[Lane, ...]
    marks: tuple[Mark, ...]
    ticks: tuple[Tick, ...]
    cut: int  # evidence rows left out (past the bound)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class NoiseChart:
    """Alerts per day per rule (the schedule replay), stacked bars as SVG geometry."""

    width: float
    height: float
    base: float  # the y of the x axis
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]  # day labels
    levels: tuple[tuple[float, str], ...]  # (y, count) of the y axis
    legend: tuple[tuple[str, str], ...]  # (color, rule)
    grid: Grid  # the same numbers as a table (day, rule, alerts, without de-duplication)
    cut_days: int = 0


@dataclass(frozen=True, slots=True)
class IncidentView:
    anchor: str
    number: int
    incident_id: str
    title: str
    severity: str
    first: str
    last: str
    narrative: str
    chain: tuple[tuple[str, str, str], ...]  # (technique, tactic, phase)
    devices: tuple[str, ...]
    accounts: tuple[str, ...]
    certificates: tuple[str, ...]
    files: tuple[str, ...]
    alerts: tuple[AlertView, ...]
    pivots: tuple[PivotView, ...]
    timeline: Timeline | None


@dataclass(frozen=True, slots=True)
class RuleLine:
    name: str
    runs: int
    alerts: int
    suppressed: int


@dataclass(frozen=True, slots=True)
class Suppression:
    exclusion: str
    description: str
    total: int
    detail: tuple[tuple[str, int], ...]  # (rule, results)


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    generated: str
    command: str
    span: tuple[str, str] | None
    mode: str
    sources: Grid  # format, files, records read, stored, quarantined
    tables: tuple[tuple[str, int], ...]  # table with rows
    devices: tuple[str, ...]
    alerts: int
    incidents: int
    severities: tuple[tuple[str, int], ...]
    rules: tuple[RuleLine, ...]
    tuning: str
    suppressions: tuple[Suppression, ...]


@dataclass(frozen=True, slots=True)
class Report:
    summary: Summary
    incidents: tuple[IncidentView, ...]
    noise: NoiseChart | None
    notes: tuple[str, ...] = field(default=())
