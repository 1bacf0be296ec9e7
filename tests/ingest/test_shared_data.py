"""Every telemetry file in ../shared/data ingests; labelled records normalise exactly.

The labels come from ../shared/data/MANIFEST.md. One workspace holds all of the data (about
290k events and rows), built once for the module; the folders trustwatch does not read yet
(``NOT_YET_READ``) are left out: none since network/ (the Zeek TLS logs) is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NOT_YET_READ, SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import FileStats, Workspace

DATA = SHARED / "data"
EXAMPLES = SHARED / "reference" / "examples"
NOT_TELEMETRY = {".md", ".yml", ".yaml"}
# network/'s files that are not telemetry, by name: licences, a labels CSV, a labeling config
# (tests/network/test_shared_network.py checks each of its files)
NETWORK_NOT_TELEMETRY = {
    "network/cert_labels.csv",
    "network/corelight_c2_detectors/zeek-asyncrat-detector/LICENSE",
    "network/corelight_c2_detectors/zeek-quasarrat-detector/LICENSE",
    "network/stratosphere_security_datasets/LICENSE",
    "network/stratosphere_security_datasets/009-zeek-malicious/labels.config",
    "network/zat/LICENSE",
    "network/zeek_sample/LICENSE",
}

pytestmark = needs_shared


@pytest.fixture(scope="module")
def shared(shared_workspace: Any) -> tuple[Workspace, list[FileStats], list[tuple[Path, str]]]:
    return shared_workspace  # type: ignore[no-any-return]


def rows(ws: Workspace, kql: str, now: str = "2030-01-01T00:00:00Z") -> list[dict[str, Any]]:
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    return session.run(kql, now).tables[-1].to_pylist()


def test_every_telemetry_file_is_read_and_accounted_for(shared: Any) -> None:
    _, stats, skipped = shared
    telemetry = sorted(
        p
        for p in DATA.rglob("*")
        if p.is_file()
        and p.suffix.lower() not in NOT_TELEMETRY
        and p.relative_to(DATA).as_posix() not in NETWORK_NOT_TELEMETRY
        and p.relative_to(DATA).parts[0] not in NOT_YET_READ
    )
    assert sorted(Path(s.path) for s in stats) == telemetry
    named = {p.relative_to(DATA).as_posix() for p, _ in skipped} & NETWORK_NOT_TELEMETRY
    assert named == NETWORK_NOT_TELEMETRY
    assert {p.suffix for p, _ in skipped if p.relative_to(DATA).as_posix() not in named} <= (
        NOT_TELEMETRY
    )
    for s in stats:
        assert s.read == s.stored + s.quarantined + s.duplicates, s
        assert s.stored + s.duplicates > 0, s
    by_name = {Path(s.path).name: s for s in stats}
    # the Splunk capture holds 40 XML events and, between them, Splunk key=value text
    raw = by_name["certutil_exe_certificate_extraction.raw"]
    assert (raw.stored, raw.quarantined) == (40, 4)
    assert all(s.quarantined == 0 for s in stats if s is not raw)
    # the sigma .json renders are the same events as the .evtx beside them
    assert all(s.duplicates == 1 for s in stats if s.format == "evtx-json")
    # OTRF records without a record number are told apart by their line (none are dropped)
    assert all(s.duplicates == 0 for s in stats if s.format == "otrf-zip")
    # evtx_to_mitre_attack gained two logs: the rogue SIP registration (27 Sysmon 12/13 records,
    # all registry rows) and the AD CS / OCSP server's Security log (13 records, kept as raw
    # events for SecurityEvent: no table maps CA audit events)
    sip = by_name["ID12-13 SIP provider registration.evtx"]
    assert (sip.read, sip.stored, sip.unmapped) == (27, 27, 0)
    assert sip.tables == {"DeviceRegistryEvents": 27}
    adcs = by_name["ID4885,4876,4877,5123,5124-ADCS PKI OCSP.evtx"]
    assert (adcs.read, adcs.stored, adcs.unmapped, adcs.tables) == (13, 13, 13, {})
    # 186_836 before those two files (+27 +13); network/'s Zeek logs add 102_703 rows
    # (tests/network/test_shared_network.py has them file by file)
    network = [s for s in stats if Path(s.path).relative_to(DATA).parts[0] == "network"]
    assert len(network) == 14 and sum(s.stored for s in network) == 102_703
    assert sum(s.duplicates for s in network) == 11
    assert sum(s.stored for s in stats) == 186_876 + 102_703


def test_svchost_authroot_blob_write(shared: Any) -> None:
    ws = shared[0]
    got = rows(
        ws,
        'DeviceRegistryEvents | where DeviceName == "workstation5.theshire.local" '
        'and RegistryKey has "AuthRoot" and RegistryValueName == "Blob"',
    )
    assert len(got) == 1
    row = got[0]
    assert row["RegistryKey"] == (
        r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates\AuthRoot\Certificates"
        r"\AD7E1C28B064EF8F6003402014C3D0E3370EB58A"
    )
    assert (row["ActionType"], row["RegistryValueType"], row["RegistryValueData"]) == (
        "RegistryValueSet",
        "Binary",
        "",
    )
    assert row["InitiatingProcessFileName"] == "svchost.exe"
    assert row["InitiatingProcessFolderPath"] == r"C:\windows\system32\svchost.exe"
    assert row["InitiatingProcessId"] == 2464
    assert row["ReportId"] == 662353
    assert row["Timestamp"].isoformat() == "2020-10-09T22:27:56.436000+00:00"
    # preceded by the creation of the thumbprint key
    created = rows(
        ws,
        'DeviceRegistryEvents | where DeviceName == "workstation5.theshire.local" and '
        'ActionType == "RegistryKeyCreated" and RegistryKey endswith '
        '"AuthRoot\\\\Certificates\\\\AD7E1C28B064EF8F6003402014C3D0E3370EB58A"',
    )
    assert len(created) == 1 and created[0]["Timestamp"] <= row["Timestamp"]


def test_gather_network_info_certutil_store_chain(shared: Any) -> None:
    got = rows(
        shared[0],
        'DeviceProcessEvents | where DeviceName == "mkt01.pandalab.com" and FileName == '
        '"certutil.exe" | sort by Timestamp asc | project ProcessCommandLine, '
        "InitiatingProcessFileName, InitiatingProcessCommandLine, InitiatingProcessParentFileName",
    )
    assert [r["ProcessCommandLine"].strip() for r in got] == [
        "certutil  -v -store -silent My",
        "certutil  -v -store -silent -user My",
        "certutil  -v -store -silent root",
        "certutil  -v -enterprise -store -silent NTAuth",
        "certutil  -v -user -store -silent root",
    ]
    assert {r["InitiatingProcessFileName"] for r in got} == {"cmd.exe"}
    assert {r["InitiatingProcessParentFileName"] for r in got} == {"cscript.exe"}
    assert all(r["InitiatingProcessCommandLine"].endswith(">> config\\envinfo.txt") for r in got)
    parents = rows(
        shared[0],
        'DeviceProcessEvents | where DeviceName == "mkt01.pandalab.com" and FileName == "cmd.exe"'
        ' and ProcessCommandLine has "certutil" | distinct InitiatingProcessCommandLine',
    )
    assert parents == [
        {
            "InitiatingProcessCommandLine": r"C:\Windows\system32\cscript.exe "
            r"C:\Windows\system32\gatherNetworkInfo.vbs"
        }
    ]


def test_gather_network_info_chain_in_the_security_log(shared: Any) -> None:
    got = rows(
        shared[0],
        'SecurityEvent | where Computer == "WORKSTATION5.theshire.local" and EventID == 4688 '
        'and NewProcessName endswith "certutil.exe" | project CommandLine, ParentProcessName',
    )
    assert len(got) == 5
    assert {r["ParentProcessName"] for r in got} == {r"C:\Windows\System32\cmd.exe"}
    procs = rows(
        shared[0],
        'DeviceProcessEvents | where DeviceName == "workstation5.theshire.local" and '
        'FileName == "certutil.exe" and isnotempty(AccountSid) | count',
    )
    assert procs == [{"Count": 5}]


def test_rogue_sip_provider_registration(shared: Any) -> None:
    """regsvr32 registers MySIP.dll for each of the six CryptSIPDll* functions (T1553.003)."""
    got = rows(
        shared[0],
        'DeviceRegistryEvents | where RegistryKey contains "CryptSIPDll" '
        'and ActionType == "RegistryValueSet" '
        "| project DeviceName, InitiatingProcessFileName, RegistryKey, RegistryValueName, "
        "RegistryValueData",
    )
    guid = "{E59B6E68-3312-4738-961F-DB9405B2DDCB}"
    functions = {
        "PutSignedDataMsg",
        "GetSignedDataMsg",
        "RemoveSignedDataMsg",
        "CreateIndirectData",
        "VerifyIndirectData",
        "IsMyFileType2",
    }
    base = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Cryptography\OID\EncodingType 0\CryptSIPDll"
    dlls = {r["RegistryKey"] for r in got if r["RegistryValueName"] == "Dll"}
    assert dlls == {f"{base}{f}\\{guid}" for f in functions}
    assert {r["RegistryValueData"] for r in got if r["RegistryValueName"] == "Dll"} == {
        r"C:\Users\Admin\source\repos\PoCSubjectInterfacePackage\x64\Debug\MySIP.dll"
    }
    names = {r["RegistryValueData"] for r in got if r["RegistryValueName"] == "FuncName"}
    assert {"GetLegitMSSignature", "AutoApproveHash"} <= names and len(names) == 6
    assert {(r["DeviceName"], r["InitiatingProcessFileName"]) for r in got} == {
        ("win", "regsvr32.exe")
    }


def test_certificate_services_audit_events(shared: Any) -> None:
    got = rows(
        shared[0],
        'SecurityEvent | where Computer == "CDCWPKI01.rootblue.lan" '
        "| summarize count() by EventID, Account | sort by EventID asc",
    )
    assert [(r["EventID"], r["count_"]) for r in got] == [
        (4876, 1),
        (4877, 1),
        (4885, 1),
        (5123, 4),
        (5124, 6),
    ]
    assert {r["Account"] for r in got} == {"ROOTBLUE\\domadm"}


def test_4688_parent_process_id_is_the_creator(shared: Any) -> None:
    """4688's ProcessId field is the creator's id; NewProcessId is the new process's."""
    got = rows(
        shared[0],
        'DeviceProcessEvents | where DeviceName == "fs03vuln.offsec.lan" and FileName == '
        '"certutil.exe" | project ProcessId, InitiatingProcessId',
    )
    assert got == [{"ProcessId": 0xEDC, "InitiatingProcessId": 0x370}]


def test_certutil_download_process_and_connection(shared: Any) -> None:
    net = rows(
        shared[0],
        'DeviceNetworkEvents | where InitiatingProcessFileName == "certutil.exe" '
        '| where DeviceName != ""  // extracted/*.jsonl repeats records without their host\n'
        "| project DeviceName, RemoteIP, RemotePort, InitiatingProcessCommandLine",
    )
    assert [(r["DeviceName"], r["RemoteIP"], r["RemotePort"]) for r in net] == [
        ("msedgewin10", "151.101.0.133", 443)
    ] * 2
    assert all(
        "-urlcache -split -f https://raw.githubusercontent.com" in r["InitiatingProcessCommandLine"]
        for r in net
    )


def test_capi2_root_auto_updates(shared: Any) -> None:
    got = rows(
        shared[0],
        'Event | where Source == "Microsoft-Windows-CAPI2" and Computer != "" '
        "| summarize count() by EventID | sort by EventID asc",
    )
    counts = {r["EventID"]: r["count_"] for r in got}
    assert counts[4097] == 26 and counts[4100] == 9


def test_spec_rule_noise_on_benign_data_as_measured_in_the_design(shared: Any) -> None:
    """DESIGN.md: the specification's query fires 17 times on covenant_dcom_iertutil and 47
    times on metasploit_logonpasswords, all on CreateKey events of processes opening a store."""
    from tests.kql.test_spec_query import SPEC_QUERY

    query = SPEC_QUERY.replace("\nAccountName,", "")
    for device, now, expected in [
        ("workstation5.theshire.local", "2020-10-10T06:00:00Z", 17),
        ("mkt01.pandalab.com", "2023-08-16T12:00:00Z", 47),
    ]:
        got = [r for r in rows(shared[0], query, now) if r["DeviceName"] == device]
        assert len(got) == expected
        assert {r["ActionType"] for r in got} == {"RegistryKeyCreated"}


# -- one test per input shape: each Sysmon 13 example lands as the same registry row ---------

RUN_KEY = (
    r"HKEY_CURRENT_USER\S-1-5-21-1111111111-2222222222-3333333333-1001"
    r"\Software\Microsoft\Windows\CurrentVersion\Run"
)


@pytest.mark.parametrize(
    ("name", "fmt", "key", "value", "data", "process"),
    [
        (
            "sysmon13_event.xml",
            "xml",
            RUN_KEY,
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "reg.exe",
        ),
        (
            "nxlog_im_msvistalog_sysmon13.json",
            "nxlog",
            RUN_KEY,
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "reg.exe",
        ),
        (
            "sentinel_Event_sysmon13_row.json",
            "sentinel-rows",
            RUN_KEY,
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "reg.exe",
        ),
        (
            "sentinel_WindowsEvent_sysmon13_row.json",
            "sentinel-rows",
            RUN_KEY,
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "reg.exe",
        ),
        (
            "winlogbeat_sysmon13_ecs.json",
            "ecs",
            r"HKEY_CURRENT_USER\S-1-5-21-1111111111-2222222222-3333333333-1001\Software",
            "Key 1",
            "4",
            "",
        ),
        (
            "log_analytics_portal_export.csv",
            "la-portal-csv",
            RUN_KEY.replace("Software", "SOFTWARE"),
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "reg.exe",
        ),
        (
            "log_analytics_query_api_response.json",
            "la-query-api",
            RUN_KEY.replace("Software", "SOFTWARE"),
            "Updater",
            r"C:\Users\bob\AppData\Roaming\upd.exe",
            "",
        ),
        (
            "graph_runHuntingQuery_response.json",
            "defender-hunting",
            RUN_KEY.replace("Software", "SOFTWARE"),
            "Updater",
            "",
            "",
        ),
        (
            "mde_eventhub_message_DeviceRegistryEvents.json",
            "defender-stream",
            r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Windows\DataCollection",
            "LastUpdate",
            "99c53f16-e4e7-484c-83d2-6d4601bc82c1",
            "powershell.exe",
        ),
    ],
)
def test_each_input_shape_gives_the_registry_row(
    name: str, fmt: str, key: str, value: str, data: str, process: str
) -> None:
    planned, _ = pipeline.plan([EXAMPLES / name])
    assert planned[0][1] == fmt
    ws = Workspace(None)
    ws.ingest(planned)
    got = rows(
        ws,
        "DeviceRegistryEvents | project ActionType, RegistryKey, RegistryValueName, "
        "RegistryValueData, InitiatingProcessFileName, Timestamp, TimeGenerated",
    )
    assert len(got) == 1
    row = got[0]
    assert (row["ActionType"], row["RegistryKey"], row["RegistryValueName"]) == (
        "RegistryValueSet",
        key,
        value,
    )
    assert row["RegistryValueData"] == data
    assert row["InitiatingProcessFileName"] == process
    assert row["Timestamp"] is not None and row["TimeGenerated"] is not None


@pytest.mark.parametrize(
    ("name", "fmt", "table", "count"),
    [
        ("evtx_dump_sysmon_v6era.jsonl", "evtx-json", "DeviceRegistryEvents", 2),
        ("mde_storage_blob_PT1H.json", "defender-stream", "DeviceProcessEvents", 1),
        ("powershell_4104_event.xml", "xml", "DeviceEvents", 1),
    ],
)
def test_other_input_shapes(name: str, fmt: str, table: str, count: int) -> None:
    planned, _ = pipeline.plan([EXAMPLES / name])
    assert planned[0][1] == fmt
    ws = Workspace(None)
    ws.ingest(planned)
    assert rows(ws, f"{table} | count") == [{"Count": count}]


def test_exported_rows_are_not_stored_twice(tmp_path: Path) -> None:
    source = EXAMPLES / "mde_eventhub_message_DeviceRegistryEvents.json"
    copy = tmp_path / "copy.json"  # the same rows in another file: read, and not stored again
    copy.write_bytes(source.read_bytes() + b"\n")
    ws = Workspace(tmp_path / "ws.duckdb")
    first = ws.ingest(pipeline.plan([source])[0])[0]
    again = ws.ingest(pipeline.plan([source])[0])[0]  # the same file: not read again
    second = ws.ingest(pipeline.plan([copy])[0])[0]
    assert (first.read, first.stored, first.duplicates) == (1, 1, 0)
    assert (again.skipped_ingest, again.read) == (1, 0)
    assert (second.read, second.stored, second.duplicates) == (1, 0, 1)
    assert rows(ws, "DeviceRegistryEvents | count") == [{"Count": 1}]
