"""Scoring and merging: one result per certificate, its score explained part by part."""

from __future__ import annotations

from trustwatch.ct.cas import issuer_of
from trustwatch.ct.lookalike import protected_domain
from trustwatch.ct.readers import CtEntry, Passed, Skipped
from trustwatch.ct.scan import Scan, certificate_key


def _entry(names: tuple[str, ...], issuer: str, serial: str = "01", ref: int = 1) -> CtEntry:
    return CtEntry(
        source="crt.sh",
        origin="test",
        ref_kind="record",
        ref=ref,
        names=names,
        common_name=names[0],
        issuer=issuer_of(issuer),
        serial=serial,
        not_before=None,
        not_after=None,
        logged=None,
    )


def _scan(*entries: CtEntry) -> Scan:
    scan = Scan((protected_domain("contoso.com"),))
    scan.add_source("test", entries)
    return scan


def test_score_adds_techniques_and_the_free_ca() -> None:
    # the strongest finding (impersonation 75), 5 for the other technique, 15 for a free CA
    [result] = _scan(
        _entry(("contoso.com.evil.net", "contoso.net"), "C=US, O=Let's Encrypt, CN=R10")
    ).lookalikes()
    assert result.techniques == ("impersonation", "tld-swap")
    assert result.score_parts == ("impersonation 75", "other techniques +5", "free CA +15")
    assert (result.score, result.severity) == (95, "High")


def test_severity_floors() -> None:
    [low] = _scan(_entry(("contoso.evil.net",), "O=Some Paid CA")).lookalikes()
    assert (low.score, low.severity) == (45, "Low")
    [medium] = _scan(_entry(("contoso.org",), "O=Some Paid CA")).lookalikes()
    assert (medium.score, medium.severity) == (65, "Medium")


def test_sightings_of_one_certificate_merge() -> None:
    issuer = "C=US, O=Let's Encrypt, CN=R11"
    scan = _scan(
        _entry(("c0ntoso.com",), issuer, "0A", ref=1),
        _entry(("c0ntoso.com", "www.c0ntoso.com"), issuer, "0A", ref=2),
        _entry(("c0ntoso.com",), issuer, "0B", ref=3),
    )
    results = scan.lookalikes()
    assert [len(r.sightings) for r in results] == [2, 1]
    assert results[0].names == ("c0ntoso.com", "www.c0ntoso.com")


def test_account_counts_own_names_and_what_is_no_name() -> None:
    scan = Scan((protected_domain("contoso.com"),))
    account = scan.add_source(
        "test",
        [
            _entry(("www.contoso.com", "Contoso Ltd", "example.org"), "O=X"),
            Skipped("test", "record", 2, "bad"),
            Passed("test", 3, "certstream heartbeat message"),
        ],
    )
    assert (account.records, account.names, account.own, account.not_dns) == (1, 3, 1, 1)
    assert (len(account.skipped), account.passed) == (1, 1)
    assert scan.lookalikes() == []


def test_certificate_key_prefers_issuer_and_serial() -> None:
    entry = _entry(("a.com",), "O=X", "0A")
    assert certificate_key(entry) == "serial:o=x|0A"
    assert certificate_key(_entry(("a.com",), "O=X", "")).startswith("at:test:record:")
