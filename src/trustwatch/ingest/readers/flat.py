"""``flat-events`` JSON lines: ``{source, record_id, ts, provider, event_id, fields}`` per event.

``fields`` is the event's EventData (``Data`` a list or a string for unnamed data, ``UserData``
a nested object). There is no computer (``""``) and no channel: Sysmon and Security-Auditing
get theirs, other providers ``""``. A ``record_id`` that is not a number (``"file.json:1470"``,
a line in an OTRF file) leaves EventRecordID null.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trustwatch.ingest.readers.evtxjson import (
    Doc,
    as_object,
    event_doc,
    json_head,
    read_json_events,
    required_event_id,
    system_doc,
    time_text,
    to_int,
)
from trustwatch.ingest.records import Item

CHANNELS = {
    "Microsoft-Windows-Sysmon": "Microsoft-Windows-Sysmon/Operational",
    "Microsoft-Windows-Security-Auditing": "Security",
}


def flat_doc(record: Any) -> Doc:
    """The evtx JSON document for one flat-events record."""
    record = as_object(record)
    provider = record.get("provider")
    if not isinstance(provider, str) or not provider:
        raise ValueError("no provider: a flat-events record has provider, event_id and fields")
    fields = record.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise TypeError(f'"fields" is not an object but {type(fields).__name__}')
    system = system_doc(
        provider,
        required_event_id(record.get("event_id")),
        time_created=time_text(record.get("ts")),
        record_id=to_int(record.get("record_id")),
        channel=str(record.get("channel") or CHANNELS.get(provider, "")),
        computer=str(record.get("computer") or ""),
    )
    data = dict(fields)
    user_data = data.pop("UserData", None)
    if user_data is not None and data.get("Data", "") is None:
        del data["Data"]
    unnamed = data.get("Data")
    if isinstance(unnamed, list | str):
        data["Data"] = {"#text": unnamed}
    if user_data is not None and not data:
        return event_doc(system, None, user_data)
    return event_doc(system, data, user_data)


def read_flat(path: Path) -> Iterator[Item]:
    """Read flat-events JSON lines."""
    return read_json_events(path, flat_doc)


_KEYS = re.compile(r'"(record_id|provider|event_id|fields)"\s*:')


def sniff_flat(path: Path, head: bytes) -> bool:
    """JSON whose first record has ``record_id``, ``provider``, ``event_id`` and ``fields``."""
    return len(set(_KEYS.findall(json_head(head)))) == 4
