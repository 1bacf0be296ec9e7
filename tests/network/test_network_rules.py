"""The network rule pack over ../shared/data/network, measured against its cert_labels.csv.

Every MALICIOUS certificate must alert and at most 2% of the BENIGN ones; the counts are the ones
measured (docs/network.md, "Rules"). The four MALICIOUS certificates are known only from
Corelight's detector test baselines, whose timestamps are masked (``XXXXXXXXXX.XXXXXX``): stored
as they are, those notices have no time, so no replayed run's window holds them; the hunt's run
over the rows without a time (rules.runner, ``Hunter._untimed``) sees them, as recorded.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import SHARED
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules import runner
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import default_tuning_path, load_tuning

NETWORK = SHARED / "data" / "network"
LABELS = NETWORK / "cert_labels.csv"

pytestmark = pytest.mark.skipif(
    not LABELS.is_file(), reason=f"needs the ../shared reference data at {NETWORK}"
)

KNOWN_BAD = "TLS server presents a known-bad certificate (C2 framework or RAT default)"
SELF_SIGNED = (
    "Self-signed TLS certificate on an external server without SNI or on a non-standard port"
)
PLACEHOLDER = "TLS server certificate with a tool-default or empty subject"
ROOT_NAME = "TLS server certificate named like a trusted root certificate authority"
LOOKALIKE = (
    "TLS server name imitating a brand or a protected domain on a free or automated CA certificate"
)


@dataclass(frozen=True)
class Label:
    row: int
    file: str
    label: str
    subject: str
    issuer: str
    sha256: str
    endpoints: frozenset[str]


def read_labels() -> list[Label]:
    with LABELS.open(encoding="utf-8", newline="") as fh:
        return [
            Label(
                row=i,
                file=r["file"],
                label=r["label"],
                subject=r["subject"],
                issuer=r["issuer"],
                sha256=r["fingerprint_sha256"].upper(),
                endpoints=frozenset(r["server_endpoints"].split()),
            )
            for i, r in enumerate(csv.DictReader(fh), start=2)
        ]


def labels_of(alert: dict[str, Any], labels: list[Label]) -> list[Label]:
    """The labelled certificates an alert is about: by SHA-256 when both sides have one, else by
    server endpoint, and by subject and issuer where the alert names them (old-schema ssl.log
    and notices carry no fingerprint of the leaf, or none at all)."""
    row = alert["Evidence"][0]
    sha256 = (row.get("CertSha256") or "").upper()
    endpoint = f"{row['ServerIP']}:{row['ServerPort']}"
    found = []
    for label in labels:
        if label.sha256 and sha256:
            if label.sha256 == sha256:
                found.append(label)
            continue
        if endpoint not in label.endpoints:
            continue
        if row.get("Subject") and label.subject and row["Subject"] != label.subject:
            continue
        if row.get("Issuer") and label.issuer and row["Issuer"] != label.issuer:
            continue
        found.append(label)
    return found


@pytest.fixture(scope="module")
def hunted() -> tuple[HuntResult, Workspace]:
    planned, _ = pipeline.plan([NETWORK], skip_unknown=True)
    ws = Workspace(None)
    ws.ingest(planned)
    tuning = load_tuning(default_tuning_path())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    return Hunter(session, tuning).run(load_rules(["network"])), ws


@pytest.fixture(scope="module")
def verdicts(hunted: tuple[HuntResult, Workspace]) -> dict[str, Counter[int]]:
    """For each label, how many alerts each of its certificates (CSV row number) raised."""
    result, _ = hunted
    labels = read_labels()
    by_label: dict[str, Counter[int]] = {
        "MALICIOUS": Counter(),
        "SUSPICIOUS": Counter(),
        "BENIGN": Counter(),
    }
    for alert in result.alerts:
        matched = labels_of(alert, labels)
        assert matched, f"alert on a certificate that has no label: {alert['Evidence'][0]}"
        for label in matched:
            by_label[label.label][label.row] += 1
    return by_label


def test_the_labels_file_is_the_one_measured() -> None:
    counts = Counter(label.label for label in read_labels())
    assert counts == {"MALICIOUS": 4, "SUSPICIOUS": 57, "BENIGN": 357}


def test_masked_notices_are_stored_untimed(hunted: tuple[HuntResult, Workspace]) -> None:
    _, ws = hunted
    rows = ws.engine.execute_sql(
        "SELECT count(*) AS n FROM Corelight_v2_notice_CL WHERE TimeGenerated IS NULL"
    ).to_pylist()
    assert rows == [{"n": 4}]  # the four baselines as recorded: no run window holds them


def test_masked_notices_alert_in_the_run_over_untimed_rows(
    hunted: tuple[HuntResult, Workspace],
) -> None:
    result, _ = hunted
    known_bad = [a for a in result.alerts if a["AlertName"] == KNOWN_BAD]
    assert len(known_bad) == 4
    notes = {json.loads(a["ExtendedProperties"]).get("Event Time") for a in known_bad}
    assert notes == {runner.UNTIMED_NOTE}
    stats = {s.rule.name: s for s in result.stats}
    assert stats[KNOWN_BAD].untimed == 4


def test_every_malicious_certificate_alerts(verdicts: dict[str, Counter[int]]) -> None:
    labels = read_labels()
    malicious = {label.row for label in labels if label.label == "MALICIOUS"}
    assert set(verdicts["MALICIOUS"]) == malicious


def test_benign_certificates_stay_quiet(verdicts: dict[str, Counter[int]]) -> None:
    benign = sum(label.label == "BENIGN" for label in read_labels())
    assert len(verdicts["BENIGN"]) == 0  # measured: none of 357
    assert len(verdicts["BENIGN"]) <= 0.02 * benign


def test_suspicious_certificates_that_alert(verdicts: dict[str, Counter[int]]) -> None:
    """3 of 57: the AirFM and dedibox self-signed servers, the OpenSSL-default 10.150.0.85; the
    54 Tor-style certificates stay quiet (no rule for them without the user's tuning)."""
    labels = {label.row: label for label in read_labels()}
    alerted = sorted(labels[row].subject for row in verdicts["SUSPICIOUS"])
    assert alerted == [
        "CN=10.150.0.85,O=Internet Widgits Pty Ltd,ST=Some-State,C=AU",
        "CN=sd-97597.dedibox.fr",
        "O=AirFM,L=Pest,ST=Budapest,C=HU",
    ]


def test_alerts_per_rule(hunted: tuple[HuntResult, Workspace]) -> None:
    """The AirFM server's sessions run from 00:13 to 06:07 of the capture's relative time: one
    alert in each of the seven hourly runs that hold some; the dedibox server once. The
    look-alike rule raises none: the 72 certificates of free or automated CAs in these captures
    (Let's Encrypt, Amazon, Google Trust Services) are their sites' own."""
    result, _ = hunted
    by_rule = Counter(a["AlertName"] for a in result.alerts)
    assert by_rule == {KNOWN_BAD: 4, SELF_SIGNED: 8, PLACEHOLDER: 1}  # ROOT_NAME, LOOKALIKE: none
    assert {r.name for r in load_rules(["network"])} == {
        KNOWN_BAD,
        SELF_SIGNED,
        PLACEHOLDER,
        ROOT_NAME,
        LOOKALIKE,
    }
    servers = Counter(
        a["Evidence"][0]["ServerIP"] for a in result.alerts if a["AlertName"] == SELF_SIGNED
    )
    assert servers == {"91.82.226.222": 7, "141.255.167.123": 1}
    matched = Counter(
        a["Evidence"][0]["MatchedOn"] for a in result.alerts if a["AlertName"] == KNOWN_BAD
    )
    assert matched == {"issuer name, sensor notice": 3, "sensor notice": 1}
