"""Input formats: each recognised from the start of the file, or named with ``--input-format``.

The order of :func:`formats` is the order of detection: specific signatures first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from trustwatch.errors import IngestError
from trustwatch.ingest.readers.evtx import read_evtx, sniff_evtx
from trustwatch.ingest.readers.guard import limited
from trustwatch.ingest.records import Format

HEAD = 65536


def formats() -> list[Format]:
    """Every supported input format, in detection order; each reader stops a file at the
    records limit."""
    from trustwatch.ingest.readers.events import FORMATS as EVENT_FORMATS
    from trustwatch.ingest.readers.network import FORMATS as NETWORK_FORMATS
    from trustwatch.ingest.readers.tabular import FORMATS as TABLE_FORMATS

    evtx_format = Format("evtx", "Windows event log file (.evtx)", sniff_evtx, read_evtx)
    every = [evtx_format, *NETWORK_FORMATS, *EVENT_FORMATS, *TABLE_FORMATS]
    return [replace(fmt, read=limited(fmt.read)) for fmt in every]


def by_name(name: str) -> Format:
    known = {f.name: f for f in formats()}
    if name not in known:
        raise IngestError(
            f"unknown input format {name!r}", hint=f"formats: {', '.join(sorted(known))}"
        )
    return known[name]


def detect(path: Path) -> Format:
    """The format of ``path``, from its first 64 KiB.

    Raises:
        IngestError: the file cannot be opened, or no format recognises it.
    """
    try:
        with path.open("rb") as f:
            head = f.read(HEAD)
    except OSError as exc:
        raise IngestError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not head:
        raise IngestError(f"{path}: the file is empty")
    for fmt in formats():
        if fmt.sniff(path, head):
            return fmt
    raise IngestError(
        f"{path}: not a telemetry format trustwatch reads",
        hint="name the format with --input-format; `trustwatch ingest --list-formats` lists them",
    )
