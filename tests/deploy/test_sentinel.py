"""deploy sentinel over recorded ARM responses: plan, create, update, unchanged and errors."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import WORKSPACE_REF, ClientFactory
from tests.deploy.replay import RULE_ID, TOKEN
from trustwatch.deploy.model import Action, DeployError, Plan, execute, plan_lines
from trustwatch.deploy.sentinel import plan_sentinel
from trustwatch.export.sentinel import WatchlistData, alert_rule_body
from trustwatch.rules.model import Rule


def actions(plan: Plan) -> list[tuple[str, str, Action]]:
    return [(c.kind, c.name, c.action) for c in plan.changes]


def run(plan: Plan) -> list[str]:
    done: list[str] = []
    execute(plan, done.append)
    return done


def test_create_plans_then_puts_both_with_bearer_token(
    replayed: ClientFactory, rule: Rule, watchlist: WatchlistData
) -> None:
    client, transport, credential = replayed("sentinel_create")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [watchlist])
    assert actions(plan) == [
        ("watchlist", "TestList", Action.CREATE),
        ("alertRule", RULE_ID, Action.CREATE),
    ]
    assert len(transport.replay.sent) == 3  # planning only read
    assert run(plan) == [
        "created watchlist TestList  (2 items)",
        f"created alertRule {RULE_ID}  Deploy test - root store write",
    ]
    watchlist_put, rule_put = transport.replay.sent[3:]
    assert watchlist_put.body["properties"]["rawContent"] == (
        "Thumbprint,Verdict\r\nAA11,known-bad\r\nBB22,public-root\r\n"
    )
    assert rule_put.body == alert_rule_body(rule)  # no etag on a create
    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in transport.replay.sent)
    assert all(s.query == {"api-version": "2024-09-01"} for s in transport.replay.sent)
    assert set(credential.scopes) == {("https://management.azure.com/.default",)}


def test_unchanged_sends_nothing(
    replayed: ClientFactory, rule: Rule, watchlist: WatchlistData
) -> None:
    client, transport, _ = replayed("sentinel_unchanged")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [watchlist])
    assert [c.action for c in plan.changes] == [Action.UNCHANGED, Action.UNCHANGED]
    assert plan.pending == []
    assert plan.summary() == "plan: 2 unchanged"
    assert {s.method for s in transport.replay.sent} == {"GET"}


def test_update_sends_etags_and_syncs_items(
    replayed: ClientFactory, rule: Rule, watchlist: WatchlistData
) -> None:
    client, transport, _ = replayed("sentinel_update")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [watchlist])
    wl, rl = plan.changes
    assert (wl.action, rl.action) == (Action.UPDATE, Action.UPDATE)
    assert wl.detail == "differs: properties.description, items +1 -1"
    assert rl.detail == (
        "differs: properties.severity, properties.query, properties.alertDetailsOverride"
    )
    assert run(plan) == [
        "updated watchlist TestList  (items +1 -1)",
        f"updated alertRule {RULE_ID}  Deploy test - root store write",
    ]
    meta, delete, item, rule_put = transport.replay.sent[4:]
    assert meta.body["etag"] == '"watchlist-etag-1"'
    assert "rawContent" not in meta.body["properties"]  # a CSV would add the rows again
    assert meta.body["properties"]["description"] == "deploy test list"
    assert delete.method == "DELETE"
    assert item.body == {
        "properties": {"itemsKeyValue": {"Thumbprint": "BB22", "Verdict": "public-root"}}
    }
    assert rule_put.body == {**alert_rule_body(rule), "etag": '"rule-etag-1"'}


def test_conflict_rereads_and_does_not_overwrite(replayed: ClientFactory, rule: Rule) -> None:
    client, transport, _ = replayed("sentinel_conflict")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [])
    with pytest.raises(DeployError) as caught:
        run(plan)
    assert caught.value.code == "DEP409"
    message = caught.value.diagnostic.message
    assert '"rule-etag-1"' in message and '"rule-etag-9"' in message
    assert "not overwritten" in message and "none of the 1 changes was made" in message
    assert [s.method for s in transport.replay.sent] == ["GET", "GET", "PUT", "GET"]


def test_throttling_waits_what_retry_after_says(replayed: ClientFactory, rule: Rule) -> None:
    client, transport, _ = replayed("sentinel_throttled")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [])
    assert run(plan) == [f"created alertRule {RULE_ID}  Deploy test - root store write"]
    assert transport.slept == [7.0, 2.0]


def test_throttled_past_the_retries_is_a_clear_error(replayed: ClientFactory, rule: Rule) -> None:
    client, transport, _ = replayed("sentinel_throttled_out")
    with pytest.raises(DeployError) as caught:
        plan_sentinel(client, WORKSPACE_REF, [rule], [])
    assert caught.value.code == "DEP129"
    assert "throttled (429; 5 attempts)" in caught.value.diagnostic.message
    assert transport.slept == [3.0, 3.0, 3.0, 3.0]


def test_server_errors_back_off_then_give_up(replayed: ClientFactory, rule: Rule) -> None:
    client, transport, _ = replayed("sentinel_server_error")
    with pytest.raises(DeployError) as caught:
        plan_sentinel(client, WORKSPACE_REF, [rule], [])
    assert caught.value.code == "DEP150"
    assert "server error 500 (5 attempts): InternalServerError" in caught.value.diagnostic.message
    assert transport.slept == pytest.approx([1.6, 3.2, 6.4])  # exponential, no Retry-After


@pytest.mark.parametrize(
    ("name", "code", "said"),
    [
        ("sentinel_forbidden", "DEP103", "Microsoft Sentinel Contributor"),
        ("sentinel_no_workspace", "DEP104", "--resource-group"),
        ("sentinel_unauthorized", "DEP101", "az login"),
    ],
    ids=["403", "404-workspace", "401"],
)
def test_access_errors_name_the_fix(
    replayed: ClientFactory, rule: Rule, name: str, code: str, said: str
) -> None:
    client, _, _ = replayed(name)
    with pytest.raises(DeployError) as caught:
        plan_sentinel(client, WORKSPACE_REF, [rule], [])
    assert caught.value.code == code
    assert said in (caught.value.diagnostic.hint or "")
    assert caught.value.diagnostic.message.endswith("(while planning: nothing was changed)")
    assert TOKEN not in caught.value.render()


def test_no_workspace_says_so(replayed: ClientFactory, rule: Rule) -> None:
    client, _, _ = replayed("sentinel_no_workspace")
    with pytest.raises(DeployError, match="workspace myWorkspace not found in resource group myRg"):
        plan_sentinel(client, WORKSPACE_REF, [rule], [])


def test_auth_failure_sends_no_request(replayed: ClientFactory, rule: Rule) -> None:
    client, transport, _ = replayed("sentinel_no_workspace", fail_auth=True)
    transport.replay.interactions.clear()
    with pytest.raises(DeployError) as caught:
        plan_sentinel(client, WORKSPACE_REF, [rule], [])
    assert caught.value.code == "DEP101"
    assert caught.value.diagnostic.message.startswith(
        "could not sign in to Azure Resource Manager: DefaultAzureCredential failed"
    )
    assert transport.replay.sent == []


def test_a_failure_midway_says_what_was_done(
    replayed: ClientFactory, rule: Rule, watchlist: WatchlistData
) -> None:
    client, _, _ = replayed("sentinel_stops_midway")
    plan = plan_sentinel(client, WORKSPACE_REF, [rule], [watchlist])
    done: list[str] = []
    with pytest.raises(DeployError) as caught:
        execute(plan, done.append)
    assert done == ["created watchlist TestList  (2 items)"]
    assert caught.value.code == "DEP103"
    assert "1 of 2 changes were made before it (listed above); the rest were not attempted" in (
        caught.value.diagnostic.message
    )


def test_offline_plan_is_labelled_and_cannot_be_applied(
    rule: Rule, watchlist: WatchlistData
) -> None:
    plan = plan_sentinel(None, WORKSPACE_REF, [rule], [watchlist])
    assert not plan.compared
    assert all(c.detail == "not compared: no access" for c in plan.changes)
    assert plan_lines(plan)[0] == (
        "target: Sentinel workspace myWorkspace (resource group myRg, "
        "subscription d0cfe6b2-9ac0-4464-9919-dccaee2e48c0)"
    )
    with pytest.raises(DeployError, match="without access"):
        execute(plan, print)
