"""Scenario files: load ``content/scenarios/<id>.yaml`` and check them, with located errors.

A scenario is a short sequence of activity plus the rules expected to fire on it: host activity
(processes and what they do) on a Windows host, the Certificate Services audit events of a
certification authority (a CA host), or TLS sessions seen by a network sensor. The format is
documented in docs/scenarios.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.certs.model import Verdict
from trustwatch.errors import InputError
from trustwatch.scenarios.parents import SYSTEM_PARENTS

KINDS = ("attack", "evasion", "benign")
# host kind -> the telemetry sources a scenario of that kind is rendered for
HOSTS: dict[str, tuple[str, ...]] = {
    "windows": ("sysmon", "defender", "security"),
    "network": ("zeek", "zeek-json", "suricata"),
    # a certification authority: its Security log (Certificate Services auditing) as evtx JSON
    "ca": ("ca-security",),
}
SOURCES = HOSTS["windows"]
ALL_SOURCES = tuple(source for sources in HOSTS.values() for source in sources)
USERS = ("user", "system", "network_service", "local_service")
REGISTRY_ACTIONS = ("create_key", "set_value", "open_key", "delete_key")
VALUE_TYPES = ("binary", "string", "dword")
NETWORK_OUTCOMES = ("success", "failed")
STEP_KINDS = ("process", "registry", "file", "network", "script", "capi2", "tls", "ca_audit")
# steps of a network scenario (the others are a Windows or CA host's)
NETWORK_STEP_KINDS = ("tls",)
# steps of a CA host: its service process and the Security events Certificate Services writes
CA_STEP_KINDS = ("process", "ca_audit")
# TLS versions a passive sensor sees the certificate of (TLS 1.3 encrypts it)
TLS_VERSIONS = ("TLSv10", "TLSv11", "TLSv12")
KEYS = ("rsa 2048", "rsa 4096", "ecdsa 256", "ecdsa 384")

# Fields of each step kind: name -> (required, type)
STEP_FIELDS: dict[str, dict[str, tuple[bool, type]]] = {
    "process": {
        "image": (True, str),
        "command_line": (True, str),
        "parent": (False, str),
        "user": (False, str),
        "original_file_name": (False, str),
    },
    "registry": {
        "by": (True, str),
        "action": (True, str),
        "key": (True, str),
        "value": (False, str),
        "data": (False, str),
        "type": (False, str),
    },
    "file": {"by": (True, str), "path": (True, str)},
    "network": {
        "by": (True, str),
        "ip": (True, str),
        "port": (True, int),
        "host": (False, str),
        "outcome": (False, str),
    },
    "script": {"by": (True, str), "text": (True, str), "parts": (False, int)},
    "capi2": {"by": (True, str), "subject": (True, str), "thumbprint": (False, str)},
    # a Certificate Services audit event (4886-4888, 4898-4900, ...): its EventData fields
    "ca_audit": {"by": (True, str), "event_id": (True, int), "data": (True, dict)},
    "tls": {
        "server": (True, str),
        "port": (True, int),
        "certificate": (True, str),
        "sni": (False, str),
        "sessions": (False, int),
        "every": (False, int),
        "validation": (False, str),
        "version": (False, str),
    },
}
_TYPE_NAMES = {
    str: "text",
    int: "an integer",
    bool: "true/false",
    list: "a list",
    datetime: "a time",
}
# A network scenario's server certificates: name -> {field: (required, type)}
CERTIFICATE_FIELDS: dict[str, tuple[bool, type | tuple[type, ...]]] = {
    "subject": (True, str),
    "issuer": (False, str),
    "serial": (True, str),
    "not_before": (False, (str, datetime)),
    "not_after": (False, (str, datetime)),
    "issued_days_ago": (False, int),
    "valid_days": (False, int),
    "san_dns": (False, list),
    "sha256": (False, str),
    "sha1": (False, str),
    "ca": (False, bool),
    "key": (False, str),
    "chain": (False, list),
}
# per-source overrides
SOURCE_FIELDS = ("expect", "known_misses", "fp_not_removed", "certificate_verdict")
VERDICTS = tuple(v.value for v in Verdict)  # certificate verdicts, worst first
TOP_FIELDS = (
    "id",
    "title",
    "kind",
    "source",
    "description",
    "expect",
    "known_misses",
    "sources",
    "known_false_positive",
    "certificate",
    "certificate_verdict",
    "host",
    "server_certificates",
    "steps",
)


class ScenarioError(InputError):
    """A scenario file that is not valid, with the file and the place in it."""


@dataclass(frozen=True, slots=True)
class Step:
    """One piece of host activity ``at`` seconds after the scenario starts."""

    kind: str  # one of STEP_KINDS
    at: float
    id: str  # the name later steps use for a process step ("" for other kinds)
    fields: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must fire on one telemetry source: rule stems that fire, and documented misses.

    ``fp_not_removed`` says why the scenario's known false positive is not removed by its
    exclusion on this source (the telemetry lacks what the exclusion matches); validate then
    does not require the exclusion to have removed anything here.
    """

    fire: frozenset[str]
    known_misses: Mapping[str, str]
    fp_not_removed: str = ""
    # the worst certificate verdict hunt's alerts on the scenario's device carry ("": unchecked)
    certificate_verdict: str = ""


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """A certificate a network scenario's server presents, as its file describes it.

    Validity is absolute (``not_before``/``not_after``) or relative to the scenario's start
    (``issued_days_ago``, ``valid_days``); ``chain`` names the issuing certificates the server
    sends after it. Fingerprints not given are drawn from the description (no DER is made).
    """

    name: str
    subject: str
    issuer: str
    serial: str  # upper-case hex, as the file gives it
    not_before: datetime | None
    not_after: datetime | None
    issued_days_ago: int
    valid_days: int
    san_dns: tuple[str, ...]
    sha256: str
    sha1: str
    ca: bool
    key: str
    chain: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario as read from its file."""

    id: str
    title: str
    kind: str
    source: str
    steps: tuple[Step, ...]
    expect: Mapping[str, Expectation]  # telemetry source -> expectation
    known_false_positive: Mapping[str, str] | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    certificate: str | None = None  # a certificates/<name>.pem the scenario installs
    host: str = "windows"  # a key of HOSTS
    server_certificates: Mapping[str, ServerCertificate] = field(default_factory=dict)

    @property
    def sources(self) -> tuple[str, ...]:
        """The telemetry sources this scenario is rendered for (its host kind's)."""
        return HOSTS[self.host]


def certificate_der(name: str) -> bytes:
    """The DER of ``content/scenarios/certificates/<name>.pem`` (a scenario's certificate)."""
    from trustwatch.certs.files import load_certificate_file

    loaded = load_certificate_file(scenarios_dir() / "certificates" / f"{name}.pem")
    return loaded.certificates[0].der


def scenarios_dir() -> Path:
    """The folder of shipped scenarios."""
    return Path(str(resources.files("trustwatch.content"))) / "scenarios"


def load_scenarios(ids: list[str] | None = None, host: str | None = None) -> list[Scenario]:
    """The shipped scenarios (sorted by file name), or only those named in ``ids``.

    ``host`` keeps only the scenarios of one host kind (``windows``, ``network`` or ``ca``).
    """
    files = sorted(scenarios_dir().glob("*.yaml"))
    found = [s for s in map(load_scenario, files) if host is None or s.host == host]
    if not ids:
        return found
    by_id = {s.id: s for s in found}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InputError(
            f"no scenario named {', '.join(missing)}",
            hint="known scenarios: " + ", ".join(sorted(by_id)),
        )
    return [by_id[i] for i in ids]


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file."""
    where = str(path)
    try:
        doc = yamlio.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{where}{line}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: a scenario is a mapping")
    _check_keys(doc, TOP_FIELDS, where)
    for name in ("id", "title", "kind", "source"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise ScenarioError(f"{where}: '{name}' is required (a string)")
    if doc["kind"] not in KINDS:
        raise ScenarioError(f"{where}: kind: '{doc['kind']}' is not one of {', '.join(KINDS)}")
    if doc["id"] != path.stem:
        raise ScenarioError(f"{where}: id '{doc['id']}' differs from the file name")
    host = doc.get("host", "windows")
    if host not in HOSTS:
        raise ScenarioError(f"{where}: host: '{host}' is not one of {', '.join(HOSTS)}")
    steps = _steps(doc.get("steps"), f"{where}: steps")
    certificates = _server_certificates(doc.get("server_certificates"), where)
    _check_host_steps(host, steps, certificates, where)
    fp = doc.get("known_false_positive")
    if fp is not None and (not isinstance(fp, dict) or not isinstance(fp.get("exclusion"), str)):
        raise ScenarioError(f"{where}: known_false_positive needs 'exclusion' (a tuning id)")
    return Scenario(
        id=doc["id"],
        title=doc["title"],
        kind=doc["kind"],
        source=doc["source"],
        steps=steps,
        expect=_expectations(doc, HOSTS[host], where),
        known_false_positive={str(k): str(v) for k, v in fp.items()} if fp else None,
        description=str(doc.get("description", "")),
        path=path,
        certificate=_certificate(doc.get("certificate"), where),
        host=host,
        server_certificates=certificates,
    )


def _check_host_steps(
    host: str, steps: tuple[Step, ...], certificates: Mapping[str, ServerCertificate], where: str
) -> None:
    """Network scenarios hold only TLS sessions, CA ones processes and CA audit events, Windows
    ones neither TLS sessions nor CA audit events; certificates are defined."""
    for n, step in enumerate(steps):
        network_step = step.kind in NETWORK_STEP_KINDS
        ca_only = step.kind == "ca_audit"
        if (
            network_step != (host == "network")
            or (ca_only and host != "ca")
            or (host == "ca" and step.kind not in CA_STEP_KINDS)
        ):
            raise ScenarioError(
                f"{where}: steps[{n}]: a '{step.kind}' step on a {host} host",
                hint="host: network scenarios have tls steps only; ca ones process and ca_audit "
                "steps only; windows ones neither tls nor ca_audit steps",
            )
        data = step.get("data") if ca_only else None
        if data is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ScenarioError(
                f"{where}: steps[{n}].ca_audit.data: EventData field names and text values",
                hint="quote numbers and hex values",
            )
        name = step.get("certificate")
        if name is not None and name not in certificates:
            raise ScenarioError(
                f"{where}: steps[{n}].tls.certificate: '{name}' is not in server_certificates"
            )
    if certificates and host != "network":
        raise ScenarioError(f"{where}: server_certificates: only for host: network")


def _server_certificates(raw: Any, where: str) -> dict[str, ServerCertificate]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: server_certificates: a mapping of name -> certificate")
    out = {str(name): _server_certificate(str(name), body, where) for name, body in raw.items()}
    for cert in out.values():
        missing = [c for c in cert.chain if c not in out]
        if missing:
            raise ScenarioError(
                f"{where}: server_certificates.{cert.name}.chain: '{missing[0]}' is not defined"
            )
    return out


def _server_certificate(name: str, body: Any, where: str) -> ServerCertificate:
    here = f"{where}: server_certificates.{name}"
    if not isinstance(body, dict):
        raise ScenarioError(f"{here}: a mapping")
    _check_keys(body, tuple(CERTIFICATE_FIELDS), here)
    for key, (required, typ) in CERTIFICATE_FIELDS.items():
        if key not in body:
            if required:
                raise ScenarioError(f"{here}: '{key}' is required")
            continue
        if not isinstance(body[key], typ) or (typ is int and isinstance(body[key], bool)):
            names = typ if isinstance(typ, tuple) else (typ,)
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in names)
            raise ScenarioError(f"{here}.{key}: expected {expected} (quote hex serials)")
    absolute = "not_before" in body or "not_after" in body
    if absolute and ("issued_days_ago" in body or "valid_days" in body):
        raise ScenarioError(
            f"{here}: give not_before/not_after or issued_days_ago/valid_days, not both"
        )
    if absolute and not ("not_before" in body and "not_after" in body):
        raise ScenarioError(f"{here}: not_before and not_after go together")
    key = body.get("key", "rsa 2048")
    if key not in KEYS:
        raise ScenarioError(f"{here}.key: '{key}' is not one of {', '.join(KEYS)}")
    serial = str(body["serial"]).upper()
    if not serial or any(c not in "0123456789ABCDEF" for c in serial):
        raise ScenarioError(f"{here}.serial: hexadecimal digits")
    hashes = {"sha256": 64, "sha1": 40}
    for field_name, length in hashes.items():
        value = str(body.get(field_name, ""))
        if value and (
            len(value) != length or any(c not in "0123456789abcdefABCDEF" for c in value)
        ):
            raise ScenarioError(f"{here}.{field_name}: {length} hexadecimal digits")
    return ServerCertificate(
        name=name,
        subject=body["subject"],
        issuer=str(body.get("issuer", body["subject"])),
        serial=serial,
        not_before=_when(body.get("not_before"), f"{here}.not_before"),
        not_after=_when(body.get("not_after"), f"{here}.not_after"),
        issued_days_ago=int(body.get("issued_days_ago", 30)),
        valid_days=int(body.get("valid_days", 365)),
        san_dns=tuple(str(n) for n in body.get("san_dns", [])),
        sha256=str(body.get("sha256", "")).lower(),
        sha1=str(body.get("sha1", "")).lower(),
        ca=bool(body.get("ca", False)),
        key=key,
        chain=tuple(str(c) for c in body.get("chain", [])),
    )


def _when(value: Any, where: str) -> datetime | None:
    """An absolute time of the file (ISO 8601 text or a YAML timestamp), in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ScenarioError(f"{where}: '{value}' is not an ISO 8601 time") from None
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _certificate(name: Any, where: str) -> str | None:
    if name is None:
        return None
    pem = scenarios_dir() / "certificates" / f"{name}.pem"
    if not isinstance(name, str) or not pem.is_file():
        raise ScenarioError(
            f"{where}: certificate: no file certificates/{name}.pem beside the scenarios"
        )
    return name


def _check_keys(doc: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field '{unknown[0]}'", hint="fields: " + ", ".join(allowed)
        )


def _rule_map(value: Any, where: str, kind: type) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, kind) for v in value.values()):
        raise ScenarioError(f"{where}: a mapping of rule file stem -> {kind.__name__}")
    return {str(k): v for k, v in value.items()}


def _expectations(
    doc: Mapping[str, Any], sources: tuple[str, ...], where: str
) -> dict[str, Expectation]:
    base = _rule_map(doc.get("expect"), f"{where}: expect", bool)
    misses = _rule_map(doc.get("known_misses"), f"{where}: known_misses", str)
    per_source = doc.get("sources") or {}
    if not isinstance(per_source, dict) or set(per_source) - set(sources):
        raise ScenarioError(f"{where}: sources: a mapping keyed by {', '.join(sources)}")
    out: dict[str, Expectation] = {}
    for source in sources:
        extra = per_source.get(source) or {}
        _check_keys(extra, SOURCE_FIELDS, f"{where}: sources.{source}")
        fire = {**base, **_rule_map(extra.get("expect"), f"{where}: sources.{source}", bool)}
        miss = {**misses, **_rule_map(extra.get("known_misses"), f"{where}: sources", str)}
        both = sorted(k for k, v in fire.items() if v and k in miss)
        if both:
            raise ScenarioError(f"{where}: {both[0]} is both expected and a known miss")
        kept = extra.get("fp_not_removed", "")
        if not isinstance(kept, str) or (kept and not doc.get("known_false_positive")):
            raise ScenarioError(
                f"{where}: sources.{source}.fp_not_removed: a reason (text), for a scenario "
                "with a known_false_positive"
            )
        verdict = extra.get("certificate_verdict", doc.get("certificate_verdict", ""))
        if verdict and verdict not in VERDICTS:
            raise ScenarioError(
                f"{where}: certificate_verdict: '{verdict}' is not one of {', '.join(VERDICTS)}"
            )
        fired = frozenset(k for k, v in fire.items() if v)
        out[source] = Expectation(fired, miss, kept, str(verdict or ""))
    return out


def _steps(raw: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{where}: a non-empty list of steps")
    steps: list[Step] = []
    processes: set[str] = set()
    last_at = 0.0
    for n, item in enumerate(raw):
        step = _step(item, f"{where}[{n}]")
        if step.at < last_at:
            raise ScenarioError(f"{where}[{n}]: 'at' goes back in time ({step.at} < {last_at})")
        last_at = step.at
        by = step.get("by")
        if by is not None and by not in processes:
            raise ScenarioError(f"{where}[{n}]: 'by: {by}' names no earlier process step")
        if step.kind == "process":
            _check_parent(step, processes, f"{where}[{n}]")
            if step.id in processes:
                raise ScenarioError(f"{where}[{n}]: process id '{step.id}' used twice")
            processes.add(step.id)
        steps.append(step)
    return tuple(steps)


def _check_parent(step: Step, processes: set[str], where: str) -> None:
    parent = step.get("parent", "explorer")
    if parent not in processes and parent not in SYSTEM_PARENTS:
        raise ScenarioError(
            f"{where}: parent '{parent}' is no earlier process step nor a system parent",
            hint="system parents: " + ", ".join(SYSTEM_PARENTS),
        )


def _step(item: Any, where: str) -> Step:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: a step is a mapping")
    kinds = [k for k in STEP_KINDS if k in item]
    if len(kinds) != 1:
        raise ScenarioError(f"{where}: a step has exactly one of {', '.join(STEP_KINDS)}")
    kind = kinds[0]
    _check_keys(item, (kind, "at", "id"), where)
    at = item.get("at", 0)
    if not isinstance(at, int | float) or at < 0:
        raise ScenarioError(f"{where}: 'at' is a number of seconds >= 0")
    body = item[kind]
    if not isinstance(body, dict):
        raise ScenarioError(f"{where}.{kind}: a mapping")
    _check_fields(kind, body, f"{where}.{kind}")
    step_id = item.get("id", "")
    if kind == "process" and not (isinstance(step_id, str) and step_id):
        raise ScenarioError(f"{where}: a process step needs an 'id'")
    return Step(kind, float(at), str(step_id), dict(body))


def _check_fields(kind: str, body: Mapping[str, Any], where: str) -> None:
    spec = STEP_FIELDS[kind]
    _check_keys(body, tuple(spec), where)
    for name, (required, typ) in spec.items():
        if name not in body:
            if required:
                raise ScenarioError(f"{where}: '{name}' is required")
            continue
        if not isinstance(body[name], typ) or isinstance(body[name], bool):
            raise ScenarioError(f"{where}.{name}: expected a {typ.__name__}")
    choices = {
        "user": USERS,
        "action": REGISTRY_ACTIONS,
        "type": VALUE_TYPES,
        "outcome": NETWORK_OUTCOMES,
        "version": TLS_VERSIONS,
    }
    for name, allowed in choices.items():
        if name in body and body[name] not in allowed:
            raise ScenarioError(
                f"{where}.{name}: '{body[name]}' is not one of {', '.join(allowed)}"
            )
