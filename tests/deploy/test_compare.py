"""What counts as a difference between the body to send and the resource the server holds."""

from __future__ import annotations

import pytest

from trustwatch.deploy.compare import describe, differences


@pytest.mark.parametrize(
    ("desired", "existing", "replace", "found"),
    [
        ({"a": 1}, {"a": 1, "etag": "x", "lastModifiedUtc": "t"}, True, []),
        ({"a": "PT1H"}, {"a": "PT60M"}, True, []),
        ({"a": "P1D"}, {"a": "PT24H"}, True, []),
        ({"a": "PT1H"}, {"a": "PT2H"}, True, ["a"]),
        ({"a": []}, {}, True, []),
        ({"a": None}, {"a": {}}, True, []),
        ({"a": 1}, {"a": 1, "extra": "set by hand"}, True, ["extra"]),
        ({"a": 1}, {"a": 1, "extra": "set by hand"}, False, []),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}, True, ["a.b[1]"]),
        ({"a": [1, 2]}, {"a": [1]}, True, ["a"]),
        ({"a": "text"}, {}, False, ["a"]),
    ],
    ids=[
        "server-fields",
        "duration-PT60M",
        "duration-P1D",
        "duration-differs",
        "empty-vs-missing",
        "null-vs-empty",
        "put-drops-extra",
        "patch-keeps-extra",
        "nested-list-item",
        "list-length",
        "missing",
    ],
)
def test_differences(desired: object, existing: object, replace: bool, found: list[str]) -> None:
    assert differences(desired, existing, replace=replace) == found


def test_describe_shows_the_first_paths() -> None:
    assert describe(["a", "b"]) == "differs: a, b"
    assert describe(list("abcdef")) == "differs: a, b, c, d and 2 more"
