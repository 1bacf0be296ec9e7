"""The limits table: parsing overrides from the CLI, and scoping them in the Python API."""

import pytest

from trustwatch import limits
from trustwatch.errors import TrustwatchError


def test_overrides_take_units_and_dashes() -> None:
    got = limits.parse(["event-bytes=16MB", "depth=128", "zip_ratio=50"])
    assert (got.event_bytes, got.depth, got.zip_ratio) == (16 << 20, 128, 50)
    assert got.fields == limits.DEFAULT.fields


@pytest.mark.parametrize("bad", ["nosuch=1", "depth", "depth=-1", "depth=0", "depth=lots"])
def test_bad_overrides_are_refused_with_the_list(bad: str) -> None:
    with pytest.raises(TrustwatchError) as info:
        limits.parse([bad])
    assert info.value.diagnostic.code == "TW901"


def test_using_scopes_and_restores() -> None:
    before = limits.current()
    with limits.using(limits.parse(["depth=3"])) as inner:
        assert limits.current() is inner and inner.depth == 3
    assert limits.current() is before


def test_every_limit_says_what_it_bounds() -> None:
    assert set(limits.bounds()) == set(limits.names())
    assert all(text.strip() for text in limits.bounds().values())


def test_docs_limits_lists_every_limit_with_its_default() -> None:
    """docs/limits.md has a row per limit whose default is the code's."""
    import re
    from dataclasses import asdict
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "limits.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| ([^|]+?) \|", doc, flags=re.M))
    assert list(rows) == limits.names()
    defaults = asdict(limits.DEFAULT)
    for name, written in rows.items():
        value = limits.parse([f"{name}={written.replace(' ', '').replace(',', '')}"])
        assert asdict(value)[name.replace("-", "_")] == defaults[name.replace("-", "_")], name
