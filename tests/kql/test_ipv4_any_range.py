"""ipv4_is_in_any_range: ranges as strings or a constant array (it once read an array as one
malformed range and answered null, silently)."""

from __future__ import annotations

import pytest

import trustwatch
from trustwatch.errors import KqlSemanticError


def answer(args: str) -> object:
    return trustwatch.query(f"print r = ipv4_is_in_any_range({args})").column("r")[0].as_py()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('"10.1.2.3", dynamic(["10.0.0.0/8", "192.168.0.0/16"])', True),
        ('"192.168.1.1", dynamic(["10.0.0.0/8", "192.168.0.0/16"])', True),
        ('"8.8.8.8", dynamic(["10.0.0.0/8", "192.168.0.0/16"])', False),
        ('"192.168.1.1", "10.0.0.0/8", "192.168.0.0/16"', True),
        ('"8.8.8.8", "10.0.0.0/8", "192.168.0.0/16"', False),
        ('"10.0.0.1", "10.0.0.0/8", dynamic(["172.16.0.0/12"])', True),
        ('"10.1.2.3", dynamic([])', False),
    ],
)
def test_documented_forms(args: str, expected: bool) -> None:
    assert answer(args) is expected


def test_a_column_of_arrays_is_refused_not_misread() -> None:
    with pytest.raises(KqlSemanticError, match="constant array"):
        trustwatch.query(
            'datatable(r: dynamic)[dynamic(["10.0.0.0/8"])] '
            '| extend x = ipv4_is_in_any_range("10.1.1.1", r)'
        )
