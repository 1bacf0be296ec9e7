"""Suricata EVE JSON (``eve.json``, plain or gzip): its ``tls`` events, into ``Suricata_tls_CL``.

An EVE file holds every kind of event (alert, flow, dns, http, ...) in one stream. The ``tls``
events are stored (``EVE_TABLES``); the others are read and counted as not stored: one
quarantine entry per run of consecutive lines of the same event type, naming the type, so a
large eve.json does not fill the quarantine one line at a time and nothing goes uncounted.

Nested objects are flattened with ``_`` (``tls.ja3.hash`` -> ``tls_ja3_hash_s``); see
:mod:`trustwatch.ingest.readers.netrows` for the columns and ``AdditionalFields``. Times
(``timestamp``, ``tls.notbefore``, ``tls.notafter``) are written as UTC; a time without a zone
(Suricata writes the certificate's validity so) is taken as UTC. Refs are 1-based lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustwatch.ingest.readers.defender import JsonError, RowRouter, dumps, json_lines
from trustwatch.ingest.readers.netrows import build_row, open_maybe_gzip, stream_error
from trustwatch.ingest.readers.zeek import first_object
from trustwatch.ingest.records import Item, Rejected

# EVE event_type -> table
EVE_TABLES = {"tls": "Suricata_tls_CL"}
TIME_COLUMN = "timestamp_t"


def sniff_suricata_eve(path: Path, head: bytes) -> bool:
    """JSON lines whose first record has EVE's ``event_type`` and ``timestamp``."""
    record = first_object(head)
    return (
        record is not None and isinstance(record.get("event_type"), str) and "timestamp" in record
    )


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{name}_"))
        else:
            out[name] = value
    return out


class _Others:
    """Consecutive lines of event types that are not stored, as one quarantine entry."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.first = 0
        self.count = 0
        self.sample = ""

    def add(self, kind: str, ref: int, value: object) -> Iterator[Item]:
        if self.count and kind != self.kind:
            yield from self.close()
        if not self.count:
            self.kind, self.first, self.sample = kind, ref, dumps(value)
        self.count += 1

    def close(self) -> Iterator[Item]:
        if self.count:
            reason = (
                f"EVE event_type {self.kind!r} is not read "
                f"(trustwatch reads: {', '.join(EVE_TABLES)})"
            )
            yield Rejected("line", self.first, reason, self.sample, count=self.count)
        self.count = 0


def read_suricata_eve(path: Path) -> Iterator[Item]:
    """Rows of the EVE ``tls`` events in ``path``; other events counted, not stored."""
    raw, fh = open_maybe_gzip(path)
    with raw, fh:
        rows = RowRouter("line")
        others = _Others()
        number = 0
        for number, _, value in json_lines(fh):
            if isinstance(value, JsonError):
                yield from others.close()
                yield Rejected("line", number, value.reason, value.raw)
                continue
            kind = value.get("event_type") if isinstance(value, dict) else None
            if not isinstance(value, dict) or not isinstance(kind, str):
                yield from others.close()
                yield Rejected("line", number, "not an EVE event (no event_type)", dumps(value))
                continue
            table = EVE_TABLES.get(kind)
            if table is None:
                yield from others.add(kind, number, value)
                continue
            yield from others.close()
            row = build_row(table, _flat(value), TIME_COLUMN)
            yield from rows.add(number, row, raw.tell(), table)
        yield from others.close()
        yield from rows.close(raw.tell())
        yield from stream_error(fh, number)
