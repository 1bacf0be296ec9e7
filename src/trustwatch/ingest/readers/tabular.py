"""The tabular input formats (rows of a named table), how each is recognised, and readers that
take the table from ``--input-table``.

Also the Defender query-result readers: the Graph ``runHuntingQuery`` / AH API JSON response and
the portal's exported rows (CSV, or a JSON array / JSON lines of row objects). Their files do not
name the table, so it is forced or inferred from the columns (see ``defender.infer_table``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from trustwatch.errors import InputError
from trustwatch.ingest.readers.defender import (
    JsonError,
    JsonReader,
    RowRouter,
    dumps,
    first_line_object,
    json_lines,
    next_row,
    open_input,
    read_defender_stream,
)
from trustwatch.ingest.readers.guard import limited
from trustwatch.ingest.readers.loganalytics import (
    error_reason,
    read_la_query,
    read_portal_csv,
    schema_columns,
    windows_event_doc,
)
from trustwatch.ingest.records import EXCERPT, Format, Item, Reader, Rejected
from trustwatch.schema.model import builtin_schemas, suggest

TableReader = Callable[[Path, str | None], Iterator[Item]]

_STREAM = re.compile(rb'"category"\s*:\s*"AdvancedHunting-')
_RESULTS = re.compile(rb'"(?i:results)"\s*:\s*\[')
_SCHEMA = re.compile(rb'"(?i:schema)"\s*:\s*\[')
_TABLES = re.compile(rb'"(?i:tables)"\s*:\s*\[')
_COLUMNS = re.compile(rb'"(?i:columns)"\s*:\s*\[')
_ROWS = re.compile(rb'"(?i:rows)"\s*:\s*\[')
_ZONE_SUFFIX = re.compile(r" \[(UTC|Local Time)\]$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_defender_hunting(path: Path, table: str | None = None) -> Iterator[Item]:
    """A Graph ``runHuntingQuery`` / AH API response: ``schema`` and ``results`` (any case)."""
    with open_input(path) as fh:
        rd = JsonReader(fh)
        columns: list[str] | None = None
        router: RowRouter | None = None
        count = 0
        try:
            for key in rd.members():
                name = key.lower()
                if name == "schema":
                    columns = schema_columns(rd.value())
                elif name == "results" and rd.peek() == "[":
                    router = RowRouter("record", table, columns, windows_event_doc)
                    for count in rd.elements():
                        yield from next_row(rd, router, count)
                elif name == "error":
                    reason = f"the query reported an error: {error_reason(rd.value())}"
                    yield Rejected("record", 0, reason, "")
                else:
                    rd.skip()
        except JsonError as exc:
            yield Rejected("record", count + 1, f"reading stopped: {exc.reason}", exc.raw)
        if router is None:
            reason = "no 'results' array: not a hunting-query response"
            yield Rejected("record", 0, reason, rd.buf[:EXCERPT])
        else:
            yield from router.close(rd.position)


def read_json_rows(path: Path, table: str | None = None) -> Iterator[Item]:
    """Rows as a JSON array of objects, JSON lines, or objects one after another."""
    with open_input(path) as fh:
        if first_line_object(fh):
            router = RowRouter("line", table, None, windows_event_doc)
            for number, position, value in json_lines(fh):
                if isinstance(value, JsonError):
                    yield Rejected("line", number, value.reason, value.raw)
                elif isinstance(value, dict):
                    yield from router.add(number, value, position)
                else:
                    yield Rejected("line", number, "row is not a JSON object", dumps(value))
            yield from router.close(fh.tell())
            return
        rd = JsonReader(fh)
        router = RowRouter("record", table, None, windows_event_doc)
        count = 0
        try:
            while char := rd.peek():
                for _ in rd.elements() if char == "[" else range(1):
                    count += 1
                    yield from next_row(rd, router, count)
        except JsonError as exc:
            yield Rejected("record", count + 1, f"reading stopped: {exc.reason}", exc.raw)
        yield from router.close(rd.position)


def read_defender_rows(path: Path, table: str | None = None) -> Iterator[Item]:
    """Defender portal exported rows: JSON (array or lines) if the file starts so, else CSV."""
    with open_input(path) as fh:
        start = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"[", b"{"):
        yield from read_json_rows(path, table)
    else:
        yield from read_portal_csv(path, table)


# --- sniffing: cheap checks on the first 64 KiB -------------------------------------------


def _text_start(head: bytes) -> bytes:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")


def sniff_defender_stream(path: Path, head: bytes) -> bool:
    """Streaming-API records: ``"category": "AdvancedHunting-...`` and ``"properties"``."""
    return _STREAM.search(head) is not None and b'"properties"' in head


def sniff_defender_hunting(path: Path, head: bytes) -> bool:
    """A JSON object with a ``results`` array and a ``schema`` array (or the Graph context)."""
    if not _text_start(head).startswith(b"{") or _RESULTS.search(head) is None:
        return False
    return _SCHEMA.search(head) is not None or b"huntingQueryResults" in head


def sniff_la_query(path: Path, head: bytes) -> bool:
    """A JSON object with ``tables``, ``columns`` and ``rows`` arrays."""
    return (
        _text_start(head).startswith(b"{")
        and _TABLES.search(head) is not None
        and _COLUMNS.search(head) is not None
        and _ROWS.search(head) is not None
    )


def _csv_header(head: bytes) -> list[str] | None:
    text = _text_start(head).decode("utf-8", "replace")
    line = text.split("\n", 1)[0].rstrip("\r")
    if text[:1] in ("[", "{", "<", "") or "," not in line:
        return None
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None


def sniff_la_portal_csv(path: Path, head: bytes) -> bool:
    """A CSV header with a `` [UTC]`` / `` [Local Time]`` column, or TimeGenerated and Type."""
    names = _csv_header(head)
    if not names:
        return False
    if any(_ZONE_SUFFIX.search(n.strip()) for n in names):
        return True
    return {"TimeGenerated", "Type"} <= {n.strip() for n in names}


def _defender_table_of(names: list[str]) -> bool:
    """True if at least two names, all columns of one Defender table."""
    wanted = set(names)
    if len(wanted) < 2 or not all(_NAME.fullmatch(n) for n in wanted):
        return False
    return any(
        s.product == "defender" and wanted <= {c.name for c in s.columns}
        for s in builtin_schemas().values()
    )


def _first_row_keys(head: bytes) -> list[str] | None:
    text = _text_start(head).decode("utf-8", "replace")
    try:
        if text.startswith("["):
            row, _ = json.JSONDecoder().raw_decode(text, len(text) - len(text[1:].lstrip()))
        else:
            row = json.loads(text.split("\n", 1)[0])
    except (ValueError, RecursionError):  # not JSON, or nested past the parser: not a row
        return None
    return list(row) if isinstance(row, dict) else None


def sniff_defender_rows(path: Path, head: bytes) -> bool:
    """A CSV header, or the first object of a JSON array / JSON lines, naming only columns of
    one Defender table (a portal export of an Advanced Hunting result)."""
    names = _csv_header(head)
    if names is not None:
        return not sniff_la_portal_csv(path, head) and _defender_table_of(names)
    keys = _first_row_keys(head)
    return keys is not None and _defender_table_of(keys)


# --- the formats ----------------------------------------------------------------------------

_READERS: dict[str, TableReader] = {
    "defender-stream": read_defender_stream,
    "defender-hunting": read_defender_hunting,
    "defender-csv": read_defender_rows,
    "la-query-api": read_la_query,
    "la-portal-csv": read_portal_csv,
}

FORMATS: list[Format] = [
    Format(
        "defender-stream",
        "Defender streaming API records: Event Hub messages or storage PT1H.json blobs",
        sniff_defender_stream,
        read_defender_stream,
    ),
    Format(
        "defender-hunting",
        "Advanced Hunting results from Graph runHuntingQuery or the AH API (JSON)",
        sniff_defender_hunting,
        read_defender_hunting,
    ),
    Format(
        "la-query-api",
        "Log Analytics query API response (JSON tables/columns/rows)",
        sniff_la_query,
        read_la_query,
    ),
    Format(
        "la-portal-csv",
        "Log Analytics / Sentinel portal 'Export to CSV' (UTC times)",
        sniff_la_portal_csv,
        read_portal_csv,
    ),
    Format(
        "defender-csv",
        "Defender portal Advanced Hunting export: CSV, or JSON rows",
        sniff_defender_rows,
        read_defender_rows,
    ),
]


def check_table(table: str) -> None:
    """Raise InputError unless ``table`` is a known table or a custom ``*_CL`` table."""
    if table in builtin_schemas() or (_NAME.fullmatch(table) and table.endswith("_CL")):
        return
    raise InputError(
        f"unknown table {table!r} for --input-table",
        hint=suggest(table, list(builtin_schemas())) or "name a Defender or Sentinel table",
    )


def table_hint_reader(fmt_name: str, table: str) -> Reader:
    """The reader of format ``fmt_name`` with every row's table forced to ``table``
    (``--input-table``; for ``defender-stream`` only records without a category use it)."""
    if fmt_name not in _READERS:
        raise InputError(
            f"--input-table does not apply to input format {fmt_name!r}",
            hint=f"it applies to: {', '.join(_READERS)}",
        )
    check_table(table)
    read = _READERS[fmt_name]

    def reader(path: Path) -> Iterator[Item]:
        return read(path, table)

    return limited(reader)
