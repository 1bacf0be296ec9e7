"""deploy defender over recorded Microsoft Graph responses: create, unchanged, update, errors."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import ClientFactory
from tests.deploy.replay import RULE_ID, TOKEN
from trustwatch.deploy.defender import (
    GRAPH_SERVICE,
    MARKER,
    DefenderRule,
    defender_rule,
    plan_defender,
)
from trustwatch.deploy.model import Action, DeployError, execute
from trustwatch.rules.model import Rule

COLUMNS = ("Timestamp", "ReportId", "DeviceId", "DeviceName")


@pytest.fixture
def item(rule: Rule) -> DefenderRule:
    return defender_rule(rule, COLUMNS)


def test_create_posts_the_body_with_the_rule_id_line(
    replayed: ClientFactory, item: DefenderRule
) -> None:
    client, transport, credential = replayed("defender_create", GRAPH_SERVICE)
    plan = plan_defender(client, [item])
    assert [c.action for c in plan.changes] == [Action.CREATE]
    done: list[str] = []
    execute(plan, done.append)
    assert done == [
        f"created detectionRule {RULE_ID}  Deploy test - root store write  (Graph id 35112)"
    ]
    post = transport.replay.sent[-1]
    assert post.body == item.body
    assert post.body["detectionAction"]["alertTemplate"]["description"].endswith(
        f"\n\n{MARKER}{RULE_ID}"
    )
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert set(credential.scopes) == {("https://graph.microsoft.com/.default",)}


def test_unchanged_ignores_what_graph_adds(replayed: ClientFactory, item: DefenderRule) -> None:
    client, transport, _ = replayed("defender_unchanged", GRAPH_SERVICE)
    plan = plan_defender(client, [item])
    assert [c.action for c in plan.changes] == [Action.UNCHANGED]
    assert len(transport.replay.sent) == 1


def test_update_matches_by_name_rereads_then_patches(
    replayed: ClientFactory, item: DefenderRule
) -> None:
    client, transport, _ = replayed("defender_update", GRAPH_SERVICE)
    plan = plan_defender(client, [item])
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert change.detail.startswith("matched by name; Graph id 35200; differs: ")
    assert "detectionAction.alertTemplate.severity" in change.detail
    execute(plan, lambda line: None)
    assert [s.method for s in transport.replay.sent] == ["GET", "GET", "PATCH"]
    assert transport.replay.sent[-1].body == item.body


def test_a_rule_edited_since_the_plan_is_not_patched(
    replayed: ClientFactory, item: DefenderRule
) -> None:
    client, transport, _ = replayed("defender_conflict", GRAPH_SERVICE)
    plan = plan_defender(client, [item])
    with pytest.raises(DeployError) as caught:
        execute(plan, lambda line: None)
    assert caught.value.code == "DEP409"
    assert "was changed in Defender since the plan was read" in caught.value.diagnostic.message
    assert "PATCH" not in [s.method for s in transport.replay.sent]


def test_two_candidates_are_refused(replayed: ClientFactory, item: DefenderRule) -> None:
    client, _, _ = replayed("defender_ambiguous", GRAPH_SERVICE)
    with pytest.raises(DeployError) as caught:
        plan_defender(client, [item])
    assert caught.value.code == "DEP302"


def test_forbidden_names_the_graph_permission(replayed: ClientFactory, item: DefenderRule) -> None:
    client, _, _ = replayed("defender_forbidden", GRAPH_SERVICE)
    with pytest.raises(DeployError) as caught:
        plan_defender(client, [item])
    assert caught.value.code == "DEP103"
    hint = caught.value.diagnostic.hint or ""
    assert "CustomDetection.ReadWrite.All" in hint and "Security Administrator" in hint


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        (None, "its query does not compile here"),
        (("TimeGenerated", "DeviceName"), "does not return Timestamp and ReportId"),
        (("Timestamp", "ReportId", "FileName"), "no result column names a device or user"),
    ],
    ids=["no-compile", "no-ReportId", "no-entity"],
)
def test_what_defender_refuses_is_skipped_with_the_reason(
    rule: Rule, columns: tuple[str, ...] | None, reason: str
) -> None:
    item = defender_rule(rule, columns)
    (change,) = plan_defender(None, [item]).changes
    assert change.action is Action.SKIP
    assert reason in change.detail
