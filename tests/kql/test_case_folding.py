"""ASCII-only case folding stays exact on the fast lower() path (trap letters, non-ASCII needles).

Kusto's case-insensitive operators fold ASCII letters only
(https://learn.microsoft.com/kusto/query/in-operator). trustwatch uses DuckDB's faster lower()
and routes the two letters whose lower case is ASCII (KELVIN SIGN, CAPITAL I WITH DOT) to an
exact path; these cases would fail if that routing broke.
"""

from __future__ import annotations

import pytest

import trustwatch
from trustwatch.output import json_matrix

KELVIN = "\u212a"
I_DOT = "\u0130"
ROWS = [
    {"id": 1, "s": f"{KELVIN}ey"},  # looks like "Key" but is not an ASCII K
    {"id": 2, "s": "KEY"},
    {"id": 3, "s": f"{I_DOT}x"},  # one term: the dotted I is a letter
    {"id": 4, "s": "ix"},
    {"id": 5, "s": "ÄBC"},  # non-ASCII letters do not fold
    {"id": 6, "s": "äbc"},
    {"id": 7, "s": "path\\KEY\\x"},
]


def ids(predicate: str) -> list[int]:
    table = trustwatch.query(
        f"T | where {predicate} | project id | sort by id asc", tables={"T": ROWS}
    )
    return [row[0] for row in json_matrix(table)]


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ('s =~ "key"', [2]),
        ('s has "key"', [2, 7]),
        ('s contains "ke"', [2, 7]),
        ('s startswith "ke"', [2]),
        ('s in~ ("key", "ix")', [2, 4]),
        ('s !in~ ("key", "ix")', [1, 3, 5, 6, 7]),
        ('s has "x"', [7]),
        ('s has_any ("key", "x")', [2, 7]),
        ('s =~ "äbc"', [6]),
        ('s =~ "ÄBC"', [5]),
        ('s has "\\\\key\\\\"', [7]),
    ],
)
def test_ascii_only_folding(predicate: str, expected: list[int]) -> None:
    assert ids(predicate) == expected
