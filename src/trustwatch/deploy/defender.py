"""Deploy to Defender XDR: the rules as custom detection rules through Microsoft Graph (beta
``/security/rules/detectionRules``), matched to the pack by rule id.

Graph names a detection rule itself (its ``id``), so the rule's trustwatch id travels in the
alert description's last line (:data:`MARKER`); a rule without it is matched by display name
(one made by ``rules export --format defender`` and pasted in the portal), and is given the line
by its first update. New rules are POSTed, changed ones PATCHed with the fields trustwatch sets
(a PATCH leaves the others alone, so only those are compared). A rule whose query lacks what
Defender requires of a custom detection (``Timestamp``, ``ReportId``, an entity column) is
skipped with the reason: Defender would refuse it. Body: :mod:`trustwatch.export.defender`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from trustwatch.deploy.compare import describe, differences
from trustwatch.deploy.model import (
    NOT_COMPARED,
    Action,
    Change,
    DeployError,
    Plan,
    while_planning,
)
from trustwatch.deploy.rest import GRAPH_SCOPE, GRAPH_URL, Conflict, RestClient, Service
from trustwatch.export.defender import (
    REQUIRED_COLUMNS,
    detection_rule,
    impacted_assets,
    output_columns,
)
from trustwatch.rules.model import Rule

RULES_PATH = "/beta/security/rules/detectionRules"
MARKER = "trustwatch rule id: "
TARGET = "Defender XDR custom detections (Microsoft Graph beta)"

GRAPH_SERVICE = Service(
    name="Microsoft Graph",
    base_url=GRAPH_URL,
    scope=GRAPH_SCOPE,
    forbidden_hint=(
        "needs the Microsoft Graph permission CustomDetection.ReadWrite.All, admin-consented "
        "(application, or delegated with a user who holds the Security Administrator role or "
        "Defender XDR's 'Detection tuning (manage)' permission)"
    ),
    next_link="@odata.nextLink",
)


@dataclass(frozen=True, slots=True)
class DefenderRule:
    """A rule as Defender would get it: the detectionRule body, or why it cannot be sent."""

    rule: Rule
    body: Mapping[str, Any]
    columns: tuple[str, ...] | None  # what its query returns; None: it does not compile here
    refused: str = ""  # non-empty: skipped, with this reason


def defender_rule(rule: Rule, columns: Sequence[str] | None) -> DefenderRule:
    """The detectionRule body for ``rule`` (its query returns ``columns``; None: it does not
    compile here), with the marker line, or the reason Defender would refuse it."""
    body = copy.deepcopy(detection_rule(rule, columns or ()))
    template = body["detectionAction"]["alertTemplate"]
    template["description"] = _marked(str(template.get("description") or ""), rule.id)
    if columns is None:
        return DefenderRule(rule, body, None, "its query does not compile here")
    found = tuple(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        reason = f"its query does not return {' and '.join(missing)}, which Defender requires"
        return DefenderRule(rule, body, found, reason)
    if not impacted_assets(found):
        return DefenderRule(rule, body, found, "no result column names a device or user to impact")
    return DefenderRule(rule, body, found)


def defender_rules(rules: Sequence[Rule], session: Any) -> list[DefenderRule]:
    """Each rule's body, its query's columns found by compiling it in ``session`` (an
    :class:`trustwatch.api.Session` with the tuning's watchlist tables)."""
    return [defender_rule(r, output_columns(r, session)) for r in rules]


def plan_defender(client: RestClient | None, rules: Sequence[DefenderRule]) -> Plan:
    """What deploying ``rules`` as custom detections would do.

    With ``client`` None nothing is read: every rule Defender would take is planned as a
    create, marked :data:`NOT_COMPARED`, and the plan cannot be applied.

    Raises:
        DeployError: reading the detection rules failed, or two of them claim one rule.
    """
    if client is None:
        return Plan(TARGET, tuple(map(_offline, rules)), compared=False)
    try:
        existing = [r for r in client.pages(RULES_PATH) if isinstance(r, Mapping)]
        changes = tuple(_plan_one(client, r, existing) for r in rules)
    except DeployError as exc:
        raise while_planning(exc) from exc
    return Plan(TARGET, changes)


def _offline(item: DefenderRule) -> Change:
    if item.refused:
        return Change("detectionRule", item.rule.id, item.rule.name, Action.SKIP, item.refused)
    return Change("detectionRule", item.rule.id, item.rule.name, Action.CREATE, NOT_COMPARED)


def _plan_one(
    client: RestClient, item: DefenderRule, existing: Sequence[Mapping[str, Any]]
) -> Change:
    rule = item.rule
    if item.refused:
        return Change("detectionRule", rule.id, rule.name, Action.SKIP, item.refused)
    found = _match(rule, existing)
    if found is None:
        return Change(
            "detectionRule", rule.id, rule.name, Action.CREATE, apply=_create(client, item)
        )
    changed = differences(item.body, found, replace=False)
    if not changed:
        return Change("detectionRule", rule.id, rule.name, Action.UNCHANGED)
    remote_id = str(found.get("id") or "")
    by_name = "" if _claims(found, rule.id) else "matched by name; "
    return Change(
        "detectionRule",
        rule.id,
        rule.name,
        Action.UPDATE,
        f"{by_name}Graph id {remote_id}; {describe(changed)}",
        apply=_update(client, item, remote_id, found),
    )


def _match(rule: Rule, existing: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The detection rule that is this rule: by marker, else by display name; never two."""
    for candidates in (
        [r for r in existing if _claims(r, rule.id)],
        [r for r in existing if r.get("displayName") == rule.name],
    ):
        if len(candidates) > 1:
            ids = ", ".join(str(r.get("id")) for r in candidates)
            raise DeployError(
                f"{len(candidates)} Defender detection rules ({ids}) match rule {rule.id} "
                f"({rule.name}): not deciding which to update",
                hint="delete or rename the extra ones in the Defender portal, then run again",
                code="DEP302",
            )
        if candidates:
            return candidates[0]
    return None


def _claims(remote: Mapping[str, Any], rule_id: str) -> bool:
    action = remote.get("detectionAction")
    template = action.get("alertTemplate") if isinstance(action, Mapping) else None
    description = template.get("description") if isinstance(template, Mapping) else None
    lines = str(description or "").strip().splitlines()
    return bool(lines) and lines[-1].strip() == MARKER + rule_id


def _marked(description: str, rule_id: str) -> str:
    return f"{description}\n\n{MARKER}{rule_id}" if description else f"{MARKER}{rule_id}"


def _create(client: RestClient, item: DefenderRule) -> Callable[[], str]:
    def post() -> str:
        # POST is not retried on 429 without Retry-After, nor on 502 (azure-core's rule for
        # non-idempotent methods): a retry could make two rules
        reply = client.request("POST", RULES_PATH, body=item.body)
        made = reply.body.get("id") if isinstance(reply.body, Mapping) else None
        return f"created detectionRule {item.rule.id}  {item.rule.name}  (Graph id {made})"

    return post


def _update(
    client: RestClient, item: DefenderRule, remote_id: str, seen: Mapping[str, Any]
) -> Callable[[], str]:
    path = f"{RULES_PATH}/{quote(remote_id, safe='')}"

    def patch() -> str:
        # Graph has no etag on detection rules: read again and refuse if it moved meanwhile
        now = client.request("GET", path, missing_ok=True).body
        if now is None or now.get("lastModifiedDateTime") != seen.get("lastModifiedDateTime"):
            raise _moved(item.rule, remote_id, now is None)
        try:
            client.request("PATCH", path, body=item.body)
        except Conflict as exc:
            raise _moved(item.rule, remote_id, False) from exc
        return f"updated detectionRule {item.rule.id}  {item.rule.name}  (Graph id {remote_id})"

    return patch


def _moved(rule: Rule, remote_id: str, gone: bool) -> DeployError:
    state = "was deleted" if gone else "was changed"
    return DeployError(
        f"detectionRule {remote_id} (rule {rule.id}, {rule.name}) {state} in Defender since "
        "the plan was read: it was not overwritten",
        hint="someone else is editing it: run the deploy again to plan against what is there "
        "now (--dry-run shows it)",
        code="DEP409",
    )
