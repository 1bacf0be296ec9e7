"""A network scenario's TLS sessions as a sensor logs them: Zeek (TSV or JSON) and Suricata EVE.

The "host" of a network scenario is one monitored client on a private address, drawn from the
seed like a Windows host's device; its ``tls`` steps are sessions to servers, each presenting a
certificate of the scenario's ``server_certificates``. Everything variable (client address and
ports, Zeek uids, Suricata flow ids, the time base) comes from ``random.Random``, as for the
Windows hosts; the certificates come from the file.

What each sensor writes (docs/scenarios.md, "What the network sensor writes"):

- Zeek 6 with its default scripts: ``ssl.log`` (new schema: ``cert_chain_fps``, the chain's
  SHA-256 fingerprints, leaf first) and ``x509.log`` (one row per certificate the first time it is
  seen), ASCII TSV with its header, or JSON lines as json-streaming-logs writes them
  (``_path``, ``_write_ts``, ISO times).
- Suricata's EVE ``tls`` event per session: the leaf's subject and issuer (RDNs in certificate
  order, ``, `` between them), serial (``XX:XX``), SHA-1 fingerprint (``xx:xx``), validity and
  SNI.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trustwatch.scenarios.host import time_base
from trustwatch.scenarios.model import Scenario, ServerCertificate

SENSOR_IFACE = "eth1"
# key -> (key_alg, sig_alg, key_type, key_length, curve) as Zeek's x509.log writes them
KEYS = {
    "rsa 2048": ("rsaEncryption", "sha256WithRSAEncryption", "rsa", 2048, ""),
    "rsa 4096": ("rsaEncryption", "sha256WithRSAEncryption", "rsa", 4096, ""),
    "ecdsa 256": ("id-ecPublicKey", "ecdsa-with-SHA256", "ecdsa", 256, "prime256v1"),
    "ecdsa 384": ("id-ecPublicKey", "ecdsa-with-SHA384", "ecdsa", 384, "secp384r1"),
}
CIPHERS = {
    "rsa": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ecdsa": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
}
SURICATA_VERSIONS = {"TLSv10": "TLS 1.0", "TLSv11": "TLS 1.1", "TLSv12": "TLS 1.2"}
_UID_CHARS = string.ascii_letters + string.digits
_RDN_SPLIT = re.compile(r"(?<!\\),")

SSL_FIELDS = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("version", "string"),
    ("cipher", "string"),
    ("curve", "string"),
    ("server_name", "string"),
    ("resumed", "bool"),
    ("last_alert", "string"),
    ("next_protocol", "string"),
    ("established", "bool"),
    ("ssl_history", "string"),
    ("cert_chain_fps", "vector[string]"),
    ("client_cert_chain_fps", "vector[string]"),
    ("sni_matches_cert", "bool"),
    ("validation_status", "string"),
)
X509_FIELDS = (
    ("ts", "time"),
    ("fingerprint", "string"),
    ("certificate.version", "count"),
    ("certificate.serial", "string"),
    ("certificate.subject", "string"),
    ("certificate.issuer", "string"),
    ("certificate.not_valid_before", "time"),
    ("certificate.not_valid_after", "time"),
    ("certificate.key_alg", "string"),
    ("certificate.sig_alg", "string"),
    ("certificate.key_type", "string"),
    ("certificate.key_length", "count"),
    ("certificate.exponent", "string"),
    ("certificate.curve", "string"),
    ("san.dns", "vector[string]"),
    ("san.uri", "vector[string]"),
    ("san.email", "vector[string]"),
    ("san.ip", "vector[addr]"),
    ("basic_constraints.ca", "bool"),
    ("basic_constraints.path_len", "count"),
    ("host_cert", "bool"),
    ("client_cert", "bool"),
)
LOGS = {"ssl": SSL_FIELDS, "x509": X509_FIELDS}


@dataclass(frozen=True, slots=True)
class Certificate:
    """A server certificate resolved on the scenario's time line, with its fingerprints."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    sha256: str
    sha1: str
    san_dns: tuple[str, ...]
    ca: bool
    key: str


@dataclass(frozen=True, slots=True)
class Session:
    """One TLS session the sensor saw: the client, the server and the chain it presented."""

    time: datetime
    uid: str
    flow_id: int
    client: str
    client_port: int
    server: str
    port: int
    sni: str
    version: str
    validation: str
    chain: tuple[Certificate, ...]  # leaf first


@dataclass(slots=True)
class Wire:
    """The seeded network a scenario runs on: its client and the sessions the sensor logged."""

    device: str  # the client's address: alerts are told apart by it (their ClientIP)
    base: datetime
    sessions: list[Session] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return max((s.time for s in self.sessions), default=self.base)


def make_wire(scenario: Scenario, seed: int) -> Wire:
    """The scenario's sessions on a client drawn from ``seed``."""
    rng = random.Random(f"{seed}:{scenario.id}")  # noqa: S311 - a simulation, not a secret
    client = f"10.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    base = time_base(seed) + timedelta(microseconds=rng.randrange(0, 10**6))
    wire = Wire(device=client, base=base)
    last = base
    for step in scenario.steps:
        chain = _chain(scenario, str(step.get("certificate")), base)
        leaf = chain[0]
        every = timedelta(seconds=int(step.get("every", 60)))
        start = base + timedelta(seconds=step.at)
        for n in range(int(step.get("sessions", 1))):
            jitter = timedelta(microseconds=rng.randrange(1000, 900000))
            time = last = max(start + n * every + jitter, last + timedelta(milliseconds=1))
            self_signed = leaf.subject == leaf.issuer
            default_status = "self signed certificate" if self_signed else "ok"
            wire.sessions.append(
                Session(
                    time=time,
                    uid="C" + "".join(rng.choice(_UID_CHARS) for _ in range(17)),
                    flow_id=rng.randrange(10**14, 2**51),
                    client=client,
                    client_port=rng.randrange(49152, 65535),
                    server=str(step.get("server")),
                    port=int(step.get("port")),
                    sni=str(step.get("sni", "")),
                    version=str(step.get("version", "TLSv12")),
                    validation=str(step.get("validation", default_status)),
                    chain=chain,
                )
            )
    return wire


def _chain(scenario: Scenario, name: str, base: datetime) -> tuple[Certificate, ...]:
    spec = scenario.server_certificates[name]
    issuers = tuple(c for n in spec.chain for c in _chain(scenario, n, base))
    return (_resolve(spec, base), *issuers)


def _resolve(spec: ServerCertificate, base: datetime) -> Certificate:
    if spec.not_before is not None and spec.not_after is not None:
        before, after = spec.not_before, spec.not_after
    else:
        day = base.replace(hour=0, minute=0, second=0, microsecond=0)
        before = day - timedelta(days=spec.issued_days_ago) + timedelta(hours=7, minutes=13)
        after = before + timedelta(days=spec.valid_days)
    # no DER is made: fingerprints not given are digests of the certificate's description
    described = json.dumps([spec.subject, spec.issuer, spec.serial, spec.name, spec.key])
    return Certificate(
        subject=spec.subject,
        issuer=spec.issuer,
        serial=spec.serial,
        not_before=before,
        not_after=after,
        sha256=spec.sha256 or hashlib.sha256(described.encode()).hexdigest(),
        sha1=spec.sha1 or hashlib.sha1(described.encode()).hexdigest(),  # noqa: S324 - an id
        san_dns=spec.san_dns,
        ca=spec.ca,
        key=spec.key,
    )


# -- Zeek --------------------------------------------------------------------------------------


def zeek_records(wire: Wire) -> dict[str, list[dict[str, Any]]]:
    """Log name -> records (Zeek field name -> value, ``None`` unset), in time order."""
    ssl: list[dict[str, Any]] = []
    x509: list[dict[str, Any]] = []
    logged: set[str] = set()
    for session in wire.sessions:
        leaf = session.chain[0]
        cipher = CIPHERS[KEYS[leaf.key][2]]
        matches = None if not session.sni else _sni_matches(session.sni, leaf)
        ssl.append(
            {
                "ts": session.time,
                "uid": session.uid,
                "id.orig_h": session.client,
                "id.orig_p": session.client_port,
                "id.resp_h": session.server,
                "id.resp_p": session.port,
                "version": session.version,
                "cipher": cipher,
                "curve": "x25519",
                "server_name": session.sni or None,
                "resumed": False,
                "last_alert": None,
                "next_protocol": None,
                "established": True,
                "ssl_history": "CsxknGIi",
                "cert_chain_fps": [c.sha256 for c in session.chain],
                "client_cert_chain_fps": [],
                "sni_matches_cert": matches,
                "validation_status": session.validation,
            }
        )
        for n, cert in enumerate(session.chain):
            if cert.sha256 in logged:
                continue  # Zeek logs a certificate once (its x509 cache), not per session
            logged.add(cert.sha256)
            x509.append(_x509(cert, session.time + timedelta(microseconds=250 + n)))
    x509.sort(key=lambda r: r["ts"])
    return {"ssl": ssl, "x509": x509}


def _sni_matches(sni: str, cert: Certificate) -> bool:
    for name in cert.san_dns:
        if name.lower() == sni.lower():
            return True
        if name.startswith("*.") and sni.lower().endswith(name[1:].lower()):
            return sni.count(".") == name.count(".")
    return False


def _x509(cert: Certificate, ts: datetime) -> dict[str, Any]:
    key_alg, sig_alg, key_type, length, curve = KEYS[cert.key]
    return {
        "ts": ts,
        "fingerprint": cert.sha256,
        "certificate.version": 3,
        "certificate.serial": cert.serial if len(cert.serial) % 2 == 0 else "0" + cert.serial,
        "certificate.subject": cert.subject,
        "certificate.issuer": cert.issuer,
        "certificate.not_valid_before": cert.not_before,
        "certificate.not_valid_after": cert.not_after,
        "certificate.key_alg": key_alg,
        "certificate.sig_alg": sig_alg,
        "certificate.key_type": key_type,
        "certificate.key_length": length,
        "certificate.exponent": "65537" if key_type == "rsa" else None,
        "certificate.curve": curve or None,
        "san.dns": list(cert.san_dns) or None,
        "san.uri": None,
        "san.email": None,
        "san.ip": None,
        "basic_constraints.ca": cert.ca,
        "basic_constraints.path_len": 0 if cert.ca else None,
        "host_cert": True,
        "client_cert": False,
    }


def render_zeek_tsv(wire: Wire) -> dict[str, str]:
    """Log name -> the text of its Zeek ASCII log (header, rows, ``#close``)."""
    opened = _zeek_stamp(wire.base)
    closed = _zeek_stamp(wire.end + timedelta(seconds=1))
    out = {}
    for log, records in zeek_records(wire).items():
        fields = LOGS[log]
        lines = [
            "#separator \\x09",
            "#set_separator\t,",
            "#empty_field\t(empty)",
            "#unset_field\t-",
            f"#path\t{log}",
            f"#open\t{opened}",
            "#fields\t" + "\t".join(name for name, _ in fields),
            "#types\t" + "\t".join(kind for _, kind in fields),
        ]
        lines += ["\t".join(_tsv(r[name], kind) for name, kind in fields) for r in records]
        lines.append(f"#close\t{closed}")
        out[log] = "\n".join(lines) + "\n"
    return out


def _zeek_stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H-%M-%S")


def _tsv(value: Any, kind: str) -> str:
    """A value as Zeek's ASCII writer prints it (escapes, ``-`` unset, ``(empty)``)."""
    if value is None:
        return "-"
    if kind == "time":
        return f"{value.timestamp():.6f}"
    if kind == "bool":
        return "T" if value else "F"
    if kind.startswith(("vector", "set")):
        if not value:
            return "(empty)"
        return ",".join(_escape(str(v), ",") for v in value)
    text = str(value)
    if text == "":
        return "(empty)"
    if text in ("-", "(empty)"):
        return "".join(f"\\x{ord(c):02x}" for c in text)
    return _escape(text, "")


def _escape(text: str, separator: str) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == separator or char == "\t" or not char.isprintable():
            out.extend(f"\\x{b:02x}" for b in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def render_zeek_json(wire: Wire) -> dict[str, str]:
    """Log name -> JSON lines as json-streaming-logs writes them (``_path``, ``_write_ts``)."""
    out = {}
    for log, records in zeek_records(wire).items():
        lines = []
        for record in records:
            doc: dict[str, Any] = {"_path": log, "_write_ts": _iso(record["ts"] + _WRITE_DELAY)}
            for name, value in record.items():
                if value is None:
                    continue  # Zeek's JSON writer leaves unset fields out
                doc[name] = _iso(value) if isinstance(value, datetime) else value
            lines.append(_compact(doc))
        out[log] = "".join(line + "\n" for line in lines)
    return out


_WRITE_DELAY = timedelta(milliseconds=14)


def _compact(doc: dict[str, Any]) -> str:
    """One JSON line as the sensors write it: no spaces, UTF-8 kept."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- Suricata ----------------------------------------------------------------------------------


def render_suricata(wire: Wire) -> str:
    """EVE JSON lines: one ``tls`` event per session."""
    return "".join(_compact(e) + "\n" for e in suricata_events(wire))


def suricata_events(wire: Wire) -> Iterator[dict[str, Any]]:
    for session in wire.sessions:
        leaf = session.chain[0]
        tls: dict[str, Any] = {
            "subject": _suricata_dn(leaf.subject),
            "issuerdn": _suricata_dn(leaf.issuer),
            "serial": ":".join(_pairs(leaf.serial)),
            "fingerprint": ":".join(_pairs(leaf.sha1)),
        }
        if session.sni:
            tls["sni"] = session.sni
        tls["version"] = SURICATA_VERSIONS[session.version]
        tls["notbefore"] = leaf.not_before.strftime("%Y-%m-%dT%H:%M:%S")
        tls["notafter"] = leaf.not_after.strftime("%Y-%m-%dT%H:%M:%S")
        yield {
            "timestamp": session.time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000",
            "flow_id": session.flow_id,
            "in_iface": SENSOR_IFACE,
            "event_type": "tls",
            "src_ip": session.client,
            "src_port": session.client_port,
            "dest_ip": session.server,
            "dest_port": session.port,
            "proto": "TCP",
            "tls": tls,
        }


def _pairs(hex_text: str) -> list[str]:
    text = hex_text.upper()
    if len(text) % 2:
        text = "0" + text
    return [text[i : i + 2] for i in range(0, len(text), 2)]


def _suricata_dn(dn: str) -> str:
    """Zeek's (RFC 4514, last RDN first) name as Suricata writes it: certificate order, ``, ``."""
    if not dn:
        return ""
    return ", ".join(reversed(_RDN_SPLIT.split(dn)))
