"""The one output layer for records: JSON, JSON Lines and CSV of the same row objects."""

from __future__ import annotations

import csv
import io
import json

import pytest

from trustwatch.output import records_text

RECORDS = [
    {"name": "a", "n": 1, "nested": {"k": [1, 2]}, "none": None},
    {"name": "evil\x1b[2Jname\u202e", "n": 2, "extra": True},
]


def test_json_and_jsonl_carry_the_same_records_inert() -> None:
    as_json = records_text(RECORDS, "json", indent=2)
    as_jsonl = records_text(RECORDS, "jsonl")
    assert json.loads(as_json) == RECORDS
    assert [json.loads(line) for line in as_jsonl.splitlines()] == RECORDS
    for text in (as_json, as_jsonl):  # escapes, not the raw control characters
        assert "\x1b" not in text and "\u202e" not in text
        assert "\\u001b" in text


def test_csv_has_a_column_per_key_nested_as_json_and_null_empty() -> None:
    rows = list(csv.DictReader(io.StringIO(records_text(RECORDS, "csv"))))
    assert list(rows[0]) == ["name", "n", "nested", "none", "extra"]
    assert rows[0] == {"name": "a", "n": "1", "nested": '{"k": [1, 2]}', "none": "", "extra": ""}
    assert rows[1]["name"] == "evil\x1b[2Jname\u202e"  # CSV is byte-exact by contract
    assert rows[1]["extra"] == "true"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not a record format"):
        records_text(RECORDS, "table")
