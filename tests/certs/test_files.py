"""Certificates from files of every format, recognised by their content."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7, pkcs12
from cryptography.utils import CryptographyDeprecationWarning

from tests.certs import certgen
from trustwatch.certs.blob import encode_blob, sha1_thumbprint
from trustwatch.certs.files import (
    load_certificate_bytes,
    load_certificate_file,
    load_der_certificate,
    quiet_deprecations,
)
from trustwatch.certs.regfile import (
    REG_BINARY,
    RegEntry,
    RegistryValue,
    RegKey,
    encode_reg,
    write_reg,
)
from trustwatch.errors import InputError

ROOT_STORE = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates\\ROOT\\Certificates"


@pytest.fixture(scope="module")
def root() -> x509.Certificate:
    return certgen.self_signed_root()


@pytest.fixture(scope="module")
def chain() -> list[x509.Certificate]:
    return [
        certgen.letsencrypt_leaf(),
        certgen.forged_microsoft_root_2010(),
        certgen.cobalt_strike_default(),
    ]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_der_certificate(root: x509.Certificate, tmp_path: Path) -> None:
    path = write(tmp_path, "root.cer", certgen.der(root))
    loaded = load_certificate_file(path)
    assert loaded.kind == "der"
    assert [c.der for c in loaded.certificates] == [certgen.der(root)]
    assert loaded.certificates[0].thumbprint == root.fingerprint(hashes.SHA1()).hex().upper()
    assert loaded.certificates[0].source == str(path)
    assert loaded.notes == ()


def test_content_decides_not_the_extension(root: x509.Certificate, tmp_path: Path) -> None:
    as_der = load_certificate_file(write(tmp_path, "actually-pem.der", pem(root)))
    as_pem = load_certificate_file(write(tmp_path, "actually-der.pem", certgen.der(root)))
    assert (as_der.kind, as_pem.kind) == ("pem", "der")
    assert as_der.certificates[0].der == as_pem.certificates[0].der == certgen.der(root)


def test_pem_bundle_keeps_order_and_numbers_sources(
    chain: list[x509.Certificate], tmp_path: Path
) -> None:
    text = b"Bag Attributes: ignored text before\n" + b"".join(pem(c) for c in chain)
    path = write(tmp_path, "bundle.pem", text)
    loaded = load_certificate_file(path)
    assert loaded.kind == "pem"
    assert [c.der for c in loaded.certificates] == [certgen.der(c) for c in chain]
    assert [c.source for c in loaded.certificates] == [f"{path}#{n}" for n in (1, 2, 3)]


def test_pem_private_key_is_skipped_not_kept(root: x509.Certificate, tmp_path: Path) -> None:
    key_pem = certgen.rsa_key(2048, 1).private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    loaded = load_certificate_file(write(tmp_path, "with-key.pem", key_pem + pem(root)))
    assert [c.der for c in loaded.certificates] == [certgen.der(root)]
    assert loaded.notes == (f"{tmp_path / 'with-key.pem'}: skipped PEM block 1 (PRIVATE KEY)",)
    assert "MII" not in repr(loaded)  # no base64 of the key anywhere in the result


def test_pem_without_certificates(tmp_path: Path) -> None:
    key_pem = certgen.ec_key().private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InputError, match="without a CERTIFICATE or PKCS7 block"):
        load_certificate_file(write(tmp_path, "key.pem", key_pem))


def test_trusted_certificate_pem(root: x509.Certificate, tmp_path: Path) -> None:
    aux = b"\x30\x0c\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x01"  # trust: serverAuth
    body = base64.encodebytes(certgen.der(root) + aux)
    text = b"-----BEGIN TRUSTED CERTIFICATE-----\n" + body + b"-----END TRUSTED CERTIFICATE-----\n"
    loaded = load_certificate_file(write(tmp_path, "openssl-trusted.pem", text))
    assert [c.der for c in loaded.certificates] == [certgen.der(root)]


def test_certifi_bundle_loads_without_warnings(tmp_path: Path) -> None:
    expected = [certgen.der(c) for c in certgen.certifi_roots()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked deprecation warning would fail here
        loaded = load_certificate_file(certifi.where())
        for item in loaded.certificates:
            load_der_certificate(item.der)
    assert [c.der for c in loaded.certificates] == expected


def test_quiet_deprecations_hides_nothing_else() -> None:
    with pytest.warns(UserWarning, match="other") as record, quiet_deprecations():
        warnings.warn("hidden", CryptographyDeprecationWarning, stacklevel=1)
        warnings.warn("other", UserWarning, stacklevel=1)
    assert [str(w.message) for w in record] == ["other"]
    with pytest.raises(ValueError, match="error parsing asn1"), quiet_deprecations():
        x509.load_der_x509_certificate(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize("encoding", [Encoding.DER, Encoding.PEM], ids=["der", "pem"])
def test_p7b_with_several_certificates(
    encoding: Encoding, chain: list[x509.Certificate], tmp_path: Path
) -> None:
    data = pkcs7.serialize_certificates(chain, encoding)
    loaded = load_certificate_file(write(tmp_path, "chain.p7b", data))
    assert loaded.kind == ("pkcs7" if encoding is Encoding.DER else "pem")
    assert sorted(c.der for c in loaded.certificates) == sorted(certgen.der(c) for c in chain)
    assert len(loaded.certificates) == 3


def make_pfx(password: bytes | None, chain: list[x509.Certificate]) -> bytes:
    leaf_key = certgen.rsa_key(2048, 4)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"friendly", leaf_key, chain[0], chain[1:], encryption
    )


def test_pfx_with_password(chain: list[x509.Certificate], tmp_path: Path) -> None:
    path = write(tmp_path, "protected.pfx", make_pfx(b"s3cret!", chain))
    loaded = load_certificate_file(path, password="s3cret!")
    assert loaded.kind == "pkcs12"
    assert [c.der for c in loaded.certificates] == [certgen.der(c) for c in chain]
    assert loaded.notes == (f"{path}: held a private key; it was not kept",)
    assert load_certificate_file(path, password=b"s3cret!").certificates == loaded.certificates


def test_pfx_needs_its_password(chain: list[x509.Certificate], tmp_path: Path) -> None:
    path = write(tmp_path, "protected.p12", make_pfx(b"s3cret!", chain))
    with pytest.raises(InputError, match="protected by a password; give the password") as info:
        load_certificate_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(InputError, match="wrong password, or the file is damaged"):
        load_certificate_file(path, password="guess")


def test_pfx_without_password(chain: list[x509.Certificate], tmp_path: Path) -> None:
    loaded = load_certificate_file(write(tmp_path, "open.pfx", make_pfx(None, chain)))
    assert loaded.kind == "pkcs12"
    assert [c.der for c in loaded.certificates] == [certgen.der(c) for c in chain]


def test_registry_blob_file(root: x509.Certificate, tmp_path: Path) -> None:
    loaded = load_certificate_file(write(tmp_path, "Blob", encode_blob(certgen.der(root), "x")))
    assert loaded.kind == "blob"
    assert [c.der for c in loaded.certificates] == [certgen.der(root)]


def test_base64_text_of_a_certificate(root: x509.Certificate, tmp_path: Path) -> None:
    text = base64.b64encode(certgen.der(root)) + b"\n"
    loaded = load_certificate_file(write(tmp_path, "cert.b64", text))
    assert loaded.kind == "der"
    assert loaded.certificates[0].der == certgen.der(root)
    hex_blob = encode_blob(certgen.der(root)).hex().encode()
    assert load_certificate_bytes(hex_blob, "blob.txt").kind == "blob"


def test_reg_file_delegates_to_the_store_reader(
    root: x509.Certificate, chain: list[x509.Certificate], tmp_path: Path
) -> None:
    good = f"{ROOT_STORE}\\{sha1_thumbprint(certgen.der(root))}"
    wrong = f"{ROOT_STORE}\\{'00' * 20}"
    not_x509 = f"{ROOT_STORE}\\{'11' * 20}"
    entries: list[RegEntry] = [
        RegKey(good),
        RegistryValue(good, "Blob", REG_BINARY, encode_blob(certgen.der(root))),
        RegistryValue(not_x509, "Blob", REG_BINARY, encode_blob(b"\x30\x00")),
        RegistryValue(wrong, "Blob", REG_BINARY, encode_blob(certgen.der(chain[1]))),
    ]
    text = write_reg(entries) + '"Broken"=hex:zz\r\n'
    path = write(tmp_path, "store.reg", encode_reg(text))
    loaded = load_certificate_file(path)
    assert loaded.kind == "reg"
    assert [c.der for c in loaded.certificates] == [certgen.der(root), certgen.der(chain[1])]
    lines = text.split("\r\n")
    blob_lines = [n for n, line in enumerate(lines, start=1) if line.startswith('"Blob"=')]
    assert [c.source for c in loaded.certificates] == [
        f"{path}:{blob_lines[0]}",
        f"{path}:{blob_lines[2]}",
    ]
    assert len(loaded.store_entries) == 3
    assert loaded.store_entries[1].der == b"\x30\x00"  # kept as an entry, not a certificate
    assert loaded.store_entries[2].thumbprint_matches is False
    assert len(loaded.notes) == 3
    assert "bad hex byte 'zz'" in loaded.notes[0]
    assert "not a valid X.509 certificate" in loaded.notes[1]
    assert "not the key name" in loaded.notes[2]


def test_garbage_file_names_everything_tried(tmp_path: Path) -> None:
    path = write(tmp_path, "garbage.cer", b"\x30\x82\x01\x00" + bytes(range(256)))
    with pytest.raises(InputError) as info:
        load_certificate_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a certificate file; tried: ")
    for tried in ("DER certificate", "PKCS#7", "PKCS#12 (no PFX structure)", "registry Blob"):
        assert tried in message
    assert "hex/base64 text (not text)" in message


def test_text_that_is_not_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither hex nor base64"):
        load_certificate_file(write(tmp_path, "notes.txt", b"just some notes\n"))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [("empty.cer", b"", "empty file"), ("blank.pem", b"\n \n", "empty file")],
)
def test_empty_files(name: str, data: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=message):
        load_certificate_file(write(tmp_path, name, data))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read .*missing.cer"):
        load_certificate_file(tmp_path / "missing.cer")
    with pytest.raises(InputError, match="cannot read"):
        load_certificate_file(tmp_path)  # a folder


def test_hive_bytes_need_the_file() -> None:
    with pytest.raises(InputError, match="a registry hive: read it from its file"):
        load_certificate_bytes(b"regf" + b"\x00" * 60, "SOFTWARE")
