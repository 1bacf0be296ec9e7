"""Build a large Sysmon EVTX corpus out of copies of the chunks of real Sysmon EVTX samples.

Sources (read in place, never copied): ``evtx_attack_samples/*.evtx``,
``hayabusa_sample_evtx/Sysmon-27-*.evtx`` and ``sigma_regression/*/*.evtx`` under the shared data
directory (``../shared/data`` by default). Every 64 KiB chunk of an EVTX file is self-contained
(its own string and template tables, chunk-relative offsets), so an output file is a fresh
4096-byte file header followed by patched copies of source chunks, emitted in rounds:

* round ``k`` copies every "full" source chunk (>= 32 records) and, when ``k % 10 == 0``, the
  sparse ones (a file's last, partly written chunk; the one-record sigma files), which keeps the
  corpus as dense as a real log (~40 records per chunk) instead of 1 record per 64 KiB;
* files are cut at chunk boundaries once they hold ``--file-events`` records; the corpus stops at
  the first chunk boundary at or above ``--events``.

How the records of a copy are varied (so that no two records share the ingest's de-duplication
key (Computer, Channel, Provider, EventID, EventRecordID, TimeCreated)):

* EventRecordID: every record of the corpus gets a new, globally unique id, sequential from 1
  across the files in order. pyevtx-rs renders ``System/EventRecordID`` from the template's
  substitution value (not from the record header: the sigma samples have header id 1 and
  EventRecordID 11867155), so both the record header's id and that UInt64 substitution value are
  rewritten, plus the chunk header's first/last record number and id;
* TimeCreated: the FILETIME substitution behind ``System/TimeCreated/@SystemTime`` and the record
  header's written time are moved forward by ``k`` minutes in round ``k`` (the Sysmon
  ``EventData/UtcTime`` string is left as it is);
* Computer: in round ``k >= 1`` the last 3 characters of the host's first DNS label are replaced
  with ``k`` in base 36 (same length, case kept: ``MSEDGEWIN10`` -> ``MSEDGEWI00A``), wherever
  the Computer element's text is, a literal UTF-16LE string inside the chunk's template
  definition (the case in these samples) or a substitution value. Round 0 keeps the real names.

The chunk's event-records CRC32 and header CRC32 and the file header (chunk count, last chunk
number, next record id, CRC32) are recomputed. The output is deterministic. ``--verify`` parses
every output file with pyevtx-rs (``validate_checksums=True``) and checks the record count, that
the header id equals the rendered EventRecordID, and that (Computer, EventRecordID, TimeCreated)
is unique over the corpus.

Usage::

    .venv/bin/python bench/evtx_corpus.py --events N --out DIR [--file-events M] [--verify]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE_GLOBS = (
    "evtx_attack_samples/*.evtx",
    "hayabusa_sample_evtx/Sysmon-27-*.evtx",
    "sigma_regression/*/*.evtx",
)
FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
RECORDS_START = 0x200
FULL_CHUNK_RECORDS = 32
SPARSE_EVERY = 10
ROUND_SHIFT = 60 * 10_000_000  # one minute in FILETIME units (100 ns)
NAME_SUFFIX = 3
MANIFEST = "corpus.json"
BUILDER_VERSION = 1

U16, U32, U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


class FormatError(Exception):
    """A source chunk this builder cannot patch safely."""


@dataclass
class Template:
    record_id_sub: int | None = None
    time_sub: int | None = None
    computer_sub: int | None = None
    computer_literals: list[tuple[int, int]] = field(default_factory=list)  # (offset, chars)


@dataclass
class SourceChunk:
    source: str
    index: int
    data: bytes
    records: list[int]  # offset of each record in the chunk
    record_id_values: list[int]  # offset of each record's EventRecordID value (8 bytes)
    time_values: list[int]  # offsets of TimeCreated FILETIME values
    computers: list[tuple[int, int]]  # (offset, chars) of every Computer string
    free: int


def _name(data: bytes, pos: int) -> tuple[str, int]:
    """Read a name reference at ``pos``; return the name and the position after it."""
    ref = U32.unpack_from(data, pos)[0]
    pos += 4
    chars = U16.unpack_from(data, ref + 6)[0]
    name = data[ref + 8 : ref + 8 + 2 * chars].decode("utf-16-le")
    if ref == pos:  # defined inline: next offset, hash, count, chars, NUL
        pos += 8 + 2 * chars + 2
    return name, pos


def _walk_template(data: bytes, pos: int, end: int) -> Template:
    """Find where EventRecordID, TimeCreated/@SystemTime and Computer come from."""
    tpl = Template()
    stack: list[str] = []
    attr: str | None = None
    while pos < end:
        token = data[pos]
        base = token & 0xBF
        if base == 0x00:
            break
        if base == 0x0F:  # fragment header
            pos += 4
        elif base == 0x01:  # open start element: dependency id, data size, name
            name, pos = _name(data, pos + 7)
            pos += 4 if token & 0x40 else 0
            stack.append(name)
            attr = None
        elif base == 0x02:
            pos, attr = pos + 1, None
        elif base in (0x03, 0x04):
            stack.pop()
            pos, attr = pos + 1, None
        elif base == 0x05:  # value text
            if data[pos + 1] != 0x01:
                raise FormatError(f"template value of type {data[pos + 1]:#x}")
            chars = U16.unpack_from(data, pos + 2)[0]
            if stack and stack[-1] == "Computer" and attr is None:
                tpl.computer_literals.append((pos + 4, chars))
            pos += 4 + 2 * chars
        elif base == 0x06:
            attr, pos = _name(data, pos + 1)
        elif base in (0x0D, 0x0E):
            index = U16.unpack_from(data, pos + 1)[0]
            where = (stack[-1] if stack else "", attr)
            if where == ("EventRecordID", None):
                tpl.record_id_sub = index
            elif where == ("TimeCreated", "SystemTime"):
                tpl.time_sub = index
            elif where == ("Computer", None):
                tpl.computer_sub = index
            pos += 4
        elif base in (0x07, 0x0B):
            pos += 3 + 2 * U16.unpack_from(data, pos + 1)[0]
        elif base == 0x08:
            pos += 3
        elif base in (0x09, 0x0A):
            _, pos = _name(data, pos + 1)
        else:
            raise FormatError(f"BinXML token {token:#x} at {pos:#x}")
    return tpl


def _template_at(data: bytes, offset: int, cache: dict[int, Template]) -> Template:
    if offset not in cache:
        size = U32.unpack_from(data, offset + 20)[0]
        cache[offset] = _walk_template(data, offset + 24, offset + 24 + size)
    return cache[offset]


def scan_chunk(data: bytes, source: str, index: int) -> SourceChunk:
    """Locate every field a copy must rewrite; raise FormatError if something is missing."""
    first, last = struct.unpack_from("<QQ", data, 8)
    free = U32.unpack_from(data, 0x30)[0]
    if zlib.crc32(data[RECORDS_START:free]) != U32.unpack_from(data, 0x34)[0]:
        raise FormatError("event records CRC32 mismatch")
    chunk = SourceChunk(source, index, data, [], [], [], [], free)
    templates: dict[int, Template] = {}
    pos = RECORDS_START
    while pos < free:
        if data[pos : pos + 4] != b"**\x00\x00":
            raise FormatError(f"no record signature at {pos:#x}")
        size = U32.unpack_from(data, pos + 4)[0]
        body = pos + 24
        if data[body] != 0x0F or data[body + 4] != 0x0C:
            raise FormatError(f"record at {pos:#x} is not one template instance")
        ref = U32.unpack_from(data, body + 10)[0]
        cur = body + 14
        tpl = _template_at(data, ref, templates)
        if ref == cur:  # inline definition: next offset, GUID, size, data
            cur += 24 + U32.unpack_from(data, cur + 20)[0]
        count = U32.unpack_from(data, cur)[0]
        cur += 4
        values: list[tuple[int, int, int]] = []  # (offset, size, type) of each substitution
        for vsize, vtype in [struct.unpack_from("<HB", data, cur + 4 * i) for i in range(count)]:
            values.append((cur + 4 * count, vsize, vtype))
            cur += vsize
        cur += 4 * count
        if cur > pos + size - 4:
            raise FormatError(f"record at {pos:#x}: substitutions overrun the record")
        found: list[int] = []  # offsets of the EventRecordID (UInt64) and FILETIME values
        for sub, vtype, vsize in (tpl.record_id_sub, 0x0A, 8), (tpl.time_sub, 0x11, 8):
            if sub is None or sub >= count or values[sub][1:] != (vsize, vtype):
                raise FormatError(f"record at {pos:#x}: no EventRecordID/TimeCreated value")
            found.append(values[sub][0])
        chunk.records.append(pos)
        chunk.record_id_values.append(found[0])
        chunk.time_values.append(found[1])
        if tpl.computer_sub is not None and tpl.computer_sub < count:
            off, vsize, _ = values[tpl.computer_sub]
            text = data[off : off + vsize].decode("utf-16-le")
            chunk.computers.append((off, len(text.rstrip("\x00"))))
        pos += size
    if len(chunk.records) != last - first + 1:
        raise FormatError(f"{len(chunk.records)} records, header says {last - first + 1}")
    for tpl in templates.values():
        chunk.computers.extend(tpl.computer_literals)
    if not chunk.computers:
        raise FormatError("no Computer string found")
    return chunk


def load_sources(data_dir: Path) -> list[SourceChunk]:
    """Every usable chunk of the source files, in a fixed order."""
    chunks: list[SourceChunk] = []
    for pattern in SOURCE_GLOBS:
        for path in sorted(data_dir.glob(pattern)):
            raw = path.read_bytes()
            label = str(path.relative_to(data_dir))
            for index in range((len(raw) - FILE_HEADER_SIZE) // CHUNK_SIZE):
                start = FILE_HEADER_SIZE + index * CHUNK_SIZE
                data = raw[start : start + CHUNK_SIZE]
                if data[:8] != b"ElfChnk\x00":
                    continue
                try:
                    chunks.append(scan_chunk(data, label, index))
                except FormatError as exc:
                    print(f"skipped {label} chunk {index}: {exc}", file=sys.stderr)
    if not chunks:
        raise SystemExit(f"no usable Sysmon EVTX chunks under {data_dir}")
    return chunks


def variant_name(name: str, variant: int) -> str:
    """The host name for round ``variant``: same length, last 3 chars of the first label."""
    if variant == 0:
        return name
    label, dot, rest = name.partition(".")
    width = min(NAME_SUFFIX, len(label) - 1)
    digits = ""
    value = variant % 36**width
    for _ in range(width):
        value, digit = divmod(value, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
    if label.islower():
        digits = digits.lower()
    return label[: len(label) - width] + digits + dot + rest


def copy_chunk(src: SourceChunk, variant: int, first_id: int, names: dict[str, str]) -> bytes:
    """A patched copy of ``src``: record ids from ``first_id``, round ``variant`` time and host."""
    out = bytearray(src.data)
    shift = variant * ROUND_SHIFT
    for i, (rec, id_value, time_value) in enumerate(
        zip(src.records, src.record_id_values, src.time_values, strict=True)
    ):
        rid = first_id + i
        U64.pack_into(out, rec + 8, rid)
        U64.pack_into(out, id_value, rid)
        U64.pack_into(out, rec + 16, U64.unpack_from(out, rec + 16)[0] + shift)
        U64.pack_into(out, time_value, U64.unpack_from(out, time_value)[0] + shift)
    if variant:
        for off, chars in src.computers:
            old = src.data[off : off + 2 * chars].decode("utf-16-le")
            new = names.get(old)
            if new is None:
                new = names[old] = variant_name(old, variant)
            out[off : off + 2 * chars] = new.encode("utf-16-le")
    last_id = first_id + len(src.records) - 1
    struct.pack_into("<QQQQ", out, 8, first_id, last_id, first_id, last_id)
    U32.pack_into(out, 0x34, zlib.crc32(out[RECORDS_START : src.free]))
    U32.pack_into(out, 0x7C, zlib.crc32(out[0x80:RECORDS_START], zlib.crc32(out[:0x78])))
    return bytes(out)


def file_header(chunks: int, next_id: int) -> bytes:
    """A clean EVTX 3.1 file header for ``chunks`` chunks."""
    head = bytearray(FILE_HEADER_SIZE)
    fields = (b"ElfFile\x00", 0, chunks - 1, next_id, 128, 1, 3, FILE_HEADER_SIZE, chunks)
    struct.pack_into("<8sQQQIHHHH", head, 0, *fields)
    U32.pack_into(head, 0x7C, zlib.crc32(head[:0x78]))
    return bytes(head)


@dataclass
class Corpus:
    files: list[Path]
    events: int
    bytes: int
    rounds: int


def build_corpus(
    events: int, out: Path, file_events: int = 250_000, data_dir: Path = DEFAULT_DATA
) -> Corpus:
    """Write ``sysmon-NNNN.evtx`` files holding >= ``events`` records, and ``corpus.json``."""
    sources = load_sources(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    next_id, variant, total, size = 1, 0, 0, 0
    fh: BinaryIO | None = None
    file_chunks = file_records = 0

    def close() -> None:  # the file header goes in last, once the counts are known
        nonlocal fh, size, file_chunks, file_records
        assert fh is not None
        fh.seek(0)
        fh.write(file_header(file_chunks, next_id))
        fh.close()
        size += files[-1].stat().st_size
        fh, file_chunks, file_records = None, 0, 0

    while total < events:
        names: dict[str, str] = {}
        for src in sources:
            if total >= events:
                break
            if len(src.records) < FULL_CHUNK_RECORDS and variant % SPARSE_EVERY:
                continue
            if fh is None:
                files.append(out / f"sysmon-{len(files):04d}.evtx")
                fh = files[-1].open("wb")
                fh.write(bytes(FILE_HEADER_SIZE))
            fh.write(copy_chunk(src, variant, next_id, names))
            next_id += len(src.records)
            total += len(src.records)
            file_records += len(src.records)
            file_chunks += 1
            if file_records >= file_events or file_chunks == 0xFFFF:
                close()
        variant += 1
    if fh is not None:
        close()
    manifest = dict(
        builder_version=BUILDER_VERSION,
        events_requested=events,
        events=total,
        file_events=file_events,
        rounds=variant,
        bytes=size,
        files=[p.name for p in files],
    )
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return Corpus(files, total, size, variant)


def verify(files: list[Path], expected: int) -> list[str]:
    """Parse ``files`` with pyevtx-rs; return the problems found (empty when all is well)."""
    from evtx import PyEvtxParser

    problems: list[str] = []
    keys: set[tuple[str, int, str]] = set()
    count = 0
    for path in files:
        try:
            parser = PyEvtxParser(str(path), validate_checksums=True)
            for item in parser.records_json():
                record = cast(dict[str, Any], item)
                system = json.loads(record["data"])["Event"]["System"]
                rid = system["EventRecordID"]
                if rid != record["event_record_id"]:
                    problems.append(f"{path.name}: header id {record['event_record_id']} != {rid}")
                keys.add(
                    (system["Computer"], rid, system["TimeCreated"]["#attributes"]["SystemTime"])
                )
                count += 1
        except RuntimeError as exc:
            problems.append(f"{path.name}: parser error: {exc}")
    if count != expected:
        problems.append(f"parsed {count} records, expected {expected}")
    if len(keys) != count:
        problems.append(f"{count - len(keys)} records share (Computer, EventRecordID, TimeCreated)")
    return problems[:20]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, required=True, help="at least this many records")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--file-events", type=int, default=250_000, help="records per file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data directory")
    parser.add_argument("--verify", action="store_true", help="parse the output and check it")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    corpus = build_corpus(args.events, args.out, args.file_events, args.data)
    elapsed = time.perf_counter() - started
    for path in corpus.files:
        print(f"{path}  {path.stat().st_size / 2**20:8.1f} MiB")
    print(
        f"wrote {corpus.events:,} events in {len(corpus.files)} files, "
        f"{corpus.bytes / 2**30:.2f} GiB, {corpus.rounds} rounds, in {elapsed:.1f}s"
    )
    if args.verify:
        started = time.perf_counter()
        problems = verify(corpus.files, corpus.events)
        took = time.perf_counter() - started
        for problem in problems:
            print(f"verify: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(
            f"verified in {took:.1f}s: {corpus.events:,} records parse with checksums on, "
            "(Computer, EventRecordID, TimeCreated) all distinct"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
