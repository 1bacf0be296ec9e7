"""Rows of the network tables: a sensor's fields put into a table's columns by name and type.

The network tables (``docs/network.md``) follow Log Analytics' custom-log convention, which the
Corelight connector for Microsoft Sentinel uses too: a field's column is its name with ``.``
written ``_`` and a suffix for its type: ``_s`` text, ``_d`` number, ``_b`` boolean, ``_t``
time (``id.orig_h`` -> ``id_orig_h_s``, ``certificate.not_valid_after`` ->
``certificate_not_valid_after_t``). Which suffix a field has is read from the table's schema
(``schema/tables/*.yaml``), so the schema files are the mapping.

Nothing is dropped: a field that has no column, or whose value does not fit its column's type
(a masked ``XXXXXXXXXX.XXXXXX`` time, a count that is not a number), goes into the row's
``AdditionalFields`` object under its own name, as the sensor wrote it.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

from trustwatch.errors import IngestError
from trustwatch.ingest.records import Item, Rejected
from trustwatch.schema.model import builtin_schemas

GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = ("_s", "_d", "_b", "_t")
EXTRA = "AdditionalFields"
_NAME = re.compile(r"[.\-\s/]")
# times before 1900 or after 9999 do not fit a datetime; a time this far off is not a time
_EPOCH_RANGE = (-2_208_988_800.0, 253_402_300_799.0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d{1,6})\d*)?")
_TRUE = frozenset({"t", "true", "1", "y", "yes"})
_FALSE = frozenset({"f", "false", "0", "n", "no"})


class Gunzipped:
    """Lines of a gzip stream; a stream cut short or damaged ends it, and ``error`` says why
    (what was read before it is kept: the reader reports the rest as one quarantined entry)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self.error: str | None = None

    def readline(self, size: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self._gzip.readline(size)
        except (EOFError, OSError, zlib.error) as exc:  # BadGzipFile is an OSError
            self.error = f"the gzip stream is cut short or damaged: {exc}"
            return b""

    def close(self) -> None:
        self._gzip.close()

    def __enter__(self) -> Gunzipped:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def stream_error(fh: object, line: int) -> Iterator[Item]:
    """One quarantine entry for the rest of a gzip stream that could not be read, if so."""
    error = getattr(fh, "error", None)
    if error:
        yield Rejected("line", line + 1, f"reading stopped after line {line:,}: {error}")


def open_maybe_gzip(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """The raw file (for the bytes read so far) and a reader of its content's lines,
    gunzipped when the file starts with the gzip magic (see :class:`Gunzipped`).

    Raises:
        IngestError: the file cannot be opened.
    """
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return raw, cast(BinaryIO, Gunzipped(raw))
    raw.seek(0)
    return raw, raw


@cache
def columns_of(table: str) -> dict[str, tuple[str, str]]:
    """Field key (the column name less its suffix) -> (column, KQL type) for ``table``."""
    out: dict[str, tuple[str, str]] = {}
    for col in builtin_schemas()[table].columns:
        if col.name[-2:] in SUFFIXES:
            out[col.name[:-2]] = (col.name, col.type)
    return out


def field_key(name: str) -> str:
    """A sensor's field name as the column it lands in is spelt, less the type suffix."""
    return _NAME.sub("_", name)


def iso_time(value: object) -> str | None:
    """A time (epoch seconds, or ISO 8601 text with or without a zone: UTC then) as ISO 8601
    UTC text with ``Z``; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        micros = round(float(value) * 1_000_000) if math.isfinite(value) else None
    elif isinstance(value, str):
        text = value.strip()
        decimal = _DECIMAL.fullmatch(text)
        if decimal is None:
            return _iso_text(text)
        sign, whole, fraction = decimal.groups()
        micros = int(whole) * 1_000_000 + int((fraction or "").ljust(6, "0"))
        micros = -micros if sign else micros
    else:
        return None
    if micros is None or not _EPOCH_RANGE[0] <= micros / 1_000_000 <= _EPOCH_RANGE[1]:
        return None
    return _zulu(_EPOCH + timedelta(microseconds=micros))


def _iso_text(text: str) -> str | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _zulu(when.astimezone(UTC))


def _zulu(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _number(value: object) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# a column's type -> how a value becomes it (None: it does not fit)
_CONVERT = {
    "datetime": iso_time,
    "real": _number,
    "long": _number,
    "int": _number,
    "bool": _boolean,
}


def build_row(table: str, fields: dict[str, Any], time_field: str) -> dict[str, Any]:
    """One row of ``table`` from a record's fields (name -> value, None for unset).

    ``time_field`` (a column, e.g. ``ts_t``) also gives ``TimeGenerated``. Lists are stored as
    JSON text in text columns.
    """
    columns = columns_of(table)
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        target = columns.get(field_key(name))
        if target is None:
            extra[name] = value
            continue
        column, kind = target
        convert = _CONVERT.get(kind)
        converted = convert(value) if convert is not None else _text(value)
        if converted is None:
            extra[name] = value  # kept as written; the column stays empty
        else:
            row[column] = converted
    if time_field in row:
        row["TimeGenerated"] = row[time_field]
    row["Type"] = table
    if extra:
        row[EXTRA] = json.dumps(extra, ensure_ascii=False, default=str)
    return row
