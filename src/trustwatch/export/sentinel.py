"""Microsoft Sentinel: a rule as Azure-Sentinel repository YAML, as the REST body of an
``alertRules`` resource (kind Scheduled), and rules plus watchlists as an ARM template.

:func:`alert_rule_properties` and :func:`watchlist_properties` are exactly the ``properties``
that ``trustwatch deploy sentinel`` will PUT; the ARM template wraps the same bodies.
Formats: ``../shared/reference/sentinel_rule_format.md`` sections 1 and 2.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from trustwatch.export.model import ExportFile
from trustwatch.rules.model import Rule

API_VERSION = "2024-09-01"  # stable; alertRules and watchlists (reference section 2)
RULE_TYPE = "Microsoft.OperationalInsights/workspaces/providers/alertRules"
WATCHLIST_TYPE = "Microsoft.OperationalInsights/workspaces/providers/Watchlists"
TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

#: YAML triggerOperator (short or long form, any case) -> the REST enum
TRIGGER_OPERATORS: Mapping[str, str] = {
    "gt": "GreaterThan",
    "greaterthan": "GreaterThan",
    "lt": "LessThan",
    "lessthan": "LessThan",
    "eq": "Equal",
    "equal": "Equal",
    "ne": "NotEqual",
    "notequal": "NotEqual",
}

#: Repository YAML keys in the order the Azure-Sentinel repository writes them
YAML_KEYS = (
    "id",
    "name",
    "description",
    "severity",
    "status",
    "requiredDataConnectors",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "tactics",
    "relevantTechniques",
    "query",
    "entityMappings",
    "customDetails",
    "alertDetailsOverride",
    "eventGroupingSettings",
    "version",
    "kind",
)

#: What a new rule's incidents do (the portal's defaults)
INCIDENT_CONFIGURATION: Mapping[str, Any] = {
    "createIncident": True,
    "groupingConfiguration": {
        "enabled": False,
        "reopenClosedIncident": False,
        "lookbackDuration": "PT5H",
        "matchingMethod": "AllEntities",
        "groupByEntities": [],
        "groupByAlertDetails": [],
        "groupByCustomDetails": [],
    },
}


# --- durations ---------------------------------------------------------------------------------


def iso_duration(value: timedelta) -> str:
    """A timedelta as an ISO 8601 duration for the REST API: ``PT1H``, ``P1D``, ``P2DT30M``."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


def split_techniques(techniques: Sequence[str]) -> tuple[list[str], list[str]]:
    """``relevantTechniques`` as the REST API's ``techniques`` (parents) and ``subTechniques``."""
    parents: list[str] = []
    subs: list[str] = []
    for technique in techniques:
        parent = technique.split(".", 1)[0]
        if parent not in parents:
            parents.append(parent)
        if "." in technique and technique not in subs:
            subs.append(technique)
    return parents, subs


# --- repository YAML ---------------------------------------------------------------------------


def sentinel_document(rule: Rule) -> dict[str, Any]:
    """The rule as an Azure-Sentinel repository document, keys in the repository's order.

    Modelled values come from the rule's properties; the keys trustwatch does not model
    (description, requiredDataConnectors, status, version, kind) are passed through.
    """
    modelled: dict[str, Any] = {
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity,
        "query": rule.query,
        "tactics": rule.tactics,
        "relevantTechniques": rule.techniques,
        "triggerOperator": rule.trigger_operator,
        "triggerThreshold": rule.trigger_threshold,
        "entityMappings": rule.entity_mappings,
        "customDetails": rule.custom_details,
        "alertDetailsOverride": rule.details_override,
    }
    doc: dict[str, Any] = {}
    for key in YAML_KEYS:
        if key in modelled:
            value = modelled[key]
        elif key in rule.doc:
            value = rule.doc[key]
        else:
            continue
        if value in ({}, []) and key not in rule.doc:
            continue  # empty optional blocks are left out, as the repository does
        doc[key] = value
    for key in ("queryFrequency", "queryPeriod"):
        doc[key] = rule.doc.get(key, _short_duration(getattr(rule, _ATTR[key])))
    if "eventGroupingSettings" in rule.doc:
        doc["eventGroupingSettings"] = {"aggregationKind": rule.grouping}
    return {k: doc[k] for k in YAML_KEYS if k in doc}


_ATTR = {"queryFrequency": "query_frequency", "queryPeriod": "query_period"}


def _short_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds()) // 60
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks (the query stays readable)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(doc: Any) -> str:
    """YAML text of ``doc``: keys in the given order, ASCII only, multi-line strings as blocks."""
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=False, width=100)


def dump_yaml_documents(docs: Sequence[Any]) -> str:
    """Several documents as one YAML text (``---`` before each), multi-line strings as blocks."""
    return yaml.dump_all(
        list(docs),
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        explicit_start=True,
    )


def sentinel_files(rule: Rule, stem: str) -> list[ExportFile]:
    """``<stem>.yaml`` (the repository document) and, when the rule has one, its tests file
    ``<stem>.tests.yaml`` (``trustwatch rules lint`` wants it beside the rule)."""
    files = [ExportFile(f"{stem}.yaml", dump_yaml(sentinel_document(rule)))]
    if rule.tests.path is not None:
        files.append(ExportFile(f"{stem}.tests.yaml", rule.tests.path.read_text(encoding="utf-8")))
    return files


# --- REST bodies -------------------------------------------------------------------------------


def alert_rule_properties(rule: Rule) -> dict[str, Any]:
    """The ``properties`` of the rule's ``Microsoft.SecurityInsights/alertRules`` resource.

    Raises:
        KeyError: the rule's triggerOperator is not gt/lt/eq/ne (lint reports it first).
    """
    techniques, sub_techniques = split_techniques(rule.techniques)
    properties: dict[str, Any] = {
        "displayName": rule.name,
        "description": str(rule.doc.get("description") or "").strip(),
        "severity": rule.severity,
        "enabled": True,
        "query": rule.query,
        "queryFrequency": iso_duration(rule.query_frequency),
        "queryPeriod": iso_duration(rule.query_period),
        "triggerOperator": TRIGGER_OPERATORS[rule.trigger_operator.lower()],
        "triggerThreshold": rule.trigger_threshold,
        "suppressionDuration": "PT5H",
        "suppressionEnabled": False,
        "tactics": rule.tactics,
        "techniques": techniques,
        "subTechniques": sub_techniques,
        "incidentConfiguration": json.loads(json.dumps(INCIDENT_CONFIGURATION)),
        "eventGroupingSettings": {"aggregationKind": rule.grouping},
    }
    if rule.custom_details:
        properties["customDetails"] = rule.custom_details
    if rule.entity_mappings:
        properties["entityMappings"] = rule.entity_mappings
    if rule.details_override:
        properties["alertDetailsOverride"] = rule.details_override
    return properties


def alert_rule_body(rule: Rule) -> dict[str, Any]:
    """The body of ``PUT .../alertRules/{rule id}``: kind and properties."""
    return {"kind": "Scheduled", "properties": alert_rule_properties(rule)}


@dataclass(frozen=True, slots=True)
class WatchlistData:
    """A Sentinel watchlist to create: alias, search key column and rows (CSV columns)."""

    alias: str
    description: str
    search_key: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, str], ...]

    def csv_text(self) -> str:
        """The rows as the CSV a watchlist upload takes (header first)."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.columns), lineterminator="\r\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({c: row.get(c, "") for c in self.columns})
        return out.getvalue()


def watchlist_properties(watchlist: WatchlistData) -> dict[str, Any]:
    """The ``properties`` of a ``Microsoft.SecurityInsights/watchlists`` resource (a CSV upload)."""
    return {
        "displayName": watchlist.alias,
        "description": watchlist.description,
        "provider": "trustwatch",
        "source": "Local file",
        "itemsSearchKey": watchlist.search_key,
        "contentType": "text/csv",
        "numberOfLinesToSkip": 0,
        "rawContent": watchlist.csv_text(),
    }


# --- ARM ---------------------------------------------------------------------------------------


def _workspace_name(resource: str) -> str:
    # ARM template expressions, as the portal's exports write them
    return f"[concat(parameters('workspace'),'/Microsoft.SecurityInsights/{resource}')]"


GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def arm_literals(value: Any) -> Any:
    """``value`` with every string ARM would read as a template expression (``[...]``) made a
    literal (``[[...]``): a rule's name, description or query is never evaluated on deploy."""
    if isinstance(value, str):
        return "[" + value if value.startswith("[") and value.endswith("]") else value
    if isinstance(value, dict):
        return {k: arm_literals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [arm_literals(v) for v in value]
    return value


def alert_rule_resource(rule: Rule) -> dict[str, Any]:
    """The rule as an ARM template resource (name = the rule's id, so deploys are idempotent).

    Raises:
        ValueError: the rule's id is not a GUID (it is written into the resource's expressions).
    """
    if not GUID.match(rule.id):
        raise ValueError(f"id '{rule.id}' is not a GUID, which Sentinel names alert rules by")
    return {
        "id": (
            "[concat(resourceId('Microsoft.OperationalInsights/workspaces/providers', "
            f"parameters('workspace'), 'Microsoft.SecurityInsights'),'/alertRules/{rule.id}')]"
        ),
        "name": _workspace_name(rule.id),
        "type": RULE_TYPE,
        "kind": "Scheduled",
        "apiVersion": API_VERSION,
        "properties": arm_literals(alert_rule_properties(rule)),
    }


def watchlist_resources(watchlists: Sequence[WatchlistData]) -> list[dict[str, Any]]:
    """Each watchlist as an ARM template resource named by its alias."""
    return [
        {
            "name": _workspace_name(w.alias),
            "type": WATCHLIST_TYPE,
            "apiVersion": API_VERSION,
            "properties": arm_literals(watchlist_properties(w)),
        }
        for w in watchlists
    ]


def arm_template(rules: Sequence[Rule], watchlists: Sequence[WatchlistData]) -> dict[str, Any]:
    """A deployable template: the watchlists, then the rules, in the ``workspace`` parameter."""
    return {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "workspace": {
                "type": "String",
                "metadata": {"description": "The Log Analytics workspace Sentinel runs on"},
            }
        },
        "resources": [*watchlist_resources(watchlists), *map(alert_rule_resource, rules)],
    }


def json_text(value: Any) -> str:
    """Indented JSON with a final newline, ASCII only (escapes for the rest)."""
    return json.dumps(value, indent=2, ensure_ascii=True) + "\n"
