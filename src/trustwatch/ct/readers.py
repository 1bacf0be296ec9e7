"""Reading certificate-transparency records: crt.sh JSON exports and certstream JSON lines.

Two shapes, told apart by the first character of the file (after a byte-order mark, and inside
gzip): ``[`` is a crt.sh export (``https://crt.sh/?q=...&output=json``: one array of objects with
``issuer_ca_id``, ``issuer_name``, ``common_name``, ``name_value`` - the names, one per line -,
``id``, ``entry_timestamp``, ``not_before``, ``not_after``, ``serial_number``), read element by
element; ``{`` is JSON lines, each a certstream message (``message_type: certificate_update``,
``data.leaf_cert.{subject, issuer, all_domains, not_before, not_after, serial_number,
fingerprint}``, ``data.cert_index``, ``data.seen``, ``data.source.{name, url}``), a message's
``data`` alone, or one crt.sh object. Other certstream messages (heartbeats) are counted and
passed over.

Records are read with the ingest readers' limits (``trustwatch.limits``: ``event-bytes`` for one
array element or line, ``depth``, ``fields``, ``records``): a record past one, or one that is not
JSON or not a certificate, is yielded as :class:`Skipped` with its line or record number, and the
file goes on. Only a file that is neither shape, or whose array breaks off, ends early.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from trustwatch.ct.cas import Issuer, issuer_of
from trustwatch.ingest.readers.defender import JsonError, JsonReader, dumps, json_lines
from trustwatch.ingest.readers.guard import fields_problem
from trustwatch.ingest.records import excerpt
from trustwatch.limits import current, exceeded

RefKind = Literal["record", "line", "file"]
_GZIP = b"\x1f\x8b"


@dataclass(frozen=True, slots=True, kw_only=True)
class CtEntry:
    """One certificate as a CT source logged it."""

    source: str  # "crt.sh" or "certstream"
    origin: str  # the file (or URL) it was read from
    ref_kind: RefKind
    ref: int  # 1-based record of a crt.sh array, or line of JSON lines
    names: tuple[str, ...]  # common name and SANs as logged, each once
    common_name: str
    issuer: Issuer
    serial: str  # upper-case hex, no leading zeros ("" if not logged)
    not_before: datetime | None
    not_after: datetime | None
    logged: datetime | None  # when the log saw it: crt.sh entry_timestamp, certstream seen
    crtsh_id: int | None = None
    cert_index: int | None = None  # certstream: index in its CT log
    log: str = ""  # certstream: the CT log's name or URL
    fingerprint: str = ""  # certstream: SHA-1 of the certificate, upper-case hex

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the alert's evidence row)."""
        return {
            "Source": self.source,
            "File": self.origin,
            "Ref": f"{self.ref_kind} {self.ref}",
            "CommonName": self.common_name,
            "Names": list(self.names),
            "Issuer": self.issuer.name,
            "SerialNumber": self.serial,
            "NotBefore": _iso(self.not_before),
            "NotAfter": _iso(self.not_after),
            "Logged": _iso(self.logged),
            "CrtShId": self.crtsh_id,
            "CertIndex": self.cert_index,
            "Log": self.log,
            "Fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record (or a whole file, ``ref_kind`` "file") that could not be read, and why."""

    origin: str
    ref_kind: RefKind
    ref: int
    reason: str
    excerpt: str = ""


@dataclass(frozen=True, slots=True)
class Passed:
    """A record read and passed over on purpose (a certstream heartbeat): counted, not an error."""

    origin: str
    ref: int
    what: str


Item = CtEntry | Skipped | Passed


def read_ct_file(path: Path) -> Iterator[Item]:
    """Every record of one file. An unreadable file is one :class:`Skipped` (ref_kind "file")."""
    origin = str(path)
    try:
        with path.open("rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head == _GZIP:
                with gzip.open(raw, "rb") as unzipped:
                    yield from read_ct_stream(unzipped, origin)  # type: ignore[arg-type]
            else:
                yield from read_ct_stream(raw, origin)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        yield Skipped(origin, "file", 0, f"cannot read: {reason or type(exc).__name__}")


def read_ct_stream(fh: BinaryIO, origin: str) -> Iterator[Item]:
    """Every record of an open crt.sh export or certstream JSON lines (a file or a response)."""
    first = _first_char(fh)
    if first == "[":
        yield from _crtsh_array(fh, origin)
    elif first == "{":
        yield from _json_lines(fh, origin)
    elif first:
        yield Skipped(
            origin,
            "file",
            0,
            "not a crt.sh JSON export (an array) or certstream JSON lines (objects)",
            excerpt(first),
        )
    else:
        yield Skipped(origin, "file", 0, "empty")


def _first_char(fh: BinaryIO) -> str:
    """The first character that is not white space or a byte-order mark; the file rewound."""
    head = fh.read(4096)
    fh.seek(0)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text[:1].decode("ascii", "replace")


def _crtsh_array(fh: BinaryIO, origin: str) -> Iterator[Item]:
    reader = JsonReader(fh)
    limits = current()
    cap = limits.records
    count = 0
    try:
        for count in reader.elements():
            if count > cap:
                reason = exceeded("records", cap, "records in one file")
                yield Skipped(origin, "record", count, reason + "; the rest is not read")
                return
            try:
                value = reader.value()
            except JsonError as exc:
                yield Skipped(origin, "record", count, exc.reason, excerpt(exc.raw))
                continue
            problem = fields_problem(value, limits, reader.bound)
            if problem:
                yield Skipped(origin, "record", count, problem, dumps(value))
                continue
            yield _entry_or_skip(value, origin, "record", count)
    except JsonError as exc:  # the array itself is broken: nothing after this can be read
        reason = f"the array breaks off after record {count}: {exc.reason}"
        yield Skipped(origin, "record", count + 1, reason, excerpt(exc.raw))
        return
    if reader.peek():
        rest = reader.buf[reader.pos : reader.pos + 200]
        yield Skipped(origin, "record", count + 1, "text after the array's end: not read", rest)


def _json_lines(fh: BinaryIO, origin: str) -> Iterator[Item]:
    cap = current().records
    read = 0
    for number, _, value in json_lines(fh):
        read += 1
        if read > cap:
            reason = exceeded("records", cap, "records in one file")
            yield Skipped(origin, "line", number, reason + "; the rest is not read")
            return
        if isinstance(value, JsonError):
            yield Skipped(origin, "line", number, value.reason, value.raw)
            continue
        yield _entry_or_skip(value, origin, "line", number)


def _entry_or_skip(value: Any, origin: str, ref_kind: RefKind, ref: int) -> Item:
    result = entry_of(value, origin, ref_kind, ref)
    if isinstance(result, str):
        if result.startswith("passed:"):
            return Passed(origin, ref, result.removeprefix("passed:").strip())
        return Skipped(origin, ref_kind, ref, result, dumps(value))
    return result


def entry_of(value: Any, origin: str, ref_kind: RefKind, ref: int) -> CtEntry | str:
    """A decoded record as a :class:`CtEntry`, or why it is not one (``passed: ...`` for a
    certstream message that is not a certificate)."""
    if not isinstance(value, dict):
        return f"not a JSON object but {_kind(value)}"
    if "name_value" in value or "issuer_ca_id" in value:
        return crtsh_entry(value, origin, ref_kind, ref)
    message = value.get("message_type")
    if message is not None and message != "certificate_update":
        return f"passed: certstream {_text(message) or 'message'} message"
    data = value.get("data") if "data" in value else value
    if not isinstance(data, dict) or not isinstance(data.get("leaf_cert"), dict):
        return "neither a crt.sh record (name_value) nor a certstream certificate (leaf_cert)"
    return certstream_entry(data, origin, ref_kind, ref)


def crtsh_entry(row: Mapping[str, Any], origin: str, ref_kind: RefKind, ref: int) -> CtEntry | str:
    """One object of a crt.sh JSON export, or why it cannot be read."""
    for key in ("name_value", "common_name", "issuer_name", "serial_number"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"crt.sh field {key!r} is {_kind(row[key])}, not text"
    common = row.get("common_name") or ""
    names = _unique([common, *str(row.get("name_value") or "").splitlines()])
    if not names:
        return "crt.sh record without a name (no common_name or name_value)"
    crtsh_id = row.get("id")
    return CtEntry(
        source="crt.sh",
        origin=origin,
        ref_kind=ref_kind,
        ref=ref,
        names=names,
        common_name=common,
        issuer=issuer_of(str(row.get("issuer_name") or "")),
        serial=_serial(row.get("serial_number")),
        not_before=_time_text(row.get("not_before")),
        not_after=_time_text(row.get("not_after")),
        logged=_time_text(row.get("entry_timestamp")),
        crtsh_id=crtsh_id if isinstance(crtsh_id, int) and not isinstance(crtsh_id, bool) else None,
    )


def certstream_entry(
    data: Mapping[str, Any], origin: str, ref_kind: RefKind, ref: int
) -> CtEntry | str:
    """The ``data`` of one certstream certificate_update message, or why it cannot be read."""
    leaf = data["leaf_cert"]
    domains = leaf.get("all_domains")
    if domains is not None and not (
        isinstance(domains, list) and all(isinstance(d, str) for d in domains)
    ):
        return "certstream leaf_cert.all_domains is not a list of text"
    subject = leaf.get("subject")
    common = _text(subject.get("CN")) if isinstance(subject, dict) else ""
    names = _unique([common, *(domains or [])])
    if not names:
        return "certstream certificate without a name (no subject CN or all_domains)"
    source = data.get("source")
    log = ""
    if isinstance(source, dict):
        log = _text(source.get("name")) or _text(source.get("url"))
    index = data.get("cert_index")
    return CtEntry(
        source="certstream",
        origin=origin,
        ref_kind=ref_kind,
        ref=ref,
        names=names,
        common_name=common,
        issuer=_certstream_issuer(leaf, data),
        serial=_serial(leaf.get("serial_number")),
        not_before=_time_epoch(leaf.get("not_before")),
        not_after=_time_epoch(leaf.get("not_after")),
        logged=_time_epoch(data.get("seen")),
        cert_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        log=log,
        fingerprint=_text(leaf.get("fingerprint")).replace(":", "").upper(),
    )


def _certstream_issuer(leaf: Mapping[str, Any], data: Mapping[str, Any]) -> Issuer:
    """The leaf's ``issuer`` when the server sends it, else the subject of the chain's first
    certificate (what certstream's original server sends)."""
    issuer = leaf.get("issuer")
    if not isinstance(issuer, dict):
        chain = data.get("chain")
        first = chain[0] if isinstance(chain, list) and chain else None
        issuer = first.get("subject") if isinstance(first, dict) else None
    if not isinstance(issuer, dict):
        return issuer_of("")
    aggregated = _text(issuer.get("aggregated"))
    return issuer_of(aggregated, _text(issuer.get("O")), _text(issuer.get("CN")))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "text", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in names if n and n.strip()))


def _serial(value: Any) -> str:
    text = _text(value).replace(":", "").strip().upper()
    return text.lstrip("0") or ("0" if text else "")


def _time_text(value: Any) -> datetime | None:
    """crt.sh's times (``2023-11-17T22:59:21.118``, UTC without a zone)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _time_epoch(value: Any) -> datetime | None:
    """certstream's times: seconds since 1970 (an int, or a float for ``seen``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
