"""A resolved host without Sysmon, as ``evtx_dump -o jsonl`` prints its event logs.

The host audits process creation with command lines (Security 4688, version 2) and registry
value changes under SACL-audited keys (Security 4657), logs PowerShell script blocks (4104) and
keeps its Application log (CAPI2 4097). Everything else a scenario does - connections, files,
key creations, keys only opened, writes outside the audited keys - leaves no record here.

Audited keys (trustwatch's assumed audit policy, deployable with Group Policy's registry
security settings): the machine SystemCertificates and EnterpriseCertificates keys and their
Group Policy copy, and the SIP and trust provider registrations (Cryptography\\OID\\EncodingType
0, Cryptography\\Providers\\Trust, native and WOW6432Node). Group Policy cannot put a SACL on every
user's hive, so writes to a user's own stores (HKCU) are not audited.

The file is what running ``evtx_dump -o jsonl`` over Security.evtx, the PowerShell Operational
log and Application.evtx in turn prints: one compact JSON document per record, each log's
records in record-id order, evtx's field order and value types (hex strings for ids and logon
ids, GUIDs upper case without braces, integers for the System numbers).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from trustwatch.ingest.readers.evtxjson import event_doc, system_doc
from trustwatch.scenarios.host import Account, Activity, Host, Proc
from trustwatch.scenarios.sysmon import (
    APP_CHANNEL,
    CAPI2,
    CAPI2_KEYWORDS,
    POWERSHELL,
    PS_CHANNEL,
    ROOT_AUTO_UPDATE,
    split_text,
)

SECURITY = ("Microsoft-Windows-Security-Auditing", "54849625-5478-4994-A5BA-3E3B0328C30D")
SECURITY_CHANNEL = "Security"
AUDIT_KEYWORDS = "0x8020000000000000"  # Audit Success
# event id -> (version, task): process creation, registry
SECURITY_EVENTS = {4688: (2, 13312), 4657: (0, 12801)}
# Certificate Services audit events a CA host writes (task 12805, Certification Services)
CA_EVENTS = (4876, 4877, 4882, 4885, 4886, 4887, 4888, 4890, 4891, 4892, 4898, 4899, 4900)
SECURITY_EVENTS.update(dict.fromkeys(CA_EVENTS, (0, 12805)))
AUDITED_KEYS = (
    "HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\",
    "HKLM\\SOFTWARE\\Microsoft\\EnterpriseCertificates\\",
    "HKLM\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates\\",
    # the SIP and trust provider registrations a T1553.003 hijack rewrites
    "HKLM\\SOFTWARE\\Microsoft\\Cryptography\\OID\\EncodingType 0\\",
    "HKLM\\SOFTWARE\\Microsoft\\Cryptography\\Providers\\Trust\\",
    "HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Cryptography\\OID\\EncodingType 0\\",
    "HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Cryptography\\Providers\\Trust\\",
)
MANDATORY_LABELS = {
    "Low": "S-1-16-4096",
    "Medium": "S-1-16-8192",
    "High": "S-1-16-12288",
    "System": "S-1-16-16384",
}
VALUE_TYPES = {"binary": "%%1875", "string": "%%1873", "dword": "%%1876"}
NEW_VALUE = "%%1904"  # "New registry value created": a certificate's Blob is always new
NULL_SID = ("S-1-0-0", "-", "-", 0)
LOG_ORDER = (SECURITY_CHANNEL, PS_CHANNEL, APP_CHANNEL)

Doc = dict[str, Any]


def evtx_time(t: datetime) -> str:
    """SystemTime as evtx_dump prints it: microseconds and ``Z``."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_security(host: Host) -> str:
    """The host's Security, PowerShell Operational and Application records as JSON lines."""
    writer = _Writer(host)
    items: list[tuple[str, datetime, int, Doc]] = []
    for n, proc in enumerate(host.procs):
        items.append((SECURITY_CHANNEL, proc.created, n, writer.process(proc)))
    for n, act in enumerate(host.activity, start=1):
        for k, (channel, doc) in enumerate(writer.activity(act)):
            items.append((channel, act.time, 1000 * n + k, doc))
    items.sort(key=lambda x: (LOG_ORDER.index(x[0]), x[1], x[2]))
    lines = []
    for channel, _, _, doc in items:
        writer.number(channel, doc)
        lines.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def audited(key: str) -> bool:
    """Whether a scenario key lies under the SACL-audited certificate keys."""
    return key.upper().startswith(tuple(k.upper() for k in AUDITED_KEYS))


def nt_key(key: str, sid: str) -> str:
    """Scenario keys (HKLM\\..., HKCU\\...) as 4657's ObjectName writes them."""
    hive, _, rest = key.partition("\\")
    if hive.upper() == "HKCU":
        return f"\\REGISTRY\\USER\\{sid}\\{rest}"
    return f"\\REGISTRY\\MACHINE\\{rest}" if hive.upper() == "HKLM" else key


def blob_hex(thumbprint: str) -> str:
    """A Blob's first property as hex: the SHA-1 hash property (id 3, 20 bytes) and its value.

    trustwatch's assumption: 4657 writes binary data as hex; only this property is rendered.
    """
    return "03000000" + "01000000" + "14000000" + thumbprint.upper()


class _Writer:
    """evtx JSON documents; record ids are given per log once the records are in order."""

    def __init__(self, host: Host) -> None:
        self.host = host
        rng = host.rng
        self.records = {
            SECURITY_CHANNEL: rng.randrange(100000, 9000000),
            PS_CHANNEL: rng.randrange(1000, 90000),
            APP_CHANNEL: rng.randrange(1000, 90000),
        }
        self.audit_thread = 4 * rng.randrange(20, 2000)
        self.short_name = host.device.split(".")[0].upper()

    def number(self, channel: str, doc: Doc) -> None:
        """Give the record the next id of its log (records arrive in their log's order)."""
        self.records[channel] += 1
        doc["Event"]["System"]["EventRecordID"] = self.records[channel]

    def system(
        self,
        provider: tuple[str, str],
        event_id: int | Doc,
        t: datetime,
        *,
        header: tuple[int, int, int, int, str],
        execution: tuple[int, int],
        channel: str,
        activity_id: str | None = None,
        user_id: str | None = None,
        source_name: str | None = None,
    ) -> Doc:
        """The ``System`` object as the reader's ``system_doc`` builds it (EventRecordID is set
        by ``number``). ``header`` is (version, level, task, opcode, keywords)."""
        version, level, task, opcode, keywords = header
        return system_doc(
            provider[0],
            event_id,
            guid=provider[1],
            source_name=source_name,
            version=version,
            level=level,
            task=task,
            opcode=opcode,
            keywords=keywords,
            time_created=evtx_time(t),
            record_id=0,
            activity_id=activity_id,
            process_id=execution[0],
            thread_id=execution[1],
            channel=channel,
            computer=self.host.device,
            user_id=user_id,
        )

    def audit(self, event_id: int, t: datetime, data: Doc) -> Doc:
        """A Security-Auditing event: written by the System process (PID 4), no user."""
        version, task = SECURITY_EVENTS[event_id]
        self.audit_thread += 4 * (1 + t.microsecond % 3)
        system = self.system(
            SECURITY,
            event_id,
            t,
            header=(version, 0, task, 0, AUDIT_KEYWORDS),
            execution=(4, self.audit_thread),
            channel=SECURITY_CHANNEL,
        )
        return event_doc(system, data)

    def subject(self, account: Account) -> tuple[str, str, str, int]:
        """SID, name, domain and logon id as the Security log names an account.

        SYSTEM and NETWORK SERVICE act as the computer account (``HOST$`` in the domain).
        """
        if account.sid in ("S-1-5-18", "S-1-5-20"):
            return account.sid, f"{self.short_name}$", self.host.user.domain, account.logon_id
        return account.sid, account.name, account.domain, account.logon_id

    def process(self, proc: Proc) -> Doc:
        """4688 v2: the creator (the parent's account) as Subject, a Target when they differ."""
        parent = proc.parent
        assert parent is not None  # every step process has one
        sid, name, domain, logon = self.subject(parent.account)
        same = proc.account.sid == parent.account.sid
        target = NULL_SID if same else _target(proc.account)
        elevated = proc.account.integrity == "High" and proc.account is self.host.user
        data: Doc = {
            "SubjectUserSid": sid,
            "SubjectUserName": name,
            "SubjectDomainName": domain,
            "SubjectLogonId": hex(logon),
            "NewProcessId": hex(proc.pid),
            "NewProcessName": proc.image,
            "TokenElevationType": "%%1937" if elevated else "%%1936",
            "ProcessId": hex(parent.pid),
            "CommandLine": proc.command_line,
            "TargetUserSid": target[0],
            "TargetUserName": target[1],
            "TargetDomainName": target[2],
            "TargetLogonId": hex(target[3]),
            "ParentProcessName": parent.image,
            "MandatoryLabel": MANDATORY_LABELS.get(proc.account.integrity, "S-1-16-8192"),
        }
        return self.audit(4688, proc.created, data)

    def activity(self, act: Activity) -> list[tuple[str, Doc]]:
        if act.kind == "registry":
            return self._registry(act)
        if act.kind == "script":
            return self._script(act)
        if act.kind == "capi2":
            return self._capi2(act)
        if act.kind == "ca_audit":
            return self._ca_audit(act)
        return []  # connections and files: no Sysmon, and no audit events the ingest reads

    def _registry(self, act: Activity) -> list[tuple[str, Doc]]:
        """4657 for a value set under an audited key; 4657 has no key-creation counterpart."""
        f = act.fields
        if f["action"] != "set_value" or not audited(f["key"]):
            return []
        sid, name, domain, logon = self.subject(act.proc.account)
        kind = f.get("type", "binary")
        value = blob_hex(self._thumbprint(f["key"])) if kind == "binary" else f.get("data", "")
        data: Doc = {
            "SubjectUserSid": sid,
            "SubjectUserName": name,
            "SubjectDomainName": domain,
            "SubjectLogonId": hex(logon),
            "ObjectName": nt_key(f["key"], self.host.user.sid),
            "ObjectValueName": f.get("value", ""),
            "HandleId": hex(4 * self.host.rng.randrange(0x40, 0x400)),
            "OperationType": NEW_VALUE,
            "OldValueType": "-",
            "OldValue": "-",
            "NewValueType": VALUE_TYPES[kind],
            "NewValue": value,
            "ProcessId": hex(act.proc.pid),
            "ProcessName": act.proc.image,
        }
        return [(SECURITY_CHANNEL, self.audit(4657, act.time, data))]

    def _thumbprint(self, key: str) -> str:
        """The certificate a key names (its last part, 40 hex digits), else the host's."""
        last = key.rsplit("\\", 1)[-1]
        return last if re.fullmatch(r"[0-9A-Fa-f]{40}", last) else self.host.thumbprint

    def _script(self, act: Activity) -> list[tuple[str, Doc]]:
        """4104, split over ``parts`` records sharing one ScriptBlockId, as on the Sysmon host."""
        parts = split_text(str(act.fields["text"]), int(act.fields.get("parts", 1)))
        activity_id = self.host.new_guid().strip("{}").upper()
        out = []
        for n, part in enumerate(parts, start=1):
            system = self.system(
                (POWERSHELL[0], POWERSHELL[1].strip("{}").upper()),
                4104,
                act.time,
                header=(1, 5, 2, 15, "0x0"),
                execution=(act.proc.pid, act.proc.pid + 4 * (1 + n % 7)),
                channel=PS_CHANNEL,
                activity_id=activity_id,
                user_id=act.proc.account.sid,
            )
            data = {
                "MessageNumber": n,
                "MessageTotal": len(parts),
                "ScriptBlockText": part,
                "ScriptBlockId": act.guid.lower(),
                "Path": "",
            }
            out.append((PS_CHANNEL, event_doc(system, data)))
        return out

    def _ca_audit(self, act: Activity) -> list[tuple[str, Doc]]:
        """A Certificate Services audit event of a CA host: the scenario's EventData fields."""
        event_id = int(act.fields["event_id"])
        if event_id not in CA_EVENTS:
            raise ValueError(f"ca_audit: event {event_id} is not a Certificate Services event")
        return [(SECURITY_CHANNEL, self.audit(event_id, act.time, dict(act.fields["data"])))]

    def _capi2(self, act: Activity) -> list[tuple[str, Doc]]:
        """CAPI2 4097, a classic Application-log event: unnamed Data, evtx's ``#text`` list."""
        system = self.system(
            CAPI2,
            {"#attributes": {"Qualifiers": 0}, "#text": ROOT_AUTO_UPDATE},
            act.time,
            header=(0, 4, 0, 0, CAPI2_KEYWORDS),
            execution=(act.proc.pid, act.proc.pid + 4 * (1 + act.time.microsecond % 97)),
            channel=APP_CHANNEL,
            source_name=CAPI2[0],
        )
        data = {
            "Data": {"#text": [str(act.fields["subject"]), str(act.fields["thumbprint"])]},
            "Binary": None,
        }
        return [(APP_CHANNEL, event_doc(system, data))]


def _target(account: Account) -> tuple[str, str, str, int]:
    """4688's Target fields for a new process running as another account than its creator."""
    return account.sid, account.name, account.domain, account.logon_id
