"""A resolved host as Windows event XML: Sysmon 1/3/11/12/13, PowerShell 4104 and CAPI2 4097."""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from trustwatch.scenarios.host import Activity, Host, Proc

SYSMON = ("Microsoft-Windows-Sysmon", "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}")
POWERSHELL = ("Microsoft-Windows-PowerShell", "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}")
SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
PS_CHANNEL = "Microsoft-Windows-PowerShell/Operational"
NS = "http://schemas.microsoft.com/win/2004/08/events/event"
# event id -> (version, task) as Sysmon 15 writes them
SYSMON_VERSIONS = {1: 5, 3: 5, 11: 2, 12: 2, 13: 2}
# CryptoAPI logs root auto-updates as a classic event source in the Application log (not in
# its Operational channel): provider, GUID and the keywords as stored in real 4097 records
CAPI2 = ("Microsoft-Windows-CAPI2", "{5bbca4a8-b209-48dc-a8c7-b23d3e5216fb}")
CAPI2_KEYWORDS = "0x8080000000000000"
APP_CHANNEL = "Application"
ROOT_AUTO_UPDATE = 4097  # "Successful auto update of third-party root certificate"

Fields = list[tuple[str, str]]


def utc(t: datetime) -> str:
    """Sysmon's UtcTime: milliseconds, space separated."""
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def system_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def _user(proc: Proc) -> str:
    return f"{proc.account.domain}\\{proc.account.name}"


def hashes(proc: Proc) -> str:
    return ",".join(f"{k}={v}" for k, v in proc.hashes.items())


def render_sysmon(host: Host, label: str) -> str:
    """One ``<Events>`` document with every event of the scenario, in time order."""
    writer = _Writer(host)
    items: list[tuple[datetime, int, str]] = []
    for proc in host.procs:
        items.append((proc.created, 0, writer.process(proc)))
    for n, act in enumerate(host.activity, start=1):
        for offset, text in enumerate(writer.activity(act)):
            items.append((act.time, n * 100 + offset, text))
    items.sort(key=lambda x: (x[0], x[1]))
    body = "\n".join(text for _, _, text in items)
    head = '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
    comment = f"<!-- trustwatch scenario (synthetic): {escape(label)} on {host.device} -->\n"
    return f"{head}{comment}<Events>\n{body}\n</Events>\n"


class _Writer:
    """Event XML with increasing record ids per channel."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.records = {
            SYSMON_CHANNEL: host.rng.randrange(100000, 900000),
            PS_CHANNEL: host.rng.randrange(1000, 90000),
        }
        self.sysmon_pid = host.rng.randrange(500, 4000) * 4
        self.sysmon_tid = self.sysmon_pid + 4 * host.rng.randrange(10, 400)

    def event(
        self,
        event_id: int,
        t: datetime,
        data: Fields,
        *,
        ps: tuple[Proc, str] | None = None,
    ) -> str:
        channel = PS_CHANNEL if ps else SYSMON_CHANNEL
        provider, guid = POWERSHELL if ps else SYSMON
        self.records[channel] += 1
        if ps:
            proc, activity_id = ps
            version, level, task, opcode, keywords = 1, 5, 2, 15, "0x0"
            correlation = f"<Correlation ActivityID={quoteattr('{' + activity_id + '}')}/>"
            execution = (proc.pid, proc.pid + 4 * (1 + self.records[channel] % 7))
            sid = proc.account.sid
        else:
            version, level, task = SYSMON_VERSIONS[event_id], 4, event_id
            opcode, keywords, correlation = 0, "0x8000000000000000", "<Correlation/>"
            execution, sid = (self.sysmon_pid, self.sysmon_tid), "S-1-5-18"
        system = (
            f"<System><Provider Name={quoteattr(provider)} Guid={quoteattr(guid)}/>"
            f"<EventID>{event_id}</EventID><Version>{version}</Version><Level>{level}</Level>"
            f"<Task>{task}</Task><Opcode>{opcode}</Opcode><Keywords>{keywords}</Keywords>"
            f"<TimeCreated SystemTime={quoteattr(system_time(t))}/>"
            f"<EventRecordID>{self.records[channel]}</EventRecordID>{correlation}"
            f'<Execution ProcessID="{execution[0]}" ThreadID="{execution[1]}"/>'
            f"<Channel>{channel}</Channel><Computer>{self.host.device}</Computer>"
            f"<Security UserID={quoteattr(sid)}/></System>"
        )
        rows = "\n".join(f"<Data Name={quoteattr(k)}>{escape(v)}</Data>" for k, v in data)
        return f"<Event xmlns={quoteattr(NS)}>{system}\n<EventData>\n{rows}\n</EventData></Event>"

    def process(self, proc: Proc) -> str:
        """Sysmon 1, process creation, with its parent."""
        parent = proc.parent
        assert parent is not None  # every step process has one
        cwd = (
            f"C:\\Users\\{proc.account.name}\\"
            if proc.account is self.host.user
            else "C:\\Windows\\system32\\"
        )
        data: Fields = [
            ("RuleName", "-"),
            ("UtcTime", utc(proc.created)),
            ("ProcessGuid", proc.guid),
            ("ProcessId", str(proc.pid)),
            ("Image", proc.image),
            ("FileVersion", f"{proc.version} (WinBuild.160101.0800)"),
            ("Description", proc.description),
            ("Product", "Microsoft® Windows® Operating System" if proc.company else "-"),
            ("Company", proc.company or "-"),
            ("OriginalFileName", proc.original_file_name),
            ("CommandLine", proc.command_line),
            ("CurrentDirectory", cwd),
            ("User", _user(proc)),
            ("LogonGuid", self.host.new_guid()),
            ("LogonId", hex(proc.account.logon_id)),
            ("TerminalSessionId", "1" if proc.account is self.host.user else "0"),
            ("IntegrityLevel", proc.account.integrity),
            ("Hashes", hashes(proc)),
            ("ParentProcessGuid", parent.guid),
            ("ParentProcessId", str(parent.pid)),
            ("ParentImage", parent.image),
            ("ParentCommandLine", parent.command_line),
            ("ParentUser", _user(parent)),
        ]
        return self.event(1, proc.created, data)

    def activity(self, act: Activity) -> list[str]:
        return getattr(self, f"_{act.kind}")(act)  # type: ignore[no-any-return]

    def _head(self, act: Activity) -> Fields:
        return [
            ("UtcTime", utc(act.time)),
            ("ProcessGuid", act.proc.guid),
            ("ProcessId", str(act.proc.pid)),
            ("Image", act.proc.image),
        ]

    def _registry(self, act: Activity) -> list[str]:
        f = act.fields
        target = sysmon_key(f["key"], self.host.user.sid)
        if f["action"] != "set_value":
            # Sysmon logs RegCreateKeyEx as CreateKey whether the key is new or only opened
            kind = "DeleteKey" if f["action"] == "delete_key" else "CreateKey"
            data = [("RuleName", "-"), ("EventType", kind), *self._head(act)]
            data += [("TargetObject", target), ("User", _user(act.proc))]
            return [self.event(12, act.time, data)]
        value = f.get("value", "")
        details = sysmon_details(f.get("type", "binary"), f.get("data", ""))
        data = [("RuleName", "-"), ("EventType", "SetValue"), *self._head(act)]
        data += [("TargetObject", f"{target}\\{value or '(Default)'}"), ("Details", details)]
        return [self.event(13, act.time, [*data, ("User", _user(act.proc))])]

    def _file(self, act: Activity) -> list[str]:
        data = [("RuleName", "-"), *self._head(act), ("TargetFilename", act.fields["path"])]
        data += [("CreationUtcTime", utc(act.time)), ("User", _user(act.proc))]
        return [self.event(11, act.time, data)]

    def _network(self, act: Activity) -> list[str]:
        f = act.fields
        data = [("RuleName", "-"), *self._head(act), ("User", _user(act.proc))]
        loopback = str(f["ip"]).startswith("127.")
        data += [
            ("Protocol", "tcp"),
            ("Initiated", "true"),
            ("SourceIsIpv6", "false"),
            ("SourceIp", "127.0.0.1" if loopback else self.host.ip),
            ("SourceHostname", self.host.device),
            ("SourcePort", str(self.host.rng.randrange(49152, 65535))),
            ("SourcePortName", "-"),
            ("DestinationIsIpv6", "false"),
            ("DestinationIp", str(f["ip"])),
            ("DestinationHostname", str(f.get("host", "-"))),
            ("DestinationPort", str(f["port"])),
            ("DestinationPortName", {80: "http", 443: "https"}.get(int(f["port"]), "-")),
        ]
        return [self.event(3, act.time, data)]

    def _script(self, act: Activity) -> list[str]:
        parts = split_text(str(act.fields["text"]), int(act.fields.get("parts", 1)))
        activity_id = self.host.new_guid().strip("{}")
        out = []
        for n, part in enumerate(parts, start=1):
            data = [
                ("MessageNumber", str(n)),
                ("MessageTotal", str(len(parts))),
                ("ScriptBlockText", part),
                ("ScriptBlockId", act.guid.lower()),
                ("Path", ""),
            ]
            out.append(self.event(4104, act.time, data, ps=(act.proc, activity_id)))
        return out

    def _capi2(self, act: Activity) -> list[str]:
        """CAPI2 4097 in the Application log: unnamed Data (subject, SHA-1), as Windows logs it.

        The record counter is drawn on first use, so scenarios without such events render
        exactly as before.
        """
        if APP_CHANNEL not in self.records:
            self.records[APP_CHANNEL] = self.host.rng.randrange(1000, 90000)
        self.records[APP_CHANNEL] += 1
        provider, guid = CAPI2
        thread = act.proc.pid + 4 * (1 + self.records[APP_CHANNEL] % 97)
        system = (
            f"<System><Provider Name={quoteattr(provider)} Guid={quoteattr(guid)} "
            f"EventSourceName={quoteattr(provider)}/>"
            f'<EventID Qualifiers="0">{ROOT_AUTO_UPDATE}</EventID><Version>0</Version>'
            f"<Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>{CAPI2_KEYWORDS}</Keywords>"
            f"<TimeCreated SystemTime={quoteattr(system_time(act.time))}/>"
            f"<EventRecordID>{self.records[APP_CHANNEL]}</EventRecordID><Correlation/>"
            f'<Execution ProcessID="{act.proc.pid}" ThreadID="{thread}"/>'
            f"<Channel>{APP_CHANNEL}</Channel><Computer>{self.host.device}</Computer>"
            "<Security/></System>"
        )
        rows = "\n".join(
            f"<Data>{escape(str(act.fields[k]))}</Data>" for k in ("subject", "thumbprint")
        )
        event = f"<Event xmlns={quoteattr(NS)}>{system}\n<EventData>\n{rows}\n<Binary></Binary>"
        return [event + "\n</EventData></Event>"]


def split_text(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` consecutive pieces, as PowerShell splits long script blocks."""
    parts = max(1, min(parts, len(text)))
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def sysmon_key(key: str, sid: str) -> str:
    """Scenario keys (HKLM\\..., HKCU\\...) as Sysmon's TargetObject writes them."""
    hive, _, rest = key.partition("\\")
    if hive.upper() == "HKCU":
        return f"HKU\\{sid}\\{rest}"
    return f"HKLM\\{rest}" if hive.upper() == "HKLM" else key


def sysmon_details(kind: str, data: str) -> str:
    if kind == "binary":
        return "Binary Data"
    if kind == "dword":
        return f"DWORD (0x{int(data or 0):08x})"
    return data or "(Empty)"
