"""``rules export --format playbook``: the response playbook as a Sentinel playbook (Logic App ARM
template): resources, parameters and wiring as the reference shapes say (playbook_schema.yaml),
every guide's content in the comments, and guide text that can never become an expression."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.export.schema_check import problems
from trustwatch.export.formats import export_rules
from trustwatch.export.playbook import (
    AUTOMATION_RULE_TYPE,
    CONNECTION,
    CONNECTION_TYPE,
    EXPRESSIONS,
    INCIDENT_ARM_ID,
    PACK_PLAYBOOK,
    PLAYBOOK_SUFFIX,
    RELATED_RULES,
    TRIGGER,
    WORKFLOW_TYPE,
    arm_literal,
    html_text,
    wdl_literal,
)
from trustwatch.guides.bind import template
from trustwatch.guides.model import guide_for
from trustwatch.rules.model import Rule, load_rules

ARM_EXPRESSION = re.compile(
    r"\[(concat|resourceId|parameters|variables|subscription|resourceGroup)\("
)
SCHEMA = yaml.safe_load((Path(__file__).parent / "playbook_schema.yaml").read_text("utf-8"))


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules(["all"])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _resource(template_: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in template_["resources"] if r["type"] == kind]
    assert len(found) == 1, kind
    resource: dict[str, Any] = found[0]
    return resource


def _comments(template_: dict[str, Any]) -> dict[str, list[str]]:
    """Rule id -> the messages its condition posts, in runAfter order."""
    definition = _resource(template_, WORKFLOW_TYPE)["properties"]["definition"]
    out: dict[str, list[str]] = {}
    for condition in definition["actions"].values():
        operand = condition["expression"]["and"][0]["contains"][1]
        actions = condition["actions"]
        order = [n for n, a in actions.items() if a["runAfter"] == {}]
        while len(order) < len(actions):
            after = [n for n, a in actions.items() if a["runAfter"] == {order[-1]: ["Succeeded"]}]
            assert len(after) == 1, f"not one chain of comments after {order[-1]}"
            order += after
        assert len(order) == 1 + sum(1 for a in actions.values() if a["runAfter"])
        out[operand.removeprefix("/alertrules/").removesuffix('"')] = [
            actions[n]["inputs"]["body"]["message"] for n in order
        ]
    return out


def test_one_template_per_rule_and_one_for_the_pack(rules: list[Rule]) -> None:
    result = export_rules(rules, "playbook")
    with_guides = [r for r in rules if guide_for(r.path) is not None]
    assert with_guides and len(result.files) == len(with_guides) + 1
    assert all(f.name.endswith(PLAYBOOK_SUFFIX) for f in result.files)
    assert result.files[-1].name == PACK_PLAYBOOK and result.stdout == result.files[-1].text
    assert result.notes == [] or all(n.kind == "skipped" for n in result.notes)
    assert len(_comments(json.loads(result.stdout))) == len(with_guides)


def test_templates_match_the_logic_app_and_connection_shapes(rules: list[Rule]) -> None:
    for file in export_rules(rules, "playbook").files:
        template_ = json.loads(file.text)
        assert problems(template_, SCHEMA["template"]) == [], file.name
        assert [r["type"] for r in template_["resources"]] == [
            CONNECTION_TYPE,
            WORKFLOW_TYPE,
            AUTOMATION_RULE_TYPE,
        ]
        connection = _resource(template_, CONNECTION_TYPE)
        workflow = _resource(template_, WORKFLOW_TYPE)
        automation = _resource(template_, AUTOMATION_RULE_TYPE)
        assert problems(connection, SCHEMA["connection"]) == [], file.name
        assert problems(workflow, SCHEMA["workflow"]) == [], file.name
        assert problems(automation, SCHEMA["automationRule"]) == [], file.name
        # the workflow's $connections names the connection resource the template creates
        value = workflow["properties"]["parameters"]["$connections"]["value"]["azuresentinel"]
        assert value["connectionId"] in workflow["dependsOn"]
        assert value["connectionName"] == connection["name"]
        assert value["id"] == connection["properties"]["api"]["id"]
        assert automation["dependsOn"] == [
            "[resourceId('Microsoft.Logic/workflows', parameters('PlaybookName'))]"
        ]


def test_the_trigger_and_the_comment_actions_are_wired(rules: list[Rule]) -> None:
    pack = json.loads(export_rules(rules, "playbook").stdout)
    definition = _resource(pack, WORKFLOW_TYPE)["properties"]["definition"]
    assert list(definition["triggers"]) == [TRIGGER]
    trigger = definition["triggers"][TRIGGER]
    assert trigger["type"] == "ApiConnectionWebhook"
    assert trigger["inputs"]["path"] == "/incident-creation"
    assert trigger["inputs"]["host"]["connection"]["name"] == CONNECTION
    ids = {r.id.lower() for r in rules if guide_for(r.path) is not None}
    for condition in definition["actions"].values():
        assert condition["type"] == "If" and condition["runAfter"] == {}
        operands = condition["expression"]["and"][0]["contains"]
        assert (
            operands[0] == RELATED_RULES
            and operands[1].removeprefix("/alertrules/").removesuffix('"') in ids
        )
        actions = condition["actions"]
        assert len(actions) >= 3  # guide, pivots, playbook
        for action in actions.values():
            assert action["type"] == "ApiConnection"
            assert action["inputs"]["path"] == "/Incidents/Comment"
            assert action["inputs"]["method"] == "post"
            assert action["inputs"]["host"]["connection"]["name"] == CONNECTION
            assert action["inputs"]["body"]["incidentArmId"] == INCIDENT_ARM_ID
            assert all(after in actions for after in action["runAfter"])
    # each comment after the first runs after the one before it: a single chain per rule
    assert set(_comments(pack)) == ids
    automation = _resource(pack, AUTOMATION_RULE_TYPE)
    values = automation["properties"]["triggeringLogic"]["conditions"][0]["conditionProperties"]
    assert len(values["propertyValues"]) == len(ids)


def test_every_guide_appears_in_the_comments(rules: list[Rule]) -> None:
    pack = _comments(json.loads(export_rules(rules, "playbook").stdout))
    for rule in rules:
        guide = guide_for(rule.path)
        if guide is None:
            continue
        messages = pack[rule.id.lower()]
        assert all(len(m) <= 30_000 for m in messages)
        shown = html.unescape("\n".join(messages))
        assert guide.meaning in shown, rule.name
        assert all(question in shown for question in guide.triage)
        for pivot in guide.pivots:
            assert pivot.title in shown and template(pivot, guide.parameters) in shown
        for step in guide.steps:
            assert step.title in shown and (not step.text or step.text in shown)
            assert " ".join(step.command) in shown
        assert shown.index(guide.meaning) < shown.index(guide.pivots[0].title)


@pytest.mark.parametrize(
    ("text", "wdl"),
    [
        ("@concat('a')", "@@concat('a')"),
        ("a @{listCallbackUrl()} b", "a @@{listCallbackUrl()} b"),
        ("@{guid()}", "@@{guid()}"),
        ("mail@example.com", "mail@example.com"),
        ("plain", "plain"),
    ],
)
def test_logic_app_literals(text: str, wdl: str) -> None:
    assert wdl_literal(text) == wdl


def test_arm_literals() -> None:
    assert arm_literal("[concat('a')]") == "[[concat('a')]"
    assert arm_literal("[not an expression") == "[not an expression"


# guide text a Logic App, ARM or a browser would run if it were not escaped
HOSTILE_MEANING = "@{listCallbackUrl()} posts the callback URL"
HOSTILE_TRIAGE = ["@parameters('$connections')", "[concat('x')]", "</li><script>x()</script>"]
HOSTILE_PIVOT = "@{body('x')} \u202eoverride"
HOSTILE_STEP = "@@{workflow()} and @"


def _hostile_rule(rules: list[Rule], folder: Path) -> Rule:
    source = next(r for r in rules if r.pack == "default")
    rule_file = folder / "hostile.yaml"
    rule_file.write_text(source.path.read_text("utf-8"), encoding="utf-8")
    guide = yaml.safe_load((source.path.with_name(source.path.stem + ".guide.yaml")).read_text())
    guide["meaning"] = HOSTILE_MEANING
    guide["triage"] = HOSTILE_TRIAGE
    guide["pivots"] = [
        {"id": "evil", "title": HOSTILE_PIVOT, "about": HOSTILE_MEANING, "query": "@{x}"}
    ]
    guide["playbook"] = [
        {
            "id": "evil-step",
            "phase": "containment",
            "shell": "manual",
            "title": HOSTILE_STEP,
            "text": HOSTILE_MEANING,
        }
    ]
    (folder / "hostile.guide.yaml").write_text(yaml.safe_dump(guide), encoding="utf-8")
    return load_rules([str(rule_file)], strict=False)[0]


def test_guide_text_never_becomes_an_expression(rules: list[Rule], tmp_path: Path) -> None:
    rule = _hostile_rule(rules, tmp_path)
    result = export_rules([rule], "playbook")
    assert len(result.files) == 2  # the rule's and the pack's
    for file in result.files:
        template_ = json.loads(file.text)
        definition = _resource(template_, WORKFLOW_TYPE)["properties"]["definition"]
        # the only Logic App expressions are trustwatch's own; the only ARM ones are its own
        for value in _strings(definition):
            if value.startswith("@") or "@{" in value:
                assert value in EXPRESSIONS, value
        for value in _strings(template_):
            if value.startswith("[") and value.endswith("]") and not value.startswith("[["):
                assert ARM_EXPRESSION.match(value), value
        (messages,) = _comments(template_).values()
        for message in messages:
            assert "@" not in message and "<script" not in message and "\u202e" not in message
        shown = html.unescape("\n".join(messages))
        for text in (HOSTILE_MEANING, *HOSTILE_TRIAGE, HOSTILE_STEP):
            assert text in shown
        assert html.unescape(html_text(HOSTILE_PIVOT)) in shown
        assert "\\u202eoverride" in shown  # the override shown as an escape, not applied
