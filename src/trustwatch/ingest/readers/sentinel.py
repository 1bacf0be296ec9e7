"""Microsoft Sentinel rows of ``Event``, ``WindowsEvent`` and ``SecurityEvent`` as evtx docs.

``row_to_doc`` serves every reader of Log Analytics results (API JSON, portal CSV, the
``sentinel-rows`` files read here). Column mapping:

* ``Event`` (MMA): Source -> provider, EventLog -> channel, EventCategory -> Task, EventLevel ->
  Level, the DataItem ``time`` (else TimeGenerated) -> TimeCreated; EventData from the
  ``<DataItem><EventData|UserData>`` XML, else the ``<Param>`` texts of ParameterXml as unnamed
  data. UserName is a name, not a SID: it becomes Security/UserID only when it is a SID.
* ``WindowsEvent`` (AMA): the System* columns; EventData a dynamic bag (or its JSON / XML
  text); when it is empty and RawEventData holds the event XML, the XML's document is used.
* ``SecurityEvent``: Channel (default Security), EventSourceName (default
  Microsoft-Windows-Security-Auditing); EventData from its XML, else from the promoted
  columns. Level 8 / 16 are taken as audit success / failure (Level 0 with the audit keyword).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trustwatch.ingest.readers.evtxjson import (
    Doc,
    as_object,
    dumps,
    event_doc,
    json_head,
    keywords_text,
    read_json_events,
    required_event_id,
    system_doc,
    text_or_none,
    time_text,
    to_int,
)
from trustwatch.ingest.readers.xml import (
    element_json,
    event_data_json,
    event_element_doc,
    local_name,
    parse_xml,
)
from trustwatch.ingest.records import Item

TABLES = ("Event", "WindowsEvent", "SecurityEvent")
_AUDIT = {8: "0x8020000000000000", 16: "0x8010000000000000"}
_SID = re.compile(r"S-1-\d+(?:-\d+)+")
# SecurityEvent columns that are not EventData fields
_SECURITY_COLUMNS = frozenset(
    {
        *("TenantId", "TimeGenerated", "SourceSystem", "Computer", "EventSourceName", "Channel"),
        *("Task", "Level", "EventData", "EventID", "Activity", "Account", "AccountType"),
        *("SubjectAccount", "TargetAccount", "Process", "EventOriginId", "Type", "_ResourceId"),
        *("MG", "ManagementGroupName", "AzureDeploymentID", "Role", "EventLevelName"),
        *("SourceComputerId", "PartitionKey", "RowKey", "StorageAccount", "EventRecordId"),
        "EventRecordID",
        *("SystemUserId", "SystemProcessId", "SystemThreadId", "Keywords", "Opcode", "Version"),
        *("TimeCreated", "_ItemId", "_Internal_WorkspaceResourceId", "_BilledSize", "_IsBillable"),
    }
)


def _xml_parts(text: Any) -> tuple[Doc | None, Any, str | None]:
    """EventData, UserData and the DataItem ``time`` from an EventData XML string."""
    if not isinstance(text, str) or not text.strip():
        return None, None, None
    root = parse_xml(text)
    when = root.get("time") if local_name(root.tag) == "DataItem" else None
    for elem in root.iter():
        name = local_name(elem.tag)
        if name == "EventData":
            return event_data_json(elem) or {}, None, when
        if name == "UserData":
            return None, element_json(elem), when
    return None, None, when


def _params(text: Any) -> Doc | None:
    """ParameterXml (``<Param>a</Param><Param>b</Param>``) as unnamed data."""
    if not isinstance(text, str) or "<Param" not in text:
        return None
    texts = [
        "".join(p.itertext()) for p in parse_xml(f"<r>{text}</r>") if local_name(p.tag) == "Param"
    ]
    return {"Data": {"#text": texts[0] if len(texts) == 1 else texts}} if texts else None


def _provider(value: Any) -> str:
    if not value:
        raise ValueError("no provider (Source / Provider / EventSourceName) in the row")
    return str(value)


def _event_row(row: Mapping[str, Any]) -> Doc:
    data, user_data, when = _xml_parts(row.get("EventData"))
    if data is None and user_data is None:
        data = _params(row.get("ParameterXml"))
    user = row.get("UserName")
    system = system_doc(
        _provider(row.get("Source")),
        required_event_id(row.get("EventID")),
        level=to_int(row.get("EventLevel")),
        task=to_int(row.get("EventCategory")),
        time_created=time_text(when or row.get("TimeGenerated")),
        channel=str(row.get("EventLog") or ""),
        computer=str(row.get("Computer") or ""),
        user_id=user if isinstance(user, str) and _SID.fullmatch(user) else None,
    )
    return event_doc(system, data if data is not None or user_data is not None else {}, user_data)


def _record_id(row: Mapping[str, Any]) -> int | None:
    """EventRecordId as Sentinel spells it, or EventRecordID (exports made on the host)."""
    value = row.get("EventRecordId")
    return to_int(value if value not in (None, "") else row.get("EventRecordID"))


def _correlation(value: Any) -> str | None:
    """The ActivityID of a Correlation column (a GUID, or a bag / its JSON text)."""
    if isinstance(value, str) and value.strip().startswith("{") and '"' in value:
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return str(value)
    if isinstance(value, Mapping):
        return text_or_none(value.get("ActivityID"))
    return text_or_none(value)


def _windows_event_row(row: Mapping[str, Any]) -> Doc:
    data: Any = row.get("EventData")
    user_data = None
    if isinstance(data, str):
        text = data.strip()
        if text.startswith("<"):
            data, user_data, _ = _xml_parts(text)
        else:
            data = json.loads(text) if text else None
    raw = row.get("RawEventData")
    if not data and user_data is None and isinstance(raw, str) and raw.lstrip().startswith("<"):
        return event_element_doc(parse_xml(raw))
    system = system_doc(
        _provider(row.get("Provider")),
        required_event_id(row.get("EventID")),
        version=to_int(row.get("Version")),
        level=to_int(row.get("EventLevel")),
        task=to_int(row.get("Task")),
        opcode=to_int(row.get("Opcode")),
        keywords=keywords_text(row.get("Keywords")),
        time_created=time_text(row.get("TimeCreated") or row.get("TimeGenerated")),
        record_id=_record_id(row),
        activity_id=_correlation(row.get("Correlation")),
        process_id=to_int(row.get("SystemProcessId")),
        thread_id=to_int(row.get("SystemThreadId")),
        channel=str(row.get("Channel") or ""),
        computer=str(row.get("Computer") or ""),
        user_id=text_or_none(row.get("SystemUserId")),
    )
    if user_data is not None:
        return event_doc(system, None, user_data)
    return event_doc(system, dict(data) if isinstance(data, Mapping) else {})


def _security_event_row(row: Mapping[str, Any]) -> Doc:
    data, user_data, _ = _xml_parts(row.get("EventData"))
    if data is None and user_data is None:
        data = {
            key: value
            for key, value in row.items()
            if key not in _SECURITY_COLUMNS and value not in (None, "")
        }
    level = to_int(row.get("Level"))
    system = system_doc(
        _provider(row.get("EventSourceName") or "Microsoft-Windows-Security-Auditing"),
        required_event_id(row.get("EventID")),
        version=to_int(row.get("Version")),
        level=0 if level in _AUDIT else level,
        task=to_int(row.get("Task")),
        opcode=to_int(row.get("Opcode")),
        keywords=_AUDIT.get(level or -1) or keywords_text(row.get("Keywords")),
        time_created=time_text(row.get("TimeCreated") or row.get("TimeGenerated")),
        record_id=_record_id(row),
        process_id=to_int(row.get("SystemProcessId")),
        thread_id=to_int(row.get("SystemThreadId")),
        channel=str(row.get("Channel") or "Security"),
        computer=str(row.get("Computer") or ""),
        user_id=text_or_none(row.get("SystemUserId")),
    )
    return event_doc(system, data, user_data)


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Doc]] = {
    "Event": _event_row,
    "WindowsEvent": _windows_event_row,
    "SecurityEvent": _security_event_row,
}


def row_doc(table: str, row: Mapping[str, Any]) -> Doc | None:
    """The evtx document for a row (None for tables other than Event / WindowsEvent /
    SecurityEvent); ValueError when the row cannot be read as an event."""
    builder = _BUILDERS.get(table)
    if builder is None:
        return None
    try:
        return builder(row)
    except ET.ParseError as exc:
        raise ValueError(f"{table} row: invalid EventData XML ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{table} row: invalid EventData JSON ({exc})") from exc
    except RecursionError as exc:  # a cell of JSON nested past what the parser can take
        raise ValueError(f"{table} row: EventData JSON nested too deeply") from exc


def row_to_doc(table: str, row: Mapping[str, Any]) -> str | None:
    """The evtx JSON text for a Sentinel row of ``table``; None for other tables.

    Raises ValueError with the reason when a row of a supported table is unusable.
    """
    doc = row_doc(table, row)
    return None if doc is None else dumps(doc)


def row_table(row: Mapping[str, Any]) -> str | None:
    """Which of Event / WindowsEvent / SecurityEvent a row is, by ``Type`` or by its columns."""
    named = row.get("Type")
    if isinstance(named, str) and named:
        return named
    if "Activity" in row or "EventSourceName" in row:
        return "SecurityEvent"
    if "Provider" in row and "Channel" in row:
        return "WindowsEvent"
    if "EventData" in row and ("Source" in row or "EventLog" in row):
        return "Event"
    return None


def sentinel_row_doc(record: Any) -> Doc:
    """The evtx document for one row of a ``sentinel-rows`` file."""
    record = as_object(record)
    table = row_table(record)
    if table is None:
        raise ValueError(
            "not an Event / WindowsEvent / SecurityEvent row (columns unknown): expected a "
            "Type column, or EventData with Source / EventLog (Event), Provider + Channel "
            "(WindowsEvent), or EventSourceName / Activity (SecurityEvent)"
        )
    doc = row_doc(table, record)
    if doc is None:
        raise ValueError(f"a {table} row, not a Windows event table row")
    return doc


def read_sentinel_rows(path: Path) -> Iterator[Item]:
    """Read Sentinel Event / WindowsEvent / SecurityEvent rows (JSON, JSON lines, an array)."""
    return read_json_events(path, sentinel_row_doc)


_TYPE = re.compile(r'"Type"\s*:\s*"(?:Event|WindowsEvent|SecurityEvent)"')
_EXCLUDE = re.compile(
    r'"(?:tables|winlog|System|#attributes|SourceModuleType)"\s*:|"Event"\s*:\s*\{'
)


def _has(text: str, *keys: str) -> bool:
    return all(re.search(rf'"{key}"\s*:', text) for key in keys)


def sniff_sentinel_rows(path: Path, head: bytes) -> bool:
    """JSON rows with Event (EventData + Source/EventLog), WindowsEvent (Provider + Channel +
    EventData) or SecurityEvent (Activity / EventSourceName + EventID) columns, or a Type."""
    text = json_head(head)
    if not text or _EXCLUDE.search(text):
        return False
    return bool(
        _TYPE.search(text)
        or (_has(text, "EventData") and (_has(text, "Source") or _has(text, "EventLog")))
        or _has(text, "Provider", "Channel", "EventData")
        or (_has(text, "EventID") and (_has(text, "Activity") or _has(text, "EventSourceName")))
    )
