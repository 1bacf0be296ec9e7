"""Trust-store certificates found in registry exports: every store, every location, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.certs import certgen
from tests.conftest import SHARED, needs_shared
from trustwatch.certs.blob import (
    ValueDataError,
    encode_blob,
    parse_registry_value_data,
    sha1_thumbprint,
)
from trustwatch.certs.regfile import (
    REG_BINARY,
    REG_DWORD,
    RegEntry,
    RegistryValue,
    RegKey,
    encode_reg,
    read_reg,
    write_reg,
)
from trustwatch.certs.stores import (
    CertificateKey,
    find_store_certificates,
    parse_certificate_key,
)

SID = "S-1-5-21-2261457211-1283403626-3207602914-1001"
MACHINE = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates"
POLICY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates"
USER = f"HKEY_USERS\\{SID}\\Software\\Microsoft\\SystemCertificates"


def cert_entries(root: str, store: str, der: bytes, name: str | None = None) -> list[RegEntry]:
    key = f"{root}\\{store}\\Certificates\\{sha1_thumbprint(der)}"
    return [RegKey(key), RegistryValue(key, "Blob", REG_BINARY, encode_blob(der, name))]


@pytest.fixture(scope="module")
def planted() -> dict[str, bytes]:
    return {
        "inspection": certgen.der(certgen.self_signed_root()),
        "forged-ms": certgen.der(certgen.forged_microsoft_root_2010()),
    }


@pytest.fixture(scope="module")
def genuine() -> list[bytes]:
    return [certgen.der(c) for c in certgen.certifi_roots()[:12]]


@pytest.fixture(scope="module")
def export(
    genuine: list[bytes], planted: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A machine's export: genuine roots, two planted ones, and keys that hold no certificate."""
    entries: list[RegEntry] = []
    for der in genuine[:8]:
        entries += cert_entries(MACHINE, "ROOT", der)
    for der in genuine[8:]:
        entries += cert_entries(MACHINE, "AuthRoot", der, "Genuine root")
    entries += cert_entries(POLICY, "Root", planted["inspection"], "Contoso Inspection")
    entries += cert_entries(USER, "Root", planted["forged-ms"])
    # what else lives in the stores: none of it is a certificate
    auto = f"{MACHINE}\\AuthRoot\\AutoUpdate"
    entries += [
        RegistryValue(auto, "EncodedCtl", REG_BINARY, b"\x30\x82\x00\x00"),
        RegistryValue(auto, "LastSyncTime", REG_BINARY, b"\x00" * 8),
        RegistryValue(f"{USER}\\Root\\ProtectedRoots", "Certificates", REG_BINARY, b"\x01"),
        RegKey(f"{MACHINE}\\ROOT\\CRLs"),
        RegKey(f"{MACHINE}\\Disallowed\\Certificates"),
        RegistryValue(f"{MACHINE}\\ROOT\\Certificates", "Flags", REG_DWORD, b"\0\0\0\0"),
        RegistryValue("HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\Certificates\\AB", "Blob", 3, b""),
    ]
    path = tmp_path_factory.mktemp("reg") / "machine.reg"
    path.write_bytes(encode_reg(write_reg(entries)))
    return path


def test_export_gives_exactly_every_certificate(
    export: Path, genuine: list[bytes], planted: dict[str, bytes]
) -> None:
    snap = read_reg(export)
    assert snap.problems == ()
    found = find_store_certificates(snap.entries)
    got = {(c.location, c.sid, c.store, c.thumbprint, c.der) for c in found}
    expected: set[tuple[str, str | None, str, str, bytes | None]]
    expected = {("machine", None, "Root", sha1_thumbprint(d), d) for d in genuine[:8]}
    expected |= {("machine", None, "AuthRoot", sha1_thumbprint(d), d) for d in genuine[8:]}
    inspection, forged = planted["inspection"], planted["forged-ms"]
    expected.add(("policy", None, "Root", sha1_thumbprint(inspection), inspection))
    expected.add(("user", SID, "Root", sha1_thumbprint(forged), forged))
    assert len(found) == 14
    assert got == expected
    assert all(c.thumbprint_matches is True and c.problem is None for c in found)


def test_results_carry_their_line_and_key(export: Path, planted: dict[str, bytes]) -> None:
    found = find_store_certificates(read_reg(export).entries)
    policy = next(c for c in found if c.location == "policy")
    text = export.read_bytes().decode("utf-16")
    line_no = int(policy.source.rsplit(":", 1)[1])
    assert policy.source == f"{export}:{line_no}"
    assert text.split("\r\n")[line_no - 1].startswith('"Blob"=hex:')
    assert text.split("\r\n")[line_no - 2] == f"[{policy.key}]"
    assert policy.friendly_name == "Contoso Inspection"


def test_blob_under_the_wrong_thumbprint(planted: dict[str, bytes]) -> None:
    key = f"{MACHINE}\\ROOT\\Certificates\\{'AB' * 20}"
    value = RegistryValue(key, "Blob", REG_BINARY, encode_blob(planted["forged-ms"]), "w.reg", 9)
    (cert,) = find_store_certificates([value])
    assert cert.thumbprint == "AB" * 20
    assert cert.der == planted["forged-ms"]
    assert cert.thumbprint_matches is False
    assert cert.problem is not None and "not the key name" in cert.problem
    assert cert.source == "w.reg:9"


def test_damaged_entries_are_kept_with_their_problem(planted: dict[str, bytes]) -> None:
    der = planted["inspection"]
    base = f"{MACHINE}\\CA\\Certificates"
    entries: list[RegEntry] = [
        RegistryValue(
            f"{base}\\{'11' * 20}", "Blob", REG_BINARY, encode_blob(der)[:-5], "d.reg", 3
        ),
        RegKey(f"{base}\\{'22' * 20}", "d.reg", 5),
        RegistryValue(f"{base}\\not-hex", "Blob", REG_BINARY, encode_blob(der), "d.reg", 7),
        RegistryValue(
            f"{base}\\{'33' * 20}",
            "Blob",
            REG_BINARY,
            encode_blob(b"\x30\x03\x02\x01\x00"),
            "d.reg",
            8,
        ),
    ]
    found = find_store_certificates(entries)
    assert [(c.thumbprint, c.source) for c in found] == [
        ("11" * 20, "d.reg:3"),
        ("NOT-HEX", "d.reg:7"),
        ("33" * 20, "d.reg:8"),
        ("22" * 20, "d.reg:5"),
    ]
    truncated, not_hex, not_x509, no_blob = found
    assert truncated.der is None and truncated.thumbprint_matches is None
    assert (
        truncated.problem is not None and "malformed certificate Blob at byte" in truncated.problem
    )
    assert not_hex.der == der and not_hex.thumbprint_matches is False
    assert not_hex.problem == "key name 'NOT-HEX' is not a SHA-1 thumbprint"
    assert not_x509.problem is not None and "not a valid X.509 certificate" in not_x509.problem
    assert no_blob.der is None and no_blob.problem == "certificate key has no Blob value"
    assert all(c.store == "CA" for c in found)


def test_cached_sha1_that_disagrees_with_the_der(planted: dict[str, bytes]) -> None:
    der = planted["inspection"]
    thumb = sha1_thumbprint(der)
    blob = encode_blob(der, include_hashes=False, extra=[(3, b"\x99" * 20)])
    value = RegistryValue(f"{MACHINE}\\ROOT\\Certificates\\{thumb}", "Blob", REG_BINARY, blob)
    (cert,) = find_store_certificates([value])
    assert cert.thumbprint_matches is True
    assert cert.problem == f"the Blob's cached SHA-1 property says {'99' * 20}"


THUMB = "AB" * 20
CERT_TAIL = f"\\Certificates\\{THUMB}"
MS_SC = "Microsoft\\SystemCertificates"
USER_SC = f"Software\\{MS_SC}"
KEY_CASES = [
    pytest.param(f"{MACHINE}\\ROOT", ("machine", None, "Root"), id="hklm"),
    pytest.param(
        f"HKLM\\Software\\{MS_SC}\\authroot", ("machine", None, "AuthRoot"), id="hklm-short"
    ),
    pytest.param(f"{POLICY}\\Root", ("policy", None, "Root"), id="policy"),
    pytest.param(
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\EnterpriseCertificates\\NTAuth",
        ("enterprise", None, "NTAuth"),
        id="enterprise",
    ),
    pytest.param(
        f"\\REGISTRY\\MACHINE\\SOFTWARE\\{MS_SC}\\Disallowed",
        ("machine", None, "Disallowed"),
        id="registry-machine",
    ),
    pytest.param(f"HKEY_CURRENT_USER\\{USER_SC}\\My", ("user", None, "My"), id="hkcu"),
    pytest.param(
        f"HKEY_CURRENT_USER\\{SID}\\{USER_SC}\\Root", ("user", SID, "Root"), id="defender-sid"
    ),
    pytest.param(
        f"HKU\\{SID}\\Software\\Policies\\{MS_SC}\\Root",
        ("user-policy", SID, "Root"),
        id="hku-policy",
    ),
    pytest.param(
        f"\\REGISTRY\\USER\\{SID}\\{USER_SC}\\TrustedPeople",
        ("user", SID, "TrustedPeople"),
        id="registry-user",
    ),
    pytest.param(
        f"HKEY_USERS\\.DEFAULT\\{USER_SC}\\Root", ("user", ".DEFAULT", "Root"), id="default-user"
    ),
    pytest.param(
        f"{MACHINE}\\Windows Live ID Token Issuer",
        ("machine", None, "Windows Live ID Token Issuer"),
        id="spaces-in-store",
    ),
    pytest.param(f"{MS_SC}\\ROOT", ("machine", None, "Root"), id="software-hive"),
    pytest.param(
        f"\\Policies\\{MS_SC}\\TrustedPublisher",
        ("policy", None, "TrustedPublisher"),
        id="software-hive-policy",
    ),
    pytest.param(f"{USER_SC}\\Root", ("user", None, "Root"), id="ntuser-hive"),
    pytest.param(
        f"Software\\Policies\\{MS_SC}\\CA", ("user-policy", None, "CA"), id="ntuser-hive-policy"
    ),
    pytest.param(
        f"{MACHINE}\\Contoso Custom Store",
        ("machine", None, "Contoso Custom Store"),
        id="custom-store",
    ),
]
NOT_CERTIFICATE_KEYS = [
    pytest.param(f"{MACHINE}\\ROOT\\Certificates", id="store-itself"),
    pytest.param(f"{MACHINE}\\ROOT\\CRLs\\{THUMB}", id="crl"),
    pytest.param(f"{MACHINE}\\ROOT{CERT_TAIL}\\Sub", id="below-cert"),
    pytest.param(f"{USER}\\Root\\ProtectedRoots\\Certificates", id="protected-roots"),
    pytest.param(
        f"HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\SystemCertificates\\Root{CERT_TAIL}",
        id="not-microsoft",
    ),
    pytest.param(f"HKEY_USERS\\{MS_SC}\\Root{CERT_TAIL}", id="hku-without-sid"),
]


@pytest.mark.parametrize(("store_key", "expected"), KEY_CASES)
def test_parse_certificate_key(store_key: str, expected: tuple[str, str | None, str]) -> None:
    location, sid, store = expected
    found = parse_certificate_key(store_key + CERT_TAIL)
    assert found == CertificateKey(location, sid, store, THUMB)  # type: ignore[arg-type]
    lower = parse_certificate_key(store_key + CERT_TAIL.lower())
    assert lower is not None and lower.thumbprint == THUMB  # key names are upper-cased


@pytest.mark.parametrize("key", NOT_CERTIFICATE_KEYS)
def test_other_keys_are_not_certificates(key: str) -> None:
    assert parse_certificate_key(key) is None


def test_relative_scope_overrides_the_guess() -> None:
    found = parse_certificate_key(f"{USER_SC}\\Root{CERT_TAIL}", relative_scope="machine")
    assert found == CertificateKey("machine", None, "Root", THUMB)


@needs_shared
def test_real_sysmon_certificate_paths() -> None:
    """Registry paths Sysmon logged on real machines (../shared/data/extracted)."""
    path = SHARED / "data" / "extracted" / "cert_related_events.jsonl"
    if not path.is_file():
        pytest.skip(f"needs ../shared/data/extracted/cert_related_events.jsonl at {path}")
    blobs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = json.loads(line)["fields"]
        target = str(fields.get("TargetObject", ""))
        if target.casefold().endswith("\\blob") and "Certificates\\" in target:
            blobs.append((target.rsplit("\\", 1)[0], str(fields.get("Details", ""))))
    assert len(blobs) >= 20
    parsed = [parse_certificate_key(key) for key, _ in blobs]
    assert all(p is not None and p.location == "machine" for p in parsed)
    stores = {p.store for p in parsed if p is not None}
    assert stores == {"Windows Live ID Token Issuer", "AuthRoot"}
    # Sysmon never logs the Blob's bytes: the reason must say so, not "bad hex"
    details = {d for _, d in blobs}
    assert details == {"Binary Data"}
    with pytest.raises(ValueDataError, match="Sysmon does not log binary"):
        parse_registry_value_data(details.pop())
