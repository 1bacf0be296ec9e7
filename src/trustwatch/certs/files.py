"""Load certificates from files, whatever their format, recognised by content not by name.

A ``.cer`` is as often PEM as DER, a ``.crt`` may hold a chain and triage kits save registry
Blobs with any extension, so the bytes decide: regedit export, hive, PEM (certificates and
PKCS#7 blocks), DER certificate, DER PKCS#7 (``.p7b``), PKCS#12 (``.pfx``/``.p12``), a registry
Blob, and last hex or base64 text of one of those. Only certificates are kept: a PFX's or PEM's
private key is dropped unread (a note says one was there).
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7, pkcs12
from cryptography.utils import CryptographyDeprecationWarning

from trustwatch.certs.blob import (
    BlobFormatError,
    ValueDataError,
    decode_blob,
    parse_registry_value_data,
    sha1_thumbprint,
)
from trustwatch.certs.hive import is_hive, read_hive
from trustwatch.certs.regfile import (
    HEADER_4,
    HEADER_5,
    RegistrySnapshot,
    decode_reg_bytes,
    parse_reg,
)
from trustwatch.certs.stores import StoreCertificate, find_store_certificates
from trustwatch.errors import InputError

FileKind = Literal["der", "pem", "pkcs7", "pkcs12", "blob", "reg", "hive"]

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL | re.ASCII
)
_PEM_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_PEM_P7_LABELS = frozenset({"PKCS7", "CMS"})
# DER: SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data ...: the start of every PFX (RFC 7292)
_PKCS12_VERSION = b"\x02\x01\x03"
_OID_PKCS7_DATA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01"


@dataclass(frozen=True, slots=True)
class FileCertificate:
    """One certificate read from a file: its DER, thumbprint and where exactly it was."""

    der: bytes
    thumbprint: str  # SHA-1, upper-case hex
    source: str  # the file; ``file#N`` for the Nth of several; ``file:line`` for .reg values


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """What a file held: its format, its certificates, and for registry files every entry."""

    source: str
    kind: FileKind
    certificates: tuple[FileCertificate, ...]
    store_entries: tuple[StoreCertificate, ...] = ()  # .reg / hive: all, damaged ones included
    notes: tuple[str, ...] = ()  # skipped PEM blocks, a dropped private key, registry problems


@contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Silence cryptography's deprecation warnings, and only those, for real-world certificates.

    Some trusted roots break RFC 5280 (certifi ships one with a non-positive serial number):
    cryptography loads them with a ``CryptographyDeprecationWarning`` each time. They are still
    certificates we must read; every other warning and every error goes through unchanged.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate without cryptography's deprecation warnings.

    Raises:
        ValueError: the bytes are not an X.509 certificate.
    """
    with quiet_deprecations():
        return x509.load_der_x509_certificate(der)


def load_certificate_file(
    path: Path | str, *, password: str | bytes | None = None
) -> CertificateFile:
    """Every certificate a file holds.

    Args:
        path: the file.
        password: for a password-protected PKCS#12 file.

    Returns:
        The format found and the certificates in file order.

    Raises:
        InputError: the file cannot be read, needs a password, or is no format here (the
            message names the file and every format tried, with why each did not fit).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if is_hive(data):
        return _from_snapshot(read_hive(p), "hive")
    return load_certificate_bytes(data, str(p), password=password)


def load_certificate_bytes(
    data: bytes, source: str, *, password: str | bytes | None = None
) -> CertificateFile:
    """Like :func:`load_certificate_file`, for bytes already read (not hives: regipy wants a file).

    Raises:
        InputError: as :func:`load_certificate_file`.
    """
    if not data.strip():
        raise InputError(f"{source}: empty file: no certificate in it")
    if is_hive(data):
        raise InputError(f"{source}: a registry hive: read it from its file (regipy needs a path)")
    if _is_reg_export(data):
        snapshot = parse_reg(decode_reg_bytes(data, source), source)
        return _from_snapshot(snapshot, "reg")
    if b"-----BEGIN " in data:
        return _from_pem(data, source)
    tried: list[str] = []
    found = _from_binary(data, source, password, tried)
    if found is not None:
        return found
    text_bytes = _text_bytes(data, tried)
    if text_bytes is not None:
        found = _from_binary(text_bytes, source, password, tried)
        if found is not None:
            return found
    raise InputError(f"{source}: not a certificate file; tried: " + "; ".join(tried))


def _is_reg_export(data: bytes) -> bool:
    try:
        head = decode_reg_bytes(data[:200]).lstrip("\ufeff \t\r\n")
    except InputError:  # bytes that only looked like UTF-16
        return False
    return head.startswith((HEADER_5, HEADER_4))


def _from_snapshot(snapshot: RegistrySnapshot, kind: FileKind) -> CertificateFile:
    entries = tuple(find_store_certificates(snapshot.entries))
    certificates = tuple(
        FileCertificate(e.der, sha1_thumbprint(e.der), e.source)
        for e in entries
        if e.der is not None and _is_x509(e.der)  # the others stay in store_entries and notes
    )
    notes = [str(p) for p in snapshot.problems]
    notes += [f"{e.source}: {e.store} {e.thumbprint}: {e.problem}" for e in entries if e.problem]
    return CertificateFile(snapshot.source, kind, certificates, entries, tuple(notes))


def _is_x509(der: bytes) -> bool:
    try:
        load_der_certificate(der)
    except ValueError:
        return False
    return True


def _from_pem(data: bytes, source: str) -> CertificateFile:
    text = data.decode("ascii", errors="replace")
    ders: list[bytes] = []
    notes: list[str] = []
    for index, match in enumerate(_PEM_BLOCK.finditer(text), start=1):
        label = match.group(1)
        block = match.group(0).encode("ascii")
        try:
            with quiet_deprecations():
                ders.extend(_pem_block_ders(label, block))
        except ValueError as exc:
            message = f"{source}: PEM block {index} ({label}) does not parse: {exc}"
            raise InputError(message) from exc
        if label not in _PEM_CERT_LABELS | _PEM_P7_LABELS:
            # keys, CRLs, requests: not certificates, and a key is never read or kept
            notes.append(f"{source}: skipped PEM block {index} ({label})")
    if not ders:
        raise InputError(f"{source}: PEM file without a CERTIFICATE or PKCS7 block")
    kind: FileKind = "pem"
    return CertificateFile(source, kind, _file_certificates(ders, source), (), tuple(notes))


def _pem_block_ders(label: str, block: bytes) -> list[bytes]:
    if label == "TRUSTED CERTIFICATE":
        # OpenSSL's form: the certificate followed by trust settings, in one base64 body
        body = b"".join(line.strip() for line in block.splitlines()[1:-1])
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64: {exc}") from exc
        return [raw[: _der_length(raw)]]
    if label in _PEM_CERT_LABELS:
        return [x509.load_pem_x509_certificate(block).public_bytes(Encoding.DER)]
    if label in _PEM_P7_LABELS:
        return [c.public_bytes(Encoding.DER) for c in pkcs7.load_pem_pkcs7_certificates(block)]
    return []


def _from_binary(
    data: bytes, source: str, password: str | bytes | None, tried: list[str]
) -> CertificateFile | None:
    """DER certificate, DER PKCS#7, PKCS#12 or registry Blob; None (and why, in ``tried``)."""
    with quiet_deprecations():
        try:
            x509.load_der_x509_certificate(data)
            return CertificateFile(source, "der", _file_certificates([data], source))
        except ValueError as exc:
            tried.append(f"DER certificate ({_first_line(exc)})")
        try:
            certs = pkcs7.load_der_pkcs7_certificates(data)
            ders = [c.public_bytes(Encoding.DER) for c in certs]
            return CertificateFile(source, "pkcs7", _file_certificates(ders, source))
        except ValueError as exc:
            tried.append(f"PKCS#7 ({_first_line(exc)})")
        if _looks_like_pkcs12(data):
            return _from_pkcs12(data, source, password)
        tried.append("PKCS#12 (no PFX structure)")
    return _from_blob(data, source, tried)


def _from_pkcs12(data: bytes, source: str, password: str | bytes | None) -> CertificateFile:
    secret = password.encode("utf-8") if isinstance(password, str) else password
    # no password given: try "none" and then "empty", the two ways tools export unprotected PFX
    attempts: Sequence[bytes | None] = (secret,) if secret is not None else (None, b"")
    for attempt in attempts:
        try:
            with quiet_deprecations():
                loaded = pkcs12.load_pkcs12(data, attempt)
        except ValueError:
            continue
        certs = [loaded.cert.certificate] if loaded.cert is not None else []
        certs += [extra.certificate for extra in loaded.additional_certs]
        ders = [c.public_bytes(Encoding.DER) for c in certs]
        notes = (f"{source}: held a private key; it was not kept",) if loaded.key else ()
        return CertificateFile(source, "pkcs12", _file_certificates(ders, source), (), notes)
    if secret is None:
        raise InputError(
            f"{source}: PKCS#12 (PFX) file protected by a password; give the password",
            hint="pass the PFX password (CLI: --password)",
        )
    raise InputError(f"{source}: PKCS#12 (PFX) file: wrong password, or the file is damaged")


def _from_blob(data: bytes, source: str, tried: list[str]) -> CertificateFile | None:
    try:
        blob = decode_blob(data)
    except BlobFormatError as exc:
        tried.append(f"registry Blob ({exc})")
        return None
    try:
        load_der_certificate(blob.der)
    except ValueError as exc:
        tried.append(f"registry Blob (its certificate property does not parse: {exc})")
        return None
    certs = (FileCertificate(blob.der, blob.sha1, source),)
    return CertificateFile(source, "blob", certs)


def _text_bytes(data: bytes, tried: list[str]) -> bytes | None:
    """The bytes of a file holding a value as hex or base64 text (a telemetry field saved)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        tried.append("hex/base64 text (not text)")
        return None
    try:
        return parse_registry_value_data(text)
    except ValueDataError as exc:
        tried.append(f"hex/base64 text ({exc})")
        return None


def _file_certificates(ders: Sequence[bytes], source: str) -> tuple[FileCertificate, ...]:
    if len(ders) == 1:
        return (FileCertificate(ders[0], sha1_thumbprint(ders[0]), source),)
    return tuple(
        FileCertificate(der, sha1_thumbprint(der), f"{source}#{n}")
        for n, der in enumerate(ders, start=1)
    )


def _looks_like_pkcs12(data: bytes) -> bool:
    """Whether the DER starts like a PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID data ..."""
    outer = _der_header_size(data, 0)
    if outer is None or data[0] != 0x30:
        return False
    if data[outer : outer + 3] != _PKCS12_VERSION:
        return False
    inner_start = outer + 3
    inner = _der_header_size(data, inner_start)
    if inner is None or data[inner_start] != 0x30:
        return False
    oid_start = inner_start + inner
    return data[oid_start : oid_start + len(_OID_PKCS7_DATA)] == _OID_PKCS7_DATA


def _der_header_size(data: bytes, pos: int) -> int | None:
    """Bytes taken by the tag and length of the DER element at ``pos`` (None if cut off)."""
    if pos + 2 > len(data):
        return None
    first = data[pos + 1]
    if first < 0x80:
        return 2
    count = first & 0x7F
    return 2 + count if 0 < count <= 4 and pos + 2 + count <= len(data) else None


def _der_length(data: bytes) -> int:
    """Total size of the DER element at the start of ``data`` (header and content)."""
    header = _der_header_size(data, 0)
    if header is None:
        raise ValueError("truncated DER element")
    if header == 2:
        return 2 + data[1]
    return header + int.from_bytes(data[2:header], "big")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
