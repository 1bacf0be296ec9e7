"""Log Analytics / Sentinel results: the query API's JSON and the portal's "Export to CSV".

A row's table is the one ``--input-table`` forces, else its ``Type`` column, else the table
its columns fit (else one Rejected for the file). Rows of ``Event``, ``WindowsEvent`` and
``SecurityEvent`` become Windows event documents (normalised like EVTX) through
``sentinel.row_to_doc``; rows it declines stay rows, rows it cannot use are rejected.

Portal CSV: a `` [UTC]`` header suffix is dropped and its values (``5/1/2024, 10:00:01.123 AM``,
en-US display) become ISO 8601 UTC (``2024-05-01T10:00:01.123Z``). A `` [Local Time]`` column
cannot be converted (the file does not record the zone): the whole file is rejected, asking for
a UTC export. Empty cells are None. Refs: ``row`` (1-based over all result tables) for the
query API, ``line`` (where the record starts) for CSV; ref 0 is the file as a whole.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from trustwatch.ingest.readers.defender import (
    JsonError,
    JsonReader,
    RowRouter,
    dumps,
    open_input,
)
from trustwatch.ingest.readers.sentinel import row_to_doc
from trustwatch.ingest.records import EXCERPT, Item, Rejected, excerpt
from trustwatch.limits import Limits, current, exceeded

WINDOWS_EVENT_TABLES = frozenset({"Event", "WindowsEvent", "SecurityEvent"})
_SUFFIX = re.compile(r"(?P<name>.+?) \[(?P<zone>UTC|Local Time)\]")
_PORTAL_TIME = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}),? (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(?: ?([AaPp][Mm]))?"
)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def schema_columns(value: object) -> list[str] | None:
    """Column names of a ``schema``/``columns`` list ({name,type}, {Name,Type}, {ColumnName})."""
    if not isinstance(value, list):
        return None
    names: list[str] = []
    for col in value:
        found = [
            col[k] for k in ("name", "Name", "ColumnName") if isinstance(col, dict) and k in col
        ]
        if not found or not isinstance(found[0], str):
            return None
        names.append(found[0])
    return names


def error_reason(error: object) -> str:
    """A readable one-line summary of an API ``error`` object (code: message, nested)."""
    parts: list[str] = []
    value = error
    while isinstance(value, dict) and len(parts) < 6:
        code, message = value.get("code"), value.get("message")
        parts.append(": ".join(str(p) for p in (code, message) if p))
        details = value.get("details")
        value = details[0] if isinstance(details, list) and details else value.get("innererror")
    return "; ".join(p for p in parts if p) or dumps(error)


def windows_event_doc(table: str, row: dict[str, Any]) -> str | None:
    """The evtx-style document of an Event/WindowsEvent/SecurityEvent row, else None
    (ValueError if such a row is unusable)."""
    return row_to_doc(table, row) if table in WINDOWS_EVENT_TABLES else None


def read_la_query(path: Path, table: str | None = None) -> Iterator[Item]:
    """A query API response ``{"tables": [{"name", "columns", "rows"}]}``; an ``error`` (partial
    failure) is reported as a Rejected and the rows read are kept."""
    with open_input(path) as fh:
        rd = JsonReader(fh)
        count = 0
        seen = False
        try:
            for key in rd.members():
                name = key.lower()
                if name == "tables" and rd.peek() == "[":
                    seen = True
                    for _ in rd.elements():
                        count = yield from _la_table(rd, table, count)
                elif name == "error":
                    error = error_reason(rd.value())
                    reason = f"the query reported an error (rows read are kept): {error}"
                    yield Rejected("row", 0, reason, "")
                else:
                    rd.skip()
        except JsonError as exc:
            yield Rejected("row", count + 1, f"reading stopped: {exc.reason}", exc.raw)
        if not seen:
            reason = "no 'tables' array: not a Log Analytics query API response"
            yield Rejected("row", 0, reason, rd.buf[:EXCERPT])


def _la_table(rd: JsonReader, forced: str | None, count: int) -> Generator[Item, None, int]:
    """One result table: its rows, numbered on from ``count``; returns the last number."""
    columns: list[str] | None = None
    for key in rd.members():
        name = key.lower()
        if name == "columns":
            columns = schema_columns(rd.value())
        elif name == "rows" and rd.peek() == "[":
            if columns is None:
                reason = "rows come before their 'columns' (or the columns are unreadable)"
                yield Rejected("row", count + 1, f"{reason}; this result table is skipped", "")
                rd.skip()
                continue
            router = RowRouter("row", forced, columns, windows_event_doc)
            for _ in rd.elements():
                count += 1
                try:
                    values = rd.value()
                except JsonError as exc:
                    yield Rejected("row", count, exc.reason, exc.raw)
                    continue
                if isinstance(values, list) and len(values) == len(columns):
                    yield from router.add(
                        count, dict(zip(columns, values, strict=True)), rd.position
                    )
                else:
                    size = len(values) if isinstance(values, list) else "no list of"
                    reason = f"{size} values; the table has {len(columns)} columns"
                    yield Rejected("row", count, reason, excerpt(str(values)))
            yield from router.close(rd.position)
        else:
            rd.skip()
    return count


def portal_time(text: str) -> str | None:
    """``10/25/2023, 9:43:21.990 AM`` (or 24-hour) as ``2023-10-25T09:43:21.990Z``; None if
    it is not one."""
    m = _PORTAL_TIME.fullmatch(text.strip())
    if m is None:
        return None
    month, day, year, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, half = m.group(7), m.group(8)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half.upper() == "PM" else 0)
    try:
        datetime(year, month, day, hour, minute, second, tzinfo=UTC)  # checks the ranges
    except ValueError:
        return None
    tail = f".{fraction}" if fraction else ""
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{tail}Z"


def _header(fields: list[str], limits: Limits) -> tuple[list[str], set[str], str]:
    """Column names, the ones holding UTC portal times, and why the header is unusable."""
    if len(fields) > limits.fields:
        return [], set(), exceeded("fields", limits.fields, f"a header of {len(fields):,} columns")
    names: list[str] = []
    utc: set[str] = set()
    for number, raw in enumerate(fields, start=1):
        field = raw.strip()
        m = _SUFFIX.fullmatch(field)
        if m and m.group("zone") == "Local Time":
            return (
                [],
                set(),
                (
                    f"column '{field}' holds times in the exporting browser's time zone, which the "
                    "file does not record; export again with the display time zone set to UTC"
                ),
            )
        name = m.group("name") if m else field
        if m:
            utc.add(name)
        if not name:
            return [], set(), f"column {number} of the header has no name"
        if name in names:
            return [], set(), f"column '{name}' appears twice in the header"
        names.append(name)
    return names, utc, ""


def _csv_row(names: list[str], utc: set[str], fields: list[str]) -> dict[str, Any] | str:
    if len(fields) > current().fields:
        return exceeded("fields", current().fields, f"a row of {len(fields):,} fields")
    if len(fields) != len(names):
        return f"{len(fields)} fields; the header has {len(names)}"
    row: dict[str, Any] = {}
    for name, value in zip(names, fields, strict=True):
        if value == "":
            row[name] = None
        elif name in utc and not _ISO_TIME.match(value):
            iso = portal_time(value)
            if iso is None:
                return f"column {name}: {value!r} is not a date-time like '5/1/2024, 10:00:01 AM'"
            row[name] = iso
        else:
            row[name] = value
    return row


class _Lines:
    """The lines of a text stream for ``csv.reader``, each at most ``cap`` characters: a longer
    line is read past and given as an empty line, its number and size kept in ``long``."""

    def __init__(self, text: IO[str], cap: int) -> None:
        self.text, self.cap = text, cap
        self.number = 0
        self.long: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.cap + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) <= self.cap or line.endswith("\n"):
            return line
        size = len(line)
        while (more := self.text.readline(1 << 20)) and not more.endswith("\n"):
            size += len(more)
        self.long.append((self.number, size + len(more)))
        return "\n"


def _records(reader: Any, lines: _Lines) -> Iterator[tuple[int, list[str] | csv.Error | str]]:
    """(line where it starts, fields, the CSV error or why it is not read) per record after
    the header."""
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, exc
            if reader.line_num < line:
                return
            line = reader.line_num + 1
            continue
        for number, size in lines.long:
            yield number, exceeded("event_bytes", lines.cap, f"a line of {size:,} characters")
        lines.long.clear()
        if fields:
            yield line, fields
        line = reader.line_num + 1


def read_portal_csv(path: Path, table: str | None = None) -> Iterator[Item]:
    """A portal CSV export (Log Analytics, Sentinel or Defender): header row, then rows."""
    fh = open_input(path)
    limits = current()
    with io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="") as text:
        lines = _Lines(text, limits.event_bytes)
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            yield Rejected("line", 1, f"unreadable CSV header: {exc}", "")
            return
        if header is None:
            return
        names, utc, problem = _header(header, limits)
        if problem:
            count = sum(1 for _ in _records(reader, lines))
            reason = f"file not loaded: {problem}"
            yield Rejected("line", 0, reason, excerpt(",".join(header)), count=count)
            return
        router = RowRouter("line", table, names, windows_event_doc)
        for line, fields in _records(reader, lines):
            if isinstance(fields, csv.Error):
                yield Rejected("line", line, f"bad CSV: {fields}", "")
                continue
            if isinstance(fields, str):
                yield Rejected("line", line, fields, "")
                continue
            got = _csv_row(names, utc, fields)
            if isinstance(got, str):
                yield Rejected("line", line, got, excerpt(",".join(fields)))
            else:
                yield from router.add(line, got, fh.tell())
        yield from router.close(fh.tell())
