"""Defender XDR streaming-API records (Event Hub messages, ``PT1H.json`` blobs), and the pieces
every tabular reader shares: a bounded-memory JSON walker, table inference from column names,
and row routing into per-table batches (Graph / AH API results and portal exports: tabular.py).
Values stay as JSON gave them (ints stay ints, whatever their size; nulls are None).

Refs: ``line`` (1-based) for JSON lines, ``record`` (1-based, in file order) for records of a
JSON document. Ref 0 means the file as a whole.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trustwatch.errors import IngestError
from trustwatch.ingest.readers.guard import (
    fields_bound,
    fields_problem,
    json_depth_problem,
    json_problem,
)
from trustwatch.ingest.records import (
    BATCH_SIZE,
    EXCERPT,
    EventBatch,
    Item,
    RefKind,
    Rejected,
    RowBatch,
    excerpt,
)
from trustwatch.limits import current, exceeded
from trustwatch.schema.model import builtin_schemas

CHUNK = 1 << 20  # bytes read at a time
SAMPLE = 1000  # rows looked at to infer a table
PREFIX = "AdvancedHunting-"

Convert = Callable[[str, dict[str, Any]], str | None]

# ActionType values that name one table (mde_schema_notes.md); decide between tables that
# share all the columns of a result (DeviceEvents has the registry/file columns too).
_ACTIONS = {
    "DeviceRegistryEvents": "RegistryKeyCreated RegistryKeyDeleted RegistryKeyRenamed "
    "RegistryValueSet RegistryValueDeleted",
    "DeviceProcessEvents": "ProcessCreated",
    "DeviceFileEvents": "FileCreated FileModified FileRenamed FileDeleted",
    "DeviceNetworkEvents": "ConnectionSuccess ConnectionFailed ConnectionAttempt ConnectionRequest "
    "ConnectionAcknowledged InboundConnectionAccepted ListeningConnectionCreated",
    "DeviceLogonEvents": "LogonSuccess LogonFailed LogonAttempted",
    "DeviceImageLoadEvents": "ImageLoaded",
    "DeviceEvents": "PowerShellCommand DnsQueryResponse ScriptContent AntivirusDetection "
    "ProcessCreatedUsingWmiQuery CreateRemoteThreadApiCall OpenProcessApiCall NamedPipeEvent "
    "ScheduledTaskCreated ServiceInstalled UserAccountCreated",
}
ACTION_TABLES = {action: table for table, names in _ACTIONS.items() for action in names.split()}
# tables that carry the columns of many others: a result fitting one of them and exactly one
# other table is taken to be that other table
GENERIC = frozenset({"DeviceEvents", "AlertEvidence", "BehaviorEntities"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r'["\[\]{},]')
_STR_END = re.compile(r'["\\]')
_WS = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()


def open_input(path: Path) -> BinaryIO:
    """Open an input file for reading bytes, or raise IngestError."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def dumps(value: object) -> str:
    """A record as compact JSON, for excerpts."""
    return json.dumps(value, ensure_ascii=False, default=str)[:EXCERPT]


class JsonError(ValueError):
    """A JSON value or structure that cannot be read; ``raw`` is the start of it."""

    def __init__(self, reason: str, raw: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class JsonReader:
    """Walks JSON text from a binary file, holding at most one value (plus a chunk) in memory.

    ``members``/``elements`` walk an object/array; the caller reads each member or element with
    ``value`` (decoded whole) or walks into it. A bad value raises JsonError after the reader has
    moved past it; a bad structure raises JsonError and the document cannot be read further.
    A value past the event-bytes or depth limit is a bad value (never decoded whole, never
    decoded deeper than the limit).
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.limits = current()
        self.max_value = self.limits.event_bytes
        self.bound = 0  # ``:`` and ``,`` in the last value's text, plus one
        self._fh = fh
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.position = 0  # bytes read from the file

    def _fill(self, size: int = 0) -> bool:
        if self.eof:
            return False
        data = self._fh.read(max(size, CHUNK))
        self.position += len(data)
        if not data:
            self.eof = True
            self.buf += self._utf8.decode(b"", final=True)
            return False
        self.buf += self._utf8.decode(data)
        return True

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        if self.pos > CHUNK:
            self.buf, self.pos = self.buf[self.pos :], 0
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            self.buf, self.pos = "", 0
            if not self._fill():
                return ""

    def take(self, char: str) -> bool:
        """Consume ``char`` if it comes next."""
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self.take(char):
            if not self.peek():
                raise JsonError("the file ends inside the JSON document (cut short?)")
            raise JsonError(
                f"expected '{char}' near byte {self.position}", self.buf[self.pos : self.pos + 80]
            )

    def elements(self) -> Iterator[int]:
        """Walk an array: yields 1, 2, ... before each element, which the caller consumes."""
        self._expect("[")
        if self.take("]"):
            return
        count = 0
        while True:
            count += 1
            yield count
            if self.take(","):
                continue
            self._expect("]")
            return

    def members(self) -> Iterator[str]:
        """Walk an object: yields each key; the caller consumes its value."""
        self._expect("{")
        if self.take("}"):
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise JsonError(f"object key is not a string near byte {self.position}")
            self._expect(":")
            yield key
            if self.take(","):
                continue
            self._expect("}")
            return

    def value(self) -> Any:
        """Decode the next value whole (ints exact); past it, or JsonError if it is bad."""
        if not self.peek():
            raise JsonError("unexpected end of file")
        start = self.pos
        try:
            val, end = _DECODER.raw_decode(self.buf, start)
            if end < len(self.buf) or self.eof:
                return self._checked(val, start, end)
        except (json.JSONDecodeError, RecursionError):
            pass
        head = self.buf[start : start + EXCERPT]
        stop, whole = self._extent()
        if not whole:
            self.pos = stop
            what = "a JSON value larger than the limit"
            raise JsonError(exceeded("event_bytes", self.max_value, what), head)
        problem = json_problem(self.buf, self.limits, start, stop)
        if problem:
            self.pos = max(stop, start + 1)
            raise JsonError(problem, head)
        try:
            val, end = _DECODER.raw_decode(self.buf, start)
        except (ValueError, RecursionError) as exc:
            self.pos = max(stop, start + 1)
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise JsonError(f"invalid JSON: {msg}", head) from exc
        return self._checked(val, start, end)

    def _checked(self, val: Any, start: int, end: int) -> Any:
        """A decoded value, past it; JsonError if its text breaks the event-bytes or depth limit."""
        self.pos = end
        problem = json_problem(self.buf, self.limits, start, end)
        if problem:
            raise JsonError(problem, self.buf[start : start + EXCERPT])
        self.bound = (end - start) // 2 + 1
        if self.bound > self.limits.fields:
            self.bound = self.buf.count(":", start, end) + self.buf.count(",", start, end) + 1
        return val

    def skip(self) -> None:
        """Move past the next value without decoding it."""
        if self.peek():
            self.pos = self._extent()[0]

    def _extent(self) -> tuple[int, bool]:
        """Where the value at ``pos`` ends (strings and brackets balanced), reading on as
        needed; False if it was longer than the event-bytes limit and its start was dropped."""
        i, depth, in_str, whole = self.pos, 0, False, True
        while True:
            if in_str:
                m = _STR_END.search(self.buf, i)
                if m is not None and m.group() == '"':
                    in_str, i = False, m.end()
                    if depth == 0:
                        return i, whole
                    continue
                if m is not None and m.end() < len(self.buf):
                    i = m.end() + 1
                    continue
                i = len(self.buf) if m is None else m.start()
            else:
                m = _TOKEN.search(self.buf, i)
                if m is not None:
                    char, i = m.group(), m.end()
                    if char == '"':
                        in_str = True
                    elif char in "[{":
                        depth += 1
                    elif depth == 0:
                        return m.start(), whole
                    elif char != ",":
                        depth -= 1
                        if depth == 0:
                            return i, whole
                    continue
                i = len(self.buf)
            if i - self.pos > self.max_value:
                self.buf, self.pos, i, whole = self.buf[i:], 0, 0, False
            if not self._fill(len(self.buf) - self.pos):
                return len(self.buf), whole


def infer_table(columns: list[str], action_types: list[object]) -> tuple[str | None, str]:
    """The table whose schema has every column (ActionType values break ties), or None and why.

    When no ActionType value decides and exactly one of the fitting tables is not GENERIC
    (DeviceEvents is the catch-all; AlertEvidence/BehaviorEntities hold any entity), it is taken.
    """
    schemas = builtin_schemas()
    wanted = set(columns)
    fits = sorted(n for n, s in schemas.items() if wanted <= {c.name for c in s.columns})
    if len(fits) == 1:
        return fits[0], ""
    if not fits:
        unknown = sorted(c for c in wanted if not any(s.column(c) for s in schemas.values()))
        detail = f" (in no table: {', '.join(unknown[:8])})" if unknown else ""
        return None, f"no known table has all of the columns{detail}"
    known = {ACTION_TABLES[a] for a in action_types if isinstance(a, str) and a in ACTION_TABLES}
    if len(known) == 1 and (only := next(iter(known))) in fits:
        return only, ""
    specific = [n for n in fits if n not in GENERIC]
    if not known and len(specific) == 1:
        return specific[0], ""
    shown = ", ".join(fits[:8]) + (", ..." if len(fits) > 8 else "")
    return None, f"the columns fit {len(fits)} tables ({shown})"


def _type_column(row: dict[str, Any]) -> str | None:
    value = row.get("Type")
    return value if isinstance(value, str) and _IDENT.fullmatch(value) else None


class RowRouter:
    """Puts rows into per-table batches of at most BATCH_SIZE rows in all.

    A row's table is the forced one (``--input-table``), else its ``Type`` column (Log
    Analytics), else the table inferred from the columns and the first SAMPLE rows. ``convert``
    may turn a row into a Windows event document (then it travels in an EventBatch).
    """

    def __init__(
        self,
        ref_kind: RefKind,
        table: str | None = None,
        columns: list[str] | None = None,
        convert: Convert | None = None,
    ) -> None:
        self.ref_kind: RefKind = ref_kind
        self.forced = table
        self.columns = columns
        self.convert = convert
        self.inferred: str | None = None
        self.failed: str | None = None
        self.skipped = 0
        self.sample: list[tuple[int, dict[str, Any]]] = []
        self.batches: dict[str, RowBatch] = {}
        self.events = EventBatch(ref_kind)
        self.pending = 0
        self.position: int | None = None

    def add(
        self, ref: int, row: dict[str, Any], position: int | None = None, table: str | None = None
    ) -> Iterator[Item]:
        """Route one row (``table`` given: it goes there)."""
        self.position = position
        table = table or self.forced or _type_column(row) or self.inferred
        if table is not None:
            yield from self._put(table, ref, row)
        elif self.failed is not None:
            self.skipped += 1
        else:
            self.sample.append((ref, row))
            if len(self.sample) >= SAMPLE:
                yield from self._decide()

    def _decide(self) -> Iterator[Item]:
        sample, self.sample = self.sample, []
        columns = self.columns
        if columns is None:
            columns = list(dict.fromkeys(key for _, row in sample for key in row))
        table, why = infer_table(columns, [row.get("ActionType") for _, row in sample])
        if table is None:
            self.failed = why
            self.skipped += len(sample)
            return
        self.inferred = table
        for ref, row in sample:
            yield from self._put(table, ref, row)

    def _put(self, table: str, ref: int, row: dict[str, Any]) -> Iterator[Item]:
        doc = None
        if self.convert is not None:
            try:
                doc = self.convert(table, row)
            except Exception as exc:  # ValueError: an unusable row; others: never stop the file
                reason = f"{table} row not turned into a Windows event: {exc}"
                yield Rejected(self.ref_kind, ref, reason, dumps(row))
                return
        if doc is not None:
            self.events.refs.append(ref)
            self.events.docs.append(doc)
        else:
            batch = self.batches.get(table)
            if batch is None:
                batch = self.batches[table] = RowBatch(table, self.ref_kind)
            batch.refs.append(ref)
            batch.rows.append(row)
        self.pending += 1
        if self.pending >= BATCH_SIZE:
            yield from self.flush()

    def flush(self) -> Iterator[Item]:
        """Yield what is pending."""
        for batch in self.batches.values():
            batch.position = self.position
            yield batch
        if self.events.refs:
            self.events.position = self.position
            yield self.events
        self.batches, self.events, self.pending = {}, EventBatch(self.ref_kind), 0

    def close(self, position: int | None = None) -> Iterator[Item]:
        """Decide on the sample, yield the rest, and report rows whose table is unknown."""
        self.position = position if position is not None else self.position
        if self.sample:
            yield from self._decide()
        yield from self.flush()
        if self.failed is not None:
            reason = (
                f"{self.skipped} row(s) not loaded: the file does not name its table and "
                f"{self.failed}; name it with --input-table"
            )
            columns = ", ".join(self.columns or [])[:EXCERPT]
            yield Rejected(self.ref_kind, 0, reason, columns, count=self.skipped)


def first_line_object(fh: BinaryIO) -> bool:
    """True if the file's first non-blank line is a whole JSON object (JSON lines)."""
    start = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    fh.seek(0)
    if not start.startswith(b"{"):
        return False
    limits = current()
    line = b""
    while not line.strip():
        line = fh.readline(limits.event_bytes)
        if not line:
            break
    fh.seek(0)
    text = line.decode("utf-8-sig", "replace")
    if json_depth_problem(text, limits):
        return True  # a deep first line: read as JSON lines, where it is one bad line
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def json_lines(fh: BinaryIO) -> Iterator[tuple[int, int, Any]]:
    """(line number, bytes read, value) per non-blank line; value is a JsonError if bad (a line
    past the event-bytes or depth limit, or past the fields limit when it is one object)."""
    limits = current()
    cap = limits.event_bytes
    position = 0
    number = 0
    while True:
        raw = fh.readline(cap + 1)
        if not raw:
            return
        number += 1
        position += len(raw)
        if len(raw) > cap and not raw.endswith(b"\n"):
            size = len(raw)
            while (more := fh.readline(CHUNK)) and not more.endswith(b"\n"):
                size += len(more)
            size += len(more)
            position += size - len(raw)
            reason = exceeded("event_bytes", cap, f"a line of {size:,} bytes")
            yield number, position, JsonError(reason, excerpt(raw[:EXCERPT]))
            continue
        if not raw.strip():
            continue
        text = raw.decode("utf-8-sig", "replace")
        problem = json_problem(text, limits)
        if problem:
            yield number, position, JsonError(problem, excerpt(raw[:EXCERPT]))
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too large an int ...
            yield number, position, JsonError(f"invalid JSON: {exc}", excerpt(raw[:EXCERPT]))
            continue
        problem = (
            fields_problem(value, limits, fields_bound(text, limits))
            if isinstance(value, dict)
            else None
        )
        if problem:
            yield number, position, JsonError(problem, excerpt(raw[:EXCERPT]))
            continue
        yield number, position, value


def _stream_record(value: object, forced: str | None) -> tuple[str, dict[str, Any]] | str:
    """A streaming-API record's table and row, or why it is not one."""
    if not isinstance(value, dict):
        return "not a JSON object"
    props = value.get("properties")
    if not isinstance(props, dict):
        return "no 'properties' object: not a Defender streaming-API record"
    category = value.get("category")
    if isinstance(category, str) and category.startswith(PREFIX) and len(category) > len(PREFIX):
        table = category[len(PREFIX) :]
    elif category is None and forced:
        table = forced
    else:
        return f"category {category!r} is not 'AdvancedHunting-<Table>'"
    row = dict(props)
    schema = builtin_schemas().get(table)
    # envelope fields that the Sentinel copy of the table has as columns
    for column, keys in (("TenantId", ("tenantId", "Tenant")), ("TimeGenerated", ("time",))):
        if row.get(column) is None and (schema is None or schema.column(column) is not None):
            found = next((value[k] for k in keys if value.get(k) is not None), None)
            if found is not None:
                row[column] = found
    return table, row


def _messages(value: object) -> list[object]:
    if isinstance(value, dict) and isinstance(value.get("records"), list):
        return list(value["records"])
    return [value]


def read_defender_stream(path: Path, table: str | None = None) -> Iterator[Item]:
    """Event Hub messages (one, a JSON array, or JSON lines) or a PT1H.json blob (JSON lines).

    The table is the record's category; ``table`` is used only for records without one.
    """
    with open_input(path) as fh:
        if first_line_object(fh):
            router = RowRouter("line")
            for number, position, value in json_lines(fh):
                if isinstance(value, JsonError):
                    yield Rejected("line", number, value.reason, value.raw)
                    continue
                for record in _messages(value):
                    got = _stream_record(record, table)
                    if isinstance(got, str):
                        yield Rejected("line", number, got, dumps(record))
                    else:
                        yield from router.add(number, got[1], position, got[0])
            yield from router.close(fh.tell())
            return
        yield from _stream_document(JsonReader(fh), table)


def _stream_document(rd: JsonReader, table: str | None) -> Iterator[Item]:
    """A message, a JSON array of messages or records, or a sequence of them."""
    router = RowRouter("record")
    count = 0

    def records(value: object) -> Iterator[Item]:
        nonlocal count
        for record in _messages(value):
            count += 1
            got = _stream_record(record, table)
            if isinstance(got, str):
                yield Rejected("record", count, got, dumps(record))
            else:
                yield from router.add(count, got[1], rd.position, got[0])

    def element(single: bool) -> Iterator[Item]:  # a message, or (single) one record
        nonlocal count
        try:
            value = rd.value()
        except JsonError as exc:
            count += 1
            yield Rejected("record", count, exc.reason, exc.raw)
            return
        yield from records({"records": [value]} if single else value)

    try:
        while char := rd.peek():
            if char == "[":
                for _ in rd.elements():
                    yield from element(single=False)
                continue
            envelope: dict[str, Any] = {}
            for key in rd.members():  # walked: one message may hold many records
                if key != "records" or rd.peek() != "[":
                    envelope[key] = rd.value()
                    continue
                envelope[key] = []
                for _ in rd.elements():
                    yield from element(single=True)
            if "records" not in envelope:
                yield from records(envelope)
    except JsonError as exc:
        yield Rejected("record", count + 1, f"reading stopped: {exc.reason}", exc.raw)
    yield from router.close(rd.position)


def next_row(rd: JsonReader, router: RowRouter, ref: int) -> Iterator[Item]:
    """Decode the next value and route it as a row, or reject it (the reader is past it)."""
    try:
        value = rd.value()
    except JsonError as exc:
        yield Rejected("record", ref, exc.reason, exc.raw)
        return
    problem = fields_problem(value, rd.limits, rd.bound) if isinstance(value, dict) else None
    if problem:
        yield Rejected("record", ref, problem, dumps(value))
    elif isinstance(value, dict):
        yield from router.add(ref, value, rd.position)
    else:
        yield Rejected("record", ref, "row is not a JSON object", dumps(value))
