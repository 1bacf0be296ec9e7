"""Reading user table files (JSONL, JSON array, CSV, Parquet) into Arrow for a query."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustwatch.errors import InputError

SUPPORTED = ".jsonl, .ndjson, .json, .csv, .parquet"


def _cell(value: Any) -> Any:
    # nested values travel as JSON text; the engine parses them for dynamic columns
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def rows_to_arrow(rows: Iterable[Mapping[str, Any]], origin: str = "rows") -> pa.Table:
    """Build an Arrow table from row dicts; values of a column are made one Arrow type.

    Columns holding several kinds of value (numbers and text) are read as text and converted
    by the engine to the column's KQL type.
    """
    columns: dict[str, list[Any]] = {}
    for count, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"{origin}: record {count + 1} is not an object")
        for key in row:
            if key not in columns:
                columns[key] = [None] * count
        for key, values in columns.items():
            values.append(_cell(row.get(key)))
    arrays: dict[str, pa.Array] = {}
    for key, values in columns.items():
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {bool} or kinds <= {int} or kinds <= {int, float} or kinds <= {str}:
            try:
                arrays[key] = pa.array(values)
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                pass
        arrays[key] = pa.array(
            [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
            type=pa.string(),
        )
    if not arrays:
        return pa.table({})
    return pa.table(arrays)


def read_table_file(path: str | Path) -> pa.Table:
    """Read one table file. JSON Lines, a JSON array of objects, CSV (header row) or Parquet.

    Raises:
        InputError: naming the file, and the line for JSON, when it cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"table file not found: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(p)
        if suffix in (".csv", ".tsv"):
            opts = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            return pacsv.read_csv(
                p,
                parse_options=opts,
                convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: cannot read {suffix[1:]} table: {exc}") from exc
    if suffix not in (".json", ".jsonl", ".ndjson"):
        raise InputError(f"{p}: unknown table file type '{suffix}'; supported: {SUPPORTED}")
    text = p.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
        return rows_to_arrow(data, origin=str(p))
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}:{line_no}:{exc.colno}: invalid JSON line: {exc.msg}") from exc
    return rows_to_arrow(rows, origin=str(p))


def to_arrow(value: object, name: str) -> pa.Table:
    """Accept a path, an Arrow table, a pandas DataFrame or a list of row dicts."""
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, str | Path):
        return read_table_file(value)
    if isinstance(value, list):
        return rows_to_arrow(value, origin=f"table {name}")
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas, without importing it
        return pa.Table.from_pandas(value)
    raise InputError(
        f"table {name}: expected a file path, pyarrow.Table, pandas DataFrame or list of dicts"
    )
