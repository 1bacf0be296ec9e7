"""The specification's query, pasted verbatim, over the bundled fixture: exact rows, in order."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

import trustwatch
from trustwatch.errors import KqlSemanticError
from trustwatch.output import json_matrix

from ..conftest import SHARED, needs_shared

# Pasted verbatim from ../shared/spec/T1588.004-detection-spec.txt ("KQL Detection Query").
SPEC_QUERY = r"""// Detection: Unauthorized certificate installation in Windows certificate trust stores
// Monitors registry paths for additions to Trusted Root CA and Intermediate CA stores
// by unexpected processes outside of known software deployment tooling
DeviceRegistryEvents
| where Timestamp > ago(24h)
| where RegistryKey has_any (
"SOFTWARE\\Microsoft\\SystemCertificates\\Root\\Certificates",
"SOFTWARE\\Microsoft\\SystemCertificates\\CA\\Certificates",
"SOFTWARE\\Policies\\Microsoft\\SystemCertificates\\Root\\Certificates",
"SOFTWARE\\Policies\\Microsoft\\SystemCertificates\\CA"
)
| where ActionType in ("RegistryValueSet", "RegistryKeyCreated")
| where InitiatingProcessFileName !in~ (
"svchost.exe", "lsass.exe", "wuauclt.exe", "TrustedInstaller.exe",
"MicrosoftEdgeUpdate.exe", "MsMpEng.exe", "SgrmBroker.exe"
)
| extend CertStoreType = case(
RegistryKey has "Root\\", "Trusted Root CA",
RegistryKey has "CA\\", "Intermediate CA",
"Other"
)
| extend CertThumbprint = tostring(split(RegistryKey, "\\")[-1])
| project
Timestamp,
DeviceName,
AccountName,
ActionType,
CertStoreType,
CertThumbprint,
RegistryKey,
InitiatingProcessFileName,
InitiatingProcessCommandLine,
InitiatingProcessParentFileName
| sort by Timestamp desc"""

NOW = "2024-05-02T12:00:00Z"
SAMPLE = resources.files("trustwatch.content.samples").joinpath("DeviceRegistryEvents.jsonl")

HKLM = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates"
POL = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates"
SID = "S-1-5-21-3623811015-3361044348-30300820-1013"
USER = f"HKEY_CURRENT_USER\\{SID}\\SOFTWARE\\Microsoft\\SystemCertificates"


def thumb(pair: str) -> str:
    return (pair * 40)[:40]


# (Timestamp, DeviceName, CertStoreType, CertThumbprint, RegistryKey, InitiatingProcessFileName)
EXPECTED = [
    (
        "2024-05-02T11:50:00Z",
        "ws-fin-07",
        "Trusted Root CA",
        thumb("A1"),
        f"{HKLM}\\Root\\Certificates\\{thumb('A1')}",
        "certutil.exe",
    ),
    (
        "2024-05-02T11:40:00Z",
        "ws-fin-07",
        "Trusted Root CA",
        thumb("B2"),
        f"{USER}\\Root\\Certificates\\{thumb('B2')}",
        "powershell.exe",
    ),
    (
        "2024-05-02T11:00:00Z",
        "ws-hr-02",
        "Intermediate CA",
        thumb("F6"),
        f"{POL}\\CA\\AuthRoot\\Certificates\\{thumb('F6')}",
        "mmc.exe",
    ),
    (
        "2024-05-02T10:50:00Z",
        "srv-db-01",
        "Trusted Root CA",
        thumb("0a"),
        f"{HKLM}\\Root\\Certificates\\{thumb('0a')}".lower(),
        "cmd.exe",
    ),
    (
        "2024-05-02T10:20:00Z",
        "srv-db-01",
        "Trusted Root CA",
        thumb("3D"),
        f"{HKLM}\\Root\\Certificates\\{thumb('3D')}",
        "",
    ),
    (
        "2024-05-02T10:10:00Z",
        "srv-web-03",
        "Trusted Root CA",
        "Certificates",
        f"{HKLM}\\Root\\Certificates",
        "certmgr.exe",
    ),
    (
        "2024-05-02T10:00:00Z",
        "srv-web-03",
        "Intermediate CA",
        thumb("4E"),
        f"{HKLM}\\CA\\Certificates\\{thumb('4E')}",
        "rundll32.exe",
    ),
    (
        "2024-05-02T09:50:00Z",
        "srv-web-03",
        "Trusted Root CA",
        thumb("5F"),
        f"{POL}\\Root\\Certificates\\{thumb('5F')}",
        "msiexec.exe",
    ),
    ("2024-05-02T08:10:00Z", "ws-ops-05", "Other", "CA", f"{POL}\\CA", "powershell.exe"),
    (
        "2024-05-01T12:00:01Z",
        "ws-ops-05",
        "Trusted Root CA",
        thumb("E8"),
        f"{HKLM}\\Root\\Certificates\\{thumb('E8')}",
        "certutil.exe",
    ),
]


def run_spec() -> list[list[object]]:
    table = trustwatch.query(SPEC_QUERY, tables={"DeviceRegistryEvents": str(SAMPLE)}, now=NOW)
    assert table.column_names == [
        "Timestamp",
        "DeviceName",
        "AccountName",
        "ActionType",
        "CertStoreType",
        "CertThumbprint",
        "RegistryKey",
        "InitiatingProcessFileName",
        "InitiatingProcessCommandLine",
        "InitiatingProcessParentFileName",
    ]
    return json_matrix(table)


def test_fixture_covers_the_edge_cases() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 20


def test_spec_query_returns_exactly_the_right_rows_in_order() -> None:
    rows = run_spec()
    got = [(r[0], r[1], r[4], r[5], r[6], r[7]) for r in rows]
    assert got == EXPECTED


def test_spec_query_keeps_case_and_boundaries() -> None:
    keys = {r[6] for r in run_spec()}
    assert not any(
        "CAExtra" in k or "XSOFTWARE" in k or "AuthRoot\\Certificates\\C3" in k for k in keys
    )
    assert not any("CertificatesX" in k or "Disallowed" in k for k in keys)


def test_spec_query_needs_a_column_defender_does_not_have() -> None:
    """DeviceRegistryEvents has no AccountName: Defender rejects the query, and so do we."""
    with pytest.raises(KqlSemanticError) as info:
        trustwatch.query(SPEC_QUERY, now=NOW)
    err = info.value
    assert err.code == "KQL202"
    assert "AccountName" in err.diagnostic.message
    assert err.diagnostic.hint is not None and "InitiatingProcessAccountName" in err.diagnostic.hint
    assert err.source is not None
    line, _col = err.source.line_col(err.diagnostic.span.start)  # type: ignore[union-attr]
    assert SPEC_QUERY.splitlines()[line - 1].strip() == "AccountName,"


@needs_shared
def test_pasted_query_matches_the_specification_file() -> None:
    text = (SHARED / "spec" / "T1588.004-detection-spec.txt").read_text(encoding="utf-8")
    start = text.index("// Detection:")
    end = text.index("| sort by Timestamp desc") + len("| sort by Timestamp desc")
    assert text[start:end] == SPEC_QUERY
    _ = Path
