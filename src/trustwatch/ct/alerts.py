"""Look-alike certificates as alerts in the shape of Sentinel's ``SecurityAlert`` table.

The columns are those ``trustwatch.rules.alerts.build_alert`` writes (``ExtendedProperties`` and
``Entities`` as JSON text, ``Tactics`` comma-separated, ``Evidence`` the records the alert was
raised for: here every sighting of the certificate). The times are the CT log's (when it logged
the certificate), never the clock, so a scan of an old export dates its alerts as they were.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from trustwatch.ct.scan import Lookalike

ALERT_NAME = "Certificate issued for a look-alike domain"
ALERT_TYPE = "trustwatch_ct_lookalike"
TACTICS = ("ResourceDevelopment",)
# the certificate (T1588.004) and the look-alike domain it was issued for (T1583.001)
TECHNIQUES = ("T1588.004", "T1583.001")
_NAMESPACE = uuid.UUID("0c7f5d3e-3b8a-4f55-9a6e-2f3c1d7e9b41")  # alert ids from the certificate


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def why(lookalike: Lookalike) -> list[str]:
    """Each finding in words: ``name: technique (protected domain): detail``."""
    return [
        f"{f.name.raw.lower()}: {f.finding.technique} of {f.finding.domain}: {f.finding.detail}"
        for f in lookalike.findings
    ]


def alert_record(lookalike: Lookalike) -> dict[str, Any]:
    """One SecurityAlert record (a dict, as ``trustwatch.records.SecurityAlert`` reads it)."""
    first = lookalike.first
    times = [t for s in lookalike.sightings for t in (s.logged or s.not_before,) if t]
    start, end = (min(times), max(times)) if times else (None, None)
    issuer = lookalike.issuer
    ca_kind = issuer.automated.kind if issuer.automated else ""
    ca_text = issuer.label + (
        f" - {ca_kind}: {issuer.automated.operator}" if issuer.automated else ""
    )
    names = lookalike.names
    display = f"Look-alike of {', '.join(lookalike.domains)} in a certificate: {names[0]}"
    if len(names) > 1:
        display += f" (+{len(names) - 1} more)"
    description = (
        f"A certificate transparency log lists a certificate issued by {issuer.label} for "
        f"{', '.join(names)}, which imitate(s) {', '.join(lookalike.domains)} "
        f"({', '.join(lookalike.techniques)}). An adversary obtains such certificates to host "
        "phishing or command-and-control servers under a look-alike name (T1588.004)."
    )
    extended = {
        "Score": str(lookalike.score),
        "Score Parts": "; ".join(lookalike.score_parts),
        "Protected Domains": ", ".join(lookalike.domains),
        "Lookalike Names": ", ".join(names),
        "Techniques": ", ".join(lookalike.techniques),
        "Why": " | ".join(why(lookalike)),
        "Certificate Authority": ca_text,
        "Free Or Automated CA": ca_kind,
        "Issuer": issuer.name,
        "Serial Number": first.serial,
        "Common Name": first.common_name,
        "Not Before": _iso(first.not_before),
        "Not After": _iso(first.not_after),
        "Sightings": str(len(lookalike.sightings)),
        "Certificate Key": lookalike.key,
    }
    if first.crtsh_id is not None:
        extended["crt.sh"] = f"https://crt.sh/?id={first.crtsh_id}"
    entities: list[dict[str, Any]] = [
        {"$id": str(i + 1), "DomainName": name, "Type": "dns"} for i, name in enumerate(names)
    ]
    alert_id = str(uuid.uuid5(_NAMESPACE, lookalike.key + "|" + ",".join(lookalike.domains)))
    return {
        "TimeGenerated": _iso(end),
        "DisplayName": display,
        "AlertName": ALERT_NAME,
        "AlertSeverity": lookalike.severity,
        "Description": description,
        "ProviderName": "trustwatch ct scan",
        "VendorName": "trustwatch",
        "VendorOriginalId": alert_id,
        "SystemAlertId": alert_id,
        "AlertType": ALERT_TYPE,
        "ConfidenceLevel": "",
        "IsIncident": False,
        "StartTime": _iso(start),
        "EndTime": _iso(end),
        "RemediationSteps": (
            "Check who owns the look-alike domain (WHOIS, DNS, the site itself); if it is not "
            "yours, block it at the proxy and mail gateway and ask the registrar and the CA to "
            "take it down (the CA's problem-reporting address is in its CPS)."
        ),
        "ExtendedProperties": json.dumps(extended, ensure_ascii=False),
        "Entities": json.dumps(entities, ensure_ascii=False),
        "SourceSystem": "Detection",
        "ProductName": "trustwatch",
        "ProductComponentName": "Certificate Transparency",
        "Status": "New",
        "CompromisedEntity": "",
        "Tactics": ", ".join(TACTICS),
        "Techniques": json.dumps(list(TECHNIQUES)),
        "Type": "SecurityAlert",
        "Evidence": [s.to_dict() for s in lookalike.sightings],
    }
