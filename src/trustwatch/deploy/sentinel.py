"""Deploy to Microsoft Sentinel: the rules as ``alertRules`` (kind Scheduled, named by the rule's
id) and the watchlists (``CertificateIntel``, the tuning file's), through Azure Resource Manager.

The bodies are :mod:`trustwatch.export.sentinel`'s, the ones the ARM export holds. A watchlist
is created in one PUT with its CSV (``rawContent``); an existing one is brought in line item by
item (``watchlistItems``), since the API returns a watchlist without its items and a second
CSV upload would add rows rather than replace them. REST reference: api-version 2024-09-01,
``azure-rest-api-specs`` ``specification/securityinsights/.../stable/2024-09-01``.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from trustwatch.deploy.rest import MANAGEMENT_SCOPE, MANAGEMENT_URL, Conflict, RestClient, Service
from trustwatch.export.sentinel import (
    API_VERSION,
    WatchlistData,
    alert_rule_body,
    watchlist_properties,
)
from trustwatch.rules.model import Rule

PARAMS = {"api-version": API_VERSION}
#: Watchlist properties the API returns, compared with ours (rawContent is write-only)
WATCHLIST_KEYS = ("displayName", "description", "provider", "source", "itemsSearchKey")
#: Sent only with a new watchlist's CSV: on an existing one it would add the rows again
UPLOAD_KEYS = ("rawContent", "contentType", "numberOfLinesToSkip")
ITEM_NAMESPACE = uuid.UUID("5d8f8f55-2b7e-4c36-9c1a-7a1f0c6b7d21")  # trustwatch watchlist items

Row = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Workspace:
    """A Log Analytics workspace with Microsoft Sentinel, by subscription, group and name."""

    subscription: str
    resource_group: str
    name: str

    @property
    def provider_path(self) -> str:
        """``/subscriptions/.../workspaces/W/providers/Microsoft.SecurityInsights``."""
        parts = (self.subscription, self.resource_group, self.name)
        sub, group, name = (quote(p, safe="") for p in parts)
        return (
            f"/subscriptions/{sub}/resourceGroups/{group}/providers/"
            f"Microsoft.OperationalInsights/workspaces/{name}/providers/Microsoft.SecurityInsights"
        )

    def describe(self) -> str:
        return (
            f"Sentinel workspace {self.name} (resource group {self.resource_group}, "
            f"subscription {self.subscription})"
        )


def sentinel_service(workspace: Workspace) -> Service:
    """Azure Resource Manager, with the roles a 403 on this workspace lacks."""
    return Service(
        name="Azure Resource Manager",
        base_url=MANAGEMENT_URL,
        scope=MANAGEMENT_SCOPE,
        forbidden_hint=(
            f"deploying needs the Microsoft Sentinel Contributor role on workspace "
            f"{workspace.name} (or its resource group); --dry-run needs Microsoft Sentinel Reader"
        ),
        next_link="nextLink",
    )


def plan_sentinel(
    client: RestClient | None,
    workspace: Workspace,
    rules: Sequence[Rule],
    watchlists: Sequence[WatchlistData],
) -> Plan:
    """What deploying ``rules`` and ``watchlists`` to ``workspace`` would do.

    With ``client`` None nothing is read: every resource is planned as a create, marked
    :data:`NOT_COMPARED`, and the plan cannot be applied.

    Raises:
        DeployError: the workspace is not found or has no Sentinel (404), or reading failed.
    """
    if client is None:
        offline = [
            *(
                Change("watchlist", w.alias, _items_label(w), Action.CREATE, NOT_COMPARED)
                for w in watchlists
            ),
            *(Change("alertRule", r.id, r.name, Action.CREATE, NOT_COMPARED) for r in rules),
        ]
        return Plan(workspace.describe(), tuple(offline), compared=False)
    target = _Sentinel(client, workspace)
    try:
        target.check_workspace()
        # watchlists first: the rules read them with _GetWatchlist
        changes = [*map(target.plan_watchlist, watchlists), *map(target.plan_rule, rules)]
    except DeployError as exc:
        raise while_planning(exc) from exc
    return Plan(workspace.describe(), tuple(changes))


class _Sentinel:
    def __init__(self, client: RestClient, workspace: Workspace) -> None:
        self.client = client
        self.workspace = workspace
        self.base = workspace.provider_path

    # --- the workspace ---------------------------------------------------------------------

    def check_workspace(self) -> None:
        """404 on the Sentinel onboarding state: no such workspace, or no Sentinel on it.

        Read first, so a later 404 on a rule or watchlist means only "not there yet"."""
        reply = self.client.request(
            "GET", f"{self.base}/onboardingStates/default", params=PARAMS, missing_ok=True
        )
        if reply.status == 404:
            raise DeployError(
                f"workspace {self.workspace.name} not found in resource group "
                f"{self.workspace.resource_group} of subscription {self.workspace.subscription}, "
                "or Microsoft Sentinel is not enabled on it",
                hint="check --subscription, --resource-group and --workspace "
                "(`az monitor log-analytics workspace list -o table`)",
                code="DEP104",
            )

    # --- alert rules -----------------------------------------------------------------------

    def plan_rule(self, rule: Rule) -> Change:
        path = f"{self.base}/alertRules/{quote(rule.id, safe='')}"
        body = alert_rule_body(rule)
        existing = self.client.request("GET", path, params=PARAMS, missing_ok=True).body
        if existing is None:
            return Change(
                "alertRule",
                rule.id,
                rule.name,
                Action.CREATE,
                apply=self._put_rule(path, rule, body, None),
            )
        found = differences(body, _comparable(existing), replace=True)
        if not found:
            return Change("alertRule", rule.id, rule.name, Action.UNCHANGED)
        etag = existing.get("etag") if isinstance(existing, Mapping) else None
        return Change(
            "alertRule",
            rule.id,
            rule.name,
            Action.UPDATE,
            describe(found),
            apply=self._put_rule(path, rule, body, etag),
        )

    def _put_rule(
        self, path: str, rule: Rule, body: dict[str, Any], etag: Any
    ) -> Callable[[], str]:
        def put() -> str:
            sent = {**body, "etag": etag} if etag else body
            self.put(path, sent, "alertRule", rule.id, etag)
            return f"{'updated' if etag else 'created'} alertRule {rule.id}  {rule.name}"

        return put

    # --- watchlists ------------------------------------------------------------------------

    def plan_watchlist(self, watchlist: WatchlistData) -> Change:
        path = f"{self.base}/watchlists/{quote(watchlist.alias, safe='')}"
        properties = watchlist_properties(watchlist)
        existing = self.client.request("GET", path, params=PARAMS, missing_ok=True).body
        label = _items_label(watchlist)
        if existing is None:
            return Change(
                "watchlist",
                watchlist.alias,
                label,
                Action.CREATE,
                apply=self._create_watchlist(path, watchlist, properties),
            )
        meta = {k: properties[k] for k in WATCHLIST_KEYS}
        theirs = existing.get("properties") if isinstance(existing, Mapping) else None
        changed = differences(meta, theirs or {}, replace=False, path="properties")
        items = list(self._items(path))
        rows = [_full_row(r, watchlist.columns) for r in watchlist.rows]
        full = {_key(r): r for r in rows}
        wanted = Counter(map(_key, rows))
        held = Counter(key for _, key in items)
        add = [full[key] for key in (wanted - held).elements()]
        remove = _surplus(items, held - wanted)
        if not changed and not add and not remove:
            return Change("watchlist", watchlist.alias, label, Action.UNCHANGED)
        detail = ", ".join(
            [*([describe(changed)] if changed else []), f"items +{len(add)} -{len(remove)}"]
        )
        etag = existing.get("etag") if isinstance(existing, Mapping) else None
        update = _WatchlistUpdate(
            self, path, watchlist.alias, properties, etag, changed, add, remove
        )
        return Change("watchlist", watchlist.alias, label, Action.UPDATE, detail, apply=update.run)

    def _items(self, path: str) -> Iterator[tuple[str, Row]]:
        for item in self.client.pages(f"{path}/watchlistItems", PARAMS):
            props = item.get("properties") if isinstance(item, Mapping) else None
            if not isinstance(props, Mapping):
                continue
            values = props.get("itemsKeyValue")
            item_id = props.get("watchlistItemId") or item.get("name")
            if isinstance(values, Mapping) and item_id:
                yield str(item_id), _key(values)

    def _create_watchlist(
        self, path: str, watchlist: WatchlistData, properties: dict[str, Any]
    ) -> Callable[[], str]:
        def create() -> str:
            self.put(path, {"properties": properties}, "watchlist", watchlist.alias, None)
            return f"created watchlist {watchlist.alias}  ({len(watchlist.rows)} items)"

        return create

    # --- writing ---------------------------------------------------------------------------

    def put(self, path: str, body: Mapping[str, Any], kind: str, name: str, etag: Any) -> None:
        try:
            self.client.request("PUT", path, params=PARAMS, body=body)
        except Conflict as exc:
            raise self._conflict(path, kind, name, etag) from exc

    def _conflict(self, path: str, kind: str, name: str, etag: Any) -> DeployError:
        """409: read the resource again and say what changed; it is not overwritten."""
        now = self.client.request("GET", path, params=PARAMS, missing_ok=True).body
        if now is None:
            state = "it is no longer there"
        else:
            new = now.get("etag") if isinstance(now, Mapping) else None
            state = f"its etag is now {new}" if new != etag else "its etag is unchanged"
        return DeployError(
            f"{kind} {name} was changed in the workspace since the plan was read "
            f"(409 conflict; planned against etag {etag or 'none: a new resource'}, {state}); "
            "it was not overwritten",
            hint="someone else is editing it: run the deploy again to plan against what is "
            "there now (--dry-run shows it)",
            code="DEP409",
        )


@dataclass(slots=True)
class _WatchlistUpdate:
    """An existing watchlist brought in line: its properties, then item deletes and adds."""

    target: _Sentinel
    path: str
    alias: str
    properties: dict[str, Any]
    etag: Any
    changed: list[str]
    add: list[dict[str, str]]
    remove: list[str]

    def run(self) -> str:
        client = self.target.client
        if self.changed:
            props = {k: v for k, v in self.properties.items() if k not in UPLOAD_KEYS}
            body: dict[str, Any] = {"properties": props}
            if self.etag:
                body["etag"] = self.etag
            self.target.put(self.path, body, "watchlist", self.alias, self.etag)
        for item_id in self.remove:
            item = f"{self.path}/watchlistItems/{quote(item_id, safe='')}"
            client.request("DELETE", item, params=PARAMS, missing_ok=True)  # gone is done
        for item_id, row in _item_ids(self.alias, self.add):
            client.request(
                "PUT",
                f"{self.path}/watchlistItems/{item_id}",
                params=PARAMS,
                body={"properties": {"itemsKeyValue": row}},
            )
        return f"updated watchlist {self.alias}  (items +{len(self.add)} -{len(self.remove)})"


def _items_label(watchlist: WatchlistData) -> str:
    return f"{len(watchlist.rows)} items"


def _comparable(existing: Any) -> Any:
    """The parts of a GET answer a PUT body has: kind and properties."""
    if not isinstance(existing, Mapping):
        return {}
    return {"kind": existing.get("kind"), "properties": existing.get("properties") or {}}


def _full_row(values: Mapping[str, Any], columns: Sequence[str]) -> dict[str, str]:
    """A row to send: every column, as text."""
    return {c: "" if values.get(c) is None else str(values.get(c)) for c in columns}


def _key(values: Mapping[str, Any]) -> Row:
    """A row as comparable data: its non-empty (column, text) pairs, sorted (an empty cell and
    a missing one are the same to a watchlist)."""
    return tuple(sorted((str(k), str(v)) for k, v in values.items() if v not in (None, "")))


def _surplus(items: Sequence[tuple[str, Row]], extra: Counter[Row]) -> list[str]:
    """The ids of the items to delete: as many of each surplus row as there are too many."""
    left = Counter(extra)
    out: list[str] = []
    for item_id, row in items:
        if left[row] > 0:
            left[row] -= 1
            out.append(item_id)
    return out


def _item_ids(alias: str, rows: Sequence[dict[str, str]]) -> Iterator[tuple[str, dict[str, str]]]:
    """A stable id per new item: the same rows get the same ids on every run."""
    seen: Counter[Row] = Counter()
    for row in rows:
        key = _key(row)
        seen[key] += 1
        name = json.dumps([alias, key, seen[key]], ensure_ascii=True)
        yield str(uuid.uuid5(ITEM_NAMESPACE, name)), row
