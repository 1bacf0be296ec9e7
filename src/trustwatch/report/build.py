"""A hunt's (or an investigation's) results turned into the report's content (``report.model``).

Pure: it takes the hunt's account, the incidents, the investigations of their alerts
(``trustwatch.guides.investigate``) and a summary of the data (``report.gather``), and returns
values. Bounds keep a report readable and its size in check: ``MAX_EVIDENCE_ROWS`` evidence rows
per alert, ``MAX_PIVOT_ROWS`` rows per pivot, ``MAX_CELL`` characters per cell (the middle cut).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustwatch.incidents import device_of, parse_time
from trustwatch.output import json_rows, text_cell
from trustwatch.report import charts
from trustwatch.report.model import (
    AlertView,
    CertificateView,
    Finding,
    Grid,
    IncidentView,
    PivotView,
    Report,
    RuleLine,
    StepView,
    Summary,
    Suppression,
)
from trustwatch.severity import SEVERITIES

if TYPE_CHECKING:
    import pyarrow as pa

    from trustwatch.guides.investigate import AlertInvestigation, Investigation, PivotResult
    from trustwatch.records import SecurityAlert, SecurityIncident
    from trustwatch.rules.runner import HuntResult
    from trustwatch.rules.tuning import Tuning

MAX_EVIDENCE_ROWS = 10
MAX_PIVOT_ROWS = 25
MAX_CELL = 2000
_ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class DataSummary:
    """What the data holds: sources by format, rows per table, devices."""

    sources: Grid
    tables: tuple[tuple[str, int], ...]
    devices: tuple[str, ...]


def anchor(kind: str, ident: str) -> str:
    """An element id for an alert or incident: ``kind-`` and the id's safe characters."""
    return f"{kind}-{_ANCHOR_UNSAFE.sub('', ident)}"


def cut_cell(text: str, limit: int = MAX_CELL) -> str:
    return charts.shorten(text, limit)


def _evidence(alert: SecurityAlert) -> tuple[Grid, ...]:
    grids = []
    for row in alert.evidence[:MAX_EVIDENCE_ROWS]:
        cells = tuple(
            (str(k), cut_cell(text_cell(v))) for k, v in row.items() if text_cell(v) != ""
        )
        grids.append(Grid(columns=("column", "value"), rows=cells, total=len(cells)))
    return tuple(grids)


def _certificates(alert: SecurityAlert) -> tuple[CertificateView, ...]:
    views = []
    for cert in alert.certificates or ():
        findings = tuple(
            Finding(str(f.get("label", "")), str(f.get("evidence", "")))
            for f in cert.get("findings") or ()
            if isinstance(f, Mapping)
        )
        views.append(
            CertificateView(
                thumbprint=str(cert.get("thumbprint", "")),
                verdict=str(cert.get("verdict", "")),
                subject=str(cert.get("subject") or ""),
                issuer=str(cert.get("issuer") or ""),
                seen_in=tuple(str(s) for s in cert.get("seen_in") or ()),
                findings=findings,
            )
        )
    return tuple(views)


def _steps(item: AlertInvestigation | None) -> tuple[StepView, ...]:
    if item is None:
        return ()
    return tuple(
        StepView(
            phase=s.step.phase,
            title=s.step.title,
            shell=s.step.shell,
            text=s.text,
            command=s.command,
            unfilled=s.unfilled,
        )
        for s in item.steps
    )


def alert_view(
    alert: SecurityAlert, item: AlertInvestigation | None, incident_anchor: str = ""
) -> AlertView:
    """One alert: summary fields, evidence, certificates, guide and playbook."""
    extended = alert.extended_properties
    guide = item.guide if item is not None else None
    return AlertView(
        anchor=anchor("alert", alert.system_alert_id),
        alert_id=alert.system_alert_id,
        name=alert.alert_name,
        display_name=alert.display_name,
        severity=alert.alert_severity,
        start=alert.start_time,
        end=alert.end_time,
        device=device_of(alert),
        description=alert.description,
        tactics=alert.tactics,
        techniques=alert.techniques,
        verdict=alert.certificate_verdict,
        severity_reason=str(extended.get("Severity Reason") or ""),
        evidence=_evidence(alert),
        evidence_total=len(alert.evidence),
        certificates=_certificates(alert),
        meaning=guide.meaning if guide is not None else "",
        triage=tuple(guide.triage) if guide is not None else (),
        steps=_steps(item),
        incident_anchor=incident_anchor,
    )


def table_grid(table: pa.Table, limit: int = MAX_PIVOT_ROWS) -> Grid:
    """The first ``limit`` rows of a result as text, columns empty in all of them left out."""
    rows = []
    for n, row in enumerate(json_rows(table)):
        if n == limit:
            break
        rows.append({k: cut_cell(text_cell(v)) for k, v in row.items()})
    columns = tuple(c for c in table.column_names if any(r.get(c) for r in rows))
    return Grid(
        columns=columns,
        rows=tuple(tuple(r.get(c, "") for c in columns) for r in rows),
        total=table.num_rows,
    )


def _pivot(result: PivotResult) -> PivotView:
    table = result.table
    return PivotView(
        title=result.bound.pivot.title,
        query=result.bound.text,
        skipped=result.bound.skipped,
        grid=table_grid(table) if table is not None and not result.bound.skipped else None,
        alert_anchors=tuple((anchor("alert", a), a[:8]) for a in result.alerts),
    )


def _events(alerts: Iterable[SecurityAlert]) -> list[charts.Event]:
    events = []
    for alert in alerts:
        for row in alert.evidence:
            stamp = str(row.get("Timestamp") or row.get("TimeGenerated") or alert.start_time)
            try:
                moment = parse_time(stamp)
            except ValueError:
                continue
            device = str(row.get("DeviceName") or row.get("Computer") or device_of(alert))
            events.append(
                charts.Event(
                    device=device or "(no device)",
                    time=moment,
                    label=alert.alert_name,
                    href="#" + anchor("alert", alert.system_alert_id),
                    severity=alert.alert_severity,
                )
            )
    return events


def incident_view(incident: SecurityIncident, investigation: Investigation | None) -> IncidentView:
    """One incident: story, chain, entities, timeline, its alerts and its pivots."""
    own = anchor("incident", incident.incident_name)
    items: dict[str, AlertInvestigation] = {}
    for item in investigation.alerts if investigation is not None else ():
        items[str(item.alert.get("SystemAlertId", ""))] = item
    entities = incident.entities
    return IncidentView(
        anchor=own,
        number=incident.incident_number,
        incident_id=incident.incident_name,
        title=incident.title,
        severity=incident.severity,
        first=incident.first_activity_time,
        last=incident.last_activity_time,
        narrative=incident.description,
        chain=tuple((s.technique, s.tactic, s.phase) for s in incident.chain),
        devices=entities.devices,
        accounts=entities.accounts,
        certificates=entities.certificates,
        files=entities.files,
        alerts=tuple(alert_view(a, items.get(a.system_alert_id), own) for a in incident.alerts),
        pivots=tuple(_pivot(p) for p in investigation.pivots) if investigation else (),
        timeline=charts.timeline(_events(incident.alerts)),
    )


def _suppressions(hunt: HuntResult, tuning: Tuning) -> tuple[Suppression, ...]:
    out = []
    for exclusion in tuning.exclusions:
        counts = hunt.suppressed.get(exclusion.id, {})
        out.append(
            Suppression(
                exclusion=exclusion.id,
                description=exclusion.description,
                total=sum(counts.values()),
                detail=tuple(sorted(counts.items())),
            )
        )
    # exclusions that suppressed something first, then the others in the file's order
    return tuple(sorted(out, key=lambda s: s.total == 0))


def _severities(alerts: Sequence[SecurityAlert]) -> tuple[tuple[str, int], ...]:
    counts = Counter(a.alert_severity for a in alerts)
    order = {s: n for n, s in enumerate(reversed(SEVERITIES))}
    return tuple(sorted(counts.items(), key=lambda i: order.get(i[0], len(order))))


def summary(
    *,
    title: str,
    generated: str,
    command: str,
    hunt: HuntResult,
    tuning: Tuning,
    data: DataSummary,
    alerts: Sequence[SecurityAlert],
    incidents: int,
) -> Summary:
    """The report's opening: data, rules, what tuning suppressed, counts."""
    span = None
    if hunt.span is not None:
        span = tuple(f"{t:%Y-%m-%d %H:%M:%S} UTC" for t in hunt.span)
    mode = f"one run at {hunt.now.isoformat()}" if hunt.now else "schedule replayed"
    return Summary(
        title=title,
        generated=generated,
        command=command,
        span=(span[0], span[1]) if span else None,
        mode=mode,
        sources=data.sources,
        tables=data.tables,
        devices=data.devices,
        alerts=len(alerts),
        incidents=incidents,
        severities=_severities(alerts),
        rules=tuple(RuleLine(s.rule.name, s.runs, s.alerts, s.suppressed) for s in hunt.stats),
        tuning=tuning.path.name if tuning.path else "none",
        suppressions=_suppressions(hunt, tuning),
    )


def build_report(
    *,
    title: str,
    generated: str,
    command: str,
    hunt: HuntResult,
    tuning: Tuning,
    data: DataSummary,
    incidents: Sequence[SecurityIncident],
    investigations: Mapping[str, Investigation],
    notes: Sequence[str] = (),
) -> Report:
    """The whole report: summary, incidents (each with its alerts and pivots), noise chart.

    ``investigations`` maps an incident's ``IncidentName`` to the investigation of its alerts;
    an incident without one is shown without pivots or playbook.
    """
    alerts = [a for i in incidents for a in i.alerts]
    return Report(
        summary=summary(
            title=title,
            generated=generated,
            command=command,
            hunt=hunt,
            tuning=tuning,
            data=data,
            alerts=alerts,
            incidents=len(incidents),
        ),
        incidents=tuple(incident_view(i, investigations.get(i.incident_name)) for i in incidents),
        noise=charts.noise_chart(hunt.daily),
        notes=tuple(notes),
    )
