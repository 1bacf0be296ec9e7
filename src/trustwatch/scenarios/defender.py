"""A resolved host as Defender XDR Event Hub messages (the streaming API's ``records`` shape).

Tables: DeviceProcessEvents, DeviceRegistryEvents, DeviceFileEvents, DeviceNetworkEvents and
DeviceEvents (``PowerShellCommand``). trustwatch's assumption for PowerShell on a Defender
host: one ``PowerShellCommand`` row per cmdlet the script runs, ``AdditionalFields`` =
``{"Command": "<cmdlet name>"}`` - Defender does not record script block text.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import PureWindowsPath
from typing import Any

from trustwatch.scenarios.host import Activity, Host, Proc

CMDLET = re.compile(r"\b[A-Z][a-z]+-[A-Z][A-Za-z]+\b")
Row = dict[str, Any]
# scenario registry action -> ActionType; opening an existing key is no change, so no row
REGISTRY_ACTIONS = {
    "create_key": "RegistryKeyCreated",
    "set_value": "RegistryValueSet",
    "delete_key": "RegistryKeyDeleted",
}


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def render_defender(host: Host) -> str:
    """One Event Hub message (JSON) with a record per row, in time order."""
    writer = _Writer(host)
    rows: list[tuple[datetime, int, str, Row]] = []
    for n, proc in enumerate(host.procs):
        rows.append((proc.created, n, "DeviceProcessEvents", writer.process(proc)))
    for n, act in enumerate(host.activity, start=1):
        for k, (table, row) in enumerate(writer.activity(act)):
            rows.append((act.time, 1000 * n + k, table, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    records = []
    for t, _, table, row in rows:
        row["ReportId"] = writer.next_report()
        records.append(
            {
                "time": iso(t),
                "tenantId": writer.tenant,
                "operationName": "Publish",
                "category": f"AdvancedHunting-{table}",
                "properties": row,
            }
        )
    return json.dumps({"records": records}, indent=2, ensure_ascii=False) + "\n"


def registry_key(key: str, sid: str) -> str:
    """Scenario keys as Defender writes RegistryKey: HKEY_LOCAL_MACHINE, HKEY_CURRENT_USER\\SID."""
    hive, _, rest = key.partition("\\")
    if hive.upper() == "HKCU":
        return f"HKEY_CURRENT_USER\\{sid}\\{rest}"
    return f"HKEY_LOCAL_MACHINE\\{rest}" if hive.upper() == "HKLM" else key


class _Writer:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.device_id = hashlib.sha1(host.device.encode()).hexdigest()  # noqa: S324 - an id
        self.tenant = host.new_guid().strip("{}")
        self.report = host.rng.randrange(1000, 90000)

    def next_report(self) -> int:
        self.report += 1
        return self.report

    def common(self, t: datetime, action: str) -> Row:
        return {
            "Timestamp": iso(t),
            "DeviceId": self.device_id,
            "DeviceName": self.host.device,
            "ActionType": action,
        }

    def process(self, proc: Proc) -> Row:
        """DeviceProcessEvents: the new process, its parent as the initiating process."""
        parent = proc.parent
        assert parent is not None
        row = self.common(proc.created, "ProcessCreated")
        row.update(
            {
                "FileName": proc.file_name,
                "FolderPath": proc.image,
                "SHA1": proc.hashes["SHA1"].lower(),
                "SHA256": proc.hashes["SHA256"].lower(),
                "MD5": proc.hashes["MD5"].lower(),
                "ProcessVersionInfoCompanyName": proc.company,
                "ProcessVersionInfoProductName": "Microsoft® Windows® Operating System"
                if proc.company
                else "",
                "ProcessVersionInfoProductVersion": proc.version,
                "ProcessVersionInfoInternalFileName": proc.original_file_name,
                "ProcessVersionInfoOriginalFileName": proc.original_file_name,
                "ProcessVersionInfoFileDescription": proc.description,
                "ProcessId": proc.pid,
                "ProcessCommandLine": proc.command_line,
                "ProcessIntegrityLevel": proc.account.integrity,
                "ProcessTokenElevation": "TokenElevationTypeFull"
                if proc.account.integrity == "High"
                else "TokenElevationTypeDefault",
                "ProcessCreationTime": iso(proc.created),
                "AccountDomain": proc.account.domain.lower(),
                "AccountName": proc.account.name.lower(),
                "AccountSid": proc.account.sid,
                "LogonId": proc.account.logon_id,
            }
        )
        row.update(initiating(parent))
        return row

    def activity(self, act: Activity) -> list[tuple[str, Row]]:
        return getattr(self, f"_{act.kind}")(act)  # type: ignore[no-any-return]

    def _registry(self, act: Activity) -> list[tuple[str, Row]]:
        """One DeviceRegistryEvents row; none for a key only opened (nothing changed)."""
        f = act.fields
        action = REGISTRY_ACTIONS.get(f["action"])
        if action is None:
            return []
        row = self.common(act.time, action)
        row["RegistryKey"] = registry_key(f["key"], self.host.user.sid)
        if action == "RegistryKeyDeleted":
            row["PreviousRegistryKey"] = row["RegistryKey"]
        if action == "RegistryValueSet":
            kind = f.get("type", "binary")
            row["RegistryValueName"] = f.get("value", "")
            row["RegistryValueType"] = {"binary": "Binary", "dword": "Dword"}.get(kind, "String")
            row["RegistryValueData"] = "" if kind == "binary" else f.get("data", "")
        row.update(initiating(act.proc))
        return [("DeviceRegistryEvents", row)]

    def _file(self, act: Activity) -> list[tuple[str, Row]]:
        path = str(act.fields["path"])
        row = self.common(act.time, "FileCreated")
        row.update(
            {
                "FileName": PureWindowsPath(path).name,
                "FolderPath": path,
                "SHA1": f"{self.host.rng.getrandbits(160):040x}",
                "FileSize": self.host.rng.randrange(700, 2000),
            }
        )
        row.update(initiating(act.proc))
        return [("DeviceFileEvents", row)]

    def _network(self, act: Activity) -> list[tuple[str, Row]]:
        f = act.fields
        ip = str(f["ip"])
        loopback = ip.startswith("127.")
        action = (
            "ConnectionSuccess" if f.get("outcome", "success") == "success" else "ConnectionFailed"
        )
        row = self.common(act.time, action)
        row.update(
            {
                "RemoteIP": ip,
                "RemotePort": int(f["port"]),
                "RemoteUrl": str(f.get("host", "")),
                "LocalIP": "127.0.0.1" if loopback else self.host.ip,
                "LocalPort": self.host.rng.randrange(49152, 65535),
                "Protocol": "Tcp",
                "LocalIPType": "Loopback" if loopback else "Private",
                "RemoteIPType": "Loopback" if loopback else _ip_type(ip),
            }
        )
        row.update(initiating(act.proc))
        return [("DeviceNetworkEvents", row)]

    def _script(self, act: Activity) -> list[tuple[str, Row]]:
        out = []
        seen: list[str] = []
        for name in CMDLET.findall(str(act.fields["text"])):
            if name.lower() not in (s.lower() for s in seen):
                seen.append(name)
        for name in seen:
            row = self.common(act.time, "PowerShellCommand")
            row["AdditionalFields"] = json.dumps({"Command": name})
            row.update(initiating(act.proc))
            out.append(("DeviceEvents", row))
        return out

    def _capi2(self, act: Activity) -> list[tuple[str, Row]]:
        """Nothing: Defender's tables have no counterpart of the CAPI2 event log."""
        return []


def _ip_type(ip: str) -> str:
    private = ip.startswith(("10.", "192.168.")) or re.match(r"172\.(1[6-9]|2\d|3[01])\.", ip)
    return "Private" if private else "Public"


def initiating(proc: Proc) -> Row:
    """The InitiatingProcess* columns Defender fills for a row made by ``proc``."""
    parent = proc.parent
    row: Row = {
        "InitiatingProcessAccountDomain": proc.account.domain.lower(),
        "InitiatingProcessAccountName": proc.account.name.lower(),
        "InitiatingProcessAccountSid": proc.account.sid,
        "InitiatingProcessLogonId": proc.account.logon_id,
        "InitiatingProcessIntegrityLevel": proc.account.integrity,
        "InitiatingProcessSHA1": proc.hashes["SHA1"].lower(),
        "InitiatingProcessSHA256": proc.hashes["SHA256"].lower(),
        "InitiatingProcessMD5": proc.hashes["MD5"].lower(),
        "InitiatingProcessFileName": proc.file_name,
        "InitiatingProcessFolderPath": proc.image.lower(),
        "InitiatingProcessId": proc.pid,
        "InitiatingProcessCommandLine": proc.command_line,
        "InitiatingProcessCreationTime": iso(proc.created),
        "InitiatingProcessVersionInfoCompanyName": proc.company,
        "InitiatingProcessVersionInfoOriginalFileName": proc.original_file_name,
        "InitiatingProcessVersionInfoFileDescription": proc.description,
    }
    if parent is not None:
        row["InitiatingProcessParentId"] = parent.pid
        row["InitiatingProcessParentFileName"] = parent.file_name
        row["InitiatingProcessParentCreationTime"] = iso(parent.created)
    return row
