"""``investigate``: an alert's guide run against the data it came from, and its playbook filled.

The alert is found among a hunt's alerts by its ``SystemAlertId`` (or a unique prefix of 8+
characters); its rule's guide gives the pivots, each bound to the alert's values
(:mod:`trustwatch.guides.bind`) and run in the same session; the playbook is filled
(:mod:`trustwatch.guides.playbook`). Several alerts (an incident) are investigated together:
their pivots are the union of theirs, each distinct bound query run once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustwatch.errors import InputError
from trustwatch.guides.bind import Bound, Value, alert_values, bind
from trustwatch.guides.model import Guide, Library, Pivot, guide_for, load_library
from trustwatch.guides.playbook import FilledStep, fill_playbook

if TYPE_CHECKING:
    import pyarrow as pa

    from trustwatch.api import Session
    from trustwatch.records import SecurityIncident
    from trustwatch.rules.model import Rule

MIN_PREFIX = 8


@dataclass(frozen=True, slots=True)
class PivotResult:
    """One pivot for the alert(s): the query run, its rows, or why it was not run."""

    bound: Bound
    alerts: tuple[str, ...]  # the SystemAlertIds it was bound for
    table: pa.Table | None = None


@dataclass(slots=True)
class AlertInvestigation:
    """One alert: its guide, its values, its playbook filled in."""

    alert: Mapping[str, Any]
    guide: Guide | None
    values: dict[str, Value] = field(default_factory=dict)
    steps: list[FilledStep] = field(default_factory=list)


@dataclass(slots=True)
class Investigation:
    """Alerts investigated together (one, or an incident's) and their pivots' results."""

    alerts: list[AlertInvestigation]
    pivots: list[PivotResult]


def find_alert(alerts: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any]:
    """The alert whose SystemAlertId is ``key``, or starts with it (8+ characters, unique).

    Raises:
        InputError: no alert, or several, match.
    """
    wanted = key.strip().lower()
    exact = [a for a in alerts if str(a.get("SystemAlertId", "")).lower() == wanted]
    if exact:
        return exact[0]
    if len(wanted) >= MIN_PREFIX:
        found = [a for a in alerts if str(a.get("SystemAlertId", "")).lower().startswith(wanted)]
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"'{key}' starts {len(found)} alert ids; give more of it")
    raise InputError(
        f"no alert '{key}' in this data ({len(alerts)} alert(s))",
        hint="'trustwatch hunt ... --format json' lists SystemAlertId; a prefix of 8+ "
        "characters is enough",
    )


def select(
    alerts: Sequence[Mapping[str, Any]], key: str
) -> tuple[list[Mapping[str, Any]], SecurityIncident | None]:
    """The alerts ``key`` names: one alert (its id), or an incident's (its ``IncidentName``).

    Exact ids win over prefixes; alerts are grouped into incidents as ``hunt`` groups them
    (:func:`trustwatch.incidents.group`, default window).

    Raises:
        InputError: nothing, or more than one thing, matches.
    """
    wanted = key.strip().lower()
    if any(str(a.get("SystemAlertId", "")).lower() == wanted for a in alerts):
        return [find_alert(alerts, key)], None
    from trustwatch import incidents
    from trustwatch.records import SecurityAlert

    grouped = incidents.group([SecurityAlert.from_record(a) for a in alerts])
    incident = incidents.find(grouped, key) if len(wanted) >= MIN_PREFIX else None
    exact = incident is not None and incident.incident_name.lower() == wanted
    if incident is not None and (exact or not _starts_alert(alerts, wanted)):
        by_id = {str(a.get("SystemAlertId")): a for a in alerts}
        return [by_id[i] for i in incident.alert_ids if i in by_id], incident
    return [find_alert(alerts, key)], None


def _starts_alert(alerts: Sequence[Mapping[str, Any]], prefix: str) -> bool:
    return any(str(a.get("SystemAlertId", "")).lower().startswith(prefix) for a in alerts)


def rule_of(alert: Mapping[str, Any], rules: Sequence[Rule]) -> Rule | None:
    """The rule that raised the alert (its ``Analytic Rule Ids``)."""
    try:
        ids = json.loads(json.loads(alert.get("ExtendedProperties") or "{}")["Analytic Rule Ids"])
    except (KeyError, TypeError, ValueError):
        return None
    return next((r for r in rules if r.id in ids), None)


def guides_of(rules: Sequence[Rule], library: Library | None = None) -> dict[str, Guide]:
    """The guides of the rules that have one, by rule id."""
    library = library or load_library()
    found = {r.id: guide_for(r.path, library) for r in rules}
    return {rule_id: guide for rule_id, guide in found.items() if guide is not None}


def pivots_by_id(guide: Guide, library: Library) -> dict[str, Pivot]:
    """The pivots a guide's steps may name: the library's, then the guide's own."""
    return {**library.pivots, **{p.id: p for p in guide.pivots}}


def investigate(
    alerts: Sequence[Mapping[str, Any]],
    guides: Mapping[str, Guide],
    rules: Sequence[Rule],
    session: Session,
    library: Library | None = None,
) -> Investigation:
    """Bind and run the pivots of each alert's guide; fill each alert's playbook.

    A bound query shared by several alerts (same pivot, same values) runs once, and its result
    names each of them. An alert whose rule has no guide is listed with no pivots or steps.
    """
    library = library or load_library()
    investigated: list[AlertInvestigation] = []
    runs: dict[str, PivotResult] = {}
    for alert in alerts:
        rule = rule_of(alert, rules)
        guide = guides.get(rule.id) if rule is not None else None
        if guide is None:
            investigated.append(AlertInvestigation(alert, None))
            continue
        values = alert_values(alert, guide.parameters)
        steps = fill_playbook(guide, values, pivots_by_id(guide, library))
        investigated.append(AlertInvestigation(alert, guide, values, steps))
        alert_id = str(alert.get("SystemAlertId", ""))
        for pivot in guide.pivots:
            bound = bind(pivot, guide.parameters, values)
            key = bound.text or f"{pivot.id}\x00{bound.skipped}"
            if key in runs:
                earlier = runs[key]
                runs[key] = PivotResult(earlier.bound, (*earlier.alerts, alert_id), earlier.table)
                continue
            table = None
            if bound.text:
                result = session.run(bound.text, source_name=f"{guide.path}:{pivot.id}")
                table = result.tables[-1] if result.tables else None
            runs[key] = PivotResult(bound, (alert_id,), table)
    return Investigation(investigated, list(runs.values()))
