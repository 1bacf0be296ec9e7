"""What readers yield: batches of Windows events or table rows, and rejected records.

Readers do I/O only. A Windows event travels as the JSON document the ``evtx`` package (and
``evtx_dump -o jsonl``) produces, whatever file it came from::

    {"Event": {"System": {"Provider": {"#attributes": {"Name": ..., "Guid": ...}},
                          "EventID": 13, "Version": 2, "Level": 4, "Task": 13, "Opcode": 0,
                          "Keywords": "0x8000000000000000",
                          "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00Z"}},
                          "EventRecordID": 12345,
                          "Execution": {"#attributes": {"ProcessID": 3044, "ThreadID": 4012}},
                          "Channel": "Microsoft-Windows-Sysmon/Operational",
                          "Computer": "WS01.contoso.com",
                          "Security": {"#attributes": {"UserID": "S-1-5-18"}}},
               "EventData": {"RuleName": "-", "TargetObject": "HKLM\\...", ...}}}

``EventData`` maps each named ``<Data Name=...>`` to its text (numbers may stay numbers);
unnamed data is ``{"Data": {"#text": [...]}}`` as evtx writes it; events with ``<UserData>``
carry ``"UserData"`` instead. Rows of a named table (Defender Advanced Hunting exports, Log
Analytics results) travel as column -> value dicts and are typed by the table's schema later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RefKind = Literal["record", "line", "event", "row", "offset"]

BATCH_SIZE = 4_096  # records a reader batches: its Python strings are copied into Arrow soon


@dataclass(slots=True)
class EventBatch:
    """Windows events as evtx-style JSON documents, with where each was found in its file."""

    ref_kind: RefKind  # what refs count: evtx record ids, 1-based lines, events, byte offsets
    refs: list[int] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    position: int | None = None  # bytes of the file consumed so far, for progress
    arrow: Any = None  # refs, file id and docs as a pyarrow.Table (workspace.chunks makes it)
    staged: Any = None  # or the chunk already staged (staging.stage_sql), by the stager process


@dataclass(slots=True)
class RowBatch:
    """Rows of one table (a Defender or Sentinel table name, e.g. ``DeviceRegistryEvents``)."""

    table: str
    ref_kind: RefKind
    refs: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be read: where, why, and the start of what was there."""

    ref_kind: RefKind
    ref: int
    reason: str
    excerpt: str = ""  # at most EXCERPT characters of the raw record
    count: int = 1  # records it stands for (an unreadable EVTX chunk loses several)

    def __post_init__(self) -> None:
        # whatever a reader passed, what is stored is a short, valid, NUL-free str
        object.__setattr__(self, "excerpt", excerpt(self.excerpt))
        object.__setattr__(self, "reason", _storable(self.reason))


EXCERPT = 200

Item = EventBatch | RowBatch | Rejected
Reader = Callable[[Path], Iterator[Item]]


@dataclass(frozen=True, slots=True)
class Format:
    """An input format: its name (for ``--input-format``), how to recognise it, how to read it."""

    name: str
    description: str
    sniff: Callable[[Path, bytes], bool]  # the path and the file's first 64 KiB
    read: Reader


def excerpt(raw: str | bytes) -> str:
    """The start of a bad record, safe to store: at most EXCERPT characters of valid text, NULs
    and lone surrogates replaced (the terminal layer makes other controls visible)."""
    text = raw[: EXCERPT * 4].decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _storable(str(text[:EXCERPT]))


def _storable(text: str) -> str:
    """``text`` as valid UTF-8 without NULs (lone surrogates and NULs become U+FFFD)."""
    if "\x00" not in text and (text.isascii() or text.isprintable()):
        return text
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
