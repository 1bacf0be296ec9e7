"""evtx_dump / pyevtx-rs JSON output, plus the pieces every event reader shares.

Shared: the evtx JSON document builders (``system_doc``, ``event_doc``, ``dumps``), value
coercions, encoding detection, a line-based JSON streamer that reads JSON lines, pretty-printed
documents, arrays and ``evtx_dump -o json`` output (``Record <n>`` headers) with bounded memory,
and the batching loop that turns JSON records into ``EventBatch`` / ``Rejected`` items.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from trustwatch.errors import IngestError
from trustwatch.ingest.readers.guard import clean_text, fields_bound, fields_problem, json_problem
from trustwatch.ingest.records import (
    BATCH_SIZE,
    EXCERPT,
    EventBatch,
    Item,
    RefKind,
    Rejected,
    excerpt,
)
from trustwatch.limits import Limits, current, exceeded

EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
Doc = dict[str, Any]
Convert = Callable[[Any], Doc]  # one JSON record -> evtx doc; ValueError etc. if it is not one

_PORTAL_TIMES = ("%m/%d/%Y, %I:%M:%S.%f %p", "%m/%d/%Y, %I:%M:%S %p")  # Log Analytics CSV


def dumps(doc: Doc) -> str:
    """The document as the compact JSON text readers hand on."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def to_int(value: Any) -> int | None:
    """An int from an int, an integral float or a decimal / ``0x`` hex string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text[:2].lower() == "0x" else int(text)
        except ValueError:
            return None
    return None


def parse_time(value: Any) -> datetime | None:
    """A datetime from ISO-8601 text (7-9 fraction digits, ``Z``, `` UTC``) or epoch s/ms."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().removesuffix(" UTC").strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for layout in _PORTAL_TIMES:
        try:
            return datetime.strptime(text, layout)  # naive: the caller decides the zone
        except ValueError:
            continue
    return None


def iso_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` as evtx writes it; naive times are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_text(value: Any) -> str | None:
    """A SystemTime: normalised when it parses, the text as given when not, None when empty."""
    moment = parse_time(value)
    return iso_utc(moment) if moment is not None else text_or_none(value)


def keywords_text(value: Any) -> str | None:
    """Keywords as evtx writes them (``0x8020000000000000``); signed 64-bit ints are wrapped."""
    if value is None or value == "":
        return None
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        number = int(value)
    if number is not None:
        return f"0x{number & 0xFFFFFFFFFFFFFFFF:016x}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _attributes(**values: Any) -> dict[str, Any] | None:
    present = {key: value for key, value in values.items() if value is not None}
    return {"#attributes": present} if present else None


def system_doc(
    provider: str,
    event_id: int | Doc,
    *,
    guid: str | None = None,
    source_name: str | None = None,
    version: int | None = None,
    level: int | None = None,
    task: int | None = None,
    opcode: int | None = None,
    keywords: str | None = None,
    time_created: str | None = None,
    record_id: int | None = None,
    activity_id: str | None = None,
    related_activity_id: str | None = None,
    process_id: int | None = None,
    thread_id: int | None = None,
    channel: str = "",
    computer: str = "",
    user_id: str | None = None,
) -> Doc:
    """The ``System`` object in evtx's key order; absent values are null.

    ``source_name`` is a classic event source's EventSourceName; ``event_id`` is a document
    (``{"#attributes": {"Qualifiers": ...}, "#text": id}``) for classic events.
    """
    return {
        "Provider": _attributes(Name=provider, Guid=guid, EventSourceName=source_name),
        "EventID": event_id,
        "Version": version,
        "Level": level,
        "Task": task,
        "Opcode": opcode,
        "Keywords": keywords,
        "TimeCreated": _attributes(SystemTime=time_created),
        "EventRecordID": record_id,
        "Correlation": _attributes(ActivityID=activity_id, RelatedActivityID=related_activity_id),
        "Execution": _attributes(ProcessID=process_id, ThreadID=thread_id),
        "Channel": channel,
        "Computer": computer,
        "Security": _attributes(UserID=user_id),
    }


def event_doc(system: Doc, event_data: Any = None, user_data: Any = None) -> Doc:
    """``{"Event": {...}}`` with EventData, or UserData when the event carries that instead."""
    event: Doc = {"#attributes": {"xmlns": EVENT_NS}, "System": system}
    if user_data is not None:
        event["UserData"] = user_data
    if event_data is not None or user_data is None:
        event["EventData"] = event_data
    return {"Event": event}


def as_object(record: Any) -> Mapping[str, Any]:
    """The record if it is a JSON object; TypeError naming what it is otherwise."""
    if not isinstance(record, Mapping):
        raise TypeError(f"not a JSON object but {type(record).__name__}")
    return record


def text_or_none(value: Any) -> str | None:
    """The value as text; None for null and ""."""
    return None if value in (None, "") else str(value)


def required_event_id(value: Any) -> int:
    """The event id as an int, or ValueError naming what was there."""
    number = to_int(value)
    if number is None:
        raise ValueError(f"no usable EventID ({value!r})")
    return number


# -- files, encodings, lines -------------------------------------------------------------------


def detect_encoding(head: bytes) -> str:
    """The codec for a file starting with ``head``: by BOM, by NUL pattern, else UTF-8."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 2 and head[0] != 0 and head[1] == 0:
        return "utf-16-le"
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be"
    return "utf-8"


def head_text(head: bytes) -> str:
    """The decoded start of a file, for sniffing (undecodable bytes replaced)."""
    text = head.decode(detect_encoding(head), "replace")
    return text.removeprefix("\ufeff")


def json_head(head: bytes) -> str:
    """The decoded start of a file if it starts like JSON (``{`` / ``[``), else ""."""
    text = head_text(head).lstrip()
    return text if text[:1] in ("{", "[") else ""


def open_file(path: Path) -> IO[bytes]:
    """The file opened for binary reading, or IngestError saying why it cannot be."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot open ({exc.strerror or exc})") from exc


def stream_encoding(stream: IO[bytes]) -> str:
    """The codec of a buffered stream, from its first bytes (peeked, not consumed)."""
    peek = getattr(stream, "peek", None)
    head = peek(4)[:4] if callable(peek) else b""
    return detect_encoding(head if isinstance(head, bytes) else b"")


class LongLine(str):
    """The start of a line longer than the event-bytes limit; ``size`` is its whole length."""

    size: int = 0


_SKIP = 1 << 20  # characters read at a time while skipping the rest of a long line


def text_lines(
    stream: IO[bytes], encoding: str | None = None, cap: int | None = None
) -> Iterator[str]:
    """Decoded lines (without line ends); invalid bytes become U+FFFD instead of failing.

    A line longer than ``cap`` characters (default: the event-bytes limit) is never held: its
    start comes as a :class:`LongLine` and the rest is read past.
    """
    encoding = encoding or stream_encoding(stream)
    cap = cap or current().event_bytes
    reader = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
    try:
        while line := reader.readline(cap + 1):
            if len(line) <= cap or line.endswith("\n"):
                yield line.rstrip("\r\n")
                continue
            long = LongLine(line[:EXCERPT])
            long.size = len(line)
            while (more := reader.readline(_SKIP)) and not more.endswith("\n"):
                long.size += len(more)
            long.size += len(more)
            yield long
    finally:
        reader.detach()


# -- JSON values out of lines ------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_RECORD_HEADER = re.compile(r"Record \d+")


@dataclass(frozen=True, slots=True)
class JsonValue:
    """One decoded JSON value and the line it starts on."""

    line: int
    value: Any
    bound: int = 0  # ``:`` and ``,`` in its text, plus one: no record in it has more fields


@dataclass(frozen=True, slots=True)
class JsonError:
    """Text that is not valid JSON, the line it starts on, and why."""

    line: int
    reason: str
    raw: str


def _incomplete(exc: json.JSONDecodeError, text: str) -> bool:
    return exc.pos >= len(text.rstrip())


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


class _JsonLines:
    """Finds JSON values in lines: one per line, or spread over lines (pretty / arrays).

    A value spread over lines is collected up to the event-bytes limit; past it, only its start
    is kept (for the excerpt) while its lines are read past, and it is reported as too large.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.pending: list[str] = []
        self.size = 0  # characters in pending
        self.over = False  # pending passed the event-bytes limit: its lines are being skipped
        self.start = 0
        self.indent = 0
        self.in_array = False

    def feed(self, number: int, text: str) -> Iterator[JsonValue | JsonError]:
        if isinstance(text, LongLine):
            if self.pending:
                yield from self.finish(final=True)
            what = f"a line of {text.size:,} characters"
            reason = exceeded("event_bytes", self.limits.event_bytes, what)
            yield JsonError(number, reason, str(text))
            return
        stripped = text.strip()
        indent = _indent(text)
        if self.pending:
            starts_new = stripped[:1] in ("{", "[") or _RECORD_HEADER.fullmatch(stripped)
            if not (stripped and indent <= self.indent and starts_new):
                self.add(text)
                if stripped[:1] in ("}", "]") and indent <= self.indent:
                    yield from self.finish(final=False)
                return
            yield from self.finish(final=True)
        yield from self.fresh(number, stripped, indent)

    def add(self, text: str) -> None:
        self.size += len(text) + 1
        if self.over:
            return
        if self.size > self.limits.event_bytes:
            self.over = True
            self.pending = ["\n".join(self.pending)[:EXCERPT]]
            return
        self.pending.append(text)

    def fresh(self, number: int, stripped: str, indent: int) -> Iterator[JsonValue | JsonError]:
        if self.in_array:
            stripped = stripped.lstrip(",").strip()
            if stripped.startswith("]"):
                self.in_array = False
                stripped = stripped[1:].lstrip(",").strip()
        if not stripped or _RECORD_HEADER.fullmatch(stripped):
            return
        if stripped == "[":
            self.in_array = True
            return
        candidate = stripped[:-1] if self.in_array and stripped.endswith(",") else stripped
        problem = json_problem(candidate, self.limits)
        if problem:
            if "depth" in problem and _unfinished(candidate):
                # a deep value spread over lines: collected, then refused whole, not line by line
                self.pending, self.start, self.indent = [stripped], number, indent
                self.size = len(stripped)
                return
            yield JsonError(number, problem, stripped)
            return
        try:
            value = json.loads(candidate)
        except RecursionError:
            yield JsonError(number, "invalid JSON: nested too deeply", stripped)
            return
        except json.JSONDecodeError as exc:
            if stripped.startswith("[") and not self.in_array and _incomplete(exc, candidate):
                self.in_array = True
                yield from self.fresh(number, stripped[1:].strip(), indent + 1)
                return
            if stripped[:1] in ("{", "[") and _incomplete(exc, candidate):
                self.pending, self.start, self.indent = [stripped], number, indent
                self.size = len(stripped)
                return
            yield JsonError(number, f"invalid JSON: {exc.msg} (column {exc.colno})", stripped)
            return
        except ValueError as exc:  # e.g. an integer beyond Python's digit limit
            yield JsonError(number, f"invalid JSON: {exc}", stripped)
            return
        yield JsonValue(number, value, fields_bound(candidate, self.limits))

    def finish(self, final: bool) -> Iterator[JsonValue | JsonError]:
        if self.over:
            what = f"a value of {self.size:,} characters"
            reason = exceeded("event_bytes", self.limits.event_bytes, what)
            yield JsonError(self.start, reason, self.pending[0])
            self.pending, self.over, self.size = [], False, 0
            return
        joined = "\n".join(self.pending)
        problem = json_problem(joined, self.limits)
        if problem and (final or not _unfinished(joined)):
            self.pending, self.size = [], 0
            yield JsonError(self.start, problem, joined)
            return
        if problem:
            return
        try:
            value, end = _DECODER.raw_decode(joined)
        except (RecursionError, ValueError) as exc:
            if not isinstance(exc, json.JSONDecodeError):
                self.pending = []
                yield JsonError(self.start, f"invalid JSON: {exc or 'nested too deeply'}", joined)
                return
            if not final and _incomplete(exc, joined):
                return
            self.pending = []
            where = self.start + exc.lineno - 1
            reason = f"invalid JSON: {exc.msg} (line {where}, column {exc.colno})"
            if final and _incomplete(exc, joined):
                reason = "invalid JSON: the value ends before it is complete"
            yield JsonError(self.start, reason, joined)
            return
        self.pending, self.size = [], 0
        yield JsonValue(self.start, value, fields_bound(joined[:end], self.limits))
        rest = joined[end:].strip()
        if rest:
            yield from self.fresh(self.start, rest, self.indent)


def _unfinished(text: str) -> bool:
    """True if the brackets of ``text`` may not be closed yet (more opened than closed)."""
    return text.count("[") + text.count("{") > text.count("]") + text.count("}")


def iter_json(
    lines: Iterable[str], limits: Limits | None = None
) -> Iterator[JsonValue | JsonError]:
    """JSON values (or errors) from JSON lines, pretty documents, arrays or evtx_dump output."""
    state = _JsonLines(limits or current())
    for number, text in enumerate(lines, 1):
        yield from state.feed(number, text)
    if state.pending:
        yield from state.finish(final=True)


# -- records -> batches ------------------------------------------------------------------------


class Batcher:
    """Collects docs and hands out EventBatches of at most BATCH_SIZE."""

    def __init__(self, ref_kind: RefKind, position: Callable[[], int | None] | None = None):
        self.ref_kind: RefKind = ref_kind
        self.position = position
        self.batch = EventBatch(ref_kind)

    def add(self, ref: int, doc: Doc) -> EventBatch | None:
        """Add a doc; returns the full batch when this one filled it."""
        self.batch.refs.append(ref)
        self.batch.docs.append(clean_text(dumps(doc)))
        return self.flush() if len(self.batch.docs) >= BATCH_SIZE else None

    def flush(self) -> EventBatch | None:
        """The collected docs as a batch (None if there are none), and start a new one."""
        if not self.batch.docs:
            return None
        full, self.batch = self.batch, EventBatch(self.ref_kind)
        full.position = self.position() if self.position else None
        return full


def unwrap(value: Any) -> Iterator[Any]:
    """Records inside a JSON value: array items, Elasticsearch hits, ``{"_comment", "record"}``."""
    if isinstance(value, list):
        for item in value:
            yield from unwrap(item)
        return
    if isinstance(value, dict):
        hits = value.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            yield from unwrap(hits["hits"])
            return
        if isinstance(value.get("_source"), dict):
            yield value["_source"]
            return
        if "_comment" in value and len(value) == 2:
            other = next(v for k, v in value.items() if k != "_comment")
            if isinstance(other, dict | list):
                yield from unwrap(other)
                return
    yield value


CONVERT_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def convert_values(
    values: Iterable[JsonValue | JsonError],
    convert: Convert,
    batcher: Batcher,
    *,
    line_offset: int = 0,
    where: str = "",
    expand: Callable[[Any], Iterator[Any]] = unwrap,
) -> Iterator[Item]:
    """Convert each JSON record to a doc, batching docs and rejecting what does not convert.

    ``expand`` finds the records in one JSON value (:func:`unwrap`: array items, search hits).
    """
    prefix = f"{where}: " if where else ""
    limits = current()
    for item in values:
        ref = item.line + line_offset
        if isinstance(item, JsonError):
            yield Rejected(
                "line", ref, f"{prefix}line {item.line}: {item.reason}", excerpt(item.raw)
            )
            continue
        try:
            records = list(expand(item.value))
        except CONVERT_ERRORS as exc:
            raw = json.dumps(item.value, ensure_ascii=False, default=str)[: EXCERPT * 2]
            yield Rejected("line", ref, f"{prefix}line {item.line}: {exc}", excerpt(raw))
            continue
        for record in records:
            problem = None if item.bound <= limits.fields else fields_problem(record, limits)
            if problem:
                raw = json.dumps(record, ensure_ascii=False, default=str)[: EXCERPT * 2]
                yield Rejected("line", ref, f"{prefix}line {item.line}: {problem}", excerpt(raw))
                continue
            try:
                doc = convert(record)
            except CONVERT_ERRORS as exc:
                raw = json.dumps(record, ensure_ascii=False, default=str)
                reason = f"{prefix}line {item.line}: {exc}"
                yield Rejected("line", ref, reason, excerpt(raw))
                continue
            full = batcher.add(ref, doc)
            if full is not None:
                yield full


def read_json_events(path: Path, convert: Convert) -> Iterator[Item]:
    """Read a JSON / JSON-lines file of records, converting each with ``convert``."""
    with open_file(path) as stream:
        batcher = Batcher("line", stream.tell)
        try:
            yield from convert_values(iter_json(text_lines(stream)), convert, batcher)
        except OSError as exc:
            raise IngestError(f"{path}: read failed ({exc})") from exc
        last = batcher.flush()
        if last is not None:
            yield last


# -- the evtx JSON format itself ---------------------------------------------------------------


def _fold_attributes(node: Any) -> Any:
    """``evtx_dump --separate-json-attributes`` output (``X_attributes``) to ``#attributes``."""
    if not isinstance(node, dict):
        return node
    out: Doc = {}
    for key, value in node.items():
        name = key.removesuffix("_attributes")
        if name != key and isinstance(value, dict):
            text = node.get(name)
            out[name] = {
                "#attributes": value,
                **({"#text": text} if text not in (None, "") else {}),
            }
        elif f"{key}_attributes" not in node:
            out[key] = _fold_attributes(value)
    return out


def evtx_record_doc(record: Any) -> Doc:
    """An evtx JSON document from ``{"Event": ...}`` or a pyevtx-rs ``records_json()`` dict."""
    record = as_object(record)
    if "Event" not in record and "data" in record and "event_record_id" in record:
        data = record["data"]
        record = json.loads(data) if isinstance(data, str) else data
        if not isinstance(record, Mapping):
            raise TypeError("records_json 'data' is not a JSON object")
    event = record.get("Event")
    if not isinstance(event, dict) or not isinstance(event.get("System"), dict):
        raise TypeError('not an evtx event document (no "Event"/"System" object)')
    if any(key.endswith("_attributes") for key in event["System"]):
        event = _fold_attributes(event)
    event_id = event["System"].get("EventID")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    required_event_id(event_id)
    return {"Event": event}


def read_evtx_json(path: Path) -> Iterator[Item]:
    """evtx_dump ``-o jsonl`` / ``-o json``, pyevtx-rs records, a pretty doc or an array of docs."""
    return read_json_events(path, evtx_record_doc)


_EVTX_JSON_HEAD = re.compile(r'(?:Record \d+\s+)?\[?\s*\{\s*"(?:Event|event_record_id)"\s*:')


def sniff_evtx_json(path: Path, head: bytes) -> bool:
    """Starts with ``{"Event":`` (optionally in an array / after ``Record n``) or a records_json."""
    return _EVTX_JSON_HEAD.match(head_text(head).lstrip()) is not None
