"""Reference lists: what ships, certifi at runtime, and importing list files (never the network)."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from tests.certs import certgen
from tests.conftest import SHARED
from trustwatch.certs.classify import classify
from trustwatch.certs.intel import (
    INTEL_SCHEMA,
    certifi_entries,
    intel_table,
    load_intel,
    shipped_intel,
)
from trustwatch.certs.model import Verdict
from trustwatch.certs.refresh import (
    MANIFEST,
    default_data_dir,
    detect_kind,
    read_manifest,
    update_intel,
)
from trustwatch.errors import InputError

CERTS = SHARED / "certs"
MOZILLA = CERTS / "mozilla_roots_union_sha1.txt"
ROOTS_CSV = CERTS / "certifi_roots.csv"
SSLBL = CERTS / "intel" / "abusech_sslbl_sslblacklist_2023-11-14.csv"
needs_certs = pytest.mark.skipif(
    not all(p.is_file() for p in (MOZILLA, ROOTS_CSV, SSLBL)),
    reason=f"needs the ../shared/certs reference lists at {CERTS}",
)
ATTACK_EIGHT = {
    "18F7C1FCC3090203FD5BAA2F861A754976C8DD25",
    "245C97DF7514E7CF2DF8BE72AE957B9E04741E85",
    "3B1EFD3A66EA28B16697394703A72CA340A05BD5",
    "7F88CD7223F3C813818C994614A89C99FA3B5247",
    "8F43288AD272F3103B6FB1428485EA3014C0BCFE",
    "A43489159A520F0D93D032CCAF37E7FE20A8B419",
    "BE36A4562FB2EE05DBB3D32323ADF445084ED656",
    "CDD4EEAE6000AC7F40C3802C171E30148030C072",
}
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TRUSTWATCH_DATA_DIR pointing at a fresh directory; returns where lists will be stored."""
    monkeypatch.setenv("TRUSTWATCH_DATA_DIR", str(tmp_path / "tw"))
    return tmp_path / "tw" / "certs"


# --- shipped lists and certifi -------------------------------------------------------------------


def test_shipped_lists() -> None:
    intel = shipped_intel()
    microsoft = [e for e in intel.entries if e.verdict is Verdict.MICROSOFT_ROOT]
    with_hash = {e.sha1 for e in microsoft if e.sha1}
    names_only = [e for e in microsoft if not e.sha1]
    assert with_hash >= ATTACK_EIGHT
    assert {e.sha1 for e in microsoft if "attack-t1553.004-consistent" in e.labels} == ATTACK_EIGHT
    assert len(with_hash) == 14 and len(names_only) == 6
    bad = [e for e in intel.entries if e.verdict is Verdict.KNOWN_BAD]
    assert {e.sha1 for e in bad if e.sha1} == {
        "6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C",
        "1F3D38F280635F275BE92B87CF83E40E40458400",
    }
    cobalt = intel.lookup("950098276A495286EB2A2556FBAB6D83")  # by MD5
    assert cobalt and cobalt[0].serial == "8BB00EE"
    assert {ca.organisation for ca in intel.free_cas} == {
        "Let's Encrypt",
        "Internet Security Research Group",
        "ZeroSSL",
    }
    for source in intel.sources:
        assert source.origin == "shipped" and source.date and source.note


def test_certifi_roots_come_from_the_installed_bundle() -> None:
    entries = certifi_entries()
    assert len(entries) == len(certgen.certifi_roots()) >= 117
    source = entries[0].source
    assert source.origin == "certifi" and source.name.startswith("certifi ")
    assert len(source.date) == 10 and source.date[4] == "-"
    assert all(e.certificate is not None and e.spki_sha256 for e in entries)


def test_load_intel_without_imports(tmp_path: Path) -> None:
    intel = load_intel(tmp_path / "missing")
    assert {s.origin for s in intel.sources} == {"shipped", "certifi"}


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRUSTWATCH_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "explicit" / "certs"
    monkeypatch.delenv("TRUSTWATCH_DATA_DIR")
    assert default_data_dir() == tmp_path / "xdg" / "trustwatch" / "certs"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "trustwatch" / "certs"


# --- importing the real lists --------------------------------------------------------------------


def _data_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@needs_certs
def test_update_intel_over_the_shared_lists(data_env: Path) -> None:
    start = time.perf_counter()
    report = update_intel([MOZILLA, ROOTS_CSV, SSLBL], now=NOW)
    elapsed = time.perf_counter() - start
    counts = {f.file: (f.kind, f.rows) for f in report.files}
    print(f"imported {counts} in {elapsed * 1000:.0f} ms")
    with ROOTS_CSV.open(encoding="utf-8", newline="") as fh:
        csv_rows = sum(1 for _ in csv.DictReader(fh))
    assert counts == {
        MOZILLA.name: ("sha1-list", len(_data_lines(MOZILLA))),
        ROOTS_CSV.name: ("roots-csv", csv_rows),
        SSLBL.name: ("sslbl", len(_data_lines(SSLBL))),
    }
    assert counts[SSLBL.name][1] == 5522  # "# END (5522) entries", as the intel README says
    assert not report.problems
    assert report.data_dir == data_env

    manifest = {f.file: f for f in read_manifest(data_env)}
    sslbl = manifest[SSLBL.name]
    assert sslbl.sha256 == hashlib.sha256(SSLBL.read_bytes()).hexdigest()
    assert (sslbl.as_of, sslbl.as_of_basis) == ("2023-11-14", "file header")
    assert manifest[MOZILLA.name].as_of == "2026-11-28"  # no date in it: the import day
    assert manifest[MOZILLA.name].imported == "2026-11-28T12:00:00Z"
    assert all((data_env / f.stored).is_file() for f in manifest.values())
    doc = json.loads((data_env / MANIFEST).read_text(encoding="utf-8"))
    assert {f["kind"] for f in doc["files"]} == {"sha1-list", "roots-csv", "sslbl"}


@needs_certs
def test_sslbl_thumbprint_yields_its_listing_reason(data_env: Path) -> None:
    update_intel([SSLBL])
    intel = load_intel()  # the data directory from $TRUSTWATCH_DATA_DIR
    reasons = {e.reason for e in intel.lookup("6ece5ece4192683d2d84e25b0ba7e04f9cb7eb7c")}
    assert "AKBuilder C&C" in reasons
    result = classify(thumbprint="6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C", intel=intel)
    assert result.verdict is Verdict.KNOWN_BAD
    evidence = " | ".join(f.evidence for f in result.findings)
    assert "AKBuilder C&C" in evidence and "2017-04-04" in evidence
    assert f"{SSLBL.name} as of 2023-11-14" in evidence
    assert "Cobalt Strike default team-server certificate" in evidence  # and the shipped fact


@needs_certs
def test_mozilla_union_marks_retired_roots_public(data_env: Path) -> None:
    update_intel([MOZILLA])
    intel = load_intel()
    in_certifi = {e.sha1 for e in certifi_entries()}
    retired = next(line.strip() for line in _data_lines(MOZILLA) if line.strip() not in in_certifi)
    result = classify(thumbprint=retired, intel=intel)
    assert result.verdict is Verdict.PUBLIC_ROOT and not result.suspicious
    assert MOZILLA.name in result.findings[0].evidence


@needs_certs
def test_importing_again_replaces_the_list(data_env: Path) -> None:
    update_intel([SSLBL])
    update_intel([SSLBL, MOZILLA])
    assert sorted(f.file for f in read_manifest(data_env)) == sorted([SSLBL.name, MOZILLA.name])


# --- bad rows and bad files ----------------------------------------------------------------------

GOOD_SHA1 = "AB" * 20


def test_bad_rows_are_reported_with_their_line(tmp_path: Path) -> None:
    sslbl = tmp_path / "blocklist.csv"
    sslbl.write_text(
        "# abuse.ch SSLBL\n"
        "# Last updated: 2023-11-14 06:52:51 UTC\n"
        "# Listingdate,SHA1,Listingreason\n"
        f"2023-11-14 06:52:51,{GOOD_SHA1.lower()},DCRat C&C\n"
        "2023-11-13 16:38:48,not-a-sha1,AsyncRAT C&C\n"
        f"2023-11-12 16:14:19,{'CD' * 20},\n"
        f"2023-11-12 16:14:20,{GOOD_SHA1.lower()},DCRat C&C\n",
        encoding="utf-8",
    )
    report = update_intel([sslbl], tmp_path / "data")
    assert report.files[0].rows == 1 and report.files[0].bad_rows == 3
    messages = [str(p) for p in report.problems]
    assert messages == [
        f"{sslbl}:5: SHA1 is not 40 hex digits: 'not-a-sha1'",
        f"{sslbl}:6: empty Listingreason",
        f"{sslbl}:7: duplicate of line 4",
    ]
    assert load_intel(tmp_path / "data").lookup(GOOD_SHA1)[0].reason == "DCRat C&C"


def test_roots_csv_and_sha1_list_rows_are_checked(tmp_path: Path) -> None:
    roots = tmp_path / "roots.csv"
    roots.write_text(
        "sha1,sha256,subject,serial_hex,not_after\n"
        f'{GOOD_SHA1},{"EF" * 32},"CN=Good Root,O=Example",01AB,2030-01-01\n'
        f'{"CD" * 20},{"EF" * 31},"CN=Short Hash,O=Example",02,2030-01-01\n'
        f'{"12" * 20},,"CN=Bad Date",03,01/01/2030\n',
        encoding="utf-8",
    )
    sha1s = tmp_path / "roots.txt"
    sha1s.write_text(f"{GOOD_SHA1}\n\nnot a hash\n{'34' * 20}\n", encoding="utf-8")
    report = update_intel([roots, sha1s], tmp_path / "data")
    assert [f.rows for f in report.files] == [1, 2]
    assert [(p.path, p.line) for p in report.problems] == [
        (str(roots), 3),
        (str(roots), 4),
        (str(sha1s), 3),
    ]
    assert "sha256 is not 64 hex digits" in report.problems[0].message
    subject = load_intel(tmp_path / "data").lookup(GOOD_SHA1)[0].subject
    assert subject == "CN=Good Root,O=Example"


def test_pem_bundle_with_a_broken_block(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    root = certgen.self_signed_root("Imported Root")
    good = root.public_bytes(serialization.Encoding.PEM)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(
        "# a comment line\n"
        + good.decode()
        + "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        encoding="utf-8",
    )
    report = update_intel([bundle], tmp_path / "data")
    assert report.files[0].kind == "pem-bundle" and report.files[0].rows == 1
    assert report.problems[0].line == good.decode().count("\n") + 2
    result = classify(root, intel=load_intel(tmp_path / "data"))
    assert result.verdict is Verdict.PUBLIC_ROOT


def test_kind_is_told_by_content_not_name(tmp_path: Path) -> None:
    assert detect_kind(f"2023-11-14 06:52:51,{GOOD_SHA1},DCRat C&C\n") == "sslbl"
    assert detect_kind(f"{GOOD_SHA1}\n{GOOD_SHA1[:38]}:AA\n") == "sha1-list"
    assert detect_kind("sha1,subject\n") == "roots-csv"
    with pytest.raises(InputError, match="cannot tell what list this is"):
        detect_kind("hello,world\n", "notes.txt")


def test_unusable_files_write_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("sha1,subject\nnot-a-hash,CN=x\n", encoding="utf-8")
    with pytest.raises(InputError, match="no usable rows"):
        update_intel([empty], tmp_path / "data")
    with pytest.raises(InputError, match="cannot read"):
        update_intel([tmp_path / "absent.csv"], tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_malformed_manifest_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text('{"files": [{"file": "x"}]}', encoding="utf-8")
    with pytest.raises(InputError, match="malformed"):
        load_intel(tmp_path)


# --- the KQL table -------------------------------------------------------------------------------


def test_intel_table_is_flat_typed_and_keyed_by_thumbprint(tmp_path: Path) -> None:
    table = intel_table(load_intel(tmp_path))
    assert table.schema == INTEL_SCHEMA
    assert table.schema.field("Labels").type == pa.list_(pa.string())
    assert table.schema.field("SourceDate").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    keyed = [r["Thumbprint"] for r in rows if r["Thumbprint"]]
    assert len(keyed) == len(set(keyed))  # a lookup never multiplies rows
    by_sha1 = {r["Thumbprint"]: r for r in rows if r["Thumbprint"]}
    ms2010 = by_sha1["3B1EFD3A66EA28B16697394703A72CA340A05BD5"]
    assert ms2010["Verdict"] == "microsoft-root"
    assert ms2010["Subject"].startswith("CN=Microsoft Root Certificate Authority 2010")
    both = by_sha1["73A5E64A3BFF8316FF0EDCCC618A906E4EAE4D74"]  # Microsoft's, and in certifi
    assert both["Verdict"] == "public-root" and {"microsoft-root", "certifi"} <= set(both["Labels"])
    assert "certifi" in both["Source"] and "microsoft_roots.yaml" in both["Source"]
    names = [r for r in rows if not r["Thumbprint"]]
    assert any(
        r["Verdict"] == "free-ca" and r["Subject"] == "CN=R11,O=Let's Encrypt" for r in names
    )
    assert any("name-only" in r["Labels"] for r in names)
    print(f"intel table: {table.num_rows} rows ({len(names)} name-only)")


@needs_certs
def test_intel_table_merges_imported_lists(data_env: Path) -> None:
    update_intel([SSLBL, MOZILLA])
    table = intel_table(load_intel())
    by_sha1 = {r["Thumbprint"]: r for r in table.to_pylist() if r["Thumbprint"]}
    cobalt = by_sha1["6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"]
    assert cobalt["Verdict"] == "known-bad"
    assert {"sslbl", "cobalt-strike"} <= set(cobalt["Labels"])
    assert "AKBuilder C&C" in cobalt["Reason"]
    assert cobalt["SourceDate"] >= datetime(2023, 11, 14, tzinfo=UTC)  # newest of its lists


def test_intel_table_joins_in_kql(tmp_path: Path) -> None:
    import trustwatch

    kql = r"""DeviceRegistryEvents
| extend Thumbprint = toupper(tostring(split(RegistryKey, @"\")[-1]))
| lookup kind=leftouter (TrustwatchCertificateIntel | where isnotempty(Thumbprint)) on Thumbprint
| where Verdict !in ("public-root", "microsoft-root")
| project Thumbprint, Verdict"""
    key = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates\\Root\\Certificates\\"
    rows = [
        {"RegistryKey": key + "1F3D38F280635F275BE92B87CF83E40E40458400"},  # ART clone
        {"RegistryKey": key + "CDD4EEAE6000AC7F40C3802C171E30148030C072"},  # Microsoft's
        {"RegistryKey": key + "00" * 20},  # unknown: kept, with no verdict
    ]
    tables = {
        "DeviceRegistryEvents": rows,
        "TrustwatchCertificateIntel": intel_table(load_intel(tmp_path)),
    }
    result = trustwatch.query(kql, tables=tables).to_pylist()
    assert result == [
        {"Thumbprint": "1F3D38F280635F275BE92B87CF83E40E40458400", "Verdict": "known-bad"},
        {"Thumbprint": "00" * 20, "Verdict": ""},
    ]
