"""A seeded host and the scenario's activity resolved on it: processes with ids, GUIDs, hashes.

Everything random comes from one ``random.Random(seed)``: the same seed gives the same host,
a different seed another device, user, SID, GUIDs, PIDs, time base and hashes - never other
activity.
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PureWindowsPath
from typing import Any

from trustwatch.certs.blob import sha1_thumbprint
from trustwatch.scenarios.model import Scenario, Step, certificate_der
from trustwatch.scenarios.parents import SYSTEM_PARENTS

DEVICE_PREFIXES = ("ws-fin", "ws-hr", "ws-eng", "lt-sales", "ws-ops", "lt-dev")
DOMAINS = ("corp", "ad", "internal", "hq")
ORGS = ("contoso", "fabrikam", "northwind", "tailspin", "woodgrove")
FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")
LAST_NAMES = ("ng", "smith", "kowalski", "haddad", "okafor", "lindqvist", "moreau", "tan")

# Accounts other than the interactive user: (domain, name, SID, integrity level)
SERVICE_ACCOUNTS = {
    "system": ("NT AUTHORITY", "SYSTEM", "S-1-5-18", "System"),
    "local_service": ("NT AUTHORITY", "LOCAL SERVICE", "S-1-5-19", "System"),
    "network_service": ("NT AUTHORITY", "NETWORK SERVICE", "S-1-5-20", "System"),
}

# Version information by file name (lower case): original name, description, product, version
IMAGE_INFO = {
    "powershell.exe": ("PowerShell.EXE", "Windows PowerShell", "10.0.19041.3996"),
    "certutil.exe": ("CertUtil.exe", "CertUtil.exe", "10.0.19041.4522"),
    "cmd.exe": ("Cmd.Exe", "Windows Command Processor", "10.0.19041.4355"),
    "wmiprvse.exe": ("Wmiprvse.exe", "WMI Provider Host", "10.0.19041.3636"),
    "svchost.exe": ("svchost.exe", "Host Process for Windows Services", "10.0.19041.4239"),
    "cscript.exe": ("cscript.exe", "Microsoft ® Console Based Script Host", "5.812.10240.16384"),
    "msiexec.exe": ("msiexec.exe", "Windows® installer", "5.0.19041.3636"),
    "explorer.exe": ("EXPLORER.EXE", "Windows Explorer", "10.0.19041.4291"),
    "services.exe": ("services.exe", "Services and Controller app", "10.0.19041.4239"),
    "netsh.exe": ("netsh.exe", "Network Command Shell", "10.0.19041.3636"),
    "omadmclient.exe": ("omadmclient.exe", "Host Process for OMA-DM Client", "10.0.19041.4355"),
    "ccmexec.exe": ("CcmExec.exe", "Host Process for Microsoft Configuration Manager", "5.0.9106"),
}
ENV_VARS = ("USERNAME", "USERPROFILE", "TEMP", "THUMBPRINT", "USERDOMAIN", "CERT_BASE64")


@dataclass(slots=True)
class Account:
    domain: str
    name: str
    sid: str
    integrity: str
    logon_id: int


@dataclass(slots=True)
class Proc:
    """A process on the host: a step's, or a named system parent."""

    key: str
    image: str
    command_line: str
    account: Account
    pid: int
    guid: str
    created: datetime
    hashes: dict[str, str]
    original_file_name: str
    description: str
    version: str
    company: str
    parent: Proc | None = None

    @property
    def file_name(self) -> str:
        return PureWindowsPath(self.image).name


@dataclass(slots=True)
class Activity:
    """One non-process step, resolved: its kind, time, process and fields (placeholders filled)."""

    kind: str
    time: datetime
    proc: Proc
    fields: dict[str, Any]
    guid: str = ""  # a ScriptBlockId for scripts


@dataclass(slots=True)
class Host:
    """The seeded machine a scenario runs on, with the scenario's activity resolved on it."""

    device: str
    ip: str
    user: Account
    thumbprint: str
    base: datetime
    guid_prefix: str
    rng: random.Random
    certificate: bytes = b""  # the DER of the scenario's certificate, if it names one
    procs: list[Proc] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    _pids: set[int] = field(default_factory=set)
    _hashes: dict[str, dict[str, str]] = field(default_factory=dict)

    # -- identities ------------------------------------------------------------------------

    def new_pid(self) -> int:
        while True:
            pid = self.rng.randrange(100, 3500) * 4
            if pid not in self._pids:
                self._pids.add(pid)
                return pid

    def new_guid(self) -> str:
        r = self.rng
        return f"{{{self.guid_prefix}-{r.getrandbits(16):04x}-{r.getrandbits(16):04x}-" + (
            f"{r.getrandbits(16):04x}-{r.getrandbits(48):012x}}}"
        )

    def hashes_of(self, image: str) -> dict[str, str]:
        """SHA1 / MD5 / SHA256 / IMPHASH of an image (one set per path, seeded)."""
        key = image.lower()
        if key not in self._hashes:
            r = self.rng
            self._hashes[key] = {
                "SHA1": f"{r.getrandbits(160):040X}",
                "MD5": f"{r.getrandbits(128):032X}",
                "SHA256": f"{r.getrandbits(256):064X}",
                "IMPHASH": f"{r.getrandbits(128):032X}",
            }
        return self._hashes[key]

    def account(self, kind: str) -> Account:
        if kind == "user":
            return self.user
        domain, name, sid, integrity = SERVICE_ACCOUNTS[kind]
        logon = {"system": 0x3E7, "local_service": 0x3E5, "network_service": 0x3E4}[kind]
        return Account(domain, name, sid, integrity, logon)

    def expand(self, text: str) -> str:
        """Fill %USERNAME%, %USERPROFILE%, %TEMP%, %USERDOMAIN%, %THUMBPRINT% and %CERT_BASE64%.

        With a scenario certificate, %THUMBPRINT% is its SHA-1 and %CERT_BASE64% its DER.
        """
        profile = f"C:\\Users\\{self.user.name}"
        values = {
            "USERNAME": self.user.name,
            "USERPROFILE": profile,
            "TEMP": profile + r"\AppData\Local\Temp",
            "THUMBPRINT": self.thumbprint,
            "USERDOMAIN": self.user.domain,
            "CERT_BASE64": base64.b64encode(self.certificate).decode("ascii"),
        }
        return re.sub(
            r"%(" + "|".join(ENV_VARS) + r")%", lambda m: values[m.group(1)], text, flags=re.I
        )


def time_base(seed: int) -> datetime:
    """When every scenario of one seed starts (a working-day moment in March 2026)."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    day = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=rng.randrange(0, 26))
    return day + timedelta(seconds=rng.randrange(8 * 3600, 16 * 3600))


def make_host(scenario: Scenario, seed: int) -> Host:
    """The scenario resolved on a host drawn from ``seed``."""
    rng = random.Random(f"{seed}:{scenario.id}")  # noqa: S311 - a simulation
    org = rng.choice(ORGS)
    prefix, number = rng.choice(DEVICE_PREFIXES), rng.randrange(1, 999)
    if scenario.host == "ca":  # a certification authority (the same draws: other hosts unchanged)
        prefix = "pki-ca"
    device = f"{prefix}-{number:03d}.{rng.choice(DOMAINS)}.{org}.com"
    name = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}"
    sid = "S-1-5-21-" + "-".join(str(rng.randrange(10**9, 4 * 10**9)) for _ in range(3))
    user = Account(org.upper()[:8], name, f"{sid}-{rng.randrange(1100, 9999)}", "High", 0)
    user.logon_id = rng.randrange(0x100000, 0xFFFFFF)
    base = time_base(seed)
    host = Host(
        device=device,
        ip=f"10.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}",
        user=user,
        thumbprint=f"{rng.getrandbits(160):040X}",
        base=base + timedelta(microseconds=rng.randrange(0, 10**6)),
        guid_prefix=f"{rng.getrandbits(32):08x}",
        rng=rng,
    )
    if scenario.certificate:
        host.certificate = certificate_der(scenario.certificate)
        host.thumbprint = sha1_thumbprint(host.certificate)
    _resolve(host, scenario.steps)
    return host


def _resolve(host: Host, steps: tuple[Step, ...]) -> None:
    by_id: dict[str, Proc] = {}
    last = host.base
    for step in steps:
        jitter = timedelta(seconds=step.at, microseconds=host.rng.randrange(1000, 9000))
        # events keep the order of their steps, a millisecond apart at least
        time = last = max(host.base + jitter, last + timedelta(milliseconds=1))
        if step.kind == "process":
            proc = _process(host, step, time, by_id)
            by_id[step.id] = proc
            continue
        fields = {k: _expanded(host, v) for k, v in step.fields.items()}
        if step.kind == "capi2":
            fields.setdefault("thumbprint", host.thumbprint)  # the root the scenario installs
        guid = str(host.new_guid()).strip("{}") if step.kind == "script" else ""
        host.activity.append(Activity(step.kind, time, by_id[step.get("by")], fields, guid))


def _expanded(host: Host, value: Any) -> Any:
    """A step field with its placeholders filled (in each text of a mapping, such as a CA audit
    event's data)."""
    if isinstance(value, str):
        return host.expand(value)
    if isinstance(value, dict):
        return {k: host.expand(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


def _process(host: Host, step: Step, time: datetime, by_id: dict[str, Proc]) -> Proc:
    parent_name = step.get("parent", "explorer")
    parent = by_id.get(parent_name)
    if parent is None:
        parent = by_id[parent_name] = _system_parent(host, parent_name, time)
    user = step.get("user") or ("user" if parent.account is host.user else "system")
    image = host.expand(step.get("image"))
    original = step.get("original_file_name") or ""
    info = image_info(image, original)
    proc = Proc(
        key=step.id,
        image=image,
        command_line=host.expand(step.get("command_line")),
        account=host.account(user),
        pid=host.new_pid(),
        guid=host.new_guid(),
        created=time,
        hashes=host.hashes_of(image),
        original_file_name=original or info[0],
        description=info[1],
        version=info[2],
        company=info[3],
        parent=parent,
    )
    host.procs.append(proc)
    return proc


def image_info(image: str, original: str) -> tuple[str, str, str, str]:
    """Original name, description, version and company of a Windows program (by either name).

    Programs trustwatch does not know get no version information, as unsigned tools often do.
    """
    for name in (PureWindowsPath(image).name.lower(), original.lower()):
        if name in IMAGE_INFO:
            return (*IMAGE_INFO[name], "Microsoft Corporation")
    return ("", "", "1.0.0.0", "")


def _system_parent(host: Host, name: str, time: datetime) -> Proc:
    if name not in SYSTEM_PARENTS:
        raise KeyError(name)  # load_scenario checks parents; not reached for loaded files
    image, command_line, user = SYSTEM_PARENTS[name]
    info = image_info(image, "")
    started = time - timedelta(hours=2, seconds=host.rng.randrange(0, 3600))
    return Proc(
        key=name,
        image=image,
        command_line=command_line,
        account=host.account(user),
        pid=host.new_pid(),
        guid=host.new_guid(),
        created=started,
        hashes=host.hashes_of(image),
        original_file_name=info[0],
        description=info[1],
        version=info[2],
        company=info[3],
    )
