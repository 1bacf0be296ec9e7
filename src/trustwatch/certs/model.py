"""Certificate intelligence records: verdicts, list entries and where each came from.

Every entry carries its ``IntelSource`` (list name and as-of date), so a verdict can always say
which list, of which date, it rests on.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from trustwatch.certs.names import keys_of_name
from trustwatch.errors import InputError


class Verdict(StrEnum):
    """What a certificate is, in the order it deserves attention (``RANK``)."""

    KNOWN_BAD = "known-bad"
    LOOKALIKE = "lookalike"
    SUSPICIOUS = "suspicious"
    UNKNOWN = "unknown"
    FREE_CA = "free-ca"
    PUBLIC_ROOT = "public-root"
    MICROSOFT_ROOT = "microsoft-root"


# Highest first: a certificate gets the highest verdict any of its findings implies.
RANK: dict[Verdict, int] = {v: len(Verdict) - i for i, v in enumerate(Verdict)}

# Severity steps an alert about this certificate may move (the caller also weighs who wrote it).
SEVERITY_ADJUSTMENT: dict[Verdict, int] = {
    Verdict.KNOWN_BAD: 2,
    Verdict.LOOKALIKE: 2,
    Verdict.SUSPICIOUS: 1,
    Verdict.UNKNOWN: 0,
    Verdict.FREE_CA: 0,
    Verdict.PUBLIC_ROOT: -1,
    Verdict.MICROSOFT_ROOT: -1,
}

# Verdicts a trust store may hold without anyone looking: everything else is suspicious there.
TRUSTED = frozenset({Verdict.PUBLIC_ROOT, Verdict.MICROSOFT_ROOT})

Origin = Literal["shipped", "certifi", "imported"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntelSource:
    """One list: its name, the date its content is as of, and how trustwatch got it."""

    name: str
    date: str  # YYYY-MM-DD
    origin: Origin
    note: str = ""

    @property
    def label(self) -> str:
        """``name as of date``, as evidence quotes it."""
        return f"{self.name} as of {self.date}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IntelEntry:
    """One known certificate (by hash) or one known name (no hash), from one list."""

    verdict: Verdict
    source: IntelSource
    sha1: str = ""  # upper-case hex; empty for a name-only entry
    sha256: str = ""
    md5: str = ""
    subject: str = ""  # RFC 4514 text
    serial: str = ""  # upper-case hex, no leading zeros
    subject_cns: tuple[str, ...] = ()  # known-bad: match by subject CN alone
    labels: tuple[str, ...] = ()
    reason: str = ""  # why it is listed (SSLBL listing reason, CA operator...)
    listed: str = ""  # when the list added it, if it says
    name: str = ""  # what people call it
    spki_sha256: str = ""  # of the public key, to tell a re-issue from a clone
    certificate: x509.Certificate | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FreeCa:
    """A free or automated CA: issuers with this organisation name are its intermediates."""

    organisation: str
    operator: str
    issuers: tuple[str, ...]
    source: IntelSource


_HEX_RE = re.compile(r"[0-9A-F]+")
_DIGEST_LENGTHS = {32: "MD5", 40: "SHA-1", 64: "SHA-256"}


def normalise_thumbprint(text: str) -> str:
    """Upper-case hex without separators: ``6e:ce:5e...`` and ``6ECE 5ECE...`` both work.

    Raises:
        InputError: when the text is not 32, 40 or 64 hex digits (MD5, SHA-1, SHA-256).
    """
    digest = re.sub(r"[\s:-]", "", text).upper()
    if len(digest) not in _DIGEST_LENGTHS or not _HEX_RE.fullmatch(digest):
        raise InputError(
            f"not a certificate thumbprint: {text!r}",
            hint="give 40 hex digits (SHA-1), or 64 (SHA-256) or 32 (MD5)",
        )
    return digest


def digest_kind(digest: str) -> str:
    """``SHA-1``, ``SHA-256`` or ``MD5`` by length of a normalised thumbprint."""
    return _DIGEST_LENGTHS.get(len(digest), "hash")


def fingerprint(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    """A hash of the DER certificate, upper-case hex (SHA-1 is Windows' thumbprint)."""
    return cert.fingerprint(algorithm).hex().upper()


def sha1_of(cert: x509.Certificate) -> str:
    """The Windows thumbprint."""
    return fingerprint(cert, hashes.SHA1())  # noqa: S303 - an identifier, not a security check


def spki_sha256_of(cert: x509.Certificate) -> str:
    """SHA-256 of the SubjectPublicKeyInfo: equal for two certificates with the same key."""
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex().upper()


def serial_hex(serial: int) -> str:
    """A serial number as upper-case hex, no leading zeros (negative ones keep their sign)."""
    return f"-{-serial:X}" if serial < 0 else f"{serial:X}"


def serial_of(cert: x509.Certificate) -> str:
    """The certificate's serial as ``serial_hex`` (a few genuine old roots have one <= 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography deprecates non-positive serials
        return serial_hex(cert.serial_number)


def normalise_serial(text: str) -> str:
    """Serial text (hex, any case, optional colons or ``0x``) as ``serial_hex`` writes it."""
    cleaned = re.sub(r"[\s:]", "", text).upper().removeprefix("0X")
    return cleaned.lstrip("0") or "0"


def load_pem(data: bytes) -> list[x509.Certificate]:
    """Certificates of a PEM bundle (cryptography warns about one certifi root's serial)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.load_pem_x509_certificates(data)


def root_entry(cert: x509.Certificate, source: IntelSource, labels: tuple[str, ...]) -> IntelEntry:
    """A public-root entry for a whole certificate (its key kept, to check what it signed)."""
    return IntelEntry(
        verdict=Verdict.PUBLIC_ROOT,
        source=source,
        sha1=sha1_of(cert),
        sha256=fingerprint(cert, hashes.SHA256()),
        subject=cert.subject.rfc4514_string(),
        serial=serial_of(cert),
        name=keys_of_name(cert.subject).display,
        labels=labels,
        spki_sha256=spki_sha256_of(cert),
        certificate=cert,
    )
