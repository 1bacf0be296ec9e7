"""A rule's investigation guide and response playbook as a Microsoft Sentinel playbook.

``rules export --format playbook`` writes, per rule with a guide, an ARM template of a Logic App
(``Microsoft.Logic/workflows``) started by the Microsoft Sentinel incident trigger of the
``azuresentinel`` API connection (``Microsoft.Web/connections``, authenticated by the Logic
App's managed identity), plus one template for the pack. When it runs on an incident, the
Logic App checks the incident's analytic rules (``relatedAnalyticRuleIds``); for each
trustwatch rule among them it adds, with "Add comment to incident (V3)", the guide (what the
alert means, the triage questions), the pivot queries and the playbook steps, each a comment
(several when one would pass :data:`COMMENT_LIMIT`). Optionally (``createAutomationRule``) the
template also creates the Sentinel automation rule that runs the playbook on every new incident
of those rules.

Pivot queries are given as the ``sentinel-yaml`` hunting export gives them
(:func:`trustwatch.guides.bind.template`): ``let`` statements left empty for the analyst to
fill, since the Logic App cannot bind the alert's values to them safely. Commands keep their
``{Parameter}`` slots; ``trustwatch investigate`` fills and quotes them.

Everything is built as data and serialised by :func:`json.dumps`. Guide text is content, never
code, at each of the three places that read it:

- ARM evaluates a string that starts with ``[`` and ends with ``]`` at deployment:
  :func:`arm_literal` doubles the bracket (``[[``), which ARM reads back as one.
- Logic Apps evaluates a string that starts with ``@``, and ``@{...}`` anywhere in a string, at
  run time: :func:`wdl_literal` escapes them as ``@@`` and ``@@{``. Comment text goes further:
  each ``@`` in it is written as the HTML character reference ``&#64;`` (the comment is HTML and
  shows an ``@``), so a message holds no ``@`` at all for the Logic App to read.
- Sentinel renders the comment as HTML: text is HTML-escaped, and control and invisible
  characters (bidi overrides, zero-width characters) are shown as escapes (``trustwatch.inert``).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trustwatch.export.model import ExportFile, ExportResult, Note
from trustwatch.export.names import unique_stems
from trustwatch.export.sentinel import API_VERSION, TEMPLATE_SCHEMA, json_text
from trustwatch.guides.bind import template
from trustwatch.guides.model import PHASES, Guide, Step, guide_for, load_library
from trustwatch.inert import visible
from trustwatch.rules.model import Rule

if TYPE_CHECKING:
    from trustwatch.rules.tuning import Tuning

PLAYBOOK_SUFFIX = ".playbook.json"
PACK_PLAYBOOK = "trustwatch-pack" + PLAYBOOK_SUFFIX

WORKFLOW_TYPE = "Microsoft.Logic/workflows"
WORKFLOW_API_VERSION = "2017-07-01"
CONNECTION_TYPE = "Microsoft.Web/connections"
CONNECTION_API_VERSION = "2016-06-01"
AUTOMATION_RULE_TYPE = "Microsoft.OperationalInsights/workspaces/providers/automationRules"
WORKFLOW_SCHEMA = (
    "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/"
    "workflowdefinition.json#"
)

#: The longest comment written, in characters (Sentinel takes up to 30,000 in a comment)
COMMENT_LIMIT = 28_000
_QUERY_LIMIT = 20_000  # a longer pivot query is cut (the hunting export has it whole)

TRIGGER = "Microsoft_Sentinel_incident"
# Logic App expressions trustwatch writes; nothing else in a definition starts with "@"
CONNECTION = "@parameters('$connections')['azuresentinel']['connectionId']"
CALLBACK = "@{listCallbackUrl()}"
INCIDENT_ARM_ID = "@triggerBody()?['object']?['id']"
RELATED_RULES = (
    "@toLower(string(triggerBody()?['object']?['properties']?['relatedAnalyticRuleIds']))"
)
EXPRESSIONS = frozenset({CONNECTION, CALLBACK, INCIDENT_ARM_ID, RELATED_RULES})

_CONNECTION_NAME = "[variables('connectionName')]"
_CONNECTION_ID = "[resourceId('Microsoft.Web/connections', variables('connectionName'))]"
_MANAGED_API = (
    "[concat('/subscriptions/', subscription().subscriptionId, "
    "'/providers/Microsoft.Web/locations/', resourceGroup().location, "
    "'/managedApis/azuresentinel')]"
)
_WORKFLOW_ID = "[resourceId('Microsoft.Logic/workflows', parameters('PlaybookName'))]"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAMESPACE = uuid.UUID("8d0b2f6a-41e3-4c55-9f4e-1f6b8c2a7d39")  # automation rule names


# --- escaping ---------------------------------------------------------------------------------


def wdl_literal(text: str) -> str:
    """``text`` as a Logic App string the workflow engine reads back unevaluated.

    A leading ``@`` becomes ``@@`` and ``@{`` anywhere becomes ``@@{`` (Workflow Definition
    Language: "@@" is a literal "@", "@@{" a literal "@{").
    """
    escaped = text.replace("@{", "@@{")
    return "@" + escaped if escaped.startswith("@") and not escaped.startswith("@@{") else escaped


def arm_literal(text: str) -> str:
    """``text`` as an ARM template string value that is not a template expression (``[[``)."""
    return "[" + text if text.startswith("[") and text.endswith("]") else text


def literal(text: str) -> str:
    """Content for a workflow definition inside an ARM template: both escapes (ARM reads first)."""
    return arm_literal(wdl_literal(text))


def html_text(text: str) -> str:
    """Text for an HTML comment: escaped, unsafe characters visible, ``@`` as ``&#64;``."""
    return html.escape(visible(text, keep="\n"), quote=True).replace("@", "&#64;")


# --- the comments -----------------------------------------------------------------------------


def _cut(text: str, limit: int = _QUERY_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n// ... cut: {len(text) - limit} more characters (hunting export)\n"


def _pack(header: str, blocks: Sequence[str]) -> list[str]:
    """The blocks as few messages as fit :data:`COMMENT_LIMIT`, the header atop each."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        if current and len(current) + len(block) > COMMENT_LIMIT:
            messages.append(current)
            current = ""
        if not current:
            part = f" ({len(messages) + 1})" if messages else ""
            current = header.replace("</h3>", part + "</h3>", 1)
        current += block
    if current:
        messages.append(current)
    return messages


def guide_comment(rule: Rule, guide: Guide) -> str:
    """What the alert means and the triage questions, in order."""
    triage = "".join(f"<li>{html_text(q)}</li>" for q in guide.triage)
    return (
        f"<h3>trustwatch investigation guide: {html_text(rule.name)}</h3>"
        f"<p><b>What the alert means.</b> {html_text(guide.meaning)}</p>"
        f"<p><b>Triage, in order:</b></p><ol>{triage}</ol>"
        "<p>The pivot queries and the response playbook follow in the next comments. "
        "<code>trustwatch investigate ALERT_ID</code> runs the pivots on the alert's data and "
        "fills the commands with its values.</p>"
    )


def pivot_comments(rule: Rule, guide: Guide) -> list[str]:
    """Each pivot's query for the analyst to fill: ``let`` statements first, values empty."""
    header = (
        f"<h3>trustwatch pivot queries: {html_text(rule.name)}</h3>"
        "<p>Set the <code>let</code> statements at the top of each query to the alert's values "
        "(each names the alert columns they come from), then run it in Logs or Advanced "
        "hunting.</p>"
    )
    blocks = [
        f"<h4>{html_text(p.title)}</h4>"
        + (f"<p>{html_text(p.about)}</p>" if p.about else "")
        + f"<pre>{html_text(_cut(template(p, guide.parameters)))}</pre>"
        for p in guide.pivots
    ]
    return _pack(header, blocks)


def _step_block(step: Step, guide: Guide) -> str:
    when = "; ".join(f"{k} is {' or '.join(v)}" for k, v in step.when.items())
    out = f"<li><b>{html_text(step.title)}</b> ({html_text(step.shell)})"
    if when:
        out += f" <i>only when {html_text(when)}</i>"
    if step.text:
        out += f"<br>{html_text(step.text)}"
    if step.shell == "kql":
        listed = [p for p in guide.pivots if p.id == step.pivot]
        pivot = listed[0] if listed else load_library().pivots.get(step.pivot)
        if pivot is None:
            out += f"<br>Run the pivot query {html_text(step.pivot)}."
        elif listed:
            out += f'<br>Run the pivot query "{html_text(pivot.title)}" (above).'
        else:
            query = _cut(template(pivot, guide.parameters))
            out += f"<br>{html_text(pivot.title)}:<pre>{html_text(query)}</pre>"
    elif step.command:
        out += f"<pre>{html_text(' '.join(step.command))}</pre>"
    return out + "</li>"


def step_comments(rule: Rule, guide: Guide) -> list[str]:
    """The playbook's steps by phase (containment, eradication, scoping, recovery)."""
    header = (
        f"<h3>trustwatch response playbook: {html_text(rule.name)}</h3>"
        "<p>{Parameter} in a command is the alert's value: put it in quoted for the shell "
        "(<code>trustwatch investigate</code> does, and refuses values it cannot quote).</p>"
    )
    blocks = []
    for phase in (*PHASES, *sorted({s.phase for s in guide.steps} - set(PHASES))):
        steps = [_step_block(s, guide) for s in guide.steps if s.phase == phase]
        if steps:
            blocks.append(f"<h4>{html_text(phase.capitalize())}</h4><ol>{''.join(steps)}</ol>")
    return _pack(header, blocks)


def rule_comments(rule: Rule, guide: Guide) -> list[str]:
    """Every comment the playbook adds for the rule, in order (HTML)."""
    return [guide_comment(rule, guide), *pivot_comments(rule, guide), *step_comments(rule, guide)]


# --- the workflow and the template ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaybookRule:
    """A rule the playbook serves: the rule, its guide, and its file stem."""

    rule: Rule
    guide: Guide
    stem: str


def comment_action(message: str, run_after: dict[str, list[str]]) -> dict[str, Any]:
    """An "Add comment to incident (V3)" action posting ``message`` (HTML) on the incident."""
    return {
        "type": "ApiConnection",
        "inputs": {
            "host": {"connection": {"name": CONNECTION}},
            "method": "post",
            "path": "/Incidents/Comment",
            "body": {"incidentArmId": INCIDENT_ARM_ID, "message": literal(message)},
        },
        "runAfter": run_after,
    }


def rule_action(item: PlaybookRule, index: int) -> tuple[str, dict[str, Any]]:
    """The condition "is this rule among the incident's" and, inside it, the chained comments."""
    name = f"R{index:02d}_{item.stem}"[:60]
    inner: dict[str, Any] = {}
    previous = ""
    for n, message in enumerate(rule_comments(item.rule, item.guide), 1):
        action = f"{name}_comment_{n}"
        inner[action] = comment_action(message, {previous: ["Succeeded"]} if previous else {})
        previous = action
    # the ids as a JSON text: each ends "/alertrules/<rule id>" then its closing quote
    operand = literal(f'/alertrules/{item.rule.id.lower()}"')
    condition = {"contains": [RELATED_RULES, operand]}
    return name, {
        "type": "If",
        "expression": {"and": [condition]},
        "actions": inner,
        "else": {"actions": {}},
        "runAfter": {},
    }


def workflow_definition(items: Sequence[PlaybookRule]) -> dict[str, Any]:
    """The Logic App: the incident trigger, then one condition per rule (run side by side)."""
    actions = dict(rule_action(item, i) for i, item in enumerate(items, 1))
    return {
        "$schema": WORKFLOW_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {"$connections": {"defaultValue": {}, "type": "Object"}},
        "triggers": {
            TRIGGER: {
                "type": "ApiConnectionWebhook",
                "inputs": {
                    "body": {"callback_url": CALLBACK},
                    "host": {"connection": {"name": CONNECTION}},
                    "path": "/incident-creation",
                },
            }
        },
        "actions": actions,
        "outputs": {},
    }


def _alert_rule_id(rule: Rule) -> str:
    return (
        "[resourceId('Microsoft.OperationalInsights/workspaces/providers/alertRules', "
        f"parameters('workspace'), 'Microsoft.SecurityInsights', '{rule.id}')]"
    )


def automation_rule(items: Sequence[PlaybookRule], title: str) -> dict[str, Any]:
    """Runs the playbook on each new incident of the rules (deployed if createAutomationRule)."""
    ids = ",".join(i.rule.id.lower() for i in items)
    return {
        "condition": "[parameters('createAutomationRule')]",
        "type": AUTOMATION_RULE_TYPE,
        "apiVersion": API_VERSION,
        "name": (
            "[concat(parameters('workspace'),'/Microsoft.SecurityInsights/"
            f"{uuid.uuid5(_NAMESPACE, ids)}')]"
        ),
        "dependsOn": [_WORKFLOW_ID],
        "properties": {
            "displayName": arm_literal(f"Run {title}"[:500]),
            "order": 100,
            "triggeringLogic": {
                "isEnabled": True,
                "triggersOn": "Incidents",
                "triggersWhen": "Created",
                "conditions": [
                    {
                        "conditionType": "Property",
                        "conditionProperties": {
                            "propertyName": "IncidentRelatedAnalyticRuleIds",
                            "operator": "Contains",
                            "propertyValues": [_alert_rule_id(i.rule) for i in items],
                        },
                    }
                ],
            },
            "actions": [
                {
                    "order": 1,
                    "actionType": "RunPlaybook",
                    "actionConfiguration": {
                        "logicAppResourceId": _WORKFLOW_ID,
                        "tenantId": "[subscription().tenantId]",
                    },
                }
            ],
        },
    }


def playbook_template(items: Sequence[PlaybookRule], playbook_name: str) -> dict[str, Any]:
    """A deployable template: the connection, the Logic App, the optional automation rule."""
    names = ", ".join(i.rule.name for i in items)
    title = f"trustwatch: {names}" if len(items) == 1 else f"trustwatch ({len(items)} rules)"
    return {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "title": arm_literal(title[:256]),
            "description": arm_literal(
                "Adds the trustwatch investigation guide, pivot queries and response playbook "
                f"of {names} as comments on the incident."
            ),
        },
        "parameters": {
            "PlaybookName": {
                "type": "string",
                "defaultValue": playbook_name,
                "metadata": {"description": "Name of the Logic App (playbook) to create"},
            },
            "workspace": {
                "type": "string",
                "metadata": {"description": "The Log Analytics workspace Sentinel runs on"},
            },
            "createAutomationRule": {
                "type": "bool",
                "defaultValue": False,
                "metadata": {
                    "description": (
                        "Also create the automation rule that runs the playbook on every new "
                        "incident of these rules (Sentinel needs the Microsoft Sentinel "
                        "Automation Contributor role on this resource group)"
                    )
                },
            },
        },
        "variables": {"connectionName": "[concat('azuresentinel-', parameters('PlaybookName'))]"},
        "resources": [
            {
                "type": CONNECTION_TYPE,
                "apiVersion": CONNECTION_API_VERSION,
                "name": _CONNECTION_NAME,
                "location": "[resourceGroup().location]",
                "kind": "V1",
                "properties": {
                    "displayName": _CONNECTION_NAME,
                    "customParameterValues": {},
                    "parameterValueType": "Alternative",
                    "api": {"id": _MANAGED_API},
                },
            },
            {
                "type": WORKFLOW_TYPE,
                "apiVersion": WORKFLOW_API_VERSION,
                "name": "[parameters('PlaybookName')]",
                "location": "[resourceGroup().location]",
                "tags": {
                    "LogicAppsCategory": "security",
                    "hidden-SentinelTemplateName": playbook_name,
                    "hidden-SentinelTemplateVersion": "1.0",
                },
                "identity": {"type": "SystemAssigned"},
                "dependsOn": [_CONNECTION_ID],
                "properties": {
                    "state": "Enabled",
                    "definition": workflow_definition(items),
                    "parameters": {
                        "$connections": {
                            "value": {
                                "azuresentinel": {
                                    "connectionId": _CONNECTION_ID,
                                    "connectionName": _CONNECTION_NAME,
                                    "id": _MANAGED_API,
                                    "connectionProperties": {
                                        "authentication": {"type": "ManagedServiceIdentity"}
                                    },
                                }
                            }
                        }
                    },
                },
            },
            automation_rule(items, title),
        ],
    }


def export_playbooks(rules: Sequence[Rule], tuning: Tuning | None = None) -> ExportResult:
    """``<stem>.playbook.json`` per rule with a guide, and the pack's (printed on stdout).

    ``tuning`` is not used (the signature of :data:`trustwatch.export.formats.FORMATS`).
    """
    result = ExportResult()
    items: list[PlaybookRule] = []
    for rule, stem in zip(rules, unique_stems((r.name, r.id) for r in rules), strict=True):
        guide = guide_for(rule.path)
        if guide is None:
            result.notes.append(Note(rule.name, "no guide beside the rule: no playbook", "skipped"))
        elif not _GUID.match(rule.id):
            message = f"id '{rule.id}' is not a GUID, which Sentinel names alert rules by"
            result.notes.append(Note(rule.name, message, "skipped"))
        else:
            item = PlaybookRule(rule, guide, stem)
            items.append(item)
            text = json_text(playbook_template([item], f"trustwatch-{stem}"[:80]))
            result.files.append(ExportFile(stem + PLAYBOOK_SUFFIX, text))
    if items:
        pack = json_text(playbook_template(items, "trustwatch-playbook"))
        result.files.append(ExportFile(PACK_PLAYBOOK, pack))
        result.stdout = pack
    return result
