"""A converted Sigma rule as a Sentinel scheduled analytic rule: its document and its ``Rule``.

The document is what a Sentinel rule file would hold (``docs/sigma.md`` lists each key's
origin). Its schedule is ``queryFrequency: 1h`` with ``queryPeriod: 1h``: the look-back windows
of consecutive runs tile time, so the hunt's schedule replay shows every event to exactly one
run, as a Sigma tool that reads each event once does; ``triggerOperator: gt 0`` alerts on any
match. The Sigma metadata travels under ``sigma`` and is copied into each alert's
``ExtendedProperties`` (``rules.alerts``): Sigma id, title, level, status, ATT&CK tags, file.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from trustwatch.rules.model import Rule, rule_from_doc
from trustwatch.sigma.convert import Converted

PACK = "sigma"
SCHEDULE = "1h"  # queryFrequency and queryPeriod alike: each event is seen by one run
SIGMA_KEY = "sigma"  # the document key rules.alerts copies into ExtendedProperties

# Sigma level -> Sentinel severity (Sentinel has no Critical); no level: Medium
SEVERITY = {
    "informational": "Informational",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
    "critical": "High",
}
# Sigma ATT&CK tactic tag -> Sentinel AttackTactic. ATT&CK v18 split Defense Evasion into
# Stealth and Defense Impairment, which Sentinel's enum does not have yet: both are its
# DefenseEvasion (the Sigma tags themselves are kept on the alert).
TACTICS = {
    "reconnaissance": "Reconnaissance",
    "resource-development": "ResourceDevelopment",
    "initial-access": "InitialAccess",
    "execution": "Execution",
    "persistence": "Persistence",
    "privilege-escalation": "PrivilegeEscalation",
    "defense-evasion": "DefenseEvasion",
    "stealth": "DefenseEvasion",
    "defense-impairment": "DefenseEvasion",
    "credential-access": "CredentialAccess",
    "discovery": "Discovery",
    "lateral-movement": "LateralMovement",
    "collection": "Collection",
    "exfiltration": "Exfiltration",
    "command-and-control": "CommandAndControl",
    "impact": "Impact",
    "inhibit-response-function": "InhibitResponseFunction",
    "impair-process-control": "ImpairProcessControl",
}
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
# entities every Defender table's rows can name: (entity type, identifier, column)
ENTITIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "DeviceProcessEvents": (
        ("Host", "HostName", "DeviceName"),
        ("Account", "Name", "AccountName"),
        ("Process", "CommandLine", "ProcessCommandLine"),
    ),
}
_INITIATING = (
    ("Host", "HostName", "DeviceName"),
    ("Account", "Name", "InitiatingProcessAccountName"),
    ("Process", "CommandLine", "InitiatingProcessCommandLine"),
)
_NAMESPACE = uuid.UUID("3c0c8f6e-2f7e-4d8c-9a51-5b1f0f1e5a77")  # ids of rules without one
MAX_NAME, MAX_DESCRIPTION = 256, 5000


def severity(level: str) -> str:
    """The Sentinel severity of a Sigma level."""
    return SEVERITY.get(level.lower(), "Medium")


def tactics(tags: tuple[str, ...]) -> list[str]:
    """Sentinel tactics from ``attack.<tactic>`` tags, in order, once each."""
    out: list[str] = []
    for tag in tags:
        namespace, _, name = tag.lower().partition(".")
        tactic = TACTICS.get(name) if namespace == "attack" else None
        if tactic and tactic not in out:
            out.append(tactic)
    return out


def techniques(tags: tuple[str, ...]) -> list[str]:
    """ATT&CK technique ids (``T1105``, ``T1552.001``) from ``attack.t...`` tags."""
    out: list[str] = []
    for tag in tags:
        m = _TECHNIQUE.match(tag)
        if m and m.group(1).upper() not in out:
            out.append(m.group(1).upper())
    return out


def table_of(query: str) -> str:
    """The table a converted query reads (the Kusto backend writes it on the first line)."""
    return query.split("\n", 1)[0].strip()


def sentinel_document(rule: Converted) -> dict[str, Any]:
    """The Sentinel scheduled-rule document of a converted Sigma rule."""
    table = table_of(rule.query)
    rule_id = rule.sigma_id or str(uuid.uuid5(_NAMESPACE, rule.title + "\x00" + rule.query))
    origin = f"Converted from Sigma rule {rule.sigma_id or '(no id)'} ({rule.path.name})"
    if rule.author:
        origin += f" by {rule.author}"
    origin += " (SigmaHQ rules: Detection Rule License 1.1)."
    description = (rule.description.strip() or rule.title).strip()
    description = description[: MAX_DESCRIPTION - len(origin) - 2] + "\n\n" + origin
    return {
        "id": rule_id,
        "name": (rule.title or rule.path.stem)[:MAX_NAME],
        "description": description,
        "severity": severity(rule.level),
        "requiredDataConnectors": [
            {"connectorId": "MicrosoftThreatProtection", "dataTypes": [table]}
        ],
        "queryFrequency": SCHEDULE,
        "queryPeriod": SCHEDULE,
        "triggerOperator": "gt",
        "triggerThreshold": 0,
        "tactics": tactics(rule.tags),
        "relevantTechniques": techniques(rule.tags),
        "query": rule.query,
        "entityMappings": [
            {"entityType": kind, "fieldMappings": [{"identifier": ident, "columnName": column}]}
            for kind, ident, column in ENTITIES.get(table, _INITIATING)
        ],
        "version": "1.0.0",
        "kind": "Scheduled",
        SIGMA_KEY: {
            "Sigma Rule Id": rule.sigma_id,
            "Sigma Title": rule.title,
            "Sigma Level": rule.level,
            "Sigma Status": rule.status,
            "Sigma Tags": json.dumps(list(rule.tags)),
            "Sigma File": rule.path.name,
        },
    }


def to_rule(rule: Converted) -> Rule:
    """The trustwatch rule of a converted Sigma rule (pack ``sigma``)."""
    return rule_from_doc(sentinel_document(rule), rule.path, PACK, 0)
