"""Classification of real certificates made at test time (tests/certs/certgen.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.certs import certgen
from trustwatch.certs.classify import CA_MAX_DAYS, LEAF_MAX_DAYS, Classification, classify
from trustwatch.certs.intel import Intel, load_intel
from trustwatch.certs.model import RANK, Verdict, sha1_of
from trustwatch.certs.names import keys_of_name, keys_of_text, parse_dn
from trustwatch.certs.refresh import update_intel
from trustwatch.errors import InputError

GENUINE_MS_2010 = "3B1EFD3A66EA28B16697394703A72CA340A05BD5"
COBALT_STRIKE_SHA1 = "6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"
ART_CLONE_SHA1 = "1F3D38F280635F275BE92B87CF83E40E40458400"
IN_2024 = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def intel(tmp_path_factory: pytest.TempPathFactory) -> Intel:
    """Shipped lists + certifi, nothing imported (an empty data directory)."""
    return load_intel(tmp_path_factory.mktemp("no-imports"))


def finding(result: Classification, code: str) -> str:
    """The evidence of the finding ``code`` (fails when it is missing)."""
    for f in result.findings:
        if f.code == code:
            return f.evidence
    raise AssertionError(f"no {code!r} finding in {result.codes()}")


# --- the brief's cases --------------------------------------------------------------------------


def test_self_signed_root_is_suspicious(intel: Intel) -> None:
    result = classify(certgen.self_signed_root(), intel=intel)
    assert result.verdict is Verdict.SUSPICIOUS
    assert result.suspicious
    assert {"self-signed", "ca", "not-listed"} <= set(result.codes())
    assert "verifies with its own key" in finding(result, "self-signed")
    assert result.severity_adjustment == 1


def test_forged_microsoft_root_2010_is_a_lookalike_naming_the_genuine_root(intel: Intel) -> None:
    cert = certgen.forged_microsoft_root_2010()
    result = classify(cert, intel=intel)
    assert result.verdict is Verdict.LOOKALIKE
    assert result.suspicious and result.severity_adjustment == 2
    evidence = finding(result, "lookalike")
    assert GENUINE_MS_2010 in evidence
    assert "Microsoft Root Certificate Authority 2010" in evidence
    assert sha1_of(cert) in evidence
    assert result.findings[0].code == "lookalike"  # heaviest first


def test_lookalike_ignores_case_and_whitespace(intel: Intel) -> None:
    cert = certgen.make_cert(
        {"CN": "microsoft  root certificate AUTHORITY 2010", "O": "Microsoft Corporation"},
        key=certgen.rsa_key(2048, 2),
    )
    result = classify(cert, intel=intel)
    assert result.verdict is Verdict.LOOKALIKE
    assert "common name and organisation" in finding(result, "lookalike")


def test_cobalt_strike_default_is_known_bad_by_serial_and_subject(intel: Intel) -> None:
    cert = certgen.cobalt_strike_default()
    assert sha1_of(cert) != COBALT_STRIKE_SHA1  # our own key: only the serial and name match
    result = classify(cert, intel=intel)
    assert result.verdict is Verdict.KNOWN_BAD
    evidence = finding(result, "known-bad-serial")
    assert "8BB00EE" in evidence and COBALT_STRIKE_SHA1 in evidence
    assert "known-bad-name" not in result.codes()  # one finding per listed certificate
    assert "long-validity" in result.codes()  # 10 years for a leaf


def test_regenerated_cobalt_strike_keystore_is_known_bad_by_name(intel: Intel) -> None:
    cert = certgen.make_cert(
        certgen.COBALT_STRIKE, key=certgen.rsa_key(2048, 3), serial=0xE1BD756753F87C21, ca=False
    )
    result = classify(cert, intel=intel)
    assert result.verdict is Verdict.KNOWN_BAD
    assert "Major Cobalt Strike" in finding(result, "known-bad-name")


def test_letsencrypt_style_leaf_is_free_ca(intel: Intel) -> None:
    result = classify(certgen.letsencrypt_leaf(), intel=intel, at=IN_2024)
    assert result.verdict is Verdict.FREE_CA
    assert result.suspicious  # not benign in a trust store
    assert result.severity_adjustment == 0
    evidence = finding(result, "free-ca")
    assert "Let's Encrypt" in evidence and "'R11' is one of its issuing CAs" in evidence


def test_every_certifi_root_is_a_public_root(intel: Intel) -> None:
    roots = certgen.certifi_roots()
    assert len(roots) >= 117
    start = time.perf_counter()
    results = [classify(cert, intel=intel) for cert in roots]
    elapsed = time.perf_counter() - start
    print(f"classified {len(roots)} certifi roots in {elapsed * 1000:.0f} ms")
    wrong = [(r.subject, r.verdict, r.codes()) for r in results if r.verdict != "public-root"]
    assert not wrong
    assert not any(r.suspicious for r in results)
    assert all(r.severity_adjustment == -1 for r in results)
    assert elapsed < 5


def test_genuine_sha1_signed_root_keeps_public_root_with_weightless_findings(intel: Intel) -> None:
    sha1_roots = [
        c for c in certgen.certifi_roots() if isinstance(c.signature_hash_algorithm, hashes.SHA1)
    ]
    assert sha1_roots, "certifi still carries SHA-1 self-signed roots"
    result = classify(sha1_roots[0], intel=intel)
    assert result.verdict is Verdict.PUBLIC_ROOT
    weak = next(f for f in result.findings if f.code == "weak-signature")
    assert weak.weight == 0 and weak.verdict is None


def test_microsoft_root_also_in_certifi_is_public_root_with_both_findings(intel: Intel) -> None:
    microsoft = [
        c for c in certgen.certifi_roots() if "Microsoft RSA Root" in c.subject.rfc4514_string()
    ]
    result = classify(microsoft[0], intel=intel)
    assert result.verdict is Verdict.PUBLIC_ROOT  # public-root ranks above microsoft-root
    assert {"public-root", "microsoft-root"} <= set(result.codes())


# --- bare thumbprints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thumbprint", "verdict", "suspicious"),
    [
        (GENUINE_MS_2010, Verdict.MICROSOFT_ROOT, False),
        (GENUINE_MS_2010.lower(), Verdict.MICROSOFT_ROOT, False),
        (COBALT_STRIKE_SHA1, Verdict.KNOWN_BAD, True),
        (ART_CLONE_SHA1, Verdict.KNOWN_BAD, True),
        ("CABD2A79A1076A31F21D253635CB039D4329A5E8", Verdict.PUBLIC_ROOT, False),  # ISRG Root X1
        (
            "87F2085C32B6A2CC709B365F55873E207A9CAA10BFFECF2FD16D3CF9D94D390C",
            Verdict.KNOWN_BAD,
            True,
        ),
    ],
    ids=["ms-2010", "lower-case", "cobalt-strike", "art-clone", "isrg-x1", "cobalt-sha256"],
)
def test_bare_known_thumbprint(
    intel: Intel, thumbprint: str, verdict: Verdict, suspicious: bool
) -> None:
    result = classify(thumbprint=thumbprint, intel=intel)
    assert result.verdict is verdict
    assert result.suspicious is suspicious
    assert result.at is None


def test_bare_thumbprint_with_separators(intel: Intel) -> None:
    spaced = " ".join(GENUINE_MS_2010[i : i + 2] for i in range(0, 40, 2))
    assert classify(thumbprint=spaced, intel=intel).verdict is Verdict.MICROSOFT_ROOT


def test_bare_unknown_thumbprint(intel: Intel) -> None:
    result = classify(thumbprint="00" * 20, intel=intel)
    assert result.verdict is Verdict.UNKNOWN
    assert result.suspicious
    evidence = finding(result, "not-listed")
    assert evidence.startswith("unknown: ") and "give the certificate for more" in evidence
    assert "certifi" in evidence  # names the lists it looked in


@pytest.mark.parametrize("bad", ["xyz", "12345", "G" * 40, ""])
def test_malformed_thumbprint_is_an_input_error(intel: Intel, bad: str) -> None:
    with pytest.raises(InputError, match="not a certificate thumbprint"):
        classify(thumbprint=bad, intel=intel)


def test_thumbprint_must_match_the_certificate(intel: Intel) -> None:
    cert = certgen.self_signed_root()
    assert classify(cert, thumbprint=sha1_of(cert).lower(), intel=intel).sha1 == sha1_of(cert)
    with pytest.raises(InputError, match="is not this certificate's"):
        classify(cert, thumbprint=GENUINE_MS_2010, intel=intel)
    with pytest.raises(InputError, match="needs a certificate or a thumbprint"):
        classify(intel=intel)


# --- validity, keys and signatures ---------------------------------------------------------------


def test_expired_and_not_yet_valid(intel: Intel) -> None:
    cert = certgen.make_cert("Validity Probe", days=30, ca=False)  # 2024-01-01 .. 2024-01-31
    expired = classify(cert, intel=intel, at=datetime(2025, 1, 1, tzinfo=UTC))
    assert "expired" in expired.codes() and "2024-01-31" in finding(expired, "expired")
    early = classify(cert, intel=intel, at=datetime(2023, 6, 1))  # naive: taken as UTC
    assert "not-yet-valid" in early.codes()
    assert early.verdict is Verdict.SUSPICIOUS
    inside = classify(cert, intel=intel, at=datetime(2024, 1, 15, tzinfo=UTC))
    assert not {"expired", "not-yet-valid"} & set(inside.codes())


def test_long_and_short_validity(intel: Intel) -> None:
    century_root = certgen.make_cert("Century Root", days=36500)
    assert "long-validity" in classify(century_root, intel=intel, at=IN_2024).codes()
    assert CA_MAX_DAYS < 36500
    long_leaf = certgen.make_cert("long.example", days=LEAF_MAX_DAYS + 1, ca=False)
    assert "long-validity" in classify(long_leaf, intel=intel, at=IN_2024).codes()
    ok_leaf = certgen.make_cert("ok.example", days=LEAF_MAX_DAYS, ca=False)
    assert "long-validity" not in classify(ok_leaf, intel=intel, at=IN_2024).codes()
    throwaway_ca = certgen.make_cert("Throwaway Inspection CA", days=3)
    at = datetime(2024, 1, 2, tzinfo=UTC)
    assert "short-validity" in classify(throwaway_ca, intel=intel, at=at).codes()
    six_day_leaf = certgen.make_cert("short.example", days=6, ca=False)
    assert "short-validity" not in classify(six_day_leaf, intel=intel, at=at).codes()


def test_rsa_1024_key_is_weak(intel: Intel) -> None:
    cert = certgen.make_cert("Weak Key Root", key=certgen.rsa_key(1024))
    result = classify(cert, intel=intel, at=IN_2024)
    assert "RSA 1024-bit" in finding(result, "weak-key")
    assert result.verdict is Verdict.SUSPICIOUS


def test_sha1_and_md5_signatures_are_weak(intel: Intel) -> None:
    key = certgen.rsa_key(2048, 7)
    leaf = certgen.make_cert(
        "legacy.example",
        issuer="Legacy Issuing CA",
        key=certgen.rsa_key(2048, 8),
        issuer_key=key,
        days=300,
        ca=False,
    )
    for name, weight in (("sha1", 25), ("md5", 50)):
        result = classify(certgen.legacy_signed(leaf, key, name), intel=intel, at=IN_2024)
        weak = next(f for f in result.findings if f.code == "weak-signature")
        assert weak.weight == weight and weak.verdict is Verdict.SUSPICIOUS
    root = certgen.legacy_signed(certgen.make_cert("Legacy Root", key=key), key, "sha1")
    result = classify(root, intel=intel, at=IN_2024)
    # the legacy self-signature still verifies (checked with the key, not refused)
    assert "verifies with its own key" in finding(result, "self-signed")
    assert "matters less" in finding(result, "weak-signature")


def test_ec_p256_key_is_not_weak(intel: Intel) -> None:
    cert = certgen.make_cert("EC Root", key=certgen.ec_key())
    assert "weak-key" not in classify(cert, intel=intel, at=IN_2024).codes()


# --- names and issuers ---------------------------------------------------------------------------


def test_same_common_name_as_a_public_root_is_a_lookalike(intel: Intel) -> None:
    cert = certgen.make_cert({"CN": "ISRG Root X1", "O": "Evil Corp"}, key=certgen.rsa_key(2048, 9))
    result = classify(cert, intel=intel, at=IN_2024)
    assert result.verdict is Verdict.LOOKALIKE
    evidence = finding(result, "lookalike")
    assert "same common name" in evidence and "CABD2A79A1076A31F21D253635CB039D4329A5E8" in evidence


def test_name_only_microsoft_root_is_suspicious_not_lookalike(intel: Intel) -> None:
    cert = certgen.make_cert(
        {"CN": "Microsoft Testing Root Certificate Authority 2010", "O": "Microsoft Corporation"},
        key=certgen.rsa_key(2048, 10),
    )
    result = classify(cert, intel=intel, at=IN_2024)
    assert result.verdict is Verdict.SUSPICIOUS
    assert "does not ship" in finding(result, "lookalike-name-only")


def test_issuer_named_like_a_public_root_but_not_signed_by_it(intel: Intel) -> None:
    isrg = {"CN": "ISRG Root X1", "O": "Internet Security Research Group", "C": "US"}
    # certgen writes names CN-first; certifi's root is C-first: a different DN, same keys
    leaf = certgen.make_cert(
        "bank.example",
        issuer=isrg,
        key=certgen.rsa_key(2048, 11),
        issuer_key=certgen.rsa_key(2048, 12),
        days=90,
        ca=False,
    )
    result = classify(leaf, intel=intel, at=IN_2024)
    assert result.verdict is Verdict.LOOKALIKE
    evidence = finding(result, "lookalike-issuer")
    assert "CABD2A79A1076A31F21D253635CB039D4329A5E8" in evidence and "does not verify" in evidence


def test_issuer_named_like_a_microsoft_root_cannot_be_checked(intel: Intel) -> None:
    leaf = certgen.make_cert(
        "Microsoft Windows",
        issuer=certgen.MICROSOFT_ROOT_2010,
        key=certgen.rsa_key(2048, 13),
        issuer_key=certgen.rsa_key(2048, 2),
        days=300,
        ca=False,
    )
    result = classify(leaf, intel=intel, at=IN_2024)
    assert "no copy of that root's key" in finding(result, "issuer-unverified")
    assert result.verdict is Verdict.UNKNOWN


def test_own_root_imported_as_pem_signs_reissues_and_forgeries(tmp_path: Path) -> None:
    key = certgen.rsa_key(2048, 14)
    root = certgen.make_cert({"CN": "Contoso Corporate Root", "O": "Contoso"}, key=key)
    bundle = tmp_path / "corporate.pem"
    bundle.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    update_intel([bundle], tmp_path / "data")
    intel = load_intel(tmp_path / "data")
    assert classify(root, intel=intel, at=IN_2024).verdict is Verdict.PUBLIC_ROOT

    leaf = certgen.make_cert(
        "intranet.contoso.example",
        issuer={"CN": "Contoso Corporate Root", "O": "Contoso"},
        key=certgen.rsa_key(2048, 15),
        issuer_key=key,
        days=300,
        ca=False,
    )
    signed = classify(leaf, intel=intel, at=IN_2024)
    assert "corporate.pem" in finding(signed, "issued-by-known-root")

    reissue = certgen.make_cert(
        {"CN": "Contoso Corporate Root", "O": "Contoso"}, key=key, days=7000
    )
    same_key = classify(reissue, intel=intel, at=IN_2024)
    assert "same-key-as-root" in same_key.codes() and "lookalike" not in same_key.codes()

    forged = certgen.make_cert(
        {"CN": "Contoso Corporate Root", "O": "Contoso"}, key=certgen.rsa_key(2048, 16)
    )
    assert classify(forged, intel=intel, at=IN_2024).verdict is Verdict.LOOKALIKE


# --- the result ----------------------------------------------------------------------------------


def test_to_dict_is_json(intel: Intel) -> None:
    result = classify(certgen.forged_microsoft_root_2010(), intel=intel, at=IN_2024)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["verdict"] == "lookalike" and doc["suspicious"] is True
    assert doc["at"] == "2024-02-01T00:00:00Z"
    assert doc["findings"][0]["code"] == "lookalike"
    assert set(doc["findings"][0]) == {"code", "label", "weight", "verdict", "evidence"}


def test_verdict_order() -> None:
    order = sorted(Verdict, key=RANK.__getitem__, reverse=True)
    assert [str(v) for v in order] == [
        "known-bad",
        "lookalike",
        "suspicious",
        "unknown",
        "free-ca",
        "public-root",
        "microsoft-root",
    ]


def test_art_cloned_root_blob_subject_is_known_bad_and_lookalike(intel: Intel) -> None:
    # the clone's own bytes are not at hand: same subject and serial, our key
    cert = certgen.make_cert(
        certgen.MICROSOFT_ROOT_2010,
        key=certgen.rsa_key(2048, 2),
        serial=0x52761736EEA4458142453E2D73FA89B2,
        not_before=datetime(2017, 12, 1, tzinfo=UTC),
        days=9131,
    )
    result = classify(cert, intel=intel, at=IN_2024)
    assert result.verdict is Verdict.KNOWN_BAD
    assert "Atomic Red Team" in finding(result, "known-bad-serial")
    assert GENUINE_MS_2010 in finding(result, "lookalike")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (
            'OU="NO LIABILITY ACCEPTED, (c)97 VeriSign, Inc.", OU=VeriSign Time Stamping Service '
            'Root, OU="VeriSign, Inc.", O=VeriSign Trust Network',
            "windows-quoted",
        ),
        (
            "OU=NO LIABILITY ACCEPTED\\, (c)97 VeriSign\\, Inc.,OU=VeriSign Time Stamping Service "
            "Root,OU=VeriSign\\, Inc.,O=VeriSign Trust Network",
            "rfc4514-escaped",
        ),
    ],
    ids=lambda v: v if v in ("windows-quoted", "rfc4514-escaped") else "",
)
def test_distinguished_names_parse_the_same_in_both_spellings(text: str, name: str) -> None:
    pairs = parse_dn(text)
    assert ("OU", "NO LIABILITY ACCEPTED, (c)97 VeriSign, Inc.") in pairs
    assert (
        keys_of_text(text).dn
        == keys_of_text(
            "O=VeriSign Trust Network,OU=VeriSign\\, Inc.,OU=VeriSign Time Stamping Service Root,"
            "OU=NO LIABILITY ACCEPTED\\, (c)97 VeriSign\\, Inc."
        ).dn
    )


def test_name_keys_of_certificate_and_text_agree() -> None:
    cert = certgen.forged_microsoft_root_2010()
    text = (
        "CN=Microsoft Root Certificate Authority 2010,O=Microsoft Corporation,"
        "L=Redmond,ST=Washington,C=US"
    )
    assert keys_of_name(cert.subject) == keys_of_text(text)
    assert keys_of_text("S=Washington,CN=x").dn == keys_of_text("ST=washington,CN=X").dn
    assert isinstance(cert, x509.Certificate)
