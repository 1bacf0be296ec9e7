"""Offline hives (SOFTWARE, NTUSER.DAT), written by tests/certs/regf.py and read through regipy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.certs import certgen
from tests.certs.regf import HiveKey, build_hive
from trustwatch.certs.blob import encode_blob, sha1_thumbprint
from trustwatch.certs.hive import INSTALL_HINT, read_hive
from trustwatch.certs.regfile import REG_BINARY, REG_DWORD, REG_SZ, RegistryValue, RegKey
from trustwatch.certs.stores import find_store_certificates
from trustwatch.errors import InputError

NEEDS_REGIPY = "hive reading needs the optional regipy package (pip install 'trustwatch[hives]')"
SID = "S-1-5-21-1004336348-1177238915-682003330-1001"


@pytest.fixture(scope="module")
def ders() -> dict[str, bytes]:
    certs = {
        "genuine": certgen.certifi_roots()[0],
        "inspection": certgen.self_signed_root(),
        "forged-ms": certgen.forged_microsoft_root_2010(),
        "cobalt": certgen.cobalt_strike_default(),
    }
    return {name: c.public_bytes(Encoding.DER) for name, c in certs.items()}


def add_cert(root: HiveKey, store_path: str, der: bytes) -> str:
    key = f"{store_path}\\Certificates\\{sha1_thumbprint(der)}"
    root.at(key).values.append(("Blob", REG_BINARY, encode_blob(der, "friendly")))
    return key


@pytest.fixture(scope="module")
def software_hive(ders: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = HiveKey("CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}")
    add_cert(root, "Microsoft\\SystemCertificates\\ROOT", ders["genuine"])
    add_cert(root, "Microsoft\\SystemCertificates\\AuthRoot", ders["forged-ms"])
    add_cert(root, "Policies\\Microsoft\\SystemCertificates\\Root", ders["inspection"])
    add_cert(root, "Microsoft\\EnterpriseCertificates\\NTAuth", ders["cobalt"])
    root.at("Microsoft\\SystemCertificates\\ROOT\\Certificates\\" + "00" * 20)  # no Blob
    store = root.at("Microsoft\\SystemCertificates\\ROOT")
    store.values += [
        ("Small", REG_BINARY, b"\x01\x02"),  # inline data (4 bytes or less)
        ("Text", REG_SZ, "caf\u00e9\x00".encode("utf-16-le")),
        ("Flags", REG_DWORD, (5).to_bytes(4, "little")),
    ]
    root.at("Microsoft\\Windows\\CurrentVersion").values.append(("Not", REG_SZ, b"x\x00\x00\x00"))
    path = tmp_path_factory.mktemp("hives") / "SOFTWARE"
    path.write_bytes(build_hive(root, "\\SystemRoot\\System32\\Config\\SOFTWARE"))
    return path


@pytest.fixture(scope="module")
def ntuser_hive(ders: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = HiveKey("CsiTool-CreateHive-{00000000-0000-0000-0000-000000000000}")
    add_cert(root, "Software\\Microsoft\\SystemCertificates\\Root", ders["forged-ms"])
    add_cert(root, "Software\\Policies\\Microsoft\\SystemCertificates\\CA", ders["inspection"])
    root.at("Software\\Microsoft\\Windows").values.append(("Other", REG_BINARY, b"\x00" * 9))
    path = tmp_path_factory.mktemp("hives") / "NTUSER.DAT"
    path.write_bytes(build_hive(root, "\\??\\C:\\Users\\alice\\ntuser.dat"))
    return path


def test_missing_regipy_says_what_to_install(
    software_hive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs with or without regipy: a None entry in sys.modules makes the import fail."""
    monkeypatch.setitem(sys.modules, "regipy.registry", None)
    with pytest.raises(InputError) as info:
        read_hive(software_hive)
    assert "pip install 'trustwatch[hives]'" in str(info.value)
    assert info.value.diagnostic.hint == INSTALL_HINT


def test_software_hive_stores(software_hive: Path, ders: dict[str, bytes]) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    snap = read_hive(software_hive)
    assert snap.format == "regf"
    assert snap.problems == ()
    found = find_store_certificates(snap.entries)
    got = {(c.location, c.store, c.thumbprint, c.der, c.thumbprint_matches) for c in found}
    assert got == {
        ("machine", "Root", sha1_thumbprint(ders["genuine"]), ders["genuine"], True),
        ("machine", "AuthRoot", sha1_thumbprint(ders["forged-ms"]), ders["forged-ms"], True),
        ("policy", "Root", sha1_thumbprint(ders["inspection"]), ders["inspection"], True),
        ("enterprise", "NTAuth", sha1_thumbprint(ders["cobalt"]), ders["cobalt"], True),
        ("machine", "Root", "00" * 20, None, None),
    }
    assert all(c.source == str(software_hive) for c in found)
    assert {c.friendly_name for c in found if c.der} == {"friendly"}
    no_blob = next(c for c in found if c.der is None)
    assert no_blob.problem == "certificate key has no Blob value"


def test_only_store_keys_are_read(software_hive: Path) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    keys = {e.key for e in read_hive(software_hive).entries}
    assert "Microsoft\\SystemCertificates" in keys
    assert not any("CurrentVersion" in k for k in keys)


def test_values_come_back_as_registry_bytes(software_hive: Path) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    snap = read_hive(software_hive)
    store = "Microsoft\\SystemCertificates\\ROOT"
    values = {v.name: v for v in snap.values if v.key == store}
    assert values["Small"] == RegistryValue(
        store, "Small", REG_BINARY, b"\x01\x02", str(software_hive)
    )
    assert values["Text"].type == REG_SZ
    assert values["Text"].data == "caf\u00e9\x00".encode("utf-16-le")
    assert values["Flags"].data == (5).to_bytes(4, "little")
    assert RegKey(store, str(software_hive)) in snap.entries


def test_ntuser_hive_is_user_scope(ntuser_hive: Path, ders: dict[str, bytes]) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    found = find_store_certificates(read_hive(ntuser_hive).entries)
    assert {(c.location, c.sid, c.store, c.der) for c in found} == {
        ("user", None, "Root", ders["forged-ms"]),
        ("user-policy", None, "CA", ders["inspection"]),
    }


def test_ntuser_hive_under_a_users_sid(ntuser_hive: Path, ders: dict[str, bytes]) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    snap = read_hive(ntuser_hive, root=f"HKEY_USERS\\{SID}\\")
    found = find_store_certificates(snap.entries)
    assert {(c.location, c.sid, c.store) for c in found} == {
        ("user", SID, "Root"),
        ("user-policy", SID, "CA"),
    }
    root_cert = next(c for c in found if c.store == "Root")
    thumb = sha1_thumbprint(ders["forged-ms"])
    expected_key = (
        f"HKEY_USERS\\{SID}\\Software\\Microsoft\\SystemCertificates\\Root\\Certificates\\{thumb}"
    )
    assert root_cert.key == expected_key


def test_hive_through_the_file_loader(ntuser_hive: Path, ders: dict[str, bytes]) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    from trustwatch.certs.files import load_certificate_file

    loaded = load_certificate_file(ntuser_hive)
    assert loaded.kind == "hive"
    assert sorted(c.der for c in loaded.certificates) == sorted(
        [ders["forged-ms"], ders["inspection"]]
    )


def test_not_a_hive(tmp_path: Path) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    path = tmp_path / "SOFTWARE"
    path.write_bytes(b"Windows Registry Editor Version 5.00\r\n")
    with pytest.raises(InputError, match="not a registry hive"):
        read_hive(path)


def test_damaged_hive(software_hive: Path, tmp_path: Path) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    path = tmp_path / "cut"
    path.write_bytes(software_hive.read_bytes()[:4200])  # base block and a bit of the bin
    with pytest.raises(InputError, match="regipy cannot read the hive"):
        read_hive(path)


def test_missing_hive_file(tmp_path: Path) -> None:
    pytest.importorskip("regipy", reason=NEEDS_REGIPY)
    with pytest.raises(InputError, match="cannot read .*nothing"):
        read_hive(tmp_path / "nothing")
