"""Defender XDR custom detection rules, as the Microsoft Graph security API's ``detectionRule``.

Shape: ``../shared/reference/sentinel_rule_format.md`` section 3 (``POST
/security/rules/detectionRules``). Defender runs a rule on a fixed schedule with a fixed
look-back, and wants the query to return ``Timestamp``, ``ReportId`` and an entity column: what
does not fit is noted, never changed in the query behind the user's back. One change is made,
and documented (docs/export.md): advanced hunting's tables have no ``TimeGenerated``, so a query
naming it reads them through lets that add it from ``Timestamp`` (:mod:`trustwatch.export.hunting`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

from trustwatch.export.hunting import hunting_catalog, hunting_query
from trustwatch.export.model import Note
from trustwatch.rules.model import Rule

#: schedule.period -> its run interval and Defender's look-back (reference section 3)
PERIODS: Mapping[str, tuple[timedelta, timedelta]] = {
    "1H": (timedelta(hours=1), timedelta(hours=4)),
    "3H": (timedelta(hours=3), timedelta(hours=12)),
    "12H": (timedelta(hours=12), timedelta(hours=48)),
    "24H": (timedelta(hours=24), timedelta(days=30)),
}
DEVICE_ASSET = "#microsoft.graph.security.impactedDeviceAsset"
USER_ASSET = "#microsoft.graph.security.impactedUserAsset"
#: result column -> the impacted asset it names (first device and first user column win)
ASSET_COLUMNS: Mapping[str, tuple[str, str]] = {
    "DeviceId": (DEVICE_ASSET, "deviceId"),
    "DeviceName": (DEVICE_ASSET, "deviceName"),
    "AccountObjectId": (USER_ASSET, "accountObjectId"),
    "AccountSid": (USER_ASSET, "accountSid"),
    "InitiatingProcessAccountSid": (USER_ASSET, "initiatingAccountSid"),
    "AccountUpn": (USER_ASSET, "accountUpn"),
    "AccountName": (USER_ASSET, "accountName"),
}
REQUIRED_COLUMNS = ("Timestamp", "ReportId")


def schedule_period(frequency: timedelta) -> str:
    """The longest Defender period not longer than the rule's frequency (at least ``1H``)."""
    fitting = [p for p, (every, _) in PERIODS.items() if every <= frequency]
    return fitting[-1] if fitting else "1H"


def impacted_assets(columns: Collection[str]) -> list[dict[str, str]]:
    """One device and one user asset, from the first result columns that can name them."""
    assets: dict[str, dict[str, str]] = {}
    for column, (kind, identifier) in ASSET_COLUMNS.items():
        if column in columns and kind not in assets:
            assets[kind] = {"@odata.type": kind, "identifier": identifier}
    return list(assets.values())


def detection_rule(rule: Rule, columns: Collection[str]) -> dict[str, Any]:
    """The detectionRule body for ``rule``, whose query returns ``columns``; the query as
    advanced hunting can run it (:func:`trustwatch.export.hunting.hunting_query`)."""
    return {
        "displayName": rule.name,
        "isEnabled": True,
        "queryCondition": {"queryText": hunting_query(rule.query).text},
        "schedule": {"period": schedule_period(rule.query_frequency)},
        "detectionAction": {
            "alertTemplate": {
                "title": rule.name,
                "description": str(rule.doc.get("description") or "").strip(),
                "severity": rule.severity.lower(),
                "category": rule.tactics[0] if rule.tactics else "None",
                "recommendedActions": None,
                "mitreTechniques": list(rule.techniques),
                "impactedAssets": impacted_assets(columns),
            },
            "organizationalScope": None,
            "responseActions": [],
        },
    }


def detection_notes(rule: Rule, columns: Sequence[str] | None) -> list[Note]:
    """What Defender will run differently from Sentinel, or refuse, for this rule."""
    notes: list[Note] = []
    period = schedule_period(rule.query_frequency)
    every, lookback = PERIODS[period]
    if every != rule.query_frequency:
        notes.append(Note(rule.name, f"runs every {period}, not every {rule.query_frequency}"))
    if lookback < rule.query_period:
        notes.append(
            Note(
                rule.name,
                f"Defender looks back {lookback} at {period}, less than its "
                f"queryPeriod {rule.query_period}",
            )
        )
    if columns is None:
        notes.append(Note(rule.name, "the query does not compile here: its columns are unknown"))
        return notes
    notes += hunting_notes(rule)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        notes.append(
            Note(
                rule.name,
                f"the query does not return {' and '.join(missing)}, which Defender requires "
                f"of a custom detection: add {'it' if len(missing) == 1 else 'them'} to its "
                "final project",
            )
        )
    if not impacted_assets(columns):
        notes.append(Note(rule.name, "no result column names a device or user to impact"))
    return notes


def output_columns(rule: Rule, session: Any) -> list[str] | None:
    """The columns the rule's query returns (compiled in ``session``), or None if it fails."""
    from trustwatch.errors import TrustwatchError

    try:
        statements, _ = session.compile(rule.runnable_query, source_name=str(rule.path))
    except TrustwatchError:
        return None
    return [name for name, _ in statements[-1].columns] if statements else []


def hunting_notes(rule: Rule, session: Any = None) -> list[Note]:
    """A note if the query Defender gets does not compile in ``session`` (default: a catalog of
    advanced hunting's tables only, :func:`trustwatch.export.hunting.hunting_catalog`)."""
    from trustwatch.errors import TrustwatchError

    try:
        (session or hunting_catalog()).compile(
            hunting_query(rule.query).text, source_name=str(rule.path)
        )
    except TrustwatchError as exc:
        return [
            Note(
                rule.name,
                "the query does not compile against advanced hunting's tables and columns "
                f"(Defender would reject it): {exc.diagnostic.message}",
            )
        ]
    return []
