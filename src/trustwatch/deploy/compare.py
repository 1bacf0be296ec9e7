"""Compare what would be sent with what the server holds, ignoring what the server adds.

A PUT replaces a resource (``replace=True``): a value the server holds and the body lacks is a
difference, because the PUT would drop it; a PATCH changes only what it sends (``replace=False``).
Either way, fields the server fills in itself (etag, timestamps, ids, who changed it) are not
differences, nor are empty values against missing ones (``null``, ``[]``, ``{}``, ``""``), nor
two spellings of one ISO 8601 duration (``PT24H`` and ``P1D``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Keys only the server writes (ARM, Sentinel and Graph responses), at any depth
SERVER_FIELDS = frozenset(
    {
        "@odata.context",
        "@odata.etag",
        "created",
        "createdBy",
        "createdDateTime",
        "detectorId",
        "etag",
        "id",
        "isDeleted",
        "lastModifiedBy",
        "lastModifiedDateTime",
        "lastModifiedUtc",
        "lastRunDetails",
        "name",
        "nextRunDateTime",
        "systemData",
        "tenantId",
        "type",
        "updated",
        "updatedBy",
        "uploadStatus",
        "watchlistId",
        "watchlistItemsCount",
        "watchlistType",
    }
)

_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
MAX_SHOWN = 4


def differences(desired: Any, existing: Any, *, replace: bool, path: str = "") -> list[str]:
    """The dotted paths where ``existing`` differs from ``desired`` (empty: the same)."""
    if isinstance(desired, Mapping) and isinstance(existing, Mapping):
        found: list[str] = []
        for key, value in desired.items():
            found += differences(value, existing.get(key), replace=replace, path=_at(path, key))
        if replace:
            found += [
                _at(path, key)
                for key, value in existing.items()
                if key not in desired and key not in SERVER_FIELDS and not _empty(value)
            ]
        return found
    if _is_list(desired) and _is_list(existing) and len(desired) == len(existing):
        found = []
        for i, (mine, theirs) in enumerate(zip(desired, existing, strict=True)):
            found += differences(mine, theirs, replace=replace, path=f"{path}[{i}]")
        return found
    return [] if same_value(desired, existing) else [path or "(whole)"]


def same_value(desired: Any, existing: Any) -> bool:
    """Equal scalars (and lists), empty against missing, or one duration spelled two ways."""
    if _empty(desired) and _empty(existing):
        return True
    if isinstance(desired, str) and isinstance(existing, str):
        mine, theirs = _seconds(desired), _seconds(existing)
        if mine is not None and theirs is not None:
            return mine == theirs
    return bool(desired == existing)


def describe(paths: Sequence[str]) -> str:
    """``differs: a, b, c and 2 more`` (first paths only: a rule can differ everywhere)."""
    shown = ", ".join(paths[:MAX_SHOWN])
    more = f" and {len(paths) - MAX_SHOWN} more" if len(paths) > MAX_SHOWN else ""
    return f"differs: {shown}{more}"


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


def _seconds(text: str) -> float | None:
    match = _ISO_DURATION.match(text)
    if match is None or text in ("P", "PT"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
