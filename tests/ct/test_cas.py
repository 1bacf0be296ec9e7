"""The CA named from an issuer, and the free / automated CA lists."""

from __future__ import annotations

import pytest

from trustwatch.ct.cas import automated_cas, issuer_of
from trustwatch.ct.names import name_data


@pytest.mark.parametrize(
    ("issuer", "organisation", "kind"),
    [
        ("C=US, O=Let's Encrypt, CN=R11", "Let's Encrypt", "free"),  # the certs intel list
        ("/C=AT/O=ZeroSSL/CN=ZeroSSL RSA Domain Secure Site CA", "ZeroSSL", "free"),
        ("C=US, O=Google Trust Services, CN=WR1", "Google Trust Services", "automated"),
        (
            'C=US, O="cPanel, Inc.", CN="cPanel, Inc. Certification Authority"',
            "cPanel, Inc.",
            "free",
        ),
        (
            "C=US, O=DigiCert Inc, CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1",
            "DigiCert Inc",
            None,
        ),
    ],
)
def test_issuer_is_named_and_its_kind_known(
    issuer: str, organisation: str, kind: str | None
) -> None:
    found = issuer_of(issuer)
    assert found.organisation == organisation
    assert (found.automated.kind if found.automated else None) == kind


def test_issuer_given_apart() -> None:
    found = issuer_of("", "Let's Encrypt", "R10")
    assert found.label == "Let's Encrypt (R10)"
    assert found.automated is not None and "Let's Encrypt" in found.automated.operator
    assert issuer_of("").label == ""


def test_shipped_lists_are_sane() -> None:
    cas = automated_cas()
    assert {"let's encrypt", "zerossl", "google trust services", "buypass as-983163327"} <= set(cas)
    data = name_data()
    assert all(len(k) == 1 and v.isascii() for k, v in data.confusables.items())
    assert all(len(pair) == 2 for pair, _ in data.sequences)
    assert "login" in data.added_words and "co.uk" in data.public_suffixes
