"""The rule pack over the real recorded telemetry in ../shared/data (labels from its MANIFEST).

The default pack with the default tuning must alert on the ATTACK records it is meant for and on
nothing BENIGN; the verbatim specification rule shows the noise measured in DESIGN.md.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.conftest import needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning, default_tuning_path, load_tuning

pytestmark = needs_shared

DOWNLOAD = "Certutil downloads a file from a URL"
INSTALL = "Certutil adds a certificate to a Windows certificate store"
RENAMED = "Renamed copy of certutil.exe executed"
SIP = "SIP or trust provider registration hijacked"
ADCS = "AD CS or OCSP server auditing, rights or configuration tampered with"
PRIVATE_KEY = (
    "Certificate private key exported or accessed with certutil, PowerShell, Mimikatz or cryptext"
)
CAPI2 = "Certificate private key acquired by an unexpected process (CAPI2 event 70)"
ENCODE = "Certutil encodes or decodes a file (Base64 or hex)"
REMOTE = "Certutil pointed at a UNC path or opened a URL with -URL"
REFERENCE = (
    "Unauthorized certificate installation in Windows certificate trust stores "
    "(specification, verbatim)"
)


def hunt(ws: Any, pack: str, tuning: Tuning) -> HuntResult:
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    return Hunter(session, tuning).run(load_rules([pack]))


@pytest.fixture(scope="module")
def default_pack(shared_workspace: Any) -> HuntResult:
    return hunt(shared_workspace[0], "default", load_tuning(default_tuning_path()))


def fired(result: HuntResult) -> list[tuple[str, str, str]]:
    """(rule, device, command line) of every alert, from its first evidence row."""
    out = []
    for alert in result.alerts:
        row = alert["Evidence"][0]
        out.append((alert["AlertName"], row["DeviceName"], row["ProcessCommandLine"]))
    return out


def test_attack_records_alert(default_pack: HuntResult) -> None:
    got = [(rule, device, cmd) for rule, device, cmd in fired(default_pack) if device]

    def has(rule: str, device: str, text: str) -> bool:
        return any(r == rule and d == device and text in c for r, d, c in got)

    # sigma regression: certutil -addstore -f root (specification test 1, process side)
    assert has(INSTALL, "ar-win-dc.attackrange.local", "-addstore -f root")
    # certutil -urlcache downloads (specification test 4): panache (with its connection),
    # Hayabusa Sysmon 27 sample, the Security 4688 record, sigma direct IP and GitHub
    assert has(DOWNLOAD, "msedgewin10", "-urlcache -split -f https://raw.githubusercontent.com")
    assert has(DOWNLOAD, "desktop-vqbonav", "http://192.168.158.128:8000/calc.exe")
    assert has(DOWNLOAD, "fs03vuln.offsec.lan", "-urlcache -split -f https://github.com")
    assert has(DOWNLOAD, "ar-win-dc.attackrange.local", "http://10.0.1.14/malware.exe")
    assert has(DOWNLOAD, "ar-win-dc.attackrange.local", "https://raw.githubusercontent.com")
    # the renamed certutil copy (Temptcm.tmp, no OriginalFileName in that Sysmon version)
    assert has(RENAMED, "msedgewin10", "Temptcm.tmp  -decode")
    panache = next(
        a
        for a in default_pack.alerts
        if a["AlertName"] == DOWNLOAD and a["Evidence"][0]["DeviceName"] == "msedgewin10"
    )
    assert panache["Evidence"][0]["RemoteIP"] == "151.101.0.133"


def test_sip_and_ca_tampering_records_alert(default_pack: HuntResult) -> None:
    """evtx_to_mitre_attack: the rogue SIP (records #2-#25 of ID12-13 SIP provider
    registration.evtx) is one alert naming its DLL and six functions; the AD CS / OCSP log
    (ID4885,4876,4877,5123,5124-ADCS PKI OCSP.evtx) alerts on each weakening change and once
    on the backup, not on the responder's cache and thread settings (#3, #4) nor on the two
    security settings that keep only BUILTIN\\Administrators as administrator (#2, #8)."""
    sip = [a for a in default_pack.alerts if a["AlertName"] == SIP]
    assert len(sip) == 1
    row = sip[0]["Evidence"][0]
    assert row["DeviceName"] == "win"
    assert row["ProviderGuid"] == "{E59B6E68-3312-4738-961F-DB9405B2DDCB}"
    assert row["ProviderDll"].endswith(r"\PoCSubjectInterfacePackage\x64\Debug\MySIP.dll")
    assert row["ProcessPath"].lower() == r"c:\windows\system32\regsvr32.exe"
    assert sorted(row["Functions"]) == sorted(
        "CryptSIPDll" + f
        for f in (
            "PutSignedDataMsg",
            "GetSignedDataMsg",
            "RemoveSignedDataMsg",
            "CreateIndirectData",
            "VerifyIndirectData",
            "IsMyFileType2",
        )
    )
    assert {"GetLegitMSSignature", "AutoApproveHash"} <= set(row["ProviderFuncNames"])
    ca = sorted(
        (a["Evidence"][0]["TimeGenerated"], a["Evidence"][0]["EventID"], a["Evidence"][0]["Detail"])
        for a in default_pack.alerts
        if a["AlertName"] == ADCS
    )
    assert all(
        a["Evidence"][0]["DeviceName"] == "cdcwpki01.rootblue.lan"
        for a in default_pack.alerts
        if a["AlertName"] == ADCS
    )
    cloneable = "administration right for ROOTBLUE\\Cloneable Domain Controllers"
    hacker = "administration right for ROOTBLUE\\Hacker_Group"
    assert [(event, detail) for _, event, detail in ca] == [
        (5124, cloneable),  # 1
        (5123, "AuditFilter = 7 (missing bits 8)"),  # 5: security changes no longer audited
        (5123, "AuditFilter = 0 (missing bits 11)"),  # 6
        (5124, hacker),  # 7
        (5124, hacker),  # 9
        (5124, hacker),  # 10
        (4876, "completed, BackupType 1"),  # 11 + 12
        (4885, "AuditFilter = 111 (missing bits 16)"),  # 13: CA security changes not audited
    ]


def test_private_key_records_alert(default_pack: HuntResult) -> None:
    """T1552.004 (private_key_export): SigmaHQ's certutil_export_pfx regression record and every
    key-related process of Splunk's certutil_exe_certificate_extraction set (win-dc-791937): twelve
    certutil -exportPFX / -privatekey runs, the three cryptext.dll,CryptExtAddPFX wizards and four
    certutil reads of powershellcert.pfx (one with -p password1234); notepad opening the .pfx does
    not alert. Sysmon 1 and Security 4688 record each of those processes: one alert each."""
    rows = [a["Evidence"][0] for a in default_pack.alerts if a["AlertName"] == PRIVATE_KEY]
    on_device = [r for r in rows if r["DeviceName"]]
    assert Counter((r["DeviceName"], r["Method"]) for r in on_device) == {
        ("win-dc-791937.attackrange.local", "certutil -exportPFX"): 11,
        ("win-dc-791937.attackrange.local", "certutil -privatekey"): 1,
        ("win-dc-791937.attackrange.local", "rundll32 cryptext.dll,CryptExtAddPFX"): 3,
        ("win-dc-791937.attackrange.local", "certutil read a key container"): 3,
        ("win-dc-791937.attackrange.local", "certutil opened a key container with its password"): 1,
        ("ar-win-dc.attackrange.local", "certutil -exportPFX"): 1,
    }
    assert all("notepad" not in r["ProcessCommandLine"].lower() for r in rows)
    sigma = next(r for r in on_device if r["DeviceName"] == "ar-win-dc.attackrange.local")
    assert sigma["AlertSeverity"] == "High" and sigma["KeyFile"] == "c:\\cert.pfx"


def test_capi2_private_key_access_alerts(default_pack: HuntResult) -> None:
    """evtx_to_mitre_attack/ID70-CAPI-Private key accessed Mimikatz.evtx: the three CAPI2 70
    events of mimikatz.exe acquiring the key of wec02.offsec.lan are one High alert
    (capi2_private_key_access); the host-less copy in extracted/ is the second."""
    rows = [a["Evidence"][0] for a in default_pack.alerts if a["AlertName"] == CAPI2]
    assert sorted(r["DeviceName"] for r in rows) == ["", "wec02"]
    for row in rows:
        assert row["KeyProcess"] == "mimikatz.exe" and row["CertSubject"] == "wec02.offsec.lan"
        assert row["CertThumbprint"] == "3CD6B0EFAF68549EFE9ED2316426FCD7FF81A6A8"
        assert row["Acquisitions"] == 3 and row["AlertSeverity"] == "High"


def test_certutil_misuse_records_alert(default_pack: HuntResult) -> None:
    """T1140 / T1187 (certutil_encode_decode, certutil_remote_path): every certutil -encode,
    -decode and -syncWithWU record - SigmaHQ's certutil_encode / _encode_susp_extensions /
    _encode_susp_location / _decode / _ntlm_coercion regression records (the first two are one
    record), ART T1140 in PanacheSysmon_vs_AtomicRedTeam01 (#490-#493: -encode, -decode of
    c:\\file.exe) and the panache EDR testing script's -f -decode fi.b64 AllTheThings.dll, each
    once on its device. The renamed copy's -decode (Temptcm.tmp, no version information) is
    renamed_certutil's; the cmd.exe parents naming certutil do not alert."""
    rows = [a["Evidence"][0] for a in default_pack.alerts if a["AlertName"] == ENCODE]
    on_device = sorted(
        (r["DeviceName"], r["CertVerb"], r["PayloadFileName"], r["AlertSeverity"])
        for r in rows
        if r["DeviceName"]
    )
    assert on_device == [
        ("ar-win-dc.attackrange.local", "decode", "file-decoded.ext", "Medium"),
        ("ar-win-dc.attackrange.local", "encode", "file.bat", "High"),
        ("ar-win-dc.attackrange.local", "encode", "sr011.xml", "High"),
        ("msedgewin10", "decode", "AllTheThings.dll", "High"),
        ("msedgewin10", "decode", "file.exe", "High"),
        ("msedgewin10", "encode", "file.exe", "High"),
    ]
    assert all(
        r["ProcessPath"].lower().endswith("certutil.exe") or not r["ProcessPath"] for r in rows
    )
    assert all("temptcm" not in r["ProcessCommandLine"].lower() for r in rows)
    remote = [a["Evidence"][0] for a in default_pack.alerts if a["AlertName"] == REMOTE]
    assert sorted((r["DeviceName"], r["UncPath"], r["AlertSeverity"]) for r in remote) == [
        ("", "\\\\10.0.1.14\\my-share", "High"),
        ("ar-win-dc.attackrange.local", "\\\\10.0.1.14\\my-share", "High"),
    ]


def test_benign_records_do_not_alert(default_pack: HuntResult) -> None:
    benign_hosts = {
        "workstation5.theshire.local",  # svchost AuthRoot update, Live ID, ProtectedRoots
        "mkt01.pandalab.com",  # gatherNetworkInfo.vbs certutil -store chain
        "prd01.pandalab.com",
        "mordordc.theshire.local",
    }
    for alert in default_pack.alerts:
        row = alert["Evidence"][0]
        text = json.dumps(alert["Evidence"]).lower()
        assert row["DeviceName"] not in benign_hosts, alert["DisplayName"]
        assert "gathernetworkinfo" not in text
        assert "svchost.exe" not in text
        assert "windows live id" not in text
        assert "-store" not in row["ProcessCommandLine"]
    names = {a["AlertName"] for a in default_pack.alerts}
    assert names == {
        DOWNLOAD,
        INSTALL,
        RENAMED,
        SIP,
        ADCS,
        PRIVATE_KEY,
        CAPI2,
        ENCODE,
        REMOTE,
    }  # no trust-store write, enumeration, AD CS request, template or tool alert, ...


def test_alert_totals(default_pack: HuntResult, shared_workspace: Any) -> None:
    """Each alert is raised twice: extracted/cert_related_events.jsonl repeats its record without
    the host. The copy there of the 4688 download carries the Windows zero time (1601-01-01): it
    is stored with an empty Timestamp and counted as untimed; no replayed run holds it, and the
    run over the rows without a time raises its alert, dated by the hunt and marked so (an
    attacker who zeroes an event's time does not hide it). The files added to
    evtx_to_mitre_attack: the SIP registration raises one alert (one rogue provider GUID, six
    functions, all pointing at a user's MySIP.dll: sip_trust_provider_hijack); the AD CS / OCSP
    Security log raises eight (adcs_server_tampering): the CA audit filter lowered to 111
    (#13), the Online Responder AuditFilter set to 7 and to 0 (#5, #6), OCSP Administrator given
    to Cloneable Domain Controllers once and to Hacker_Group three times (#1, #7, #9, #10), and
    the CA backup (#11 started, #12 completed: one alert). Neither file is repeated in
    extracted/, so these are not doubled. private_key_export raises 40: the 20 key-related
    processes of test_private_key_records_alert (19 from Splunk's T1552.004 set, 1 SigmaHQ
    certutil -exportPFX record), each once on its device (Sysmon 1 and Security 4688 of one
    process are one alert) and once from its host-less copy in extracted/. capi2_private_key_access
    raises 2: mimikatz.exe's three CAPI2 70 events in ID70-CAPI-Private key accessed Mimikatz.evtx,
    once on wec02 and once from their host-less copies in extracted/. certutil_encode_decode
    raises 12: the six certutil -encode/-decode processes of test_certutil_misuse_records_alert,
    each also from its host-less copy in extracted/; certutil_remote_path raises 2: SigmaHQ's
    certutil -syncwithWU \\\\10.0.1.14\\my-share record and its copy. The AD CS abuse rules
    (adcs_certificate_request_other_identity, adcs_template_changed, adcs_abuse_tool_command_line)
    raise none: no certificate request, template event or AD CS tool run is in the data;
    key_file_written_by_unexpected_process raises none: the data holds no file event for a key
    or certificate file (.pfx, .p12, .pvk, .key, .cer, .crt, .p7b, .der, .pem), and
    certificate_creation_and_signing_tooling none: no makecert, openssl, certreq -new, signtool
    or Set-AuthenticodeSignature record; adcs_ca_san_flag_enabled and adcs_abuse_tool_script_block
    none: no EditFlags change, certutil -setreg or script block naming an AD CS tool."""
    by_rule = Counter(a["AlertName"] for a in default_pack.alerts)
    # downloads: panache, Hayabusa Sysmon 27, sigma direct IP and GitHub twice, the 4688 twice
    assert by_rule == {
        DOWNLOAD: 10,
        INSTALL: 2,
        RENAMED: 2,
        SIP: 1,
        ADCS: 8,
        PRIVATE_KEY: 40,
        CAPI2: 2,
        ENCODE: 12,
        REMOTE: 2,
    }
    assert len(default_pack.alerts) == 79
    assert all(not a["TimeGenerated"].startswith("16") for a in default_pack.alerts)
    untimed_alerts = [
        a for a in default_pack.alerts if "Event Time" in json.loads(a["ExtendedProperties"])
    ]
    assert [a["AlertName"] for a in untimed_alerts] == [DOWNLOAD]
    evidence = untimed_alerts[0]["Evidence"][0]
    assert "-urlcache -split -f https://github.com/mdecrevoisier" in evidence["ProcessCommandLine"]
    untimed = {s.path.rsplit("/", 1)[-1]: s.bad_times for s in shared_workspace[1] if s.bad_times}
    assert untimed == {"cert_related_events.jsonl": 2}
    ws = shared_workspace[0]
    kept = ws.engine.execute_sql(
        "SELECT count(*) AS n FROM DeviceProcessEvents WHERE Timestamp IS NULL "
        "AND ProcessCommandLine LIKE '%-urlcache -split -f https://github.com/mdecrevoisier%'"
    ).to_pylist()
    assert kept == [{"n": 1}]  # kept, queryable, flagged by its empty time


def test_the_specification_rule_alerts_on_benign_store_opens(shared_workspace: Any) -> None:
    reference = hunt(shared_workspace[0], "reference", Tuning())
    assert {a["AlertName"] for a in reference.alerts} == {REFERENCE}
    assert len(reference.alerts) == 142  # none from the files added to evtx_to_mitre_attack
    hosts = {a["Evidence"][0]["DeviceName"] for a in reference.alerts}
    assert {"workstation5.theshire.local", "mkt01.pandalab.com"} <= hosts
    # every one is a key created or a value set on a store key, not a certificate
    thumbprints = {a["Evidence"][0]["CertThumbprint"] for a in reference.alerts}
    assert thumbprints <= {"Certificates", "CRLs", "CTLs", "CA", "Root"}
    # and it misses the certutil -addstore record: there is no registry telemetry for it
    assert all(
        a["Evidence"][0]["DeviceName"] != "ar-win-dc.attackrange.local" for a in reference.alerts
    )
