"""Rendering results: JSON-ready values, JSON / JSONL / CSV text of tables and of records.

JSON and JSONL escape every character :mod:`trustwatch.inert` calls unsafe (``\\u001b``,
``\\u202e``): the values parse back exactly and the text is inert on a terminal. CSV is
written byte for byte; ``text_cell`` is the raw text of a cell, which the terminal table makes
visible (``trustwatch.cli.render``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from trustwatch.inert import json_text
from trustwatch.kql.literals import format_datetime_value, format_timespan_value


def kql_types(table: pa.Table) -> list[str]:
    """The KQL type of each column (from field metadata; inferred when absent)."""
    out = []
    for f in table.schema:
        meta = f.metadata or {}
        out.append(meta.get(b"kql_type", b"").decode() or "string")
    return out


def json_value(value: Any, ktype: str) -> Any:
    """One cell in the JSON output form (datetimes ISO 8601 with Z, timespans in Kusto's text)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime_value(value)
    if isinstance(value, timedelta):
        return format_timespan_value(value)
    if ktype == "dynamic" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def json_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    types = kql_types(table)
    names = table.column_names
    for row in table.to_pylist():
        yield {n: json_value(row[n], t) for n, t in zip(names, types, strict=True)}


def json_matrix(table: pa.Table) -> list[list[Any]]:
    """Rows as lists in column order, in the JSON output form (used by tests)."""
    return [list(r.values()) for r in json_rows(table)]


def to_json(table: pa.Table) -> str:
    return json_text(json.dumps(list(json_rows(table)), ensure_ascii=False, indent=None))


def to_jsonl(table: pa.Table) -> str:
    return "".join(json_text(json.dumps(r, ensure_ascii=False)) + "\n" for r in json_rows(table))


def text_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(table: pa.Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    for r in json_rows(table):
        writer.writerow([text_cell(v) for v in r.values()])
    return buf.getvalue()


# --- records (typed alerts and incidents: trustwatch.records) --------------------------------


def records_json(records: Sequence[Mapping[str, Any]]) -> str:
    """One JSON array of records, inert, with a final line feed."""
    return json_text(json.dumps(list(records), ensure_ascii=False)) + "\n"


def records_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """One JSON object per line, inert."""
    return "".join(json_text(json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def records_text(records: Sequence[Mapping[str, Any]], fmt: str, indent: int | None = None) -> str:
    """Records (row objects, possibly nested) as ``json``, ``jsonl`` or ``csv`` text, inert.

    JSON keeps nesting (``indent`` for the array form only); CSV has a column per key, in
    first-seen order, a nested value written as its JSON text and a null as an empty cell.
    """
    if fmt == "json":
        text = json.dumps(list(records), ensure_ascii=False, indent=indent)
        return json_text(text) + "\n"
    if fmt == "jsonl":
        return records_jsonl(records)
    if fmt == "csv":
        columns = list(dict.fromkeys(k for r in records for k in r))
        return records_csv(({k: _csv_text(v) for k, v in r.items()} for r in records), columns)
    raise ValueError(f"not a record format: {fmt}")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def records_csv(rows: Iterable[Mapping[str, str]], columns: Sequence[str]) -> str:
    """CSV with a header row of ``columns``; each row's text written byte for byte."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return buf.getvalue()
