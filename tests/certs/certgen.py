"""Real certificates made with ``cryptography`` at test time, for the certificate tests.

Nothing here is a stored fixture: each certificate is signed when a test asks for it (keys are
cached per process, so a test session makes only a few).
"""

from __future__ import annotations

import functools
import warnings
from datetime import UTC, datetime, timedelta

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MICROSOFT_ROOT_2010 = {
    "CN": "Microsoft Root Certificate Authority 2010",
    "O": "Microsoft Corporation",
    "L": "Redmond",
    "ST": "Washington",
    "C": "US",
}
COBALT_STRIKE = {
    "CN": "Major Cobalt Strike",
    "OU": "AdvancedPenTesting",
    "O": "cobaltstrike",
    "L": "Somewhere",
    "ST": "Cyberspace",
    "C": "Earth",
}
_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
}


@functools.cache
def rsa_key(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key; ``n`` tells keys of the same size apart."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(parts: dict[str, str] | str) -> x509.Name:
    """An X.509 name from {"CN": ..., "O": ...} or a bare common name."""
    if isinstance(parts, str):
        parts = {"CN": parts}
    # Cobalt Strike's country ("Earth") is not two letters: cryptography warns, as it should.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x509.Name(
            [x509.NameAttribute(_OIDS[k], v, _validate=False) for k, v in parts.items()]
        )


def make_cert(
    subject: dict[str, str] | str,
    *,
    issuer: dict[str, str] | str | None = None,
    key: PrivateKey | None = None,
    issuer_key: PrivateKey | None = None,
    serial: int | None = None,
    not_before: datetime | None = None,
    days: int = 3650,
    ca: bool = True,
    algorithm: hashes.HashAlgorithm | None = None,
    san: list[str] | None = None,
) -> x509.Certificate:
    """A certificate; self-signed unless ``issuer``/``issuer_key`` are given."""
    key = key or rsa_key()
    start = not_before or datetime(2024, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer if issuer is not None else subject))
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in san]), critical=False
        )
    return builder.sign(issuer_key or key, algorithm or hashes.SHA256())


def self_signed_root(cn: str = "Contoso Internal Inspection Root") -> x509.Certificate:
    return make_cert({"CN": cn, "O": "Contoso"}, key=rsa_key(2048, 1))


def forged_microsoft_root_2010() -> x509.Certificate:
    """Same subject as the genuine Microsoft Root Certificate Authority 2010, another key."""
    return make_cert(
        MICROSOFT_ROOT_2010,
        key=rsa_key(2048, 2),
        not_before=datetime(2017, 12, 1, tzinfo=UTC),
        days=9131,
    )


def cobalt_strike_default() -> x509.Certificate:
    """Cobalt Strike's default team-server certificate: its subject and serial 0x8BB00EE."""
    return make_cert(COBALT_STRIKE, key=rsa_key(2048, 3), serial=0x8BB00EE, days=365 * 10, ca=False)


def letsencrypt_leaf(host: str = "login-micros0ft.example") -> x509.Certificate:
    """A 90-day leaf whose issuer is Let's Encrypt's R11 intermediate (signed by our own key)."""
    return make_cert(
        host,
        issuer={"CN": "R11", "O": "Let's Encrypt", "C": "US"},
        key=rsa_key(2048, 4),
        issuer_key=rsa_key(2048, 5),
        days=90,
        ca=False,
        san=[host],
    )


def certifi_roots() -> list[x509.Certificate]:
    """The genuine public roots in certifi's bundle."""
    with open(certifi.where(), "rb") as fh, warnings.catch_warnings():
        # one root in the bundle has a non-positive serial number; cryptography warns
        warnings.simplefilter("ignore")
        return x509.load_pem_x509_certificates(fh.read())


# OIDs of sha256WithRSAEncryption and the legacy algorithms, DER-encoded (same length)
_RSA_SHA256_OID = bytes.fromhex("06092a864886f70d01010b")
_LEGACY_OIDS = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),
    "md5": bytes.fromhex("06092a864886f70d010104"),
}


def legacy_signed(
    cert: x509.Certificate, key: rsa.RSAPrivateKey, hash_name: str
) -> x509.Certificate:
    """``cert`` re-signed with SHA-1 or MD5 (RSA), which ``cryptography`` no longer signs with.

    Swaps the signature algorithm OID (in the TBS part and outside it) and signs the new TBS
    bytes with the key that signed ``cert``; RSA signatures keep their length, so the DER stays
    well-formed.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(_RSA_SHA256_OID) == 2, "expected an RSA/SHA-256 certificate"
    swapped = der.replace(_RSA_SHA256_OID, _LEGACY_OIDS[hash_name])
    tbs = x509.load_der_x509_certificate(swapped).tbs_certificate_bytes
    algorithm = hashes.SHA1() if hash_name == "sha1" else hashes.MD5()
    signature = key.sign(tbs, padding.PKCS1v15(), algorithm)
    assert len(signature) == len(cert.signature)
    return x509.load_der_x509_certificate(swapped[: -len(signature)] + signature)


def der(cert: x509.Certificate) -> bytes:
    """The certificate's DER bytes (what Windows hashes for the thumbprint)."""
    return cert.public_bytes(Encoding.DER)
