"""Pivot queries bound to hostile alert values: a let statement of a literal, never spliced."""

from __future__ import annotations

from typing import Any

import pytest

from trustwatch.api import Session
from trustwatch.guides.bind import alert_values, bind
from trustwatch.guides.model import Pivot, load_library

LIBRARY = load_library()
HOSTILE = [
    'ws1" or DeviceName != "',
    "ws1\n| take 100 //",
    'ws1@" or true or @"',
    "ws1\\",
    "ws1\u202e\x1b[2J",
]


def rows(device: str) -> list[dict[str, Any]]:
    at = "2026-03-09T10:00:00Z"
    return [
        {"Timestamp": at, "DeviceName": device, "FileName": "evil.exe", "ProcessId": 1},
        {"Timestamp": at, "DeviceName": "other", "FileName": "benign.exe", "ProcessId": 2},
    ]


@pytest.mark.parametrize("device", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_device_name_matches_only_itself(device: str) -> None:
    session = Session({"DeviceProcessEvents": rows(device)})
    pivot = LIBRARY.pivots["process-tree"]
    alert = {"Evidence": [{"DeviceName": device, "Timestamp": "2026-03-09T10:01:00Z"}]}
    bound = bind(pivot, LIBRARY.parameters, alert_values(alert, LIBRARY.parameters))
    assert bound.skipped == ""
    assert pivot.query.strip() in bound.text  # the query's text is unchanged: values are lets
    table = session.run(bound.text).tables[-1]
    assert table.column("FileName").to_pylist() == ["evil.exe"]


def test_a_pivot_without_a_needed_value_is_skipped_with_the_reason() -> None:
    pivot = LIBRARY.pivots["thumbprint-fleet"]
    bound = bind(pivot, LIBRARY.parameters, {})
    assert bound.text == "" and bound.skipped == "the alert has no AlertThumbprint"


def test_an_optional_value_binds_to_null() -> None:
    pivot = LIBRARY.pivots["process-tree"]
    values = alert_values(
        {"Evidence": [{"DeviceName": "ws1", "Timestamp": "2026-03-09T10:01:00Z"}]},
        LIBRARY.parameters,
    )
    bound = bind(pivot, LIBRARY.parameters, values)
    assert "let AlertProcessId = long(null);" in bound.text


def test_a_value_not_of_the_parameter_type_is_not_used() -> None:
    values = alert_values(
        {"Evidence": [{"ProcessId": "12; drop", "DeviceName": "ws1"}]}, LIBRARY.parameters
    )
    assert "AlertProcessId" not in values and values["AlertDevice"] == "ws1"


def test_an_inline_pivot_names_parameters_as_plain_names() -> None:
    pivot = Pivot(id="x", title="x", query="DeviceInfo | where DeviceName == AlertDevice")
    bound = bind(pivot, LIBRARY.parameters, {"AlertDevice": 'a"b'})
    assert bound.text.splitlines()[0] == 'let AlertDevice = "a\\"b";'
