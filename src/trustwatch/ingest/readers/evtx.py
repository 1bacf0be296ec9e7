"""Binary EVTX files through the ``evtx`` package (pyevtx-rs, the Rust parser).

The parser skips what it cannot read and goes on, so good chunks and records of a damaged file
still load. What it skips silently is found here by a scan of the chunk headers: a file cut
short, chunks that are zero-filled or overwritten, and a damaged file header (the chunks are
then read behind a rebuilt header) are all reported, with their offsets.

A file cut inside a chunk (a log copied while it was written) ends in a partial chunk, which
the parser ignores. Its complete records are recovered: the records are walked by their size
fields up to the cut, the chunk is padded to 64 KiB with its header saying where the records end,
and the parser reads that one chunk from memory (a chunk's string and template tables come
before the records that use them). Records the chunk header declares past the cut are counted
as lost, with the offset of the cut.

Each record's JSON is held to the per-record limits (``trustwatch.limits``): size, nesting and
fields; a record past one is quarantined and the file goes on.
"""

from __future__ import annotations

import bisect
import io
import json
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evtx

from trustwatch.errors import IngestError
from trustwatch.ingest.readers.guard import fields_bound, fields_problem, json_problem
from trustwatch.ingest.records import BATCH_SIZE, EventBatch, Item, Rejected, excerpt
from trustwatch.limits import Limits, current

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_SIZE = 4096
CHUNK_SIZE = 65536
CHUNK_HEADER_SIZE = 512  # the chunk header, then its string and template offset tables
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
RECORD_HEADER_SIZE = 24  # magic, size, record id, written time; the size is repeated at the end
_RECORD_IDS = re.compile(r"record IDs (\d+)\.\.(\d+)")
_RECORD_NUMBER = re.compile(r"record number (\d+)")
_CHUNK_NUMBER = re.compile(r"chunk number (\d+)")


@dataclass(frozen=True, slots=True)
class ChunkScan:
    """What the chunk headers say: chunks declared, and the ones that cannot be read."""

    declared: int
    present: int
    bad: tuple[int, ...]  # indexes of chunks without a chunk signature
    tail: int = 0  # bytes of a partial chunk after the complete ones (0: none with a signature)
    ids: tuple[tuple[int, int, int], ...] = ()  # (first id, last id, chunk) of the good chunks


def _declared_ids(head: bytes | bytearray) -> tuple[int, int] | None:
    """The first and last record ids a chunk header declares, if they are plausible."""
    if len(head) < 0x28:
        return None
    first, last = struct.unpack_from("<QQ", head, 0x18)
    if 0 < first <= last and last - first < CHUNK_SIZE // (RECORD_HEADER_SIZE + 4):
        return first, last
    return None


def scan_chunks(path: Path) -> ChunkScan:
    """Read the file header and every chunk header (128 bytes per 64 KiB: cheap)."""
    size = path.stat().st_size
    present = max(0, (size - HEADER_SIZE) // CHUNK_SIZE)
    bad: list[int] = []
    ids: list[tuple[int, int, int]] = []
    with path.open("rb") as f:
        header = f.read(HEADER_SIZE)
        declared = struct.unpack_from("<H", header, 0x2A)[0] if len(header) >= 0x2C else 0
        # chunks past the declared count are the log's preallocated, unused space
        for index in range(min(present, declared) if declared else present):
            f.seek(HEADER_SIZE + index * CHUNK_SIZE)
            head = f.read(0x80)
            if head[:8] != CHUNK_MAGIC:
                bad.append(index)
            elif (found := _declared_ids(head)) is not None:
                ids.append((*found, index))
        tail = size - HEADER_SIZE - present * CHUNK_SIZE if size > HEADER_SIZE else 0
        if tail > 0 and (not declared or present < declared):
            f.seek(HEADER_SIZE + present * CHUNK_SIZE)
            tail = tail if f.read(8) == CHUNK_MAGIC else 0
        else:
            tail = 0
    return ChunkScan(declared, present, tuple(bad), tail, tuple(sorted(ids)))


# the parser's threads (0: as many as cores); the stager process, whose parse runs beside the
# ingest's own work on the other core, sets 1
PARSER_THREADS = 0


def _open(path: Path) -> tuple[evtx.PyEvtxParser, Path | None, str | None]:
    """The parser, and, when the file header was unreadable, the rebuilt copy and why."""
    try:
        return evtx.PyEvtxParser(str(path), PARSER_THREADS), None, None
    except (RuntimeError, OSError) as exc:
        reason = str(exc)
    # rebuild: a fresh header in front of the chunks, so the chunks still load
    chunks = max(0, (path.stat().st_size - HEADER_SIZE) // CHUNK_SIZE)
    found = False
    with path.open("rb") as f:
        for index in range(chunks):
            f.seek(HEADER_SIZE + index * CHUNK_SIZE)
            if f.read(8) == CHUNK_MAGIC:
                found = True
                break
    if not found:
        raise IngestError(f"{path}: not a readable EVTX file ({reason})")
    tmp = tempfile.NamedTemporaryFile(suffix=".evtx", delete=False)  # noqa: SIM115 - removed by read()
    with tmp, path.open("rb") as f:  # copied a megabyte at a time: never the whole file in memory
        tmp.write(_file_header(chunks, 0))
        f.seek(HEADER_SIZE)
        shutil.copyfileobj(_Prefix(f, chunks * CHUNK_SIZE), tmp)
    try:
        return evtx.PyEvtxParser(tmp.name, PARSER_THREADS), Path(tmp.name), reason
    except (RuntimeError, OSError) as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise IngestError(f"{path}: not a readable EVTX file ({exc})") from exc


class _Prefix(io.RawIOBase):
    """The first ``size`` bytes of a binary file, from where it stands (for copyfileobj)."""

    def __init__(self, raw: Any, size: int) -> None:
        self.raw, self.left = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self.left]
        data = self.raw.read(len(view))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)


def _file_header(chunks: int, next_record: int) -> bytes:
    """A valid EVTX file header declaring ``chunks`` chunks."""
    header = bytearray(HEADER_SIZE)
    header[0:8] = FILE_MAGIC
    struct.pack_into(
        "<QQQIHHHH", header, 8, 0, max(chunks - 1, 0), next_record, 128, 1, 3, HEADER_SIZE, chunks
    )
    struct.pack_into("<I", header, 0x7C, zlib.crc32(bytes(header[:0x78])))
    return bytes(header)


def read_evtx(path: Path) -> Iterator[Item]:
    """Yield the file's events in batches, and a Rejected for every part that cannot be read.

    Every chunk whose header declares its record ids is accounted for: the records of it that
    were neither kept nor quarantined one by one are quarantined as one, at the chunk's offset.
    """
    limits = current()
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
        whole = scan.present + (1 if scan.tail else 0)
        if scan.declared and whole < scan.declared:
            yield Rejected(
                "offset",
                HEADER_SIZE + whole * CHUNK_SIZE,
                f"file cut short: the header declares {scan.declared} chunks, "
                f"{whole} are present; the records of the rest are lost",
                count=0,
            )
        seen = _Seen(scan.ids)
        for item in _records(parser, limits, skip_chunks=frozenset(scan.bad)):
            seen.add(item)
            yield item
        yield from seen.shortfalls()
        for index in scan.bad:
            yield from _salvage(path, index, CHUNK_SIZE, limits, signature=False)
        if scan.tail:
            yield from _salvage(path, scan.present, scan.tail, limits, signature=True)
    finally:
        if rebuilt is not None:
            rebuilt.unlink(missing_ok=True)


class _Seen:
    """Record ids read per chunk (kept or quarantined), against what the chunk headers declare."""

    def __init__(self, ids: tuple[tuple[int, int, int], ...]) -> None:
        self.ids = ids
        self.firsts = [first for first, _, _ in ids]
        self.counts = [0] * len(ids)

    def add(self, item: Item) -> None:
        refs = item.refs if isinstance(item, EventBatch) else ()
        if isinstance(item, Rejected) and item.ref_kind == "record" and item.count == 1:
            refs = [item.ref]
        for ref in refs:
            at = bisect.bisect_right(self.firsts, ref) - 1
            if at >= 0 and ref <= self.ids[at][1]:
                self.counts[at] += 1

    def shortfalls(self) -> Iterator[Rejected]:
        for (first, last, index), count in zip(self.ids, self.counts, strict=True):
            lost = last - first + 1 - count
            if lost > 0:
                reason = (
                    f"chunk {index} (offset {HEADER_SIZE + index * CHUNK_SIZE}): {lost} of its "
                    f"{last - first + 1} records (ids {first}..{last}) could not be read"
                )
                yield Rejected("offset", HEADER_SIZE + index * CHUNK_SIZE, reason, count=lost)


@dataclass(frozen=True, slots=True)
class _Walk:
    """Complete records at the start of a chunk's data: where they end, first and last ids."""

    end: int
    first: int
    last: int
    kept: int


def _walk_records(chunk: bytes | bytearray) -> _Walk:
    """Follow the records' size fields from the chunk header to the first incomplete one."""
    offset, first, last, kept = CHUNK_HEADER_SIZE, 0, 0, 0
    while (
        offset + RECORD_HEADER_SIZE + 4 <= len(chunk) and chunk[offset : offset + 4] == RECORD_MAGIC
    ):
        size, record_id = struct.unpack_from("<IQ", chunk, offset + 4)
        end = offset + size
        if size < RECORD_HEADER_SIZE + 4 or end > len(chunk):
            break
        if struct.unpack_from("<I", chunk, end - 4)[0] != size:
            break
        first, last, kept, offset = first or record_id, record_id, kept + 1, end
    return _Walk(offset, first, last, kept)


def _salvage(
    path: Path, index: int, size: int, limits: Limits, *, signature: bool
) -> Iterator[Item]:
    """The complete records of chunk ``index``, read from a repaired copy in memory.

    ``signature``: the chunk has its signature but only ``size`` bytes (the file is cut inside
    it); else its signature is damaged and the header is trusted if the rest of it is plausible.
    """
    start = HEADER_SIZE + index * CHUNK_SIZE
    with path.open("rb") as f:
        f.seek(start)
        chunk = bytearray(f.read(min(size, CHUNK_SIZE)))
    cut_at = start + len(chunk)
    declared = _declared_ids(chunk)
    plausible = len(chunk) >= CHUNK_HEADER_SIZE and chunk[0x28:0x2C] == b"\x80\x00\x00\x00"
    walk = _walk_records(chunk) if plausible else _Walk(CHUNK_HEADER_SIZE, 0, 0, 0)
    kept = 0
    if walk.kept:
        for item in _records(_padded(chunk, walk), limits, skip_chunks=frozenset()):
            kept += item.count if isinstance(item, Rejected) else len(item.refs)
            yield item
    total = declared[1] - declared[0] + 1 if declared else 0
    lost = max(total - kept, 0)
    counted = f"{lost} lost" if declared else "how many were lost is unknown"
    where = f"chunk {index} (offset {start})"
    if signature:
        reason = f"{where} is cut short at byte {cut_at}: {kept} of its records read, "
    elif walk.kept:
        reason = f"{where} has a damaged signature; read behind a repaired one: {kept} records, "
    else:
        reason = f"{where} has no chunk signature (zero-filled or overwritten); its records: "
    yield Rejected("offset", start + walk.end, reason + counted, count=lost)


def _padded(chunk: bytearray, walk: _Walk) -> evtx.PyEvtxParser:
    """A parser over a one-chunk EVTX in memory: the chunk's complete records, its header
    rewritten to end there (signature, record ids, free space offset, checksums)."""
    chunk[0:8] = CHUNK_MAGIC
    chunk[walk.end :] = bytes(CHUNK_SIZE - walk.end)
    struct.pack_into("<QQQQ", chunk, 8, walk.first, walk.last, walk.first, walk.last)
    struct.pack_into("<I", chunk, 0x30, walk.end)
    struct.pack_into("<I", chunk, 0x34, zlib.crc32(bytes(chunk[CHUNK_HEADER_SIZE : walk.end])))
    checked = bytes(chunk[:0x78]) + bytes(chunk[0x80:CHUNK_HEADER_SIZE])
    struct.pack_into("<I", chunk, 0x7C, zlib.crc32(checked))
    return evtx.PyEvtxParser(io.BytesIO(_file_header(1, walk.last + 1) + bytes(chunk)))


def _records(
    parser: evtx.PyEvtxParser, limits: Limits, skip_chunks: frozenset[int]
) -> Iterator[Item]:
    """The parser's records in batches; its errors as Rejected that count nothing (the records
    a chunk loses are counted per chunk), except errors of the ``skip_chunks``, read apart."""
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
            chunk = _CHUNK_NUMBER.search(message)
            if chunk is not None and int(chunk[1]) in skip_chunks:
                continue
            ids = _RECORD_IDS.search(message) or _RECORD_NUMBER.search(message)
            yield Rejected("record", int(ids[1]) if ids else -1, message, count=0)
            continue
        if record is None:
            continue
        data = record["data"]
        problem = json_problem(data, limits) or _fields(data, limits)
        if problem:
            yield Rejected("record", record["event_record_id"], problem, excerpt(data))
            continue
        refs.append(record["event_record_id"])
        docs.append(data)
        if len(docs) >= BATCH_SIZE:
            yield batch
            batch = EventBatch("record")
            refs, docs = batch.refs, batch.docs
    if docs:
        yield batch


def _fields(data: str, limits: Limits) -> str | None:
    """Why a record's JSON has too many fields (parsed only when the cheap bound says maybe)."""
    if fields_bound(data, limits) <= limits.fields:
        return None
    try:
        return fields_problem(json.loads(data), limits)
    except (ValueError, RecursionError) as exc:
        return f"the parser's JSON for the record is unreadable ({exc})"


def sniff_evtx(path: Path, head: bytes) -> bool:
    return head.startswith(FILE_MAGIC) or (
        path.suffix.lower() == ".evtx" and CHUNK_MAGIC in head[: HEADER_SIZE + 8]
    )
