"""Binary EVTX files through the ``evtx`` package (pyevtx-rs, the Rust parser).

The parser skips what it cannot read and goes on, so good chunks and records of a damaged file
still load. What it skips silently is found here by a scan of the chunk headers: a file cut
short, chunks that are zero-filled or overwritten, and a damaged file header (the chunks are
then read behind a rebuilt header) are all reported, with their offsets.
"""

from __future__ import annotations

import re
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evtx

from trustwatch.errors import IngestError
from trustwatch.ingest.records import BATCH_SIZE, EventBatch, Item, Rejected

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_SIZE = 4096
CHUNK_SIZE = 65536
_RECORD_IDS = re.compile(r"record IDs (\d+)\.\.(\d+)")


@dataclass(frozen=True, slots=True)
class ChunkScan:
    """What the chunk headers say: chunks declared, and the ones that cannot be read."""

    declared: int
    present: int
    bad: tuple[int, ...]  # indexes of chunks without a chunk signature


def scan_chunks(path: Path) -> ChunkScan:
    """Read the file header and every chunk header (8 bytes per 64 KiB: cheap)."""
    size = path.stat().st_size
    present = max(0, (size - HEADER_SIZE) // CHUNK_SIZE)
    bad: list[int] = []
    with path.open("rb") as f:
        header = f.read(HEADER_SIZE)
        declared = struct.unpack_from("<H", header, 0x2A)[0] if len(header) >= 0x2C else 0
        # chunks past the declared count are the log's preallocated, unused space
        for index in range(min(present, declared) if declared else present):
            f.seek(HEADER_SIZE + index * CHUNK_SIZE)
            head = f.read(0x80)
            if head[:8] != CHUNK_MAGIC:
                bad.append(index)
                continue
    return ChunkScan(declared, present, tuple(bad))


def _open(path: Path) -> tuple[evtx.PyEvtxParser, Path | None, str | None]:
    """The parser, and, when the file header was unreadable, the rebuilt copy and why."""
    try:
        return evtx.PyEvtxParser(str(path)), None, None
    except (RuntimeError, OSError) as exc:
        reason = str(exc)
    # rebuild: a fresh header in front of the chunks, so the chunks still load
    with path.open("rb") as f:
        f.seek(HEADER_SIZE)
        body = f.read()
    chunks = len(body) // CHUNK_SIZE
    if chunks == 0 or CHUNK_MAGIC not in body:
        raise IngestError(f"{path}: not a readable EVTX file ({reason})")
    header = bytearray(HEADER_SIZE)
    header[0:8] = FILE_MAGIC
    struct.pack_into("<QQQIHHHH", header, 8, 0, chunks - 1, 0, 128, 1, 3, HEADER_SIZE, chunks)
    struct.pack_into("<I", header, 0x7C, zlib.crc32(bytes(header[:0x78])))
    tmp = tempfile.NamedTemporaryFile(suffix=".evtx", delete=False)  # noqa: SIM115 - removed by read()
    with tmp:
        tmp.write(bytes(header))
        tmp.write(body[: chunks * CHUNK_SIZE])
    try:
        return evtx.PyEvtxParser(tmp.name), Path(tmp.name), reason
    except (RuntimeError, OSError) as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise IngestError(f"{path}: not a readable EVTX file ({exc})") from exc


def read_evtx(path: Path) -> Iterator[Item]:
    """Yield the file's events in batches, and a Rejected for every part that cannot be read."""
    scan = scan_chunks(path)
    parser, rebuilt, header_problem = _open(path)
    try:
        if header_problem:
            yield Rejected(
                "offset",
                0,
                f"file header unreadable ({header_problem}); the chunks were read behind a "
                "rebuilt header",
                count=0,
            )
        if scan.declared and scan.present < scan.declared:
            yield Rejected(
                "offset",
                HEADER_SIZE + scan.present * CHUNK_SIZE,
                f"file cut short: the header declares {scan.declared} chunks, "
                f"{scan.present} are complete; the records of the rest are lost",
                count=0,
            )
        for index in scan.bad:
            yield Rejected(
                "offset",
                HEADER_SIZE + index * CHUNK_SIZE,
                f"chunk {index} has no chunk signature (zero-filled or overwritten); "
                "its records are lost",
                count=0,
            )
        yield from _records(parser)
    finally:
        if rebuilt is not None:
            rebuilt.unlink(missing_ok=True)


def _records(parser: evtx.PyEvtxParser) -> Iterator[Item]:
    batch = EventBatch("record")
    refs, docs = batch.refs, batch.docs
    records = parser.records_json()
    while True:
        try:
            record: dict[str, Any] | None = next(records)
        except StopIteration:
            break
        except RuntimeError as exc:  # a damaged chunk or record; the parser goes on after it
            message = str(exc)
            ids = _RECORD_IDS.search(message)
            first, count = (int(ids[1]), int(ids[2]) - int(ids[1]) + 1) if ids else (-1, 1)
            yield Rejected("record", first, message, count=count)
            continue
        if record is None:
            continue
        refs.append(record["event_record_id"])
        docs.append(record["data"])
        if len(docs) >= BATCH_SIZE:
            yield batch
            batch = EventBatch("record")
            refs, docs = batch.refs, batch.docs
    if docs:
        yield batch


def sniff_evtx(path: Path, head: bytes) -> bool:
    return head.startswith(FILE_MAGIC) or (
        path.suffix.lower() == ".evtx" and CHUNK_MAGIC in head[: HEADER_SIZE + 8]
    )
