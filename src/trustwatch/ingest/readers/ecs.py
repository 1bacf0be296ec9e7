"""Winlogbeat / Elastic Agent ECS documents (one object, an array, JSON lines, or Elasticsearch
search hits) rebuilt as evtx JSON documents from their ``winlog.*`` fields.

``winlog.event_data`` keeps Windows' own field names, so it becomes EventData unchanged;
``winlog.user_data`` becomes UserData under its ``xml_name``. Dotted keys (``"winlog.channel"``,
as Kibana exports write them) are read like nested ones. When ``winlog`` is missing but
``event.original`` holds the event XML, that XML is used. Mapping choices that are guesses:
Task and Opcode are names in ECS (``"Registry value set (rule: RegistryEvent)"``, ``"Info"``),
so they stay null unless numeric; Level comes from ``log.level`` (0 for audit keywords);
Keywords are the names Winlogbeat writes, joined with ", " (ECS has no hex mask).

Winlogbeat 6 (before ECS; early OTRF / Mordor datasets) wrote the same fields at the top level:
``event_data``, ``event_id``, ``source_name`` (the provider), ``log_name`` (the channel),
``computer_name``, ``record_number``, ``process_id`` / ``thread_id``, ``level`` (a name). Such a
record is read as if those fields were under ``winlog``.
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
    keywords_text,
    parse_time,
    read_json_events,
    required_event_id,
    system_doc,
    text_or_none,
    time_text,
    to_int,
)
from trustwatch.ingest.readers.xml import event_element_doc, parse_xml
from trustwatch.ingest.records import Item

_LEVELS = {"critical": 1, "error": 2, "warning": 3, "info": 4, "information": 4, "verbose": 5}
_LEVELS |= {"informational": 4, "audit_success": 0, "audit_failure": 0}
_LEVELS |= {"audit success": 0, "audit failure": 0}


def _merge(into: Doc, value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], item)
        else:
            into[key] = dict(item) if isinstance(item, Mapping) else item


def _unflatten(record: Mapping[str, Any]) -> Doc:
    """Top-level dotted keys (``"winlog.event_data.Image"``) as nested objects."""
    out: Doc = {}
    for key, value in record.items():
        parts = key.split(".") if not key.startswith("@") else [key]
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        _merge(out, {parts[0]: nested})
    return out


def _get(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _first(record: Mapping[str, Any], *paths: str) -> Any:
    for path in paths:
        value = _get(record, path)
        if value not in (None, ""):
            return value
    return None


def level_number(name: Any) -> int | None:
    """The Windows level for a number or a name (``INFO``, ``information``, ``AUDIT_SUCCESS``)."""
    number = to_int(name)
    if number is not None:
        return number
    return _LEVELS.get(str(name).strip().lower()) if isinstance(name, str) else None


def _level(record: Mapping[str, Any]) -> int | None:
    keywords = _get(record, "winlog.keywords")
    names = keywords if isinstance(keywords, list) else [keywords]
    if any(isinstance(name, str) and name.lower().startswith("audit ") for name in names):
        return 0
    return level_number(_first(record, "winlog.level", "log.level"))


# Winlogbeat 6 top-level names -> their winlog.* names in ECS
_BEAT6 = {"source_name": "provider_name", "log_name": "channel", "record_number": "record_id"}


def is_winlogbeat6(record: Mapping[str, Any]) -> bool:
    """A Winlogbeat 6 (pre-ECS) event: ``event_data`` / ``user_data`` beside ``source_name`` or
    ``log_name`` at the top level."""
    data = record.get("event_data", record.get("user_data"))
    return isinstance(data, Mapping) and ("source_name" in record or "log_name" in record)


def _from_winlogbeat6(record: Mapping[str, Any]) -> Doc:
    winlog: Doc = {_BEAT6.get(key, key): value for key, value in record.items()}
    winlog["process"] = {"pid": record.get("process_id"), "thread": {"id": record.get("thread_id")}}
    return {"winlog": winlog, "@timestamp": record.get("@timestamp")}


def ecs_doc(record: Any) -> Doc:
    """The evtx JSON document for one Winlogbeat / Elastic Agent event (Winlogbeat 6 too)."""
    record = _unflatten(as_object(record))
    if "winlog" not in record and is_winlogbeat6(record):
        record = _from_winlogbeat6(record)
    winlog = record.get("winlog")
    if not isinstance(winlog, Mapping):
        original = _get(record, "event.original")
        if isinstance(original, str) and original.lstrip().startswith("<"):
            return event_element_doc(parse_xml(original))
        raise ValueError('no "winlog" object: not a Winlogbeat / Elastic Agent Windows event')
    event_id = required_event_id(_first(record, "winlog.event_id", "event.code"))
    provider = _first(record, "winlog.provider_name", "event.provider") or ""
    moment = parse_time(_first(record, "winlog.time_created", "@timestamp", "event.created"))
    system = system_doc(
        str(provider),
        event_id,
        guid=text_or_none(winlog.get("provider_guid")),
        version=to_int(winlog.get("version")),
        level=_level(record),
        task=to_int(winlog.get("task")),
        opcode=to_int(winlog.get("opcode")),
        keywords=keywords_text(winlog.get("keywords")),
        time_created=time_text(moment),
        record_id=to_int(winlog.get("record_id")),
        activity_id=text_or_none(winlog.get("activity_id")),
        related_activity_id=text_or_none(winlog.get("related_activity_id")),
        process_id=to_int(_get(winlog, "process.pid")),
        thread_id=to_int(_get(winlog, "process.thread.id")),
        channel=str(winlog.get("channel") or ""),
        computer=str(_first(record, "winlog.computer_name", "host.hostname", "host.name") or ""),
        user_id=text_or_none(_get(winlog, "user.identifier")),
    )
    user_data = winlog.get("user_data")
    if isinstance(user_data, Mapping) and user_data:
        fields = {key: value for key, value in user_data.items() if key != "xml_name"}
        return event_doc(system, None, {str(user_data.get("xml_name") or "UserData"): fields})
    event_data = winlog.get("event_data")
    return event_doc(system, dict(event_data) if isinstance(event_data, Mapping) else {})


def read_ecs(path: Path) -> Iterator[Item]:
    """Read Winlogbeat / Elastic Agent JSON (object, array, JSON lines or search hits)."""
    return read_json_events(path, ecs_doc)


_ECS_KEY = re.compile(r'"winlog(?:\.[a-z_]+)?"\s*:')
_BEAT6_DATA = re.compile(r'"(?:event|user)_data"\s*:\s*\{')
_BEAT6_KEY = re.compile(r'"(?:source|log)_name"\s*:')


def sniff_ecs(path: Path, head: bytes) -> bool:
    """JSON with a ``winlog`` object (or dotted ``winlog.*`` keys), or Winlogbeat 6's
    ``event_data`` object beside ``source_name`` / ``log_name``."""
    text = json_head(head)
    if _ECS_KEY.search(text) is not None:
        return True
    return _BEAT6_DATA.search(text) is not None and _BEAT6_KEY.search(text) is not None
