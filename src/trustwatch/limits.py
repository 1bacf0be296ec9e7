"""Every limit trustwatch puts on what it reads: one table, safe defaults, set from the CLI.

Logs come from machines an attacker may control, and rules, tuning files and queries from
people who paste generated text. Each limit below bounds one way a single input could
exhaust memory, time or the stack. Past a limit, a file (or record) is quarantined with the
limit's name, or a query / YAML file is refused with a located error that names it; nothing
else in the run is affected. ``docs/limits.md`` is the user's table of these.

Limits are process-wide: the CLI sets them once from ``--limit NAME=VALUE`` options
(:func:`configure`), the Python API with :func:`using`. Readers and the KQL front end call
:func:`current` when they start a file or a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

from trustwatch.errors import TrustwatchError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def _limit(default: int, bounds: str) -> Any:
    """A limit's field: its default and what it bounds (``trustwatch limits`` shows it)."""
    return field(default=default, metadata={"bounds": bounds})


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force. Sizes are bytes; counts are counts."""

    # --- telemetry files: a record past a record limit is quarantined; the file goes on ---
    event_bytes: int = _limit(4 * MiB, "one record: a JSON line or document, an XML event, a row")
    depth: int = _limit(64, "nesting of objects, arrays or elements in one record")
    fields: int = _limit(4_096, "fields (keys, <Data> items, columns) in one record")
    records: int = _limit(50_000_000, "records in one file (the rest is quarantined as one)")
    quarantine_rows: int = _limit(
        10_000, "quarantined records kept one by one per file (the rest: one row, counted)"
    )
    # --- archives: a member past these is quarantined; the archive's other members go on ---
    zip_member_bytes: int = _limit(2 * GiB, "decompressed size of one archive member")
    zip_ratio: int = _limit(200, "decompressed / compressed size of one archive member")
    zip_members: int = _limit(10_000, "members of one archive")
    # --- queries (the command line, a file, a rule): past these, refused with a located error ---
    query_bytes: int = _limit(1 * MiB, "characters of one query")
    query_depth: int = _limit(2_000, "nesting of parentheses, calls and operators")
    query_terms: int = _limit(100_000, "operands of one and/or chain or in (...) list")
    query_stages: int = _limit(2_000, "pipe stages in one tabular expression")
    union_tables: int = _limit(1_000, "tables one union, search or wildcard reads")
    let_depth: int = _limit(200, "scalar lets a let builds on, each using the last")
    # --- YAML (rules, tuning, scenarios): past these, the file is refused ---
    yaml_bytes: int = _limit(8 * MiB, "size of one YAML file")
    yaml_aliases: int = _limit(1_000, "alias (*ref) uses in one YAML document")


DEFAULT = Limits()
_active: list[Limits] = [DEFAULT]
_SIZE = re.compile(r"^\s*(\d+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB}
_UNIT |= {"g": GiB, "gb": GiB, "gib": GiB}


class LimitExceeded(TrustwatchError):
    """An input broke one of the limits (the message names the limit and its value)."""

    default_code = "TW900"


def current() -> Limits:
    """The limits in force now."""
    return _active[-1]


def bounds() -> dict[str, str]:
    """What each limit bounds, by its CLI name."""
    return {f.name.replace("_", "-"): f.metadata["bounds"] for f in fields(Limits)}


def names() -> list[str]:
    """The limits' names as the CLI spells them (``event-bytes``)."""
    return [f.name.replace("_", "-") for f in fields(Limits)]


def parse(overrides: Iterable[str], base: Limits | None = None) -> Limits:
    """``NAME=VALUE`` overrides (``event-bytes=16MB``, ``depth=128``) applied to ``base``.

    Raises:
        TrustwatchError: an unknown name or a value that is not a positive size or count.
    """
    known = {f.name for f in fields(Limits)}
    changes: dict[str, int] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        key = name.strip().replace("-", "_")
        if not sep or key not in known:
            raise TrustwatchError(
                f"unknown limit {name.strip()!r}" if sep else f"--limit needs NAME=VALUE: {item!r}",
                hint="limits: " + ", ".join(names()),
                code="TW901",
            )
        m = _SIZE.match(value)
        if not m or int(m.group(1)) <= 0:
            raise TrustwatchError(
                f"limit {name.strip()}: {value!r} is not a positive number",
                hint="sizes take a unit: 512KB, 16MB, 2GB",
                code="TW901",
            )
        changes[key] = int(m.group(1)) * _UNIT[m.group(2).lower()]
    return replace(base or DEFAULT, **changes)


def configure(overrides: Iterable[str]) -> Limits:
    """Set the process's limits from ``NAME=VALUE`` overrides of the defaults (the CLI's)."""
    limits = parse(overrides)
    _active[:] = [limits]
    return limits


@contextmanager
def using(limits: Limits) -> Iterator[Limits]:
    """Run a block under ``limits`` (the Python API's way to set them)."""
    _active.append(limits)
    try:
        yield limits
    finally:
        _active.pop()


def exceeded(name: str, value: int, what: str) -> str:
    """The reason text for breaking limit ``name`` (``what`` says what was measured)."""
    return f"{what} exceeds the {name.replace('_', '-')} limit ({value:,})"
