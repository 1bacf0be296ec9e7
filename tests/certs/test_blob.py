"""Registry Blob decoding and encoding on real certificates, and value-data text parsing."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.certs import certgen
from trustwatch.certs.blob import (
    CERT_CERT_PROP_ID,
    BlobContents,
    BlobFormatError,
    ValueDataError,
    decode_blob,
    encode_blob,
    normalize_thumbprint,
    parse_registry_value_data,
    sha1_thumbprint,
    verify_thumbprint,
)
from trustwatch.errors import InputError


@pytest.fixture(scope="module")
def root() -> x509.Certificate:
    return certgen.self_signed_root()  # a new serial each call: one certificate per module


@pytest.fixture(scope="module")
def root_der(root: x509.Certificate) -> bytes:
    return certgen.der(root)


def test_round_trip_keeps_der_and_properties(root_der: bytes) -> None:
    blob = encode_blob(root_der, "Contoso Inspection")
    decoded = decode_blob(blob)
    assert decoded.der == root_der
    assert [p.prop_id for p in decoded.properties] == [4, 3, 11, 32]
    assert [p.name for p in decoded.properties][-1] == "CERT_CERT_PROP_ID"
    assert decoded.friendly_name == "Contoso Inspection"
    assert decoded.get(4) == hashlib.md5(root_der).digest()
    assert decoded.by_id[3] == hashlib.sha1(root_der).digest()
    assert decoded.properties[1].offset == 12 + 16  # after the MD5 element
    assert all(p.encoding == 1 for p in decoded.properties)


def test_thumbprint_is_the_sha1_cryptography_computes(
    root: x509.Certificate, root_der: bytes
) -> None:
    decoded = decode_blob(encode_blob(root_der))
    expected = root.fingerprint(hashes.SHA1()).hex().upper()
    assert decoded.sha1 == expected
    assert decoded.stored_sha1 == expected
    assert verify_thumbprint(decoded, expected) is True
    assert verify_thumbprint(root_der, expected.lower()) is True
    spaced = " ".join(expected[i : i + 2] for i in range(0, 40, 2))  # certmgr's spelling
    assert verify_thumbprint(decoded, spaced) is True


def test_blob_under_another_certificates_thumbprint_does_not_match(root_der: bytes) -> None:
    forged = certgen.der(certgen.forged_microsoft_root_2010())
    decoded = decode_blob(encode_blob(root_der))
    assert verify_thumbprint(decoded, sha1_thumbprint(forged)) is False
    assert verify_thumbprint(decoded, "not a thumbprint") is False


def test_every_certifi_root_round_trips() -> None:
    roots = certgen.certifi_roots()
    assert len(roots) > 100
    for cert in roots:
        der = certgen.der(cert)
        decoded = decode_blob(encode_blob(der, include_hashes=False))
        assert decoded.der == der
        assert decoded.sha1 == cert.fingerprint(hashes.SHA1()).hex().upper()


def test_blob_with_only_the_certificate(root_der: bytes) -> None:
    decoded = decode_blob(encode_blob(root_der, include_hashes=False))
    assert isinstance(decoded, BlobContents)
    assert [p.prop_id for p in decoded.properties] == [CERT_CERT_PROP_ID]
    assert decoded.friendly_name is None
    assert decoded.stored_sha1 is None


def test_extra_properties_are_written_in_order(root_der: bytes) -> None:
    blob = encode_blob(root_der, extra=[(20, b"\x01" * 20), (25, b"\x02" * 16)])
    decoded = decode_blob(blob)
    assert [p.prop_id for p in decoded.properties] == [4, 3, 20, 25, 32]
    assert decoded.properties[3].name == "CERT_SUBJECT_PUBLIC_KEY_MD5_HASH_PROP_ID"
    assert decoded.get(20) == b"\x01" * 20


def test_truncated_header_is_located(root_der: bytes) -> None:
    blob = encode_blob(root_der) + b"\x20\x00\x00"
    with pytest.raises(BlobFormatError) as info:
        decode_blob(blob)
    assert info.value.offset == len(blob) - 3
    assert f"at byte {len(blob) - 3}" in str(info.value)
    assert "truncated element header" in str(info.value)
    assert isinstance(info.value, InputError)


def test_length_past_the_end_is_located(root_der: bytes) -> None:
    blob = encode_blob(root_der)
    cert_element = len(blob) - 12 - len(root_der)
    with pytest.raises(BlobFormatError) as info:
        decode_blob(blob[:-10])
    assert info.value.offset == cert_element
    assert f"property 32 declares {len(root_der)} bytes" in str(info.value)
    assert f"only {len(root_der) - 10} remain" in str(info.value)


def test_blob_without_certificate_property() -> None:
    only_hash = struct.pack("<III", 3, 1, 20) + b"\x00" * 20
    with pytest.raises(BlobFormatError, match=r"no certificate property \(id 32\).*: 3$"):
        decode_blob(only_hash)
    with pytest.raises(BlobFormatError, match="present: none") as info:
        decode_blob(b"")
    assert info.value.offset == 0


def test_normalize_thumbprint() -> None:
    assert normalize_thumbprint("ab:cd" * 10) == "ABCD" * 10
    assert normalize_thumbprint("AB" * 19) is None
    assert normalize_thumbprint("ZZ" * 20) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x308201", b"\x30\x82\x01"),
        ("308201", b"\x30\x82\x01"),
        ("30 82 01", b"\x30\x82\x01"),
        ("30,82,01", b"\x30\x82\x01"),
        ("30-82-01", b"\x30\x82\x01"),
        ("30:82:01", b"\x30\x82\x01"),
        ("  0X30820a\n", b"\x30\x82\x0a"),
        ("MIIB", b"\x30\x82\x01"),
        ("MIIBAA==", b"\x30\x82\x01\x00"),
        ("MIIB\r\nAA==", b"\x30\x82\x01\x00"),
    ],
    ids=[
        "0x",
        "bare",
        "spaces",
        "commas",
        "hyphens",
        "colons",
        "upper-0X",
        "b64",
        "b64-pad",
        "b64-wrapped",
    ],
)
def test_value_data_text(text: str, expected: bytes) -> None:
    assert parse_registry_value_data(text) == expected


def test_value_data_of_a_whole_blob(root_der: bytes) -> None:
    blob = encode_blob(root_der)
    assert parse_registry_value_data(base64.b64encode(blob).decode()) == blob
    assert parse_registry_value_data("0x" + blob.hex().upper()) == blob
    assert parse_registry_value_data("-".join(f"{b:02X}" for b in blob)) == blob


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Binary Data", "Sysmon does not log binary"),
        ("hello world!", "neither hex nor base64"),
        ("30 82 zz", "neither hex nor base64"),
        ("308", "odd number of digits"),
        ("", "neither hex nor base64"),
    ],
    ids=["sysmon-placeholder", "prose", "bad-hex", "odd-hex", "empty"],
)
def test_value_data_refused(text: str, message: str) -> None:
    with pytest.raises(ValueDataError, match=message):
        parse_registry_value_data(text)
