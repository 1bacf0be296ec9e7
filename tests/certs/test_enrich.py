"""Alert enrichment: the certificate behind an alert's thumbprint, found in the data or not."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from tests.certs import certgen
from trustwatch.api import Session
from trustwatch.certs.blob import encode_blob, sha1_thumbprint
from trustwatch.certs.enrich import enrich_alerts
from trustwatch.certs.intel import load_intel
from trustwatch.certs.sightings import Sighting, certificates_in_text, find_sightings
from trustwatch.cli.main import cli
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import render

GENUINE_2010 = "3B1EFD3A66EA28B16697394703A72CA340A05BD5"


def alert(
    thumbprint: str, severity: str = "Medium", writer: str = r"C:\Temp\x.exe"
) -> dict[str, Any]:
    return {
        "AlertSeverity": severity,
        "StartTime": "2024-06-01T10:00:00Z",
        "ExtendedProperties": json.dumps({"Query Period": "01:00:00"}),
        "Evidence": [{"CertThumbprint": thumbprint, "ProcessPath": writer}],
    }


def test_text_carrying_a_certificate_as_der_pem_or_registry_blob() -> None:
    cert = certgen.self_signed_root()
    der = certgen.der(cert)
    pem = cert.public_bytes(Encoding.PEM).decode()
    blob = base64.b64encode(encode_blob(der)).decode()
    as_der = base64.b64encode(der).decode()
    assert certificates_in_text(f"$b = '{as_der}'") == [der]
    assert certificates_in_text(f"@'\n{pem}'@") == [der]
    assert certificates_in_text(f'$EncodedCertBlob = "{blob}"') == [der]
    noise = base64.b64encode(bytes(range(256)) * 3).decode()
    assert certificates_in_text(f"$x = '{noise}' ; {GENUINE_2010}") == []


def test_severity_follows_the_certificate() -> None:
    intel = load_intel()
    forged = certgen.der(certgen.forged_microsoft_root_2010())
    inspection = certgen.der(certgen.self_signed_root())
    public = certgen.der(certgen.certifi_roots()[3])
    sightings = {
        sha1_thumbprint(d): [Sighting(sha1_thumbprint(d), d, "PowerShell script block, ws1")]
        for d in (forged, inspection)
    }
    alerts = [
        alert(sha1_thumbprint(forged), "Low"),
        alert(sha1_thumbprint(inspection), "Medium"),
        alert("1F3D38F280635F275BE92B87CF83E40E40458400", "Medium"),  # listed known-bad
        alert(sha1_thumbprint(public), "Medium", r"C:\Windows\System32\svchost.exe"),
        alert(sha1_thumbprint(public), "Medium", r"C:\Users\Public\svchost.exe"),
        alert("AB" * 20, "Medium"),
        {"AlertSeverity": "Low", "ExtendedProperties": "{}", "Evidence": [{"DeviceName": "x"}]},
    ]
    stats = enrich_alerts(alerts, intel, sightings)
    assert [a["AlertSeverity"] for a in alerts] == [
        "High",  # lookalike
        "High",  # self-signed root no list knows: one step up
        "High",  # known-bad by thumbprint
        "Low",  # a public root written by Windows' updater: one step down
        "Medium",  # the same root written by a copy of svchost elsewhere
        "Medium",  # unknown thumbprint
        "Low",  # no certificate named: untouched
    ]
    assert stats.alerts == 6 and stats.raised == 3 and stats.lowered == 1
    assert stats.from_certificate == 2
    first = json.loads(alerts[0]["ExtendedProperties"])
    assert first["Certificate Verdict"] == "lookalike"
    assert first["Original Severity"] == "Low" and "lookalike" in first["Severity Reason"]
    [cert] = alerts[0]["Certificates"]
    assert cert["seen_in"] == ["PowerShell script block, ws1"]
    assert any(GENUINE_2010 in f["evidence"] for f in cert["findings"])
    assert "Certificates" not in alerts[-1]


def test_a_blob_value_in_defender_registry_events_is_found() -> None:
    der = certgen.der(certgen.forged_microsoft_root_2010())
    thumb = sha1_thumbprint(der)
    key = (
        f"HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates\\ROOT\\Certificates\\{thumb}"
    )
    rows = [
        {
            "Timestamp": "2024-06-01T10:00:00Z",
            "DeviceName": "ws1",
            "ActionType": "RegistryValueSet",
            "RegistryKey": key,
            "RegistryValueName": "Blob",
            "RegistryValueData": encode_blob(der).hex(),
        },
        {  # Sysmon's placeholder: no certificate, and no error
            "Timestamp": "2024-06-01T10:00:00Z",
            "DeviceName": "ws2",
            "ActionType": "RegistryValueSet",
            "RegistryKey": key,
            "RegistryValueName": "Blob",
            "RegistryValueData": "Binary Data",
        },
    ]
    found = find_sightings(Session({"DeviceRegistryEvents": rows}))
    assert list(found) == [thumb]
    assert found[thumb][0].der == der and found[thumb][0].where.startswith("DeviceRegistryEvents")


@pytest.mark.parametrize(("source", "verdict"), [("sysmon", "lookalike"), ("defender", "unknown")])
def test_hunt_over_the_forged_root_scenario_shows_the_classification(
    tmp_path: Path, source: str, verdict: str
) -> None:
    """Where the script block is logged, the certificate is classified; else its thumbprint."""
    [scenario] = load_scenarios(["evasion-forged-microsoft-root"])
    path = tmp_path / f"forged.{source}"
    path.write_text(render(scenario, source), encoding="utf-8")
    result = CliRunner().invoke(cli, ["hunt", str(path), "--format", "json"])
    assert result.exit_code == 1, result.stderr
    writes = [
        a
        for a in json.loads(result.stdout)
        if a["AlertName"] == "Certificate added to a Windows trust store"
    ]
    assert len(writes) == 1
    [cert] = writes[0]["Certificates"]
    assert cert["verdict"] == verdict
    assert json.loads(writes[0]["ExtendedProperties"])["Certificate Verdict"] == verdict
    if verdict == "lookalike":
        assert "Microsoft Root Certificate Authority 2010" in cert["subject"]
        assert any(GENUINE_2010 in f["evidence"] for f in cert["findings"])
        assert cert["seen_in"] and cert["seen_in"][0].startswith("PowerShell script block")
        assert (
            "lookalike (Microsoft Root Certificate Authority 2010)"
            in CliRunner().invoke(cli, ["hunt", str(path)]).stdout
        )
