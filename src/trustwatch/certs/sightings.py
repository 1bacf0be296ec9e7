"""Certificates the telemetry itself carries, found by thumbprint.

An alert names a thumbprint; the certificate behind it is often in the same data:

- the ``Blob`` value of the store key (Defender ``RegistryValueData``, Security 4657
  ``NewValue``) when the export kept the bytes (hex or base64) - Sysmon logs only
  "Binary Data";
- base64 inside PowerShell script blocks and command lines: droppers carry the DER, a PEM
  block or a whole registry Blob inline (Atomic Red Team's RemoteCertTrust.ps1 does).

Every certificate found is matched to a thumbprint by hashing its DER, never by where it was
found, so text that merely mentions a thumbprint never lends it a certificate.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509

from trustwatch.certs.blob import BlobFormatError, ValueDataError, decode_blob, sha1_thumbprint
from trustwatch.certs.blob import parse_registry_value_data as value_bytes
from trustwatch.certs.files import load_der_certificate

if TYPE_CHECKING:
    from trustwatch.api import Session

# A base64 run long enough to hold a certificate (the smallest real ones are ~400 bytes)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{300,}={0,2}")
_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----(?P<body>[A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----"
)
_THUMBPRINT_KEY = r"(?i)\\Certificates\\[0-9a-f]{40}$"

REGISTRY_KQL = f"""DeviceRegistryEvents
| where RegistryValueName =~ "Blob" and isnotempty(RegistryValueData)
| where RegistryKey matches regex @"{_THUMBPRINT_KEY}"
| project Timestamp, DeviceName, RegistryKey, RegistryValueData"""
SCRIPT_KQL = """DeviceEvents
| where ActionType == "PowerShellScriptBlock"
| extend Text = tostring(AdditionalFields.ScriptBlockText)
| where strlen(Text) > 300
| project Timestamp, DeviceName, Text"""
PROCESS_KQL = """DeviceProcessEvents
| where strlen(ProcessCommandLine) > 300
| project Timestamp, DeviceName, Text = ProcessCommandLine"""


@dataclass(frozen=True, slots=True)
class Sighting:
    """A certificate seen in the telemetry: its DER and where it was."""

    thumbprint: str  # SHA-1 of ``der``, upper-case hex
    der: bytes
    where: str  # table, device and time

    def certificate(self) -> x509.Certificate:
        return load_der_certificate(self.der)


def certificates_in_text(text: str) -> list[bytes]:
    """DER certificates inside ``text``: PEM blocks, and base64 of a DER or a registry Blob."""
    found: list[bytes] = []
    candidates = [m.group("body") for m in _PEM.finditer(text)]
    candidates += _BASE64_RUN.findall(text)
    for candidate in candidates:
        raw = _b64(candidate)
        if raw is not None:
            der = _der_of(raw)
            if der is not None and der not in found:
                found.append(der)
    return found


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _der_of(raw: bytes) -> bytes | None:
    """``raw`` as a DER certificate: itself, or the certificate property of a registry Blob."""
    if raw[:1] == b"\x30":
        try:
            load_der_certificate(raw)
        except ValueError:
            return None
        return raw
    try:
        der = decode_blob(raw).der
    except BlobFormatError:
        return None
    return der


def find_sightings(session: Session) -> dict[str, list[Sighting]]:
    """Every certificate the session's telemetry carries, by thumbprint."""
    out: dict[str, list[Sighting]] = {}
    for row in _rows(session, REGISTRY_KQL):
        try:
            der = _der_of(value_bytes(str(row["RegistryValueData"])))
        except ValueDataError:
            continue
        if der is not None:
            _add(out, der, f"DeviceRegistryEvents Blob value, {_where(row)}")
    for kql, table in ((SCRIPT_KQL, "PowerShell script block"), (PROCESS_KQL, "command line")):
        for row in _rows(session, kql):
            for der in certificates_in_text(str(row["Text"] or "")):
                _add(out, der, f"{table}, {_where(row)}")
    return out


def _rows(session: Session, kql: str) -> Iterable[dict[str, object]]:
    return session.run(kql, source_name="<certificate sightings>").tables[-1].to_pylist()  # type: ignore[no-any-return]


def _where(row: dict[str, object]) -> str:
    when = row.get("Timestamp")
    text = when.isoformat().replace("+00:00", "Z") if isinstance(when, datetime) else str(when)
    return f"{row.get('DeviceName') or '?'} at {text}"


def _add(out: dict[str, list[Sighting]], der: bytes, where: str) -> None:
    thumbprint = sha1_thumbprint(der)
    seen = out.setdefault(thumbprint, [])
    if all(s.where != where for s in seen):
        seen.append(Sighting(thumbprint, der, where))
