"""Seed telemetry files and the byte-level mutations the reader fuzzers apply to them.

Seeds are small real files from ``../shared/data`` (one of each format it holds; bigger ones
cut to their first records, at a record boundary) and the Defender Event Hub sample shipped
in the repository. Mutations are the damage a triage folder really shows (files cut short,
bit rot, two files glued together, EVTX chunks copied or moved) and the bytes an attacker
chooses (NULs, invalid UTF-8, terminal escapes, nesting thousands deep).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
SAMPLES = REPO / "src" / "trustwatch" / "content" / "samples" / "hunt"

EVTX_HEADER = 4096
EVTX_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Seed:
    """A seed file: a name (its suffix is the file's), its bytes, where it came from."""

    name: str
    data: bytes
    origin: str


def _first_lines(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        return b"".join(f.readline() for _ in range(n))


def _first_events(path: Path, n: int) -> bytes:
    """The first ``n`` ``<Event ...>...</Event>`` elements of a concatenated-XML file."""
    data = path.read_bytes()
    end = 0
    for _ in range(n):
        found = data.find(b"</Event>", end)
        if found < 0:
            break
        end = found + len(b"</Event>")
    return data[:end] + b"\n"


def _small_zip(path: Path, lines: int) -> bytes:
    """A zip holding the first ``lines`` lines of each JSON member of ``path`` (at most two)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        members = [m for m in src.infolist() if not m.is_dir()][:2]
        for member in members:
            with src.open(member) as f:
                dst.writestr(member.filename, b"".join(f.readline() for _ in range(lines)))
    return out.getvalue()


# (seed name, origin relative to ../shared/data, how to make the seed's bytes from it)
_SHARED_SEEDS = [
    ("certutil-4688.evtx", "evtx_to_mitre_attack/ID4688-Certutil download.evtx", None),
    (
        "sysmon-27.evtx",
        "hayabusa_sample_evtx/Sysmon-27-BlockExeWrite_AbusingCertutil.evtx",
        None,
    ),
    (
        "sigma.json",
        "sigma_regression/proc_creation_win_certutil_encode/"
        "e62a9f0c-ca1e-46b2-85d5-a6da77f86d1a.json",
        None,
    ),
    ("splunk.raw", "splunk_attack_data/certutil_exe_certificate_extraction.raw", "events"),
    ("flat.jsonl", "extracted/cert_related_events.jsonl", "lines"),
    ("otrf.zip", "otrf_security_datasets/covenant_wmi_wbemcomn_dll_hijack.zip", "zip"),
]


@cache
def seeds() -> tuple[Seed, ...]:
    """Every seed: the ``../shared/data`` ones when it is there, and the repository's sample."""
    out = []
    if DATA.is_dir():
        for name, relative, cut in _SHARED_SEEDS:
            path = DATA / relative
            if not path.is_file():
                continue
            if cut == "events":
                data = _first_events(path, 4)
            elif cut == "lines":
                data = _first_lines(path, 12)
            elif cut == "zip":
                data = _small_zip(path, 8)
            else:
                data = path.read_bytes()
            out.append(Seed(name, data, f"../shared/data/{relative}"))
    sample = SAMPLES / "benign-zscaler-root-install.defender.json"
    out.append(Seed("defender.json", sample.read_bytes(), str(sample.relative_to(REPO))))
    return tuple(out)


def shared_seeds_present() -> bool:
    return any(s.origin.startswith("../shared/") for s in seeds())


# --- mutations -----------------------------------------------------------------------------------

# (bytes, times): what an insert writes; kept as a pair so that a failing case prints short
HOSTILE: list[tuple[bytes, int]] = [
    (b"\x00", 1),
    (b"\x00", 4096),
    (b"\xff\xfe", 1),
    (b"\xc3\x28", 1),  # a broken two-byte sequence
    (b"\xed\xa0\x80", 1),  # a UTF-16 surrogate in UTF-8
    (b"\xf4\x90\x80\x80", 1),  # past U+10FFFF
    (b"\x1b]0;owned\x07\x1b[2J", 1),  # set the window title, clear the screen
    (b"\xe2\x80\xae", 1),  # RIGHT-TO-LEFT OVERRIDE
    (b"\r\n", 1),
    (b'"', 1),
    (b"\\", 1),
    (b"\\u0000", 1),
    (b"\\ud800", 1),
    (b"</Event>", 1),
    (b"<Event>", 1),
    (b"]]>", 1),
    (b"<!DOCTYPE a [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", 1),
    (b'{"Event": ', 1),
    (b"9", 400),
    (b"1e99999", 1),
]
# nesting: opening brackets (JSON arrays or objects, XML elements, parentheses), unclosed
NESTING = [b"[", b'{"a":', b"<a>", b"(", b'{"Event":{"EventData":']
DEPTHS = [2, 70, 1_000, 20_000]
KINDS = [
    "truncate",
    "flip",
    "insert",
    "nest",
    "splice",
    "duplicate",
    "swap",
    "delete",
    "zero",
    "evtx-chunk",
    "entity",
]
# an XML external entity (file:// and an entity bomb) declared before the file and used in it
DOCTYPE = (
    b"<!DOCTYPE Event [<!ENTITY x SYSTEM 'file:///etc/passwd'><!ENTITY a 'aaaaaaaaaa'>"
    b"<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
)


@dataclass(frozen=True, slots=True)
class Edit:
    """One edit: its kind, three numbers (offsets, sizes, masks) and what it inserts."""

    kind: str
    a: int
    b: int
    c: int
    payload: bytes = b""
    times: int = 1


@dataclass(frozen=True, slots=True)
class Recipe:
    """A mutated file, as the seed it starts from and the edits made to it (prints short)."""

    seed: str
    other: str  # the seed a ``splice`` glues on
    edits: tuple[Edit, ...]

    def build(self) -> bytes:
        by_name = {s.name: s.data for s in seeds()}
        data = by_name[self.seed]
        for edit in self.edits:
            data = apply(data, edit, by_name[self.other])
        return data


@st.composite
def edits(draw: DrawFn) -> Edit:
    kind = draw(st.sampled_from(KINDS))
    a, b, c = (draw(st.integers(0, 1 << 20)) for _ in range(3))
    if kind == "insert":
        payload, times = draw(
            st.one_of(
                st.sampled_from(HOSTILE), st.tuples(st.binary(min_size=1, max_size=32), st.just(1))
            )
        )
        return Edit(kind, a, b, c, payload, times)
    if kind == "nest":
        return Edit(kind, a, b, c, draw(st.sampled_from(NESTING)), draw(st.sampled_from(DEPTHS)))
    return Edit(kind, a, b, c)


def _at(data: bytes, offset: int) -> int:
    return offset % (len(data) + 1)


def apply(data: bytes, edit: Edit, other: bytes) -> bytes:
    """``data`` with one edit applied (``other`` is the file ``splice`` glues on)."""
    kind, a, b, c = edit.kind, edit.a, edit.b, edit.c
    i, j = sorted((_at(data, a), _at(data, b)))
    if kind == "truncate":
        return data[:i]
    if kind == "flip":
        n = 1 + c % 16
        flipped = bytes(x ^ (1 + (c >> 4) % 255) for x in data[i : i + n])
        return data[:i] + flipped + data[i + n :]
    if kind in ("insert", "nest"):
        return data[:i] + edit.payload * edit.times + data[i:]
    if kind == "splice":
        return data[:i] + other[_at(other, c) :]
    if kind == "duplicate":
        return data[:j] + data[i:j] + data[j:]
    if kind == "swap":
        k = _at(data, c)
        i, j, k = sorted((i, j, k))
        return data[:i] + data[j:k] + data[i:j] + data[k:]
    if kind == "delete":
        return data[:i] + data[j:]
    if kind == "zero":
        return data[:i] + bytes(j - i) + data[j:]
    if kind == "entity":
        use = b"&x;&c;" if c % 2 else b"&c;&x;"
        return DOCTYPE + data.replace(b"</Data>", use + b"</Data>", 1 + c % 3)
    return _evtx_chunks(data, a, b, c)


def _evtx_chunks(data: bytes, a: int, b: int, c: int) -> bytes:
    """A chunk-aligned EVTX edit: duplicate, drop or cut a chunk, or zero the file header."""
    chunks = [data[k : k + EVTX_CHUNK] for k in range(EVTX_HEADER, len(data), EVTX_CHUNK)]
    chunks = chunks or [b""]
    header = data[:EVTX_HEADER]
    chunk = chunks[a % len(chunks)]
    op = b % 4
    if op == 0:
        chunks.insert(c % (len(chunks) + 1), chunk)
    elif op == 1 and len(chunks) > 1:
        chunks.remove(chunk)
    elif op == 2:
        chunks[a % len(chunks)] = chunk[: 512 + c % max(1, len(chunk) - 512)]
    else:
        header = bytes(len(header))
    return header + b"".join(chunks)


@st.composite
def recipes(draw: DrawFn, max_edits: int = 3) -> Recipe:
    """A seed and 1 to ``max_edits`` edits of it."""
    names = [s.name for s in seeds()]
    seed, other = draw(st.sampled_from(names)), draw(st.sampled_from(names))
    return Recipe(seed, other, tuple(draw(st.lists(edits(), min_size=1, max_size=max_edits))))
