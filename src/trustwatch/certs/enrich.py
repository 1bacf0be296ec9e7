"""Alert enrichment: which certificate an alert is about, what it is, and what that means.

Every alert whose evidence names a ``CertThumbprint`` gets, per thumbprint, the classification
of the certificate - from the certificate itself when the telemetry carries it (a registry
``Blob`` value, base64 in a script block or command line; see ``sightings``), else from the
thumbprint alone. Validity is judged at the alert's start time, not today: forensic data is old.

Severity moves with the worst certificate (docs/certificates.md, "Alert enrichment"):

- known-bad or lookalike: raised to High;
- suspicious (e.g. a self-signed root no list knows): raised one step;
- a listed public or Microsoft root written by Windows' own updater
  (``C:\\Windows\\System32\\svchost.exe``): lowered one step;
- unknown, free-ca, or a listed root written by anything else: unchanged.

The original severity and the reason are kept in ``ExtendedProperties``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustwatch.certs.classify import Classification, classify
from trustwatch.certs.intel import Intel, load_intel
from trustwatch.certs.model import RANK, Verdict
from trustwatch.certs.sightings import Sighting, find_sightings
from trustwatch.severity import SEVERITIES

if TYPE_CHECKING:
    from trustwatch.api import Session

WINDOWS_UPDATER = r"c:\windows\system32\svchost.exe"
_SHA1 = re.compile(r"^[0-9A-F]{40}$")


@dataclass(slots=True)
class EnrichStats:
    """What enrichment did, for the hunt's account on stderr."""

    alerts: int = 0  # alerts that name a certificate
    verdicts: Counter[str] = field(default_factory=Counter)
    from_certificate: int = 0  # classifications made from the certificate itself
    raised: int = 0
    lowered: int = 0


def enrich_alerts(
    alerts: Iterable[dict[str, Any]],
    intel: Intel,
    sightings: Mapping[str, list[Sighting]],
) -> EnrichStats:
    """Add ``Certificates`` and certificate details to each alert naming a thumbprint (in place)."""
    stats = EnrichStats()
    cache: dict[tuple[str, str], Classification] = {}
    for alert in alerts:
        thumbprints = _thumbprints(alert.get("Evidence") or [])
        if not thumbprints:
            continue
        at = _parse_time(str(alert.get("StartTime") or ""))
        found = []
        for thumbprint in thumbprints:
            seen = sightings.get(thumbprint, [])
            key = (thumbprint, str(at.date()) if at and seen else "")
            if key not in cache:
                cert = seen[0].certificate() if seen else None
                cache[key] = classify(cert, thumbprint, intel=intel, at=at)
            found.append((thumbprint, cache[key], seen))
        _apply(alert, found, stats)
    return stats


def enrich_hunt(alerts: list[dict[str, Any]], session: Session) -> EnrichStats:
    """Enrich a hunt's alerts with the certificates ``session``'s telemetry carries.

    The lists are loaded and the telemetry scanned only when an alert names a thumbprint.
    """
    if not any(row.get("CertThumbprint") for a in alerts for row in a.get("Evidence") or []):
        return EnrichStats()
    return enrich_alerts(alerts, load_intel(), find_sightings(session))


def _thumbprints(evidence: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for row in evidence:
        value = str(row.get("CertThumbprint") or "").strip().upper()
        if _SHA1.match(value) and value not in out:
            out.append(value)
    return out


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _apply(
    alert: dict[str, Any],
    found: list[tuple[str, Classification, list[Sighting]]],
    stats: EnrichStats,
) -> None:
    worst = max((c for _, c, _ in found), key=lambda c: RANK[c.verdict])
    stats.alerts += 1
    stats.verdicts[str(worst.verdict)] += 1
    stats.from_certificate += sum(1 for _, c, _ in found if c.at is not None)
    alert["Certificates"] = [
        {"thumbprint": t, "seen_in": [s.where for s in seen], **c.to_dict()} for t, c, seen in found
    ]
    extended = json.loads(alert.get("ExtendedProperties") or "{}")
    extended["Certificate Verdict"] = str(worst.verdict)
    extended["Certificate Subject"] = worst.subject
    extended["Certificate Findings"] = "; ".join(f.label for f in worst.findings)
    before = str(alert.get("AlertSeverity", ""))
    after, why = _severity(before, worst, _writers(alert.get("Evidence") or []))
    if after != before:
        alert["AlertSeverity"] = after
        extended["Original Severity"] = before
        extended["Severity Reason"] = why
        if SEVERITIES.index(after) > SEVERITIES.index(before):
            stats.raised += 1
        else:
            stats.lowered += 1
    alert["ExtendedProperties"] = json.dumps(extended, ensure_ascii=False)


def _writers(evidence: Iterable[Mapping[str, Any]]) -> set[str]:
    paths = set()
    for row in evidence:
        for name in ("ProcessPath", "InitiatingProcessFolderPath"):
            value = row.get(name)
            if value:
                paths.add(str(value).lower())
                break
    return paths


def _severity(before: str, worst: Classification, writers: set[str]) -> tuple[str, str]:
    """The alert's new severity and why (unchanged: the same severity and '')."""
    if before not in SEVERITIES:
        return before, ""
    level = SEVERITIES.index(before)
    verdict = worst.verdict
    if verdict in (Verdict.KNOWN_BAD, Verdict.LOOKALIKE):
        return "High", f"the certificate is {verdict}"
    if verdict is Verdict.SUSPICIOUS:
        top = worst.findings[0].label.lower() if worst.findings else "suspicious"
        return SEVERITIES[min(level + 1, 3)], f"the certificate is suspicious ({top})"
    if verdict in (Verdict.PUBLIC_ROOT, Verdict.MICROSOFT_ROOT) and writers == {WINDOWS_UPDATER}:
        return SEVERITIES[max(level - 1, 0)], f"a listed {verdict} written by Windows' updater"
    return before, ""
