"""Alerts grouped into incidents the way Sentinel's alert grouping does, each with its story.

``group(alerts, window)`` walks the alerts in time order (``StartTime``, then ``SystemAlertId``).
An alert joins an incident when it names the same device (``CompromisedEntity``, else the
evidence's ``DeviceName``, compared case-insensitively) or the same certificate thumbprint
(``CertThumbprint`` of its evidence, or a certificate enrichment classified), and that
incident's first alert started at most ``window`` before it - Sentinel's grouping with
"matching entities" and a look-back measured from the incident's first alert. An alert that
matches several incidents joins them into one. ``window=None`` turns grouping off: one
incident per alert.

**Incident id** (``IncidentName``): ``uuid5(INCIDENT_NAMESPACE, "\\n".join(sorted(ids)))`` over
the ``SystemAlertId`` of its alerts (which are themselves derived from rule and evidence,
``rules.alerts``). The same data, rules, tuning and window give the same ids on every hunt;
a different window that groups differently gives different ids. ``find(incidents, text)``
resolves an id or a unique prefix of one.

Each incident has a title (its lead alert's ``DisplayName``: highest severity, then most
techniques, then earliest), a severity (the highest of its alerts), the ATT&CK chain its
alerts' techniques show in kill-chain order, its entities, and a narrative built from the
evidence by the per-rule phrases of ``content/incidents.yaml`` (docs/incidents.md). Values
come from the logs and are hostile: they are kept exactly here and made inert where shown.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from trustwatch import yamlio
from trustwatch.records import ChainStep, IncidentEntities, SecurityAlert, SecurityIncident
from trustwatch.severity import SEVERITIES

INCIDENT_NAMESPACE = uuid.UUID("0c6b1f4e-2d3a-5b7c-9e8f-a1b2c3d4e5f6")
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_ACTOR = "{{Process}}[ run by {{Account}}]"
DEFAULT_PHRASE = "raised '{{AlertName}}'"
VALUE_LIMIT = 300  # characters of one log value in a narrative (the middle elided past it)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")
# evidence columns naming a file an incident touched
FILE_COLUMNS = ("FolderPath", "ExportPath", "CertFile", "OutFile")
PROCESS_COLUMNS = ("ProcessPath", "InitiatingProcessFolderPath", "InitiatingProcessFileName")


@dataclass(frozen=True, slots=True)
class Narrative:
    """How one rule's alerts read in a narrative (``content/incidents.yaml``)."""

    phrase: str = DEFAULT_PHRASE
    actor: str = DEFAULT_ACTOR
    otherwise: str = ""  # the phrase when ``phrase`` has an empty required placeholder
    facts: tuple[str, ...] = ()
    rank: int = 0
    extract: Mapping[str, tuple[str, re.Pattern[str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Kill-chain order, technique steps and per-rule narratives."""

    tactics: tuple[str, ...]
    techniques: Mapping[str, ChainStep]
    narratives: Mapping[str, Narrative]


def catalog_from_dict(doc: Mapping[str, Any]) -> Catalog:
    """A catalog from the parsed ``incidents.yaml``."""
    techniques = {
        str(t): ChainStep(
            technique=str(t),
            tactic=str(v.get("tactic", "")),
            phase=str(v.get("phase", "")),
            name=str(v.get("name", "")),
        )
        for t, v in (doc.get("techniques") or {}).items()
    }
    narratives = {
        str(rule): Narrative(
            phrase=str(v.get("phrase") or DEFAULT_PHRASE),
            actor=str(v.get("actor") or DEFAULT_ACTOR),
            otherwise=str(v.get("otherwise") or ""),
            facts=tuple(str(f) for f in v.get("facts") or ()),
            rank=int(v.get("rank") or 0),
            extract={
                str(name): (str(spec["column"]), re.compile(str(spec["pattern"])))
                for name, spec in (v.get("extract") or {}).items()
            },
        )
        for rule, v in (doc.get("narratives") or {}).items()
    }
    return Catalog(tuple(str(t) for t in doc.get("tactics") or ()), techniques, narratives)


@functools.cache
def shipped_catalog() -> Catalog:
    """The catalog shipped in ``trustwatch/content/incidents.yaml`` (read on first use)."""
    text = resources.files("trustwatch.content").joinpath("incidents.yaml").read_text("utf-8")
    return catalog_from_dict(yamlio.load(text) or {})


def parse_time(text: str) -> datetime:
    """An alert's ISO 8601 time (``...Z``); unparsable text sorts first."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromisoformat("0001-01-01T00:00:00+00:00")


def device_of(alert: SecurityAlert) -> str:
    return str(alert.compromised_entity or alert.main_row.get("DeviceName") or "")


def thumbprints_of(alert: SecurityAlert) -> list[str]:
    """The certificate thumbprints an alert names, upper case, in first-seen order."""
    found = [str(r.get("CertThumbprint") or "") for r in alert.evidence]
    found += [str(c.get("thumbprint") or "") for c in alert.certificates or ()]
    return list(dict.fromkeys(t.upper() for t in found if _THUMBPRINT.match(t)))


def _keys(alert: SecurityAlert) -> set[str]:
    keys = {f"cert:{t}" for t in thumbprints_of(alert)}
    device = device_of(alert)
    if device:
        keys.add(f"device:{device.lower()}")
    return keys


@dataclass(slots=True)
class _Open:
    first: datetime
    keys: set[str]
    members: list[SecurityAlert]


def group(
    alerts: Iterable[SecurityAlert],
    window: timedelta | None = DEFAULT_WINDOW,
    catalog: Catalog | None = None,
) -> list[SecurityIncident]:
    """Alerts grouped into incidents (module docstring), in order of first activity.

    Args:
        alerts: the hunt's alerts, in any order.
        window: how long after an incident's first alert a matching alert still joins it;
            ``None``: no grouping, one incident per alert.
        catalog: kill-chain order and narratives; default the shipped ``incidents.yaml``.

    Returns:
        The incidents, numbered from 1 by first activity (ties by id).
    """
    ordered = sorted(alerts, key=lambda a: (parse_time(a.start_time), a.system_alert_id))
    groups: list[_Open] = []
    for alert in ordered:
        at, keys = parse_time(alert.start_time), _keys(alert)
        matching = (
            []
            if window is None
            else [g for g in groups if g.keys & keys and at - g.first <= window]
        )
        if not matching:
            groups.append(_Open(at, keys, [alert]))
            continue
        target, *others = matching
        for other in others:  # the alert joins these incidents together
            target.keys |= other.keys
            target.members.extend(other.members)
            target.first = min(target.first, other.first)
            groups.remove(other)
        target.keys |= keys
        target.members.append(alert)
    built = [_incident(g.members, catalog or shipped_catalog()) for g in groups]
    built.sort(key=lambda i: (parse_time(i.first_activity_time), i.incident_name))
    return [_numbered(i, n) for n, i in enumerate(built, 1)]


def incident_id(alert_ids: Iterable[str]) -> str:
    """The stable id of the incident holding exactly these alerts (module docstring)."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, "\n".join(sorted(alert_ids))))


def find(incidents: Iterable[SecurityIncident], text: str) -> SecurityIncident | None:
    """The incident whose id is ``text`` or starts with it (case-insensitive), if just one."""
    wanted = text.strip().lower()
    hits = [i for i in incidents if wanted and i.incident_name.lower().startswith(wanted)]
    exact = [i for i in hits if i.incident_name.lower() == wanted]
    if exact:
        return exact[0]
    return hits[0] if len(hits) == 1 else None


def _numbered(incident: SecurityIncident, number: int) -> SecurityIncident:
    from dataclasses import replace

    return replace(incident, incident_number=number)


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def _incident(members: list[SecurityAlert], catalog: Catalog) -> SecurityIncident:
    alerts = sorted(members, key=lambda a: (parse_time(a.start_time), a.system_alert_id))
    lead = max(
        alerts,
        key=lambda a: (
            _severity_rank(a.alert_severity),
            len(a.techniques),
            -parse_time(a.start_time).timestamp(),
        ),
    )
    return SecurityIncident(
        incident_name=incident_id(a.system_alert_id for a in alerts),
        incident_number=0,
        title=re.sub(" {2,}", " ", lead.display_name or lead.alert_name),  # an empty field's gap
        description=narrate(alerts, catalog),
        severity=lead.alert_severity,
        first_activity_time=min((a.start_time for a in alerts), key=parse_time),
        last_activity_time=max((a.end_time or a.start_time for a in alerts), key=parse_time),
        created_time=max((a.time_generated for a in alerts), key=parse_time),
        chain=chain(alerts, catalog),
        entities=entities(alerts),
        alerts=tuple(alerts),
    )


def chain(alerts: Sequence[SecurityAlert], catalog: Catalog) -> tuple[ChainStep, ...]:
    """The alerts' techniques, each once, in kill-chain order (then first seen)."""
    steps: dict[str, ChainStep] = {}
    for alert in alerts:
        for technique in alert.techniques:
            if technique in steps:
                continue
            known = catalog.techniques.get(technique) or catalog.techniques.get(
                technique.split(".")[0]
            )
            steps[technique] = ChainStep(
                technique=technique,
                tactic=known.tactic if known else (alert.tactics[0] if alert.tactics else ""),
                phase=known.phase if known and known.technique == technique else "",
                name=known.name if known and known.technique == technique else "",
            )
    order = {tactic: n for n, tactic in enumerate(catalog.tactics)}
    listed = {technique: n for n, technique in enumerate(catalog.techniques)}
    seen = list(steps)
    return tuple(
        sorted(
            steps.values(),
            key=lambda s: (
                order.get(s.tactic, len(order)),
                listed.get(s.technique, len(listed)),
                seen.index(s.technique),
            ),
        )
    )


def _first(row: Mapping[str, Any], columns: Iterable[str]) -> str:
    for column in columns:
        value = row.get(column)
        if value not in (None, ""):
            return str(value)
    return ""


def _account(row: Mapping[str, Any]) -> str:
    name = _first(row, ("AccountName", "InitiatingProcessAccountName"))
    domain = _first(row, ("AccountDomain", "InitiatingProcessAccountDomain"))
    return f"{domain}\\{name}" if domain and name else name


def _add(seen: dict[str, str], value: str) -> None:
    if value:
        seen.setdefault(value.lower(), value)


def entities(alerts: Sequence[SecurityAlert]) -> IncidentEntities:
    """Devices, accounts, process paths, certificate thumbprints and files the alerts name."""
    devices: dict[str, str] = {}
    accounts: dict[str, str] = {}
    processes: dict[str, str] = {}
    files: dict[str, str] = {}
    certificates: list[str] = []
    for alert in alerts:
        _add(devices, device_of(alert))
        for row in alert.evidence:
            _add(devices, str(row.get("DeviceName") or ""))
            _add(accounts, _account(row))
            _add(processes, _first(row, PROCESS_COLUMNS))
            for column in FILE_COLUMNS:
                _add(files, str(row.get(column) or ""))
        for entity in alert.entities:
            if entity.get("Type") == "file" and entity.get("Name"):
                directory = str(entity.get("Directory") or "")
                name = str(entity["Name"])
                _add(files, f"{directory}\\{name}" if directory else name)
        certificates += thumbprints_of(alert)
    return IncidentEntities(
        devices=tuple(devices.values()),
        accounts=tuple(accounts.values()),
        processes=tuple(processes.values()),
        certificates=tuple(dict.fromkeys(certificates)),
        files=tuple(files.values()),
    )


# --- the narrative ---------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path.rsplit("\\", 1)[-1] if path else ""  # Windows paths; "/" may be in a name


def _store(row: Mapping[str, Any]) -> str:
    store = str(row.get("CertStore") or "")
    location = str(row.get("CertStoreLocation") or "")
    return f"{location}\\{store}" if store and location else store


def _subject(alert: SecurityAlert) -> str:
    verdict = alert.certificate_verdict
    for cert in alert.certificates or ():
        subject = str(cert.get("subject") or "")
        if subject and (not verdict or cert.get("verdict") == verdict):
            match = re.search(r"CN=([^,]+)", subject)
            return match.group(1) if match else subject
    return ""


# derived narrative fields: name -> value from the alert and its first evidence row
DERIVED: Mapping[str, Callable[[SecurityAlert, Mapping[str, Any]], str]] = {
    "Process": lambda a, r: _basename(_first(r, PROCESS_COLUMNS)),
    "Account": lambda a, r: _account(r),
    "Store": lambda a, r: _store(r),
    "Time": lambda a, r: parse_time(a.start_time).strftime("%H:%M:%S"),
    "AlertName": lambda a, r: a.alert_name,
    "Device": lambda a, r: device_of(a),
    "CertSubject": lambda a, r: _subject(a),
    "CertVerdict": lambda a, r: "" if a.certificate_verdict == "unknown" else a.certificate_verdict,
}


def _shorten(text: str, limit: int = VALUE_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return f"{text[:half]}…{text[-half:]}"


def fields_of(alert: SecurityAlert, narrative: Narrative) -> dict[str, str]:
    """The values a rule's phrase may name: evidence columns, extracted and derived fields."""
    row = alert.main_row
    values = {
        str(k): "" if v is None or isinstance(v, dict | list) else str(v) for k, v in row.items()
    }
    for name, (column, pattern) in narrative.extract.items():
        match = pattern.search(str(row.get(column) or "")[:4096])
        values[name] = match.group(1) if match else ""
    for name, derive in DERIVED.items():  # a derived field, else the column of that name
        values[name] = derive(alert, row) or values.get(name, "")
    return {k: _shorten(v) for k, v in values.items()}


def fill(template: str, values: Mapping[str, str]) -> str | None:
    """``template`` with its placeholders filled; ``None`` if a required one is empty.

    A ``[bracketed part]`` is dropped when any placeholder in it is empty. Values are
    substituted after the brackets are resolved, so brackets or braces in a value are text.
    """

    def optional(match: re.Match[str]) -> str:
        inner = match.group(1)
        names = _PLACEHOLDER.findall(inner)
        return inner if all(values.get(n) for n in names) else ""

    text = _OPTIONAL.sub(optional, template)
    if any(not values.get(n) for n in _PLACEHOLDER.findall(text)):
        return None
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@dataclass(slots=True)
class _Clause:
    actor: str
    text: str
    time: str


def _clauses(alerts: Sequence[SecurityAlert], catalog: Catalog) -> list[_Clause]:
    def order(item: tuple[int, SecurityAlert]) -> tuple[datetime, int, int]:
        n, alert = item
        narrative = catalog.narratives.get(alert.rule_id) or Narrative()
        return (parse_time(alert.start_time).replace(microsecond=0), narrative.rank, n)

    stated: set[str] = set()
    clauses: list[_Clause] = []
    for _, alert in sorted(enumerate(alerts), key=order):
        narrative = catalog.narratives.get(alert.rule_id) or Narrative()
        values = fields_of(alert, narrative)
        facts = {f.lower() for f in (fill(t, values) for t in narrative.facts) if f}
        if facts and facts <= stated:
            continue
        stated |= facts
        text = (
            fill(narrative.phrase, values)
            or (fill(narrative.otherwise, values) if narrative.otherwise else None)
            or fill(DEFAULT_PHRASE, values)
            or ""
        )
        actor = fill(narrative.actor, values) or fill(DEFAULT_ACTOR, values) or "a process"
        clauses.append(_Clause(actor, text, values["Time"]))
    return clauses


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def narrate(alerts: Sequence[SecurityAlert], catalog: Catalog | None = None) -> str:
    """A few sentences telling what the alerts' evidence shows, in time order.

    One sentence per run of clauses with the same actor ("powershell.exe run by
    CONTOSO\\erin.tan created ... and exported it to ... at 10:45:38.").
    """
    sentences: list[str] = []
    run: list[_Clause] = []
    for clause in [*_clauses(alerts, catalog or shipped_catalog()), None]:
        if run and (clause is None or clause.actor != run[0].actor):
            first, last = run[0].time, run[-1].time
            when = f"at {first}" if first == last else f"between {first} and {last}"
            sentences.append(f"{run[0].actor} {_join([c.text for c in run])} {when}.")
            run = []
        if clause is not None:
            run.append(clause)
    return " ".join(sentences)
