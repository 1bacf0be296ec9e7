"""Rules as Sigma: each rule's logic, written for trustwatch in ``sigma_logic/<stem>.yaml``,
with the rule's metadata (title, level, ATT&CK tags), and correlation rules for sequences.

KQL computes columns, joins and aggregates that a Sigma detection cannot say, so the Sigma
logic of a rule is written by hand and kept honest by a round-trip test (Sigma -> pySigma's
Kusto backend -> trustwatch raises the same alerts on the validation scenarios). Each logic file
states its ``status`` (``exact`` or ``approximate``) and every difference; a rule without one
is reported as not exported, never approximated in silence. A user's rule can carry its own
logic in ``<rule stem>.sigma.yaml`` beside the rule file.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from trustwatch.errors import RuleFileError
from trustwatch.export.model import Note
from trustwatch.export.names import safe_stem
from trustwatch.rules.model import Rule

if TYPE_CHECKING:
    from collections.abc import Iterator

LOGIC_SUFFIX = ".sigma.yaml"
STATUSES = ("exact", "approximate")
#: Sigma ids are derived from the rule id, so a re-export keeps them
ID_NAMESPACE = uuid.UUID("6b1d3c1e-6f0a-4c55-9a57-2d1f0c9e7a10")
#: pySigma core validators that download MITRE data at first use: trustwatch never goes to the
#: network (tag_format still checks the tags' form)
NETWORK_VALIDATORS = frozenset({"attacktag", "d3_fendtag"})
LEVELS: Mapping[str, str] = {
    "Informational": "informational",
    "Low": "low",
    "Medium": "medium",
    "High": "high",
}
#: Sentinel tactic -> Sigma's ATT&CK tactic tag
TACTIC_TAGS: Mapping[str, str] = {
    "Reconnaissance": "attack.reconnaissance",
    "ResourceDevelopment": "attack.resource-development",
    "InitialAccess": "attack.initial-access",
    "Execution": "attack.execution",
    "Persistence": "attack.persistence",
    "PrivilegeEscalation": "attack.privilege-escalation",
    "DefenseEvasion": "attack.defense-evasion",
    "CredentialAccess": "attack.credential-access",
    "Discovery": "attack.discovery",
    "LateralMovement": "attack.lateral-movement",
    "Collection": "attack.collection",
    "CommandAndControl": "attack.command-and-control",
    "Exfiltration": "attack.exfiltration",
    "Impact": "attack.impact",
}


@dataclass(frozen=True, slots=True)
class SigmaLogic:
    """The Sigma detection logic of one rule (a ``sigma_logic`` file)."""

    rule_id: str
    status: str
    differences: tuple[str, ...]
    rules: tuple[Mapping[str, Any], ...]
    correlations: tuple[Mapping[str, Any], ...] = ()
    path: Path | None = None


@dataclass(slots=True)
class SigmaExport:
    """One rule as Sigma documents (detections first, then correlations), with notes."""

    rule: Rule
    documents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    status: str = ""  # exact | approximate | "" (not expressed)

    def standalone(self) -> list[dict[str, Any]]:
        """The documents that alert by themselves: correlations, and detections that no
        correlation uses (pySigma converts those; the others only feed a correlation)."""
        used = {n for d in self.documents for n in d.get("correlation", {}).get("rules", [])}
        return [d for d in self.documents if d.get("name") not in used]

    def with_references(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``doc`` and, for a correlation, the rules it names (what a backend needs)."""
        names = set(doc.get("correlation", {}).get("rules", []))
        return [d for d in self.documents if d.get("name") in names] + [dict(doc)]


def _parse_logic(text: str, where: Path) -> SigmaLogic:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not doc.get("rule") or not isinstance(doc.get("rules"), list):
        raise RuleFileError(f"{where}: a Sigma logic file needs 'rule' (the rule id) and 'rules'")
    status = str(doc.get("status", ""))
    if status not in STATUSES:
        raise RuleFileError(f"{where}: status must be one of {', '.join(STATUSES)}")
    return SigmaLogic(
        str(doc["rule"]),
        status,
        tuple(str(d) for d in doc.get("differences") or ()),
        tuple(doc["rules"]),
        tuple(doc.get("correlations") or ()),
        where,
    )


@functools.cache
def shipped_logic() -> Mapping[str, SigmaLogic]:
    """The Sigma logic shipped for the packs' rules, by rule id."""
    folder = resources.files("trustwatch.export") / "sigma_logic"
    out: dict[str, SigmaLogic] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            logic = _parse_logic(entry.read_text(encoding="utf-8"), Path(str(entry)))
            out[logic.rule_id] = logic
    return out


def find_logic(rule: Rule) -> SigmaLogic | None:
    """The rule's own ``<stem>.sigma.yaml`` beside it, else the shipped logic for its id."""
    beside = rule.path.with_name(rule.path.stem + LOGIC_SUFFIX)
    if beside.is_file():
        logic = _parse_logic(beside.read_text(encoding="utf-8"), beside)
        if logic.rule_id != rule.id:
            raise RuleFileError(f"{beside}: 'rule' is {logic.rule_id}, not the rule's {rule.id}")
        return logic
    return shipped_logic().get(rule.id)


def sigma_export(rule: Rule) -> SigmaExport:
    """The rule as Sigma documents, or notes saying why it is not expressed."""
    result = SigmaExport(rule)
    logic = find_logic(rule)
    if logic is None:
        result.notes.append(
            Note(
                rule.name,
                "no Sigma logic is written for this rule: its KQL is not translated "
                f"automatically (write {rule.path.stem}{LOGIC_SUFFIX} beside it)",
                kind="skipped",
            )
        )
        return result
    result.status = logic.status
    names = {str(r["name"]): _sigma_name(rule, str(r["name"])) for r in logic.rules if "name" in r}
    for index, part in enumerate(logic.rules):
        result.documents.append(_detection(rule, logic, part, index, names))
    for index, part in enumerate(logic.correlations):
        result.documents.append(_correlation(rule, logic, part, index, names))
    if logic.status == "approximate":
        for difference in logic.differences:
            result.notes.append(Note(rule.name, f"Sigma differs: {difference}"))
    return result


def _sigma_name(rule: Rule, local: str) -> str:
    return f"trustwatch_{safe_stem(local)}_{safe_stem(rule.id)[:8]}"


def _common(rule: Rule, logic: SigmaLogic, part: Mapping[str, Any], key: str) -> dict[str, Any]:
    title = rule.name + (f" - {part['part']}" if part.get("part") else "")
    description = str(rule.doc.get("description") or rule.name).strip()
    description += f"\nExported by trustwatch from the KQL rule {rule.id} ({logic.status})."
    if logic.differences:
        description += " Differences: " + " ".join(d.rstrip(".") + "." for d in logic.differences)
    return {
        "title": title,
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{rule.id}/{key}")),
        "related": [{"id": rule.id, "type": "derived"}],
        "status": "test",
        "description": description,
        "author": "trustwatch",
        "tags": _tags(rule),
    }


def _detection(
    rule: Rule, logic: SigmaLogic, part: Mapping[str, Any], index: int, names: Mapping[str, str]
) -> dict[str, Any]:
    doc = _common(rule, logic, part, f"rule/{part.get('name', index)}")
    if "name" in part:
        doc = {"title": doc.pop("title"), "id": doc.pop("id"), "name": names[part["name"]], **doc}
    doc["logsource"] = dict(part["logsource"])
    doc["detection"] = dict(part["detection"])
    doc["falsepositives"] = ["See the description of the KQL rule"]
    doc["level"] = LEVELS.get(rule.severity, "medium")
    return doc


def _correlation(
    rule: Rule, logic: SigmaLogic, part: Mapping[str, Any], index: int, names: Mapping[str, str]
) -> dict[str, Any]:
    doc = _common(rule, logic, part, f"correlation/{index}")
    doc["correlation"] = {
        "type": str(part["type"]),
        "rules": [names[str(n)] for n in part["rules"]],
        "group-by": list(part.get("group-by") or []),
        "timespan": str(part["timespan"]),
    }
    doc["falsepositives"] = ["See the description of the KQL rule"]
    doc["level"] = LEVELS.get(rule.severity, "medium")
    return doc


def _tags(rule: Rule) -> list[str]:
    tags = [TACTIC_TAGS[t] for t in rule.tactics if t in TACTIC_TAGS]
    tags += [f"attack.{t.lower()}" for t in rule.techniques]
    return list(dict.fromkeys(tags))


def sigma_text(documents: Sequence[Mapping[str, Any]]) -> str:
    """Documents as one multi-document YAML text (a Sigma collection)."""
    from trustwatch.export.sentinel import dump_yaml_documents

    return dump_yaml_documents(documents)


def validate_sigma(text: str) -> list[str]:
    """Problems pySigma finds in a Sigma text: parse errors, then its core validators' issues."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators

    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except SigmaError as exc:
        return [str(exc)]
    problems = [str(e) for r in collection for e in r.errors]
    offline = [v for name, v in validators.items() if name not in NETWORK_VALIDATORS]
    # correlation rules are validated too: the annotation says SigmaRule, the code takes both
    issues = SigmaValidator(offline).validate_rules(cast("Iterator[SigmaRule]", iter(collection)))
    problems += [f"{issue.__class__.__name__}: {issue}" for issue in issues]
    return problems
