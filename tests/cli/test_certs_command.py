"""`trustwatch certs check | audit | update | lists` from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, pkcs12

from tests.certs import certgen
from tests.conftest import SHARED, needs_shared
from trustwatch.certs.blob import encode_blob, sha1_thumbprint
from trustwatch.certs.regfile import (
    REG_BINARY,
    RegEntry,
    RegistryValue,
    RegKey,
    encode_reg,
    write_reg,
)
from trustwatch.cli.main import cli

SID = "S-1-5-21-1004336348-1177238915-682003330-1001"
MACHINE = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates"
POLICY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates"
USER = f"HKEY_USERS\\{SID}\\Software\\Microsoft\\SystemCertificates"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def store(root: str, name: str, data: bytes, key_thumbprint: str | None = None) -> list[RegEntry]:
    key = f"{root}\\{name}\\Certificates\\{key_thumbprint or sha1_thumbprint(data)}"
    return [RegKey(key), RegistryValue(key, "Blob", REG_BINARY, encode_blob(data))]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A machine + user export: genuine public roots, and planted ones (thumbprint -> why)."""
    genuine = [certgen.der(c) for c in certgen.certifi_roots()[:12]]
    entries: list[RegEntry] = []
    for n, data in enumerate(genuine):
        entries += store(MACHINE, "AuthRoot" if n % 2 else "ROOT", data)
    entries += store(USER, "Root", genuine[0])
    planted = {
        "inspection": certgen.der(certgen.self_signed_root()),
        "forged": certgen.der(certgen.forged_microsoft_root_2010()),
        "cobalt": certgen.der(certgen.cobalt_strike_default()),
    }
    entries += store(MACHINE, "ROOT", planted["inspection"])
    entries += store(POLICY, "Root", planted["forged"])
    entries += store(USER, "My", planted["cobalt"])
    # a genuine root's Blob under another certificate's key: hand-edited
    tampered = sha1_thumbprint(genuine[1])
    entries += store(MACHINE, "CA", genuine[2], key_thumbprint=tampered)
    # not findings: a free-CA leaf in the personal store, a self-signed one in My
    entries += store(USER, "My", certgen.der(certgen.letsencrypt_leaf()))
    entries += store(USER, "My", certgen.der(certgen.make_cert("alice laptop", ca=False)))
    path = tmp_path_factory.mktemp("audit") / "certs.reg"
    path.write_bytes(encode_reg(write_reg(entries)))
    expected = {
        sha1_thumbprint(planted["inspection"]): "suspicious",
        sha1_thumbprint(planted["forged"]): "lookalike",
        sha1_thumbprint(planted["cobalt"]): "known-bad",
        tampered: "public-root",
    }
    return path, expected


def test_audit_flags_exactly_the_planted_certificates(export: tuple[Path, dict[str, str]]) -> None:
    path, expected = export
    code, stdout, stderr = run("certs", "audit", str(path), "--format", "json")
    assert code == 1, stderr
    flagged = {r["thumbprint"]: r["classification"]["verdict"] for r in json.loads(stdout)}
    assert flagged == expected
    assert "19 certificate(s) in 6 store(s), 4 flagged" in stderr


def test_audit_lists_every_certificate_with_all(export: tuple[Path, dict[str, str]]) -> None:
    path, _ = export
    code, stdout, _ = run("certs", "audit", str(path.parent), "--all", "--format", "json")
    assert code == 1
    rows = json.loads(stdout)
    assert len(rows) == 19
    forged = next(r for r in rows if r["classification"]["verdict"] == "lookalike")
    assert (forged["location"], forged["store"]) == ("policy", "Root")
    assert forged["thumbprint_matches"] is True
    tampered = [r for r in rows if r["problem"]]
    assert len(tampered) == 1 and tampered[0]["thumbprint_matches"] is False
    user_root = [r for r in rows if r["sid"] == SID and r["store"] == "Root"]
    assert [r["classification"]["verdict"] for r in user_root] == ["public-root"]


def test_audit_records_as_jsonl_and_csv(export: tuple[Path, dict[str, str]]) -> None:
    """One output layer: the JSON records as JSON Lines, and as CSV (nested values as JSON)."""
    path, expected = export
    at = ("--at", "2026-01-01T00:00:00Z")  # the time judged is in each record
    _, as_json, _ = run("certs", "audit", str(path), "--format", "json", *at)
    records = json.loads(as_json)
    code, as_jsonl, _ = run("certs", "audit", str(path), "--format", "jsonl", *at)
    assert code == 1
    assert [json.loads(line) for line in as_jsonl.splitlines()] == records
    code, as_csv, _ = run("certs", "audit", str(path), "--format", "csv", *at)
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert list(rows[0]) == list(records[0])
    assert {r["thumbprint"]: json.loads(r["classification"])["verdict"] for r in rows} == expected
    assert {r["flagged"] for r in rows} == {"true"}


def test_audit_of_a_clean_export_exits_0(tmp_path: Path) -> None:
    entries: list[RegEntry] = []
    for cert in certgen.certifi_roots()[:3]:
        entries += store(MACHINE, "ROOT", certgen.der(cert))
    path = tmp_path / "clean.reg"
    path.write_bytes(encode_reg(write_reg(entries)))
    code, stdout, stderr = run("certs", "audit", str(path))
    assert code == 0, stderr
    assert "3 certificate(s) in 1 store(s), 0 flagged" in stderr


def test_audit_refuses_what_is_not_a_registry_export(tmp_path: Path) -> None:
    pem = tmp_path / "root.pem"
    pem.write_bytes(certgen.self_signed_root().public_bytes(Encoding.PEM))
    code, _, stderr = run("certs", "audit", str(pem))
    assert code == 2 and "not a registry export" in stderr
    assert run("certs", "audit", str(tmp_path / "missing.reg"))[0] == 2


@pytest.mark.parametrize(
    ("make", "verdict", "code"),
    [
        (certgen.self_signed_root, "suspicious", 1),
        (certgen.forged_microsoft_root_2010, "lookalike", 1),
        (certgen.cobalt_strike_default, "known-bad", 1),
        (certgen.letsencrypt_leaf, "free-ca", 1),
        (lambda: certgen.certifi_roots()[5], "public-root", 0),
    ],
)
def test_check_a_certificate_file(tmp_path: Path, make: object, verdict: str, code: int) -> None:
    cert = make()  # type: ignore[operator]
    path = tmp_path / "c.cer"
    path.write_bytes(certgen.der(cert))
    args = ("certs", "check", str(path), "--format", "json", "--at", "2024-02-01T00:00:00Z")
    exit_code, stdout, stderr = run(*args)
    assert exit_code == code, stderr
    [result] = json.loads(stdout)
    assert result["verdict"] == verdict and result["sha1"] == sha1_thumbprint(certgen.der(cert))
    assert result["findings"] and all(f["evidence"] for f in result["findings"])


def test_check_prints_the_evidence_for_a_forged_root(tmp_path: Path) -> None:
    path = tmp_path / "forged.crt"
    path.write_bytes(certgen.forged_microsoft_root_2010().public_bytes(Encoding.PEM))
    code, stdout, _ = run("certs", "check", str(path))
    assert code == 1
    assert stdout.startswith("lookalike")
    assert "3B1EFD3A66EA28B16697394703A72CA340A05BD5" in stdout  # the genuine root it imitates


def test_check_a_pfx_never_prints_its_key(tmp_path: Path) -> None:
    cert = certgen.self_signed_root()
    data = pkcs12.serialize_key_and_certificates(
        b"x",
        certgen.rsa_key(2048, 1),
        cert,
        None,
        BestAvailableEncryption(b"pw"),
    )
    path = tmp_path / "a.pfx"
    path.write_bytes(data)
    code, _, stderr = run("certs", "check", str(path))
    assert code == 2 and "password" in stderr
    code, stdout, stderr = run("certs", "check", str(path), "--password", "pw")
    assert code == 1 and "PRIVATE KEY" not in stdout + stderr
    assert sha1_thumbprint(certgen.der(cert)) in stdout


def test_check_a_thumbprint() -> None:
    code, stdout, _ = run("certs", "check", "3b1efd3a66ea28b16697394703a72ca340a05bd5")
    assert code == 0 and stdout.startswith("microsoft-root")
    code, stdout, _ = run("certs", "check", "1F3D38F280635F275BE92B87CF83E40E40458400")
    assert code == 1 and stdout.startswith("known-bad")
    code, stdout, _ = run("certs", "check", "AB" * 20)
    assert code == 1 and stdout.startswith("unknown")
    code, _, stderr = run("certs", "check", "not-a-thing")
    assert code == 2 and "neither a file nor a thumbprint" in stderr


@needs_shared
def test_update_then_check_uses_the_imported_lists(tmp_path: Path) -> None:
    intel = SHARED / "certs"
    data_dir = str(tmp_path / "data")
    cobalt = "6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"
    sslbl_only = "2E3519B7CB61A3CD6167F727DF993F68311085EA"  # DCRat C&C, 2023-11-14
    code, stdout, _ = run("certs", "check", sslbl_only, "--data-dir", data_dir)
    assert code == 1 and stdout.startswith("unknown")
    files = [
        str(intel / "intel" / "abusech_sslbl_sslblacklist_2023-11-14.csv"),
        str(intel / "mozilla_roots_union_sha1.txt"),
    ]
    code, stdout, stderr = run("certs", "update", *files, "--data-dir", data_dir)
    assert code == 0, stderr
    assert "5522 row(s) stored" in stdout and "254 row(s) stored" in stdout
    code, stdout, _ = run("certs", "check", sslbl_only, "--data-dir", data_dir)
    assert code == 1 and stdout.startswith("known-bad") and "DCRat" in stdout
    code, stdout, _ = run("certs", "check", cobalt, "--data-dir", data_dir, "--format", "json")
    assert json.loads(stdout)[0]["verdict"] == "known-bad"
    code, stdout, _ = run("certs", "lists", "--data-dir", data_dir)
    assert code == 0 and "abusech_sslbl_sslblacklist_2023-11-14.csv" in stdout


def test_audit_an_offline_software_hive(tmp_path: Path) -> None:
    pytest.importorskip(
        "regipy", reason="needs the 'hives' extra (pip install 'trustwatch[hives]')"
    )
    from tests.certs.regf import HiveKey, build_hive

    genuine = certgen.der(certgen.certifi_roots()[7])
    forged = certgen.der(certgen.forged_microsoft_root_2010())
    inspection = certgen.der(certgen.self_signed_root())
    root = HiveKey("CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}")
    for path, data in (
        ("Microsoft\\SystemCertificates\\ROOT", genuine),
        ("Microsoft\\SystemCertificates\\AuthRoot", forged),
        ("Policies\\Microsoft\\SystemCertificates\\Root", inspection),
    ):
        key = root.at(f"{path}\\Certificates\\{sha1_thumbprint(data)}")
        key.values.append(("Blob", REG_BINARY, encode_blob(data)))
    hive = tmp_path / "SOFTWARE"
    hive.write_bytes(build_hive(root, "\\SystemRoot\\System32\\Config\\SOFTWARE"))
    code, stdout, stderr = run("certs", "audit", str(hive), "--all", "--format", "json")
    assert code == 1, stderr
    rows = {r["thumbprint"]: r for r in json.loads(stdout)}
    assert {t: (r["location"], r["store"], r["flagged"]) for t, r in rows.items()} == {
        sha1_thumbprint(genuine): ("machine", "Root", False),  # canonical spelling
        sha1_thumbprint(forged): ("machine", "AuthRoot", True),
        sha1_thumbprint(inspection): ("policy", "Root", True),
    }
