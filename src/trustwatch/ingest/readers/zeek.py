"""Zeek logs: ASCII/TSV (``#fields``/``#types`` header, plain or gzip) and JSON lines (Zeek's
JSON writer, json-streaming-logs with ``_path``; plain or gzip), into the Corelight tables.

Which logs are read, and into which table, is ``ZEEK_TABLES``; the columns are the tables'
schemas (see :mod:`trustwatch.ingest.readers.netrows`). A log of another path (``conn``,
``dns``, ...) is read but not stored: its records are quarantined, one entry per header block
(or per line in JSON), saying which logs trustwatch reads.

TSV, as Zeek's ASCII writer writes it: the header names the separator (``#separator \\x09``),
the set separator, the empty (``(empty)``) and unset (``-``) markers and the ``#path``; a new
header starts a new block (logs concatenated with ``cat`` read as they are). Values are
unescaped (``\\xNN`` -> that byte, ``\\\\`` -> a backslash), then decoded as UTF-8 (bad bytes
replaced). ``set[...]``/``vector[...]`` values become lists. A line whose number of values is
not the number of ``#fields``, or data before any ``#fields``, is quarantined with its line
number; lines starting with ``#`` that are not header lines (btest's banner) are comments.

Refs are 1-based lines of the (uncompressed) text. Limits: a line longer than the event-bytes
limit, or a header with more fields than the fields limit, is quarantined.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trustwatch.ingest.readers.defender import CHUNK, JsonError, RowRouter, dumps, json_lines
from trustwatch.ingest.readers.netrows import (
    GZIP_MAGIC,
    build_row,
    open_maybe_gzip,
    stream_error,
)
from trustwatch.ingest.records import EXCERPT, Item, Rejected, excerpt
from trustwatch.limits import current, exceeded

# Zeek log path -> table (the Corelight connector's table of that log)
ZEEK_TABLES = {
    "ssl": "Corelight_v2_ssl_CL",
    "x509": "Corelight_v2_x509_CL",
    "notice": "Corelight_v2_notice_CL",
    "known_certs": "Corelight_v2_known_certs_CL",
    "ocsp": "Corelight_v2_ocsp_CL",
}
# a JSON record without ``_path``: the first log whose marker fields it has (then: its file name)
_PATH_MARKERS = (
    ("x509", ("fingerprint", "certificate.subject", "certificate.serial")),
    ("ssl", ("cert_chain_fps", "cert_chain_fuids", "server_name", "cipher", "ssl_history")),
    ("notice", ("note", "msg")),
    ("known_certs", ("port_num", "issuer_subject")),
    ("ocsp", ("certStatus", "issuerNameHash")),
)
TIME_COLUMN = "ts_t"
_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|\\)")
_SNIFF_TSV = re.compile(rb"^#separator [^\r\n]+\r?\n(?:#[^\r\n]*\r?\n)*?#fields.", re.M)
_NOT_READ = "Zeek log {path!r} is not read (trustwatch reads: " + ", ".join(ZEEK_TABLES) + ")"


def head_text(head: bytes) -> bytes:
    """The start of a file as text bytes: gunzipped when it is gzip (as far as ``head`` goes)."""
    if not head.startswith(GZIP_MAGIC):
        return head
    try:
        return zlib.decompressobj(31).decompress(head, 1 << 20)
    except zlib.error:
        return b""


def first_object(head: bytes) -> dict[str, Any] | None:
    """The first non-blank line of ``head`` as a JSON object, or None."""
    text = head_text(head).lstrip(b"\xef\xbb\xbf \t\r\n")
    line, newline, _ = text.partition(b"\n")
    if not newline or not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def sniff_zeek_tsv(path: Path, head: bytes) -> bool:
    """A ``#separator`` header line followed by ``#fields`` (plain or gzip)."""
    return _SNIFF_TSV.search(head_text(head)) is not None


def sniff_zeek_json(path: Path, head: bytes) -> bool:
    """JSON lines whose first record has Zeek's ``ts`` and a ``_path`` or a read log's fields."""
    record = first_object(head)
    if record is None or "ts" not in record:
        return False
    if isinstance(record.get("_path"), str):
        return True
    return _path_of(record) is not None


def _path_of(record: dict[str, Any]) -> str | None:
    for name, markers in _PATH_MARKERS:
        if any(m in record for m in markers):
            return name
    return None


def _file_path(path: Path) -> str | None:
    """The log a file's name says it holds (``ssl.json.gz`` -> ``ssl``), if one that is read."""
    stem = path.name.split(".", 1)[0]
    return stem if stem in ZEEK_TABLES else None


def _unescape(raw: bytes) -> str:
    if b"\\" in raw:
        raw = _ESCAPE.sub(
            lambda m: b"\\" if m.group(1) == b"\\" else bytes.fromhex(m.group(1)[1:].decode()), raw
        )
    return raw.decode("utf-8", "replace")


class _Header:
    """One block's header: separators, markers, path, fields and types."""

    def __init__(self, separator: bytes) -> None:
        self.separator = separator
        self.set_separator = b","
        self.empty = b"(empty)"
        self.unset = b"-"
        self.path = ""
        self.fields: list[str] = []
        self.types: list[str] = []
        self.problem: str | None = None

    def set(self, directive: str, values: list[bytes]) -> None:
        first = values[0] if values else b""
        if directive == "set_separator":
            self.set_separator = _unescape(first).encode("utf-8")
        elif directive == "empty_field":
            self.empty = first
        elif directive == "unset_field":
            self.unset = first
        elif directive == "path":
            self.path = _unescape(first)
        elif directive == "fields":
            self.fields = [_unescape(v) for v in values]
            limit = current().fields
            if len(self.fields) > limit:
                what = f"a #fields header of {len(self.fields):,} fields"
                self.problem = exceeded("fields", limit, what)
        elif directive == "types":
            self.types = [_unescape(v) for v in values]

    def value(self, raw: bytes, kind: str) -> Any:
        if raw == self.unset:
            return None
        container = kind.startswith(("set[", "vector[", "table["))
        if raw == self.empty:
            return [] if container else ""
        if container:
            return [_unescape(v) for v in raw.split(self.set_separator)]
        return _unescape(raw)


def _lines(fh: BinaryIO, cap: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line without its end or None if over ``cap`` bytes, its size)."""
    number = 0
    while raw := fh.readline(cap + 1):
        number += 1
        size = len(raw)
        if size > cap and not raw.endswith(b"\n"):
            while (more := fh.readline(CHUNK)) and not more.endswith(b"\n"):
                size += len(more)
            size += len(more)
            yield number, None, size
            continue
        yield number, raw.rstrip(b"\r\n"), size


class _Skipped:
    """Records of one block that are not stored for one reason, reported as one entry."""

    def __init__(self) -> None:
        self.first = 0
        self.count = 0
        self.reason = ""
        self.sample = ""

    def add(self, ref: int, reason: str, raw: bytes) -> Iterator[Item]:
        if self.count and reason != self.reason:
            yield from self.close()
        if not self.count:
            self.first, self.reason, self.sample = ref, reason, excerpt(raw[:EXCERPT])
        self.count += 1

    def close(self) -> Iterator[Item]:
        if self.count:
            yield Rejected("line", self.first, self.reason, self.sample, count=self.count)
        self.count = 0


def read_zeek_tsv(path: Path) -> Iterator[Item]:
    """Rows of the Zeek ASCII (TSV) logs in ``path`` (plain or gzip)."""
    raw, fh = open_maybe_gzip(path)
    with raw, fh:
        cap = current().event_bytes
        header: _Header | None = None
        rows = RowRouter("line")
        skipped = _Skipped()
        number = 0
        for number, line, size in _lines(fh, cap):
            if line is None:
                reason = exceeded("event_bytes", cap, f"a line of {size:,} bytes")
                yield Rejected("line", number, reason, "")
                continue
            if line.startswith(b"#"):
                if line.startswith(b"#separator "):
                    yield from skipped.close()
                    header = _Header(_unescape(line[11:].strip()).encode("utf-8"))
                elif header is not None and line[1:2] != b"#":
                    directive, _, rest = line[1:].partition(header.separator)
                    name = directive.decode("ascii", "replace")
                    header.set(name, rest.split(header.separator) if rest else [])
                continue
            if not line.strip():
                continue
            problem = _problem(header, line)
            if problem is not None:
                yield from skipped.add(number, problem, line)
                continue
            assert header is not None  # _problem says so
            values = line.split(header.separator)
            if len(values) != len(header.fields):
                reason = f"{len(values)} values for the {len(header.fields)} fields of #fields"
                yield Rejected("line", number, reason, excerpt(line[:EXCERPT]))
                continue
            types = header.types if len(header.types) == len(values) else [""] * len(values)
            record = {
                f: header.value(v, t) for f, v, t in zip(header.fields, values, types, strict=True)
            }
            record["_path"] = header.path
            table = ZEEK_TABLES[header.path]
            yield from rows.add(number, build_row(table, record, TIME_COLUMN), raw.tell(), table)
        yield from skipped.close()
        yield from rows.close(raw.tell())
        yield from stream_error(fh, number)


def _problem(header: _Header | None, line: bytes) -> str | None:
    """Why a data line of this block is not stored, or None."""
    if header is None or not header.fields:
        return "data before a #separator and #fields header: not a Zeek log line"
    if header.problem:
        return header.problem
    if header.path not in ZEEK_TABLES:
        return _NOT_READ.format(path=header.path)
    return None


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects (``{"id": {"orig_h": ...}}``) as dotted names (``id.orig_h``)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_zeek_json(path: Path) -> Iterator[Item]:
    """Rows of Zeek JSON lines in ``path`` (plain or gzip): each record's log is its ``_path``,
    else the file's name (``ssl.json``), else the fields it has."""
    raw, fh = open_maybe_gzip(path)
    with raw, fh:
        named = _file_path(path)
        rows = RowRouter("line")
        number = 0
        for number, _, value in json_lines(fh):
            if isinstance(value, JsonError):
                yield Rejected("line", number, value.reason, value.raw)
                continue
            if not isinstance(value, dict):
                yield Rejected("line", number, "not a JSON object", dumps(value))
                continue
            record = _flat(value)
            log = record.get("_path")
            log = log if isinstance(log, str) else named or _path_of(record)
            if log not in ZEEK_TABLES:
                reason = _NOT_READ.format(path=log) if log else "not a record of a Zeek log"
                yield Rejected("line", number, reason, dumps(value))
                continue
            table = ZEEK_TABLES[log]
            yield from rows.add(number, build_row(table, record, TIME_COLUMN), raw.tell(), table)
        yield from rows.close(raw.tell())
        yield from stream_error(fh, number)
