"""The registry ``Blob`` of a stored certificate: decode, encode, check its thumbprint.

Windows keeps each certificate of a system store under
``...\\SystemCertificates\\<Store>\\Certificates\\<SHA-1 thumbprint>`` in a REG_BINARY value
named ``Blob``. The value is a serialized *certificate context*: a run of property elements,
each ``prop_id`` (uint32 LE), a reserved / encoding-type word (uint32 LE, 1 for X.509 ASN.1),
``length`` (uint32 LE) and ``length`` bytes. Property 32 (``CERT_CERT_PROP_ID``) holds the DER
certificate; the others are cached facts about it (hashes, key identifier, friendly name, ...).
The format is described in [MS-GPEF] "Certificate Blob" and by the ``*_PROP_ID`` constants of
``wincrypt.h``.

Windows trusts the cached SHA-1 property and the key name; it does not re-hash the DER when a
store is opened. A Blob whose DER does not hash to its key name, or to its own SHA-1 property,
was edited by hand, so both are checked here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trustwatch.errors import InputError

CERT_SHA1_HASH_PROP_ID = 3
CERT_MD5_HASH_PROP_ID = 4
CERT_FRIENDLY_NAME_PROP_ID = 11
CERT_KEY_IDENTIFIER_PROP_ID = 20
CERT_CERT_PROP_ID = 32
X509_ASN_ENCODING = 1

# wincrypt.h names of the properties seen in store Blobs (for messages and `certs` output)
PROPERTY_NAMES: Mapping[int, str] = {
    2: "CERT_KEY_PROV_INFO_PROP_ID",
    3: "CERT_SHA1_HASH_PROP_ID",
    4: "CERT_MD5_HASH_PROP_ID",
    9: "CERT_ENHKEY_USAGE_PROP_ID",
    11: "CERT_FRIENDLY_NAME_PROP_ID",
    13: "CERT_DESCRIPTION_PROP_ID",
    15: "CERT_SIGNATURE_HASH_PROP_ID",
    19: "CERT_ARCHIVED_PROP_ID",
    20: "CERT_KEY_IDENTIFIER_PROP_ID",
    22: "CERT_PUBKEY_ALG_PARA_PROP_ID",
    24: "CERT_ISSUER_PUBLIC_KEY_MD5_HASH_PROP_ID",
    25: "CERT_SUBJECT_PUBLIC_KEY_MD5_HASH_PROP_ID",
    28: "CERT_ISSUER_SERIAL_NUMBER_MD5_HASH_PROP_ID",
    29: "CERT_SUBJECT_NAME_MD5_HASH_PROP_ID",
    32: "CERT_CERT_PROP_ID",
    83: "CERT_ROOT_PROGRAM_CERT_POLICIES_PROP_ID",
    92: "CERT_SUBJECT_PUB_KEY_BIT_LENGTH_PROP_ID",
    98: "CERT_AUTH_ROOT_SHA256_HASH_PROP_ID",
    104: "CERT_DISALLOWED_FILETIME_PROP_ID",
    105: "CERT_ROOT_PROGRAM_CHAIN_POLICIES_PROP_ID",
    107: "CERT_SHA256_HASH_PROP_ID",
    122: "CERT_DISALLOWED_ENHKEY_USAGE_PROP_ID",
}

_HEADER = struct.Struct("<III")
_HEX_SEPARATORS = str.maketrans("", "", " \t\r\n,-:")


class BlobFormatError(InputError):
    """A registry Blob that is not a serialized certificate context; ``offset`` says where."""

    default_code = "BLOB001"

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(f"malformed certificate Blob at byte {offset}: {message}")
        self.offset = offset


class ValueDataError(InputError):
    """Telemetry text for a binary registry value that is neither hex nor base64."""

    default_code = "BLOB002"


@dataclass(frozen=True, slots=True)
class BlobProperty:
    """One element of a Blob: its property id, the encoding word, its bytes and its offset."""

    prop_id: int
    encoding: int
    value: bytes
    offset: int  # where the element's header starts in the Blob

    @property
    def name(self) -> str:
        """The wincrypt.h constant name, or ``PROP_<id>`` for ids not listed."""
        return PROPERTY_NAMES.get(self.prop_id, f"PROP_{self.prop_id}")


@dataclass(frozen=True, slots=True)
class BlobContents:
    """A decoded Blob: every property in order, the DER certificate and what it hashes to."""

    properties: tuple[BlobProperty, ...]
    der: bytes
    sha1: str  # SHA-1 of ``der``, upper-case hex: what the registry key should be named

    def get(self, prop_id: int) -> bytes | None:
        """The value of the first property with this id, or None."""
        for prop in self.properties:
            if prop.prop_id == prop_id:
                return prop.value
        return None

    @property
    def by_id(self) -> dict[int, bytes]:
        """Property values by id (the first one when an id repeats)."""
        out: dict[int, bytes] = {}
        for prop in self.properties:
            out.setdefault(prop.prop_id, prop.value)
        return out

    @property
    def friendly_name(self) -> str | None:
        """The friendly name property (UTF-16LE, NUL-terminated), when there is one."""
        raw = self.get(CERT_FRIENDLY_NAME_PROP_ID)
        if raw is None:
            return None
        return raw.decode("utf-16-le", errors="replace").split("\x00", 1)[0]

    @property
    def stored_sha1(self) -> str | None:
        """The cached SHA-1 property (id 3) in upper-case hex, when there is one."""
        raw = self.get(CERT_SHA1_HASH_PROP_ID)
        return raw.hex().upper() if raw is not None else None


def sha1_thumbprint(der: bytes) -> str:
    """The Windows thumbprint of a DER certificate: its SHA-1, upper-case hex."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def normalize_thumbprint(text: str) -> str | None:
    """A thumbprint as Windows names keys (40 upper-case hex digits), or None if it is not one.

    Spaces and colons are dropped, so ``certutil`` and browser spellings compare equal.
    """
    cleaned = text.strip().translate(str.maketrans("", "", " :")).upper()
    if len(cleaned) != 40 or any(c not in "0123456789ABCDEF" for c in cleaned):
        return None
    return cleaned


def decode_blob(data: bytes) -> BlobContents:
    """Split a registry Blob into its properties and find the DER certificate.

    Args:
        data: the bytes of the ``Blob`` value.

    Returns:
        The properties in order, the DER certificate (property 32) and its SHA-1.

    Raises:
        BlobFormatError: a truncated element header, a length running past the end, or no
            certificate property; the message and ``offset`` give the byte offset.
    """
    properties = tuple(_iter_properties(data))
    for prop in properties:
        if prop.prop_id == CERT_CERT_PROP_ID:
            return BlobContents(properties, prop.value, sha1_thumbprint(prop.value))
    ids = ", ".join(str(p.prop_id) for p in properties) or "none"
    raise BlobFormatError(
        f"no certificate property (id {CERT_CERT_PROP_ID}); property ids present: {ids}",
        offset=len(data),
    )


def _iter_properties(data: bytes) -> Iterable[BlobProperty]:
    offset = 0
    while offset < len(data):
        left = len(data) - offset
        if left < _HEADER.size:
            raise BlobFormatError(
                f"truncated element header: {left} bytes left, a header needs {_HEADER.size}",
                offset=offset,
            )
        prop_id, encoding, length = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length > len(data) - start:
            raise BlobFormatError(
                f"property {prop_id} declares {length} bytes but only {len(data) - start} remain",
                offset=offset,
            )
        yield BlobProperty(prop_id, encoding, data[start : start + length], offset)
        offset = start + length


def verify_thumbprint(blob: BlobContents | bytes, thumbprint: str) -> bool:
    """Whether a certificate hashes to the thumbprint its registry key is named by.

    Args:
        blob: a decoded Blob, or the DER certificate itself.
        thumbprint: the key name (any case; spaces and colons ignored).

    Returns:
        True when the SHA-1 of the DER equals the thumbprint; False otherwise, including when
        ``thumbprint`` is not 40 hex digits.
    """
    sha1 = blob.sha1 if isinstance(blob, BlobContents) else sha1_thumbprint(blob)
    return normalize_thumbprint(thumbprint) == sha1


def encode_blob(
    der: bytes,
    friendly_name: str | None = None,
    *,
    extra: Iterable[tuple[int, bytes]] = (),
    include_hashes: bool = True,
) -> bytes:
    """Serialize a certificate as Windows stores it in a ``Blob`` value.

    Args:
        der: the DER certificate.
        friendly_name: stored as property 11 (UTF-16LE with its NUL), like ``certutil`` does.
        extra: more ``(prop_id, value)`` elements, written in the order given.
        include_hashes: write the MD5 (4) and SHA-1 (3) properties Windows caches.

    Returns:
        The Blob bytes; the certificate element comes last, as in Windows' own Blobs.
    """
    elements: list[tuple[int, bytes]] = []
    if include_hashes:
        elements.append((CERT_MD5_HASH_PROP_ID, hashlib.md5(der, usedforsecurity=False).digest()))
        elements.append((CERT_SHA1_HASH_PROP_ID, hashlib.sha1(der, usedforsecurity=False).digest()))
    elements.extend(extra)
    if friendly_name is not None:
        elements.append((CERT_FRIENDLY_NAME_PROP_ID, (friendly_name + "\x00").encode("utf-16-le")))
    elements.append((CERT_CERT_PROP_ID, der))
    return b"".join(_HEADER.pack(pid, X509_ASN_ENCODING, len(v)) + v for pid, v in elements)


def parse_registry_value_data(text: str) -> bytes:
    """The bytes of a binary registry value as telemetry exports spell it.

    Hex is tried first (an optional ``0x``, bytes separated by spaces, commas, hyphens or
    colons, or not at all), then base64: a string of hex digits is far more often hex than
    base64, and a real Blob or certificate in base64 always holds non-hex letters.

    Args:
        text: the value data text (e.g. Defender's ``RegistryValueData``).

    Returns:
        The decoded bytes.

    Raises:
        ValueDataError: the text is neither, e.g. Sysmon's ``Binary Data`` placeholder.
    """
    stripped = text.strip()
    if stripped.casefold() == "binary data":
        raise ValueDataError(
            "value data is Sysmon's 'Binary Data' placeholder: Sysmon does not log binary "
            "contents, so the certificate cannot be recovered from this event"
        )
    hex_bytes = _try_hex(stripped)
    if hex_bytes is not None:
        return hex_bytes
    b64_bytes = _try_base64(stripped)
    if b64_bytes is not None:
        return b64_bytes
    raise ValueDataError(
        f"value data is neither hex nor base64 (starts with {stripped[:24]!r}); "
        "expected e.g. '0x3082...', '30 82 ...', '30-82-...' or base64"
    )


def _try_hex(text: str) -> bytes | None:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    digits = body.translate(_HEX_SEPARATORS)
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    if len(digits) % 2:
        raise ValueDataError(f"hex value data has an odd number of digits ({len(digits)})")
    return bytes.fromhex(digits)


def _try_base64(text: str) -> bytes | None:
    # base64 exports wrap lines but never space out characters: "30 82 zz" is not base64
    compact = "".join(text.splitlines())
    if not compact or any(c.isspace() for c in compact):
        return None
    padded = compact + "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        return None
