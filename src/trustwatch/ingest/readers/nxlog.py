"""NXLog ``im_msvistalog`` + ``to_json()`` flat records, and OTRF Security-Datasets zips of them.

NXLog puts its own fields (``EventTime``, ``Hostname``, ``SourceName``, ``RecordNumber``,
``ProcessID``, ``EventType`` ...) and the event's EventData at the same level; its field names
are case-insensitive, so EventData ``ProcessId`` / ``EventType`` collide with NXLog's
``ProcessID`` / ``EventType``. Rules used here:

* A record is *NXLog-native* when it has ``SourceModuleType``, ``EventReceivedTime`` or
  ``SeverityValue``. Only then are ``ProcessID``/``ThreadID`` NXLog's (the execution ids) and
  ``EventType`` NXLog's when it holds one of its level names (INFO, AUDIT_SUCCESS ...) - unless
  ``ExecutionProcessID`` / ``ExecutionThreadID`` / ``EventTypeOrignal`` (OTRF's renames) hold
  NXLog's values, in which case the plain names are EventData. Other flat exports (OTRF 2023:
  ``TimeCreated``, ``Level``) keep them all as EventData.
* Sysmon values lost to a collision (``EventType``, ``ProcessId``), absent, or holding only
  NXLog's level name (``EventType: INFO``) are recovered from the rendered ``Message``
  ("EventType: SetValue") when it has them. Records whose Message NXLog could not render
  (``ERROR_EVT_UNRESOLVED``) have neither: the field maps then go by the event id.
* Provider: ``SourceName``; else ``ProviderName`` / ``Provider`` / ``EventSourceName``; else the
  provider of a known ``ProviderGuid`` (Sysmon, Security-Auditing, PowerShell); else the part of
  a ``<provider>/<log>`` Channel before the slash (``Microsoft-Windows-Sysmon/Operational``).
* TimeCreated: ``TimeCreated``; else ``EventTime`` when it has a UTC offset; else the local
  ``EventTime`` shifted by the collector's offset (``EventReceivedTime`` local minus
  ``@timestamp`` UTC, rounded to 15 minutes); else Sysmon's ``UtcTime``; else ``@timestamp``;
  else ``EventTime`` taken as UTC.
* Level: ``Level`` if present, else from NXLog's level name (INFO 4, AUDIT_* 0 ...).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from trustwatch.errors import IngestError
from trustwatch.ingest.readers.ecs import ecs_doc, is_winlogbeat6, level_number
from trustwatch.ingest.readers.evtxjson import (
    Batcher,
    Doc,
    as_object,
    convert_values,
    event_doc,
    evtx_record_doc,
    iso_utc,
    iter_json,
    json_head,
    keywords_text,
    open_file,
    parse_time,
    read_json_events,
    required_event_id,
    system_doc,
    text_lines,
    time_text,
    to_int,
    unwrap,
)
from trustwatch.ingest.readers.flat import flat_doc
from trustwatch.ingest.readers.loganalytics import schema_columns
from trustwatch.ingest.readers.sentinel import row_table, sentinel_row_doc
from trustwatch.ingest.records import Item, Rejected
from trustwatch.limits import Limits, current, exceeded

# NXLog / collector fields: never EventData (compared case-insensitively)
_META = frozenset(
    name.lower()
    for name in (
        *("EventTime", "EventReceivedTime", "Hostname", "Keywords", "SeverityValue", "Severity"),
        *("EventID", "SourceName", "ProviderGuid", "Version", "Task", "OpcodeValue", "Opcode"),
        *("RecordNumber", "EventRecordID", "ActivityID", "RelatedActivityID", "Channel"),
        *("ExecutionProcessID", "ExecutionThreadID", "UserID", "Message", "Category", "Level"),
        *("SourceModuleName", "SourceModuleType", "EventTypeOrignal", "EventTypeOriginal"),
        *("ERROR_EVT_UNRESOLVED", "TimeCreated"),
    )
)
_NATIVE_META = frozenset({"domain", "accountname", "accounttype"})
_SHIPPER = frozenset({"@timestamp", "@version", "host", "port", "tags", "type", "path"})
_RECOVERABLE = ("EventType", "ProcessId")
_NATIVE_MARKS = frozenset({"sourcemoduletype", "eventreceivedtime", "severityvalue"})
_NXLOG_TYPES = frozenset(
    {"CRITICAL", "ERROR", "WARNING", "INFO", "VERBOSE", "AUDIT_SUCCESS", "AUDIT_FAILURE"}
)


# providers whose records some NXLog exports carry without a SourceName, by ProviderGuid
_PROVIDER_GUIDS = {
    "5770385F-C22A-43E0-BF4C-06F5698FFBD9": "Microsoft-Windows-Sysmon",
    "54849625-5478-4994-A5BA-3E3B0328C30D": "Microsoft-Windows-Security-Auditing",
    "A0C1853B-5C40-4B15-8766-3CF1C58F985A": "Microsoft-Windows-PowerShell",
}
_PROVIDER_KEYS = ("SourceName", "ProviderName", "Provider", "EventSourceName")
NO_PROVIDER = (
    "no SourceName: an NXLog record names its provider in SourceName (or ProviderName, "
    "Provider, EventSourceName), or carries a ProviderGuid of Sysmon, Security-Auditing or "
    "PowerShell, or a Channel '<provider>/<log>'; this one has none of them"
)


def _lookup(record: Mapping[str, Any]) -> dict[str, str]:
    return {key.lower(): key for key in record}


def _get(record: Mapping[str, Any], keys: dict[str, str], name: str) -> Any:
    key = keys.get(name.lower())
    return None if key is None else record[key]


def _message_field(message: Any, name: str) -> str | None:
    if not isinstance(message, str):
        return None
    found = re.search(rf"(?m)^{name}: ?(.*?)\r?$", message)
    return found[1] if found else None


def _provider(record: Mapping[str, Any], keys: dict[str, str]) -> tuple[str, str | None]:
    """The record's provider and the key it was read from (None: from ProviderGuid / Channel).

    Raises:
        ValueError: nothing names the provider (the message says what was expected).
    """
    for name in _PROVIDER_KEYS:
        value = _get(record, keys, name)
        if isinstance(value, str) and value.strip():
            return value, keys[name.lower()]
    guid = _get(record, keys, "ProviderGuid")
    known = _PROVIDER_GUIDS.get(str(guid or "").strip("{} ").upper())
    if known:
        return known, None
    channel = _get(record, keys, "Channel")
    if isinstance(channel, str) and "/" in channel and channel.split("/", 1)[0].strip():
        return channel.split("/", 1)[0].strip(), None
    raise ValueError(NO_PROVIDER)


def _local_offset(received: Any, stamp: Any) -> timedelta | None:
    local, utc = parse_time(received), parse_time(stamp)
    if local is None or utc is None or local.tzinfo is not None or utc.tzinfo is None:
        return None
    delta = (local - utc.replace(tzinfo=None)).total_seconds()
    quarters = round(delta / 900) * 900
    if abs(delta - quarters) > 300 or abs(quarters) > 14 * 3600:
        return None
    return timedelta(seconds=quarters)


def _time_created(record: Mapping[str, Any], keys: dict[str, str]) -> str | None:
    created = parse_time(_get(record, keys, "TimeCreated"))
    if created is not None:
        return iso_utc(created)
    local = parse_time(_get(record, keys, "EventTime"))
    if local is not None and local.tzinfo is not None:
        return iso_utc(local)
    stamp = record.get("@timestamp")
    offset = _local_offset(_get(record, keys, "EventReceivedTime"), stamp)
    if local is not None and offset is not None:
        return iso_utc(local - offset)
    for moment in (parse_time(_get(record, keys, "UtcTime")), parse_time(stamp), local):
        if isinstance(moment, datetime):
            return iso_utc(moment)
    return time_text(_get(record, keys, "EventTime"))


def nxlog_doc(record: Any) -> Doc:
    """The evtx JSON document for one NXLog-style flat record."""
    record = as_object(record)
    keys = _lookup(record)
    native = not _NATIVE_MARKS.isdisjoint(keys)
    renamed_type = "eventtypeorignal" in keys or "eventtypeoriginal" in keys
    event_type = _get(record, keys, "EventType")
    collides = {
        "processid": native and "executionprocessid" not in keys,
        "threadid": native and "executionthreadid" not in keys,
        "eventtype": native and not renamed_type and str(event_type).upper() in _NXLOG_TYPES,
    }
    provider, provider_key = _provider(record, keys)
    level_name = _get(record, keys, "EventTypeOrignal") or _get(record, keys, "EventTypeOriginal")
    if level_name is None and collides["eventtype"]:
        level_name = event_type
    level = to_int(_get(record, keys, "Level"))
    pid_key = "ExecutionProcessID" if "executionprocessid" in keys or not native else "ProcessID"
    tid_key = "ExecutionThreadID" if "executionthreadid" in keys or not native else "ThreadID"
    system = system_doc(
        str(provider),
        required_event_id(_get(record, keys, "EventID")),
        guid=_get(record, keys, "ProviderGuid"),
        version=to_int(_get(record, keys, "Version")),
        level=level if level is not None else level_number(level_name),
        task=to_int(_get(record, keys, "Task")),
        opcode=to_int(_get(record, keys, "OpcodeValue")),
        keywords=keywords_text(_get(record, keys, "Keywords")),
        time_created=_time_created(record, keys),
        record_id=to_int(_get(record, keys, "RecordNumber") or _get(record, keys, "EventRecordID")),
        activity_id=_get(record, keys, "ActivityID"),
        related_activity_id=_get(record, keys, "RelatedActivityID"),
        process_id=to_int(_get(record, keys, pid_key)),
        thread_id=to_int(_get(record, keys, tid_key)),
        channel=str(_get(record, keys, "Channel") or ""),
        computer=str(_get(record, keys, "Hostname") or ""),
        user_id=_get(record, keys, "UserID"),
    )
    data: Doc = {}
    for key, value in record.items():
        low = key.lower()
        if low in _META or key in _SHIPPER or collides.get(low, False) or key == provider_key:
            continue
        if native and low in _NATIVE_META:
            continue
        data[key] = value
    message = _get(record, keys, "Message")
    for name in _RECOVERABLE:
        present = data.get(name)
        if present is None or (name == "EventType" and str(present).upper() in _NXLOG_TYPES):
            recovered = _message_field(message, name)
            if recovered is not None:
                data[name] = recovered
    return event_doc(system, data)


# NXLog's own fields: a record with any of them is read as NXLog's
_NXLOG_MARKS = frozenset({*_NATIVE_MARKS, "sourcename", "hostname"})
_FLAT_EVENT = frozenset({"provider", "event_id", "fields"})
UNKNOWN_RECORD = (
    "not a Windows event record trustwatch knows: expected an evtx JSON document (Event / "
    "System), ECS fields (winlog.*) or Winlogbeat 6's (event_data, source_name), NXLog "
    "fields (SourceName or Channel, EventID, Hostname), a Sentinel / Log Analytics Event, "
    "WindowsEvent or SecurityEvent row (Type, or Source / EventLog / Provider + Channel + "
    "EventData, or EventSourceName + EventID), or a flat-events record (provider, event_id, "
    "fields)"
)


def record_doc(record: Any) -> Doc:
    """Any flat JSON Windows event: evtx (``Event``), ECS (``winlog``), NXLog style, a Sentinel /
    Log Analytics ``Event`` / ``WindowsEvent`` / ``SecurityEvent`` row, or a flat-events record.

    Raises:
        ValueError / TypeError: the record is none of them; the message says what was expected.
    """
    if isinstance(record, Mapping) and isinstance(record.get("Event"), Mapping):
        return evtx_record_doc(record)
    if isinstance(record, Mapping) and (
        "winlog" in record or "winlog.event_id" in record or is_winlogbeat6(record)
    ):
        return ecs_doc(record)
    record = as_object(record)
    keys = _lookup(record)
    if not _NXLOG_MARKS.isdisjoint(keys):
        return nxlog_doc(record)
    if row_table(record) is not None:
        return sentinel_row_doc(record)
    if set(record) >= _FLAT_EVENT:
        return flat_doc(record)
    if "eventid" in keys:
        return nxlog_doc(record)  # names what it expected when the provider is missing
    raise ValueError(UNKNOWN_RECORD)


def zip_records(value: Any) -> Iterator[Any]:
    """The records in one JSON value of a zip member: those :func:`unwrap` finds, and the rows
    of a Log Analytics query API response (``tables`` of ``columns`` / ``rows``), each with its
    table's name as ``Type`` unless the table is the unnamed ``PrimaryResult``."""
    tables = value.get("tables") if isinstance(value, Mapping) else None
    if not isinstance(tables, list):
        yield from unwrap(value)
        return
    for table in tables:
        if not isinstance(table, Mapping):
            raise TypeError("a Log Analytics 'tables' entry is not an object")
        columns = schema_columns(table.get("columns"))
        rows = table.get("rows")
        if columns is None or not isinstance(rows, list):
            raise TypeError("a Log Analytics table without 'columns' (names) and 'rows'")
        name = table.get("name")
        for row in rows:
            if not isinstance(row, list) or len(row) != len(columns):
                raise TypeError(f"a Log Analytics row is not a list of {len(columns)} values")
            out = dict(zip(columns, row, strict=True))
            if isinstance(name, str) and name and name != "PrimaryResult":
                out.setdefault("Type", name)
            yield out


def read_nxlog(path: Path) -> Iterator[Item]:
    """Read NXLog JSON lines (or an array / one object) of flat Windows event records."""
    return read_json_events(path, nxlog_doc)


_JSON_MEMBER = (".json", ".jsonl", ".ndjson", ".log", ".txt")


class _ZipLimit(Exception):  # noqa: N818 - internal signal, always caught in read_otrf_zip
    """A member broke an archive limit; the text is the reason."""


class _Guarded(io.RawIOBase):
    """A zip member's decompressed bytes, counted as they stream: past zip-member-bytes, or
    past zip-ratio times the compressed bytes consumed so far, reading stops (_ZipLimit).

    The sizes in the zip's headers are never trusted: both are measured while reading.
    """

    def __init__(self, member: IO[bytes], raw: IO[bytes], limits: Limits) -> None:
        self.member, self.raw, self.limits = member, raw, limits
        self.start = raw.tell()  # where the member's compressed data begins
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.member.read(min(len(buffer), 1 << 16))
        self.total += len(data)
        if self.total > self.limits.zip_member_bytes:
            what = f"decompressed size past {self.limits.zip_member_bytes:,} bytes"
            raise _ZipLimit(exceeded("zip_member_bytes", self.limits.zip_member_bytes, what))
        packed = max(self.raw.tell() - self.start, 1)
        if self.total > _RATIO_FLOOR and self.total > self.limits.zip_ratio * packed:
            what = f"{self.total:,} bytes from {packed:,} compressed (ratio)"
            raise _ZipLimit(exceeded("zip_ratio", self.limits.zip_ratio, what))
        buffer[: len(data)] = data
        return len(data)


_LIST_FACTOR = 10  # an archive declaring this many times zip-members is not even listed
_RATIO_FLOOR = 1 << 20  # decompressed bytes before the ratio is judged (headers skew small ones)


def _declared_members(raw: IO[bytes]) -> int:
    """The member count the end-of-central-directory record declares (0 if it is not found).

    Read before ``zipfile`` builds its list of members, so a central directory of millions of
    entries is refused instead of loaded.
    """
    size = raw.seek(0, io.SEEK_END)
    tail_size = min(size, 22 + 65535)
    raw.seek(size - tail_size)
    tail = raw.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return 0
    count, cd_size = struct.unpack_from("<HI", tail, at + 10)
    if count == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator = tail.rfind(b"PK\x06\x07", 0, at)
        if locator >= 0 and locator + 20 <= len(tail):
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            raw.seek(offset)
            record = raw.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) >= 56:
                count, cd_size = struct.unpack_from("<Q8xQ", record, 24)
    # each entry takes at least 46 bytes: a directory larger than the count allows says more
    return int(max(count, cd_size // 46))


def read_otrf_zip(path: Path) -> Iterator[Item]:
    """Read every JSON-lines member of a zip; refs are line numbers counted across members.

    Members are streamed, never extracted; their names are labels only. Each member is held to
    zip-member-bytes and zip-ratio, the archive to zip-members (``trustwatch.limits``): a
    member past one is one Rejected naming it and the limit, and the other members go on.
    """
    limits = current()
    with open_file(path) as raw:
        declared = _declared_members(raw)
        raw.seek(0)
        if declared > _LIST_FACTOR * limits.zip_members:  # its member list alone is too big
            what = f"an archive of about {declared:,} members (by its central directory)"
            reason = exceeded("zip_members", limits.zip_members, what) + "; not read"
            yield Rejected("line", 0, reason, count=0)
            return
        try:
            archive = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, OSError, ValueError, struct.error) as exc:
            raise IngestError(f"{path}: not a readable zip file ({exc})") from exc
        batcher = Batcher("line", raw.tell)
        lines_before = 0
        members = 0
        with archive:
            infos = archive.infolist()
            for position, info in enumerate(infos):
                if info.is_dir() or info.filename.startswith("__MACOSX/"):
                    continue
                name = info.filename[:200]
                members += 1
                if members > limits.zip_members:
                    rest = len(infos) - position
                    what = f"an archive of {len(infos):,} entries"
                    reason = exceeded("zip_members", limits.zip_members, what)
                    yield Rejected(
                        "line",
                        lines_before,
                        f"{name}: {reason}; it and {rest - 1} more not read",
                        count=0,
                    )
                    break
                if not info.filename.lower().endswith(_JSON_MEMBER) and not _json_start(
                    archive, info
                ):
                    reason = f"{name}: not a JSON member (by its name and first bytes); skipped"
                    yield Rejected("line", lines_before, reason)
                    continue
                counted = [0]
                try:
                    with archive.open(info) as member:
                        guarded = io.BufferedReader(_Guarded(member, raw, limits))
                        lines = _counting(text_lines(guarded), counted)
                        values = iter_json(lines, limits)
                        yield from convert_values(
                            values,
                            record_doc,
                            batcher,
                            line_offset=lines_before,
                            where=name,
                            expand=zip_records,
                        )
                except _ZipLimit as exc:
                    reason = (
                        f"{name}: {exc}; the rest of the member after line {counted[0]} is not read"
                    )
                    yield Rejected("line", lines_before + counted[0] + 1, reason)
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    OSError,
                    EOFError,
                    NotImplementedError,
                    RuntimeError,
                ) as exc:
                    reason = f"{name}: unreadable after line {counted[0]} ({exc})"
                    yield Rejected("line", lines_before + counted[0] + 1, reason)
                lines_before += counted[0]
        last = batcher.flush()
        if last is not None:
            yield last


def _json_start(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Whether a member named otherwise (no extension, ``.dat``) starts as JSON does: its first
    character, past a byte-order mark and blanks, opens an object or an array."""
    try:
        with archive.open(info) as member:
            head = member.read(_PEEK)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError):
        return False  # unreadable: reported as not JSON, the other members go on
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if head.startswith(bom):
            head = head[len(bom) :].decode(codec, "ignore").encode()
            break
    return head.lstrip()[:1] in (b"{", b"[")


_PEEK = 256  # bytes of a member read to tell JSON


def _counting(lines: Iterator[str], counted: list[int]) -> Iterator[str]:
    for line in lines:
        counted[0] += 1
        yield line


_FLAT_KEY = re.compile(r'"(SourceName|EventID|Hostname|Channel|ProviderGuid)"\s*:')


def sniff_nxlog(path: Path, head: bytes) -> bool:
    """Flat JSON with NXLog's ``SourceModuleType`` / ``EventReceivedTime``, or with
    ``EventID``, ``Hostname`` and ``Channel`` side by side at the top with ``SourceName`` (or,
    in exports without a source name, ``ProviderGuid``)."""
    text = json_head(head)
    if not text or re.search(r'"(?:winlog|Event|System)"\s*:', text):
        return False
    if re.search(r'"(?:SourceModuleType|EventReceivedTime)"\s*:', text):
        return True
    found = set(_FLAT_KEY.findall(text))
    return {"EventID", "Hostname", "Channel"} <= found and bool(
        {"SourceName", "ProviderGuid"} & found
    )


_ZIP_LISTED = 1000  # member names a sniff looks at, past a first entry that is not JSON
_ZIP_PEEKED = 8  # members whose first bytes it reads when no name is a JSON one


def sniff_otrf_zip(path: Path, head: bytes) -> bool:
    """A zip whose first member is a JSON / JSON-lines file, or whose first entry is a folder
    (or macOS metadata, or a note) and one of its first members is: by its name, else by its
    first bytes."""
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return False
    name_length = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + name_length].decode("utf-8", "replace").lower()
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return True
    try:
        with path.open("rb") as raw:
            if _declared_members(raw) > _LIST_FACTOR * current().zip_members:
                return False
            raw.seek(0)
            with zipfile.ZipFile(raw) as archive:
                infos = [
                    info
                    for info in archive.infolist()[:_ZIP_LISTED]
                    if not info.is_dir() and not info.filename.lower().startswith("__macosx/")
                ]
                if any(i.filename.lower().endswith((".json", ".jsonl", ".ndjson")) for i in infos):
                    return True
                return any(_json_start(archive, info) for info in infos[:_ZIP_PEEKED])
    except (zipfile.BadZipFile, OSError, ValueError, struct.error):
        return False
