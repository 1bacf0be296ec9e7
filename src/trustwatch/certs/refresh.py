"""Refreshing the reference lists from files the user supplies: never from the network.

``update_intel`` reads each file, tells its kind from its content, checks every row (a bad row is
reported with ``file:line`` and left out; the good rows are kept), and stores a normalised copy
with a manifest in the user data directory. ``read_imported`` turns that directory back into list
entries for ``intel.load_intel``. Third-party lists (abuse.ch SSLBL has terms of use) therefore
live only in the user's own directory, never in the package.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from trustwatch.certs.model import (
    IntelEntry,
    IntelSource,
    Verdict,
    load_pem,
    normalise_serial,
    root_entry,
    sha1_of,
)
from trustwatch.certs.names import keys_of_text
from trustwatch.errors import InputError

IntelKind = Literal["sha1-list", "roots-csv", "sslbl", "pem-bundle"]
KINDS: tuple[IntelKind, ...] = get_args(IntelKind)
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1

_SHA1 = re.compile(r"[0-9A-Fa-f]{40}")
_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
_SERIAL = re.compile(r"-?[0-9A-Fa-f]+")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_LISTED = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?")
_SSLBL_ROW = re.compile(r"\d{4}-\d{2}-\d{2}[ T][\d:]+,[0-9A-Fa-f]{40},")
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
ROOTS_CSV_HEADER = ("sha1", "sha256", "subject", "serial_hex", "not_after")
SSLBL_HEADER = "# Listingdate,SHA1,Listingreason"


def default_data_dir() -> Path:
    """Where imported lists live: ``$TRUSTWATCH_DATA_DIR/certs``, else the XDG data home's.

    ``$XDG_DATA_HOME/trustwatch/certs`` when that variable is set, else
    ``~/.local/share/trustwatch/certs`` (the XDG default).
    """
    explicit = os.environ.get("TRUSTWATCH_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser() / "certs"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "trustwatch" / "certs"


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was left out, and why."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRow:
    """One good row of any kind of list (fields a kind lacks stay empty)."""

    line: int
    sha1: str = ""
    sha256: str = ""
    subject: str = ""
    serial: str = ""
    not_after: str = ""
    listed: str = ""
    reason: str = ""
    certificate: x509.Certificate | None = None


@dataclass(frozen=True, slots=True)
class ParsedList:
    """A file read as one kind of list: its good rows, its bad rows, and its as-of date."""

    kind: IntelKind
    rows: tuple[ListRow, ...]
    problems: tuple[RowProblem, ...]
    as_of: str = ""  # from the file's own header, when it has one
    as_of_basis: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedFile:
    """One manifest record: what was imported, from which file, when, and how much of it."""

    file: str  # the input's file name
    stored: str  # the normalised copy, relative to the data directory
    kind: IntelKind
    rows: int
    bad_rows: int
    sha256: str  # of the input file's bytes
    imported: str  # ISO 8601 UTC
    as_of: str  # YYYY-MM-DD: the list's own date, else the date in its name, else import day
    as_of_basis: str  # "file header", "file name" or "import date"

    def source(self) -> IntelSource:
        """The list as a source of intel entries."""
        note = f"{self.kind}, {self.rows} rows, imported {self.imported[:10]} ({self.as_of_basis})"
        return IntelSource(name=self.file, date=self.as_of, origin="imported", note=note)


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """What ``update_intel`` stored, and every row it left out."""

    data_dir: Path
    files: tuple[ImportedFile, ...]
    problems: tuple[RowProblem, ...]


@dataclass(frozen=True, slots=True)
class ImportedIntel:
    """Entries of every imported list, and the lists as sources."""

    entries: tuple[IntelEntry, ...] = ()
    sources: tuple[IntelSource, ...] = ()


# --- telling kinds apart ----------------------------------------------------------------------


def detect_kind(text: str, name: str = "<file>") -> IntelKind:
    """The kind of list a file holds, from its content (never its name).

    Raises:
        InputError: when the content is none of the supported kinds.
    """
    if _PEM_BEGIN in text:
        return "pem-bundle"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    comments = [line.lower().replace(" ", "") for line in lines if line.startswith("#")]
    data = [line for line in lines if not line.startswith("#")]
    if any("listingdate,sha1" in c or "sslbl" in c for c in comments):
        return "sslbl"
    if data and _is_roots_header(data[0]):
        return "roots-csv"
    sample = data[:50]
    if sample and _mostly(sample, lambda s: _SSLBL_ROW.match(s) is not None):
        return "sslbl"
    if sample and _mostly(sample, lambda s: _SHA1.fullmatch(_clean_hex(s)) is not None):
        return "sha1-list"
    raise InputError(
        f"{name}: cannot tell what list this is",
        hint="supported: one SHA-1 per line; a CSV with header sha1,sha256,subject,serial_hex,"
        "not_after; an abuse.ch SSLBL CSV (Listingdate,SHA1,Listingreason); a PEM bundle",
    )


def _is_roots_header(line: str) -> bool:
    columns = [c.strip().lower() for c in line.split(",")]
    return "sha1" in columns and "subject" in columns


def _mostly(lines: Sequence[str], test: Callable[[str], bool]) -> bool:
    # a few bad rows must not hide the kind of a file: most of the sampled rows decide
    return sum(1 for line in lines if test(line)) * 2 > len(lines)


def _clean_hex(text: str) -> str:
    return re.sub(r"[\s:]", "", text)


# --- parsing each kind ------------------------------------------------------------------------


def parse_list(text: str, name: str, kind: IntelKind | None = None) -> ParsedList:
    """Read a list's text; its kind is detected unless given.

    Raises:
        InputError: when the kind cannot be told, or a CSV lacks its header columns.
    """
    kind = kind or detect_kind(text, name)
    parsed = PARSERS[kind](text, name)
    return _deduplicated(parsed, name)


def _parse_sha1_list(text: str, name: str) -> ParsedList:
    rows, problems = [], []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        digest = _clean_hex(line)
        if _SHA1.fullmatch(digest):
            rows.append(ListRow(line=line_no, sha1=digest.upper()))
        else:
            problems.append(RowProblem(name, line_no, f"not a SHA-1 (40 hex digits): {line!r}"))
    return ParsedList("sha1-list", tuple(rows), tuple(problems))


def _parse_roots_csv(text: str, name: str) -> ParsedList:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows, problems = [], []
    previous_end = 0
    for record in reader:
        line_no, previous_end = previous_end + 1, reader.line_num
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in record]
            missing = {"sha1", "subject"} - set(header)
            if missing:
                raise InputError(f"{name}:{line_no}: header lacks {', '.join(sorted(missing))}")
            continue
        values = dict(zip(header, (v.strip() for v in record), strict=False))
        row, problem = _roots_row(values, line_no, len(record) == len(header))
        if problem:
            problems.append(RowProblem(name, line_no, problem))
        elif row:
            rows.append(row)
    return ParsedList("roots-csv", tuple(rows), tuple(problems))


def _roots_row(values: dict[str, str], line: int, complete: bool) -> tuple[ListRow | None, str]:
    sha1, sha256 = values.get("sha1", ""), values.get("sha256", "")
    serial, not_after = values.get("serial_hex", ""), values.get("not_after", "")
    checks = (
        (not complete, "wrong number of columns"),
        (not _SHA1.fullmatch(sha1), f"sha1 is not 40 hex digits: {sha1!r}"),
        (sha256 and not _SHA256.fullmatch(sha256), f"sha256 is not 64 hex digits: {sha256!r}"),
        (not values.get("subject"), "empty subject"),
        (serial and not _SERIAL.fullmatch(serial), f"serial_hex is not hex: {serial!r}"),
        (not_after and not _DAY.fullmatch(not_after), f"not_after is not a date: {not_after!r}"),
    )
    for failed, message in checks:
        if failed:
            return None, message
    return (
        ListRow(
            line=line,
            sha1=sha1.upper(),
            sha256=sha256.upper(),
            subject=values["subject"],
            serial=normalise_serial(serial) if serial else "",
            not_after=not_after,
        ),
        "",
    )


def _parse_sslbl(text: str, name: str) -> ParsedList:
    rows, problems = [], []
    as_of = ""
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            as_of = as_of or _sslbl_updated(line)
            continue
        if not line:
            continue
        fields = next(csv.reader([line]))
        listed, sha1 = (fields + ["", ""])[:2]
        reason = ",".join(fields[2:]).strip()
        problem = _sslbl_problem(listed.strip(), sha1.strip(), reason)
        if problem:
            problems.append(RowProblem(name, line_no, problem))
            continue
        row = ListRow(line=line_no, sha1=sha1.strip().upper(), listed=listed.strip(), reason=reason)
        rows.append(row)
    basis = "file header" if as_of else ""
    return ParsedList("sslbl", tuple(rows), tuple(problems), as_of, basis)


def _sslbl_updated(comment: str) -> str:
    if "last updated" not in comment.lower():
        return ""
    found = _DAY.search(comment)
    return found.group(0) if found else ""


def _sslbl_problem(listed: str, sha1: str, reason: str) -> str:
    if not _LISTED.fullmatch(listed):
        return f"Listingdate is not a date: {listed!r}"
    if not _SHA1.fullmatch(sha1):
        return f"SHA1 is not 40 hex digits: {sha1!r}"
    if not reason:
        return "empty Listingreason"
    return ""


def _parse_pem(text: str, name: str) -> ParsedList:
    rows, problems = [], []
    block: list[str] | None = None
    start = 0
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line == _PEM_BEGIN:
            if block is not None:
                problems.append(RowProblem(name, start, "certificate without an END line"))
            block, start = [line], line_no
        elif block is not None:
            block.append(line)
            if line == _PEM_END:
                row, problem = _pem_row("\n".join(block), start)
                if row:
                    rows.append(row)
                else:
                    problems.append(RowProblem(name, start, problem))
                block = None
    if block is not None:
        problems.append(RowProblem(name, start, "certificate without an END line"))
    return ParsedList("pem-bundle", tuple(rows), tuple(problems))


def _pem_row(pem: str, line: int) -> tuple[ListRow | None, str]:
    try:
        certs = load_pem(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        return None, f"not a readable certificate: {exc}"
    return ListRow(line=line, certificate=certs[0]), ""


PARSERS: dict[IntelKind, Callable[[str, str], ParsedList]] = {
    "sha1-list": _parse_sha1_list,
    "roots-csv": _parse_roots_csv,
    "sslbl": _parse_sslbl,
    "pem-bundle": _parse_pem,
}


def _deduplicated(parsed: ParsedList, name: str) -> ParsedList:
    """A second row with the same certificate is reported (pointing at the first), not kept."""
    seen: dict[str, int] = {}
    rows, problems = [], list(parsed.problems)
    for row in parsed.rows:
        key = row.sha1 or _cert_sha1(row)
        if key in seen:
            problems.append(RowProblem(name, row.line, f"duplicate of line {seen[key]}"))
            continue
        seen[key] = row.line
        rows.append(row)
    problems.sort(key=lambda p: p.line)
    return ParsedList(parsed.kind, tuple(rows), tuple(problems), parsed.as_of, parsed.as_of_basis)


def _cert_sha1(row: ListRow) -> str:
    return sha1_of(row.certificate) if row.certificate is not None else ""


# --- storing normalised copies ----------------------------------------------------------------


def _write_sha1_list(rows: Iterable[ListRow]) -> str:
    return "".join(f"{r.sha1}\n" for r in rows)


def _write_roots_csv(rows: Iterable[ListRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROOTS_CSV_HEADER)
    for r in rows:
        writer.writerow([r.sha1, r.sha256, r.subject, r.serial, r.not_after])
    return out.getvalue()


def _write_sslbl(rows: Iterable[ListRow]) -> str:
    out = io.StringIO()
    out.write(SSLBL_HEADER + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for r in rows:
        writer.writerow([r.listed, r.sha1.lower(), r.reason])
    return out.getvalue()


def _write_pem(rows: Iterable[ListRow]) -> str:
    return "".join(
        r.certificate.public_bytes(Encoding.PEM).decode("ascii")
        for r in rows
        if r.certificate is not None
    )


WRITERS: dict[IntelKind, tuple[str, Callable[[Iterable[ListRow]], str]]] = {
    "sha1-list": (".txt", _write_sha1_list),
    "roots-csv": (".csv", _write_roots_csv),
    "sslbl": (".csv", _write_sslbl),
    "pem-bundle": (".pem", _write_pem),
}


def update_intel(
    paths: Iterable[str | Path],
    data_dir: str | Path | None = None,
    *,
    now: datetime | None = None,
) -> UpdateReport:
    """Import list files into the data directory: validated, normalised, recorded in a manifest.

    Every file is read and checked before anything is written, so a file that cannot be used
    leaves the directory as it was. Importing a file of the same name and kind again replaces it.

    Args:
        paths: list files (kinds in ``KINDS``, told apart by content).
        data_dir: where to store them; default ``default_data_dir()``.
        now: the import time recorded in the manifest (default: the current UTC time).

    Returns:
        What was stored, with every bad row as ``file:line: message``.

    Raises:
        InputError: a file cannot be read, its kind cannot be told, or it has no good row.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    when = (now or datetime.now(UTC)).astimezone(UTC)
    prepared = [_prepare(Path(p), when) for p in paths]
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {f.stored: f for f in _read_manifest(directory)}
    for item in prepared:
        _write_atomic(directory / item.record.stored, item.text)
        manifest[item.record.stored] = item.record
    _write_manifest(directory, list(manifest.values()))
    return UpdateReport(
        directory,
        tuple(item.record for item in prepared),
        tuple(p for item in prepared for p in item.problems),
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    record: ImportedFile
    text: str  # the normalised copy
    problems: tuple[RowProblem, ...]


def _prepare(path: Path, when: datetime) -> _Prepared:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    text = data.decode("utf-8-sig", errors="replace")
    parsed = parse_list(text, str(path))
    if not parsed.rows:
        first = f"; first: {parsed.problems[0]}" if parsed.problems else ""
        raise InputError(f"{path}: no usable rows ({len(parsed.problems)} bad){first}")
    as_of, basis = _as_of(parsed, path, when)
    ext, writer = WRITERS[parsed.kind]
    record = ImportedFile(
        file=path.name,
        stored=f"{parsed.kind}-{_slug(path.stem)}{ext}",
        kind=parsed.kind,
        rows=len(parsed.rows),
        bad_rows=len(parsed.problems),
        sha256=hashlib.sha256(data).hexdigest(),
        imported=when.isoformat().replace("+00:00", "Z"),
        as_of=as_of,
        as_of_basis=basis,
    )
    return _Prepared(record, writer(parsed.rows), parsed.problems)


def _as_of(parsed: ParsedList, path: Path, when: datetime) -> tuple[str, str]:
    """The list's own date (its header), else a date in its file name, else the import day."""
    if parsed.as_of:
        return parsed.as_of, parsed.as_of_basis
    found = _DAY.search(path.name)
    if found:
        return found.group(0), "file name"
    return when.date().isoformat(), "import date"


def _slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "list"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_manifest(directory: Path, files: list[ImportedFile]) -> None:
    doc = {
        "version": MANIFEST_VERSION,
        "note": "lists imported by trustwatch update_intel; the files beside this are normalised",
        "files": [asdict(f) for f in sorted(files, key=lambda f: f.stored)],
    }
    _write_atomic(directory / MANIFEST, json.dumps(doc, indent=2) + "\n")


# --- reading what was imported ----------------------------------------------------------------


def read_manifest(data_dir: str | Path) -> tuple[ImportedFile, ...]:
    """The manifest records of a data directory (none if it has no manifest).

    Raises:
        InputError: the manifest is not one ``update_intel`` wrote.
    """
    return tuple(_read_manifest(Path(data_dir)))


def _read_manifest(directory: Path) -> list[ImportedFile]:
    path = directory / MANIFEST
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the import manifest: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InputError(f"{path}: not a trustwatch import manifest (no 'files' list)")
    return [_manifest_record(path, i, raw) for i, raw in enumerate(doc["files"])]


def _manifest_record(path: Path, index: int, raw: Any) -> ImportedFile:
    fields = ImportedFile.__dataclass_fields__
    if not isinstance(raw, dict) or set(fields) - set(raw) or raw.get("kind") not in KINDS:
        raise InputError(f"{path}: file record {index + 1} is malformed: {raw!r}")
    values = {k: raw[k] for k in fields}
    values["kind"] = cast(IntelKind, raw["kind"])
    return ImportedFile(**values)


def read_imported(data_dir: str | Path) -> ImportedIntel:
    """Entries of every list imported into ``data_dir`` (nothing if it does not exist).

    Raises:
        InputError: the manifest or a stored copy is missing or malformed.
    """
    directory = Path(data_dir)
    entries: list[IntelEntry] = []
    sources: list[IntelSource] = []
    for record in _read_manifest(directory):
        stored = directory / record.stored
        try:
            text = stored.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"{stored}: listed in the manifest but unreadable: {exc.strerror or exc}",
                hint="import the list again with update_intel",
            ) from exc
        parsed = parse_list(text, str(stored), record.kind)
        if parsed.problems:
            raise InputError(f"stored list changed since import: {parsed.problems[0]}")
        source = record.source()
        sources.append(source)
        entries.extend(entries_of(parsed, source))
    return ImportedIntel(tuple(entries), tuple(sources))


def entries_of(parsed: ParsedList, source: IntelSource) -> list[IntelEntry]:
    """Intel entries of a parsed list, each naming ``source``."""
    kind = parsed.kind
    if kind == "pem-bundle":
        labels = ("public-root", "pem-bundle")
        return [root_entry(r.certificate, source, labels) for r in parsed.rows if r.certificate]
    if kind == "sslbl":
        return [
            IntelEntry(
                verdict=Verdict.KNOWN_BAD,
                source=source,
                sha1=r.sha1,
                reason=r.reason,
                listed=r.listed,
                labels=("known-bad", "sslbl"),
                name=f"SSLBL: {r.reason}",
            )
            for r in parsed.rows
        ]
    labels = ("public-root", kind)
    return [
        IntelEntry(
            verdict=Verdict.PUBLIC_ROOT,
            source=source,
            sha1=r.sha1,
            sha256=r.sha256,
            subject=r.subject,
            serial=r.serial,
            name=keys_of_text(r.subject).display if r.subject else "",
            labels=labels,
        )
        for r in parsed.rows
    ]
