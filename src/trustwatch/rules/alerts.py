"""Alerts in the shape of Sentinel's ``SecurityAlert`` table, built from rule results.

Field values follow a real alert raised by a scheduled rule
(``reference/examples/securityalert_scheduled_rule_row.json``): ``ExtendedProperties`` and
``Entities`` are JSON *strings*, ``Tactics`` is comma-separated. trustwatch adds one field,
``Evidence``: the result rows the alert was raised for.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from trustwatch.kql.literals import format_datetime_value
from trustwatch.rules.model import Rule, format_timespan
from trustwatch.rules.tuning import row_time
from trustwatch.severity import SEVERITIES

# entity type in a rule -> "Type" of the SecurityAlert entity
ENTITY_TYPES = {
    "Account": "account",
    "Host": "host",
    "IP": "ip",
    "URL": "url",
    "File": "file",
    "FileHash": "filehash",
    "Process": "process",
    "RegistryKey": "registry-key",
    "RegistryValue": "registry-value",
    "DNS": "dns",
    "Mailbox": "mailbox",
    "CloudApplication": "cloud-application",
    "AzureResource": "azure-resource",
    "SecurityGroup": "security-group",
    "Malware": "malware",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_NAMESPACE = uuid.UUID("6f1d8a52-8e57-4a9e-9d0b-6b5f2f0c7a11")  # alert ids from their content


# values that are JSON as they are: most cells, returned without a call per cell (a SigmaHQ
# hunt keys and copies tens of thousands of 70-column rows)
_PLAIN = frozenset({str, int, float, bool, type(None)})


def json_value(value: Any) -> Any:
    """A result cell as JSON: datetimes ISO 8601 UTC with Z, durations as TimeSpan text."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return format_datetime_value(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, timedelta):
        return format_timespan(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def _canonical(value: Any) -> Any:
    """Lists in a fixed order: make_set() returns its values in no particular order."""
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else _canonical(v) for k, v in value.items()}
    return value


def row_key(row: Mapping[str, Any]) -> str:
    """A stable identity for a result row (de-duplication across scheduled runs)."""
    canonical = _canonical(json_value(dict(row)))
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _fill(template: str, row: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: _text(row.get(m.group(1))), template)


def entities(rule: Rule, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entities of the rule's entityMappings, one per distinct identifier set, in order."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        for mapping in rule.entity_mappings:
            kind = str(mapping.get("entityType", ""))
            entity: dict[str, Any] = {}
            for field in mapping.get("fieldMappings") or []:
                value = row.get(str(field.get("columnName", "")))
                if value not in (None, ""):
                    entity[str(field.get("identifier"))] = json_value(value)
            if not entity:
                continue
            entity["Type"] = ENTITY_TYPES.get(kind, kind.lower())
            key = json.dumps(entity, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            out.append({"$id": str(len(out) + 1), **entity})
    return out


def build_alert(
    rule: Rule,
    rows: Sequence[Mapping[str, Any]],
    *,
    run_at: datetime,
    window_start: datetime,
    results_in_run: int,
) -> dict[str, Any]:
    """One SecurityAlert for ``rows`` (one row for AlertPerResult; all new rows otherwise)."""
    first = rows[0]
    override = rule.details_override
    severity = rule.severity
    column = override.get("alertSeverityColumnName")
    if column and str(first.get(column) or "") in SEVERITIES:
        severity = str(first[column])
    times = [t for t in (row_time(r) for r in rows) if t is not None]
    start = min(times) if times else run_at
    end = max(times) if times else run_at
    display = (
        _fill(override["alertDisplayNameFormat"], first)
        if override.get("alertDisplayNameFormat")
        else rule.name
    )
    description = (
        _fill(override["alertDescriptionFormat"], first)
        if override.get("alertDescriptionFormat")
        else str(rule.doc.get("description", "")).strip()
    )
    details = {
        key: sorted({_text(r.get(col)) for r in rows if r.get(col) not in (None, "")})
        for key, col in rule.custom_details.items()
    }
    extended = {
        "Query Period": format_timespan(rule.query_period),
        "Trigger Operator": rule.trigger_operator,
        "Trigger Threshold": str(rule.trigger_threshold),
        "Search Query Results Overall Count": str(results_in_run),
        "Query Start Time UTC": json_value(window_start),
        "Query End Time UTC": json_value(run_at),
        "Analytic Rule Ids": json.dumps([rule.id]),
        "Analytic Rule Name": rule.name,
        "Event Grouping": rule.grouping,
        "Custom Details": json.dumps(details, ensure_ascii=False),
    }
    # a rule converted from Sigma (trustwatch.sigma) names its origin: id, title, level, tags
    extended.update({str(k): str(v) for k, v in (rule.doc.get("sigma") or {}).items()})
    evidence = [json_value(dict(r)) for r in rows]
    alert_id = str(uuid.uuid5(_NAMESPACE, rule.id + "".join(row_key(r) for r in rows)))
    devices = [str(r.get("DeviceName")) for r in rows if r.get("DeviceName")]
    return {
        "TimeGenerated": json_value(run_at),
        "DisplayName": display,
        "AlertName": rule.name,
        "AlertSeverity": severity,
        "Description": description,
        "ProviderName": "ASI Scheduled Alerts",
        "VendorName": "Microsoft",
        "VendorOriginalId": alert_id,
        "SystemAlertId": alert_id,
        "AlertType": f"trustwatch_{rule.id}",
        "ConfidenceLevel": "",
        "IsIncident": False,
        "StartTime": json_value(start),
        "EndTime": json_value(end),
        "RemediationSteps": "",
        "ExtendedProperties": json.dumps(extended, ensure_ascii=False),
        "Entities": json.dumps(entities(rule, rows), ensure_ascii=False),
        "SourceSystem": "Detection",
        "ProductName": "Azure Sentinel",
        "ProductComponentName": "Scheduled Alerts",
        "Status": "New",
        "CompromisedEntity": devices[0] if devices else "",
        "Tactics": ", ".join(rule.tactics),
        "Techniques": json.dumps(rule.techniques),
        "Type": "SecurityAlert",
        "Evidence": evidence,
    }
