"""A rule's guide exported with it: the guide file, and its pivots as Sentinel hunting queries.

``<stem>.guide.yaml`` is the guide as written (``rules lint`` wants it beside the rule);
``<stem>.hunting.yaml`` holds one Azure-Sentinel hunting-query document per pivot, its query
the one ``trustwatch investigate`` runs, after ``let`` statements left empty for the analyst to
fill with the alert's values (each commented with the alert columns it comes from).
"""

from __future__ import annotations

import uuid

from trustwatch.export.model import ExportFile
from trustwatch.export.sentinel import dump_yaml_documents
from trustwatch.guides.bind import template
from trustwatch.guides.model import GUIDE_SUFFIX, Guide, guide_for
from trustwatch.rules.model import Rule

HUNTING_SUFFIX = ".hunting.yaml"
_NAMESPACE = uuid.UUID("3c1f0d6e-2b6a-4f47-9a57-5f3e9f0b1d24")  # hunting-query ids


def hunting_documents(rule: Rule, guide: Guide) -> list[dict[str, object]]:
    """One Sentinel hunting query per pivot of the guide."""
    connectors = rule.doc.get("requiredDataConnectors") or []
    return [
        {
            "id": str(uuid.uuid5(_NAMESPACE, f"{rule.id}/{pivot.id}")),
            "name": f"{pivot.title} ({rule.name})"[:256],
            "description": (
                (pivot.about + "\n" if pivot.about else "")
                + "Pivot of the trustwatch investigation guide for this rule's alerts: set the "
                "let statements at the top to the alert's values."
            ),
            "requiredDataConnectors": connectors,
            "tactics": list(rule.tactics),
            "relevantTechniques": list(rule.techniques),
            "query": template(pivot, guide.parameters),
            "version": "1.0.0",
        }
        for pivot in guide.pivots
    ]


def guide_files(rule: Rule, stem: str) -> list[ExportFile]:
    """The rule's guide file and its hunting queries (none when the rule has no guide)."""
    guide = guide_for(rule.path)
    if guide is None:
        return []
    return [
        ExportFile(stem + GUIDE_SUFFIX, guide.path.read_text(encoding="utf-8")),
        ExportFile(stem + HUNTING_SUFFIX, dump_yaml_documents(hunting_documents(rule, guide))),
    ]
