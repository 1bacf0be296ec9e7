"""Typed alert and incident records: Sentinel's ``SecurityAlert`` and ``SecurityIncident`` rows.

``SecurityAlert.from_record`` reads the dict ``rules.alerts.build_alert`` makes (after
``certs.enrich`` added ``Certificates``) once, parsing its JSON-string columns
(``ExtendedProperties``, ``Entities``, ``Techniques``) and the comma list ``Tactics``;
``to_record`` gives the same dict back, key for key and byte for byte once dumped with
``json.dumps(..., ensure_ascii=False)`` (tests/test_records.py checks the demo's alerts). Keys a
record holds beyond the known ones are kept, in order, after them.

``SecurityIncident`` follows the columns of Sentinel's ``SecurityIncident`` table (``IncidentName``
is the incident's GUID, ``AlertIds`` the ``SystemAlertId`` of its alerts, ``AdditionalData`` the
alert count, tactics and techniques); trustwatch adds ``Chain`` (the ATT&CK techniques in
kill-chain order), ``Entities`` and ``Alerts`` (see ``trustwatch.incidents``). This module only
holds the shapes; it imports nothing from trustwatch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# SecurityAlert column -> attribute, in the order rules.alerts.build_alert writes them
_ALERT_FIELDS = (
    ("TimeGenerated", "time_generated"),
    ("DisplayName", "display_name"),
    ("AlertName", "alert_name"),
    ("AlertSeverity", "alert_severity"),
    ("Description", "description"),
    ("ProviderName", "provider_name"),
    ("VendorName", "vendor_name"),
    ("VendorOriginalId", "vendor_original_id"),
    ("SystemAlertId", "system_alert_id"),
    ("AlertType", "alert_type"),
    ("ConfidenceLevel", "confidence_level"),
    ("IsIncident", "is_incident"),
    ("StartTime", "start_time"),
    ("EndTime", "end_time"),
    ("RemediationSteps", "remediation_steps"),
    ("ExtendedProperties", "extended_properties"),
    ("Entities", "entities"),
    ("SourceSystem", "source_system"),
    ("ProductName", "product_name"),
    ("ProductComponentName", "product_component_name"),
    ("Status", "status"),
    ("CompromisedEntity", "compromised_entity"),
    ("Tactics", "tactics"),
    ("Techniques", "techniques"),
    ("Type", "type"),
    ("Evidence", "evidence"),
)
_KNOWN = frozenset(key for key, _ in _ALERT_FIELDS) | {"Certificates"}


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def _json_list(text: str) -> tuple[Any, ...]:
    value = json.loads(text) if text else []
    return tuple(value) if isinstance(value, list) else ()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityAlert:
    """One alert, with Sentinel's SecurityAlert columns as typed attributes.

    The JSON-string columns are parsed: ``extended_properties`` is a dict, ``entities`` and
    ``techniques`` tuples, ``tactics`` the comma list split. ``evidence`` holds the result rows
    the alert was raised for, ``certificates`` the enrichment's classification of each
    certificate it names (``None`` when it names none).
    """

    time_generated: str
    display_name: str
    alert_name: str
    alert_severity: str
    description: str
    provider_name: str
    vendor_name: str
    vendor_original_id: str
    system_alert_id: str
    alert_type: str
    confidence_level: str
    is_incident: bool
    start_time: str
    end_time: str
    remediation_steps: str
    extended_properties: Mapping[str, Any]
    entities: tuple[Mapping[str, Any], ...]
    source_system: str
    product_name: str
    product_component_name: str
    status: str
    compromised_entity: str
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    type: str = "SecurityAlert"
    evidence: tuple[Mapping[str, Any], ...] = ()
    certificates: tuple[Mapping[str, Any], ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SecurityAlert:
        """The typed form of a SecurityAlert dict (``rules.alerts.build_alert``'s shape)."""
        tactics = str(record.get("Tactics") or "")
        certificates = record.get("Certificates")
        return cls(
            time_generated=str(record.get("TimeGenerated") or ""),
            display_name=str(record.get("DisplayName") or ""),
            alert_name=str(record.get("AlertName") or ""),
            alert_severity=str(record.get("AlertSeverity") or ""),
            description=str(record.get("Description") or ""),
            provider_name=str(record.get("ProviderName") or ""),
            vendor_name=str(record.get("VendorName") or ""),
            vendor_original_id=str(record.get("VendorOriginalId") or ""),
            system_alert_id=str(record.get("SystemAlertId") or ""),
            alert_type=str(record.get("AlertType") or ""),
            confidence_level=str(record.get("ConfidenceLevel") or ""),
            is_incident=bool(record.get("IsIncident")),
            start_time=str(record.get("StartTime") or ""),
            end_time=str(record.get("EndTime") or ""),
            remediation_steps=str(record.get("RemediationSteps") or ""),
            extended_properties=_json_object(str(record.get("ExtendedProperties") or "")),
            entities=_json_list(str(record.get("Entities") or "")),
            source_system=str(record.get("SourceSystem") or ""),
            product_name=str(record.get("ProductName") or ""),
            product_component_name=str(record.get("ProductComponentName") or ""),
            status=str(record.get("Status") or ""),
            compromised_entity=str(record.get("CompromisedEntity") or ""),
            tactics=tuple(t.strip() for t in tactics.split(",") if t.strip()),
            techniques=tuple(str(t) for t in _json_list(str(record.get("Techniques") or ""))),
            type=str(record.get("Type") or "SecurityAlert"),
            evidence=tuple(record.get("Evidence") or ()),
            certificates=None if certificates is None else tuple(certificates),
            extra={k: v for k, v in record.items() if k not in _KNOWN},
        )

    def to_record(self) -> dict[str, Any]:
        """The SecurityAlert dict: JSON-string columns as JSON text, as Sentinel stores them."""
        encoded: dict[str, Any] = {
            "extended_properties": _dumps(dict(self.extended_properties)),
            "entities": _dumps([dict(e) for e in self.entities]),
            "tactics": ", ".join(self.tactics),
            "techniques": _dumps(list(self.techniques)),
            "evidence": [dict(r) for r in self.evidence],
        }
        out = {key: encoded.get(attr, getattr(self, attr)) for key, attr in _ALERT_FIELDS}
        if self.certificates is not None:
            out["Certificates"] = [dict(c) for c in self.certificates]
        out.update(self.extra)
        return out

    @property
    def rule_id(self) -> str:
        """The id of the rule that raised it (``AlertType`` is ``trustwatch_<rule id>``)."""
        ids = self.extended_properties.get("Analytic Rule Ids")
        if isinstance(ids, str) and ids.startswith("["):
            parsed = _json_list(ids)
            if parsed:
                return str(parsed[0])
        return self.alert_type.removeprefix("trustwatch_")

    @property
    def main_row(self) -> Mapping[str, Any]:
        """The first evidence row (the one the alert's summary columns come from)."""
        return self.evidence[0] if self.evidence else {}

    @property
    def certificate_verdict(self) -> str:
        """The worst certificate verdict enrichment gave (``""`` when it names no certificate)."""
        return str(self.extended_properties.get("Certificate Verdict") or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainStep:
    """One ATT&CK technique of an incident's chain: its tactic and the step it stands for."""

    technique: str
    tactic: str
    phase: str  # obtain, install, use...; "" for a technique the data file does not know
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentEntities:
    """What an incident's alerts name, each list in first-seen order without repeats."""

    devices: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()  # SHA-1 thumbprints
    files: tuple[str, ...] = ()

    def to_record(self) -> dict[str, list[str]]:
        return {
            "Devices": list(self.devices),
            "Accounts": list(self.accounts),
            "Processes": list(self.processes),
            "Certificates": list(self.certificates),
            "Files": list(self.files),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityIncident:
    """One incident: alerts grouped as Sentinel's alert grouping does (``trustwatch.incidents``).

    ``incident_name`` is the stable id (a GUID derived from the alerts' ``SystemAlertId``s);
    ``incident_number`` numbers the incidents of one hunt from 1 in order of first activity and
    is not stable across hunts. ``description`` is the narrative built from the evidence.
    """

    incident_name: str
    incident_number: int
    title: str
    description: str
    severity: str
    first_activity_time: str
    last_activity_time: str
    created_time: str
    chain: tuple[ChainStep, ...]
    entities: IncidentEntities
    alerts: tuple[SecurityAlert, ...]
    status: str = "New"
    provider_name: str = "Azure Sentinel"
    type: str = "SecurityIncident"

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(a.system_alert_id for a in self.alerts)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.rule_id for a in self.alerts))

    @property
    def tactics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step.tactic for step in self.chain if step.tactic))

    def to_record(self) -> dict[str, Any]:
        """The SecurityIncident row (dynamic columns as JSON values), plus trustwatch's keys."""
        return {
            "TimeGenerated": self.created_time,
            "IncidentName": self.incident_name,
            "IncidentNumber": self.incident_number,
            "Title": self.title,
            "Description": self.description,
            "Severity": self.severity,
            "Status": self.status,
            "Classification": "",
            "Owner": {
                "objectId": None,
                "email": None,
                "assignedTo": None,
                "userPrincipalName": None,
            },
            "ProviderName": self.provider_name,
            "ProviderIncidentId": str(self.incident_number),
            "FirstActivityTime": self.first_activity_time,
            "LastActivityTime": self.last_activity_time,
            "CreatedTime": self.created_time,
            "RelatedAnalyticRuleIds": list(self.rule_ids),
            "AlertIds": list(self.alert_ids),
            "BookmarkIds": [],
            "Labels": [],
            "AdditionalData": {
                "alertsCount": len(self.alerts),
                "bookmarksCount": 0,
                "commentsCount": 0,
                "alertProductNames": sorted({a.product_name for a in self.alerts}),
                "tactics": list(self.tactics),
                "techniques": [step.technique for step in self.chain],
            },
            "SourceSystem": "Azure",
            "Type": self.type,
            "Chain": [
                {"Technique": s.technique, "Tactic": s.tactic, "Phase": s.phase, "Name": s.name}
                for s in self.chain
            ],
            "Entities": self.entities.to_record(),
        }
