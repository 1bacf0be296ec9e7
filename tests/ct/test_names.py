"""Names made comparable (IDN, suffixes, skeletons, typing slips) and the look-alike checks."""

from __future__ import annotations

import pytest

from trustwatch.ct.lookalike import find_lookalikes, protected_domain
from trustwatch.ct.names import (
    decode_label,
    edit_operation,
    is_label,
    keyboard_neighbours,
    parse_name,
    skeleton,
    split_words,
)
from trustwatch.errors import InputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c\u043entoso", "contoso"),  # Cyrillic o
        ("c\u03bfntoso", "contoso"),  # Greek omicron
        ("c0ntoso", "contoso"),
        ("fabrikarn", "fabrikam"),  # rn drawn like m
        ("contos\u00f3", "contoso"),  # an accent
        ("\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f", "contoso"),  # full-width letters
        ("CONTOSO", "contoso"),
    ],
)
def test_skeleton_is_what_a_name_looks_like(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_parse_name_decodes_punycode_and_splits_the_suffix() -> None:
    name = parse_name("*.login.xn--cntoso-i0e.co.uk.")
    assert name is not None
    assert name.wildcard and name.idn
    assert name.text == "login.c\u03bfntoso.co.uk"
    assert (name.subdomain, name.registrable, name.suffix) == (("login",), "c\u03bfntoso", "co.uk")


@pytest.mark.parametrize(
    "value",
    ["Contoso Ltd", "192.0.2.10", "contoso", "a..b.com", "x" * 64 + ".com", "\x1b[2J.com", ""],
)
def test_what_is_not_a_dns_name_is_none(value: str) -> None:
    assert parse_name(value) is None


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("contoso", True),
        ("con-toso_1", True),
        ("\u0939\u093f\u0902\u0926\u0940", True),  # Hindi: vowel signs are marks
        ("c\u043entoso", True),
        ("a b", False),
        ("a\u200db", False),  # zero-width joiner: a format character
        ("a\x1bb", False),
        ("a.b", False),
    ],
)
def test_is_label(text: str, ok: bool) -> None:
    assert is_label(text) is ok


def test_bad_punycode_is_kept_as_written_and_said() -> None:
    label, note = decode_label("xn--zz")
    assert label == "xn--zz"
    assert "not valid punycode" in note
    name = parse_name("xn--zz.com")
    assert name is not None and name.notes


def test_an_email_san_gives_its_domain() -> None:
    name = parse_name("ceo@c0ntoso.com")
    assert name is not None and name.text == "c0ntoso.com"


@pytest.mark.parametrize(
    ("candidate", "target", "slip"),
    [
        ("cntoso", "contoso", "omission"),
        ("contosso", "contoso", "repetition"),
        ("contoxso", "contoso", "insertion"),
        ("con-toso", "contoso", "hyphenation"),
        ("cotnoso", "contoso", "transposition"),
        ("contoao", "contoso", "keyboard"),
        ("kontoso", "contoso", "substitution"),
        ("contour", "contoso", None),
        ("contoso", "contoso", None),
    ],
)
def test_edit_operation_names_the_slip(candidate: str, target: str, slip: str | None) -> None:
    assert edit_operation(candidate, target) == slip


def test_keyboard_neighbours_follow_the_stagger() -> None:
    near = keyboard_neighbours(("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"))
    assert near["s"] == frozenset("adwezx")
    assert near["q"] == frozenset("12wa")


def test_split_words() -> None:
    words = frozenset({"login", "my", "secure"})
    assert split_words("my-secure", words) == ("my", "secure")
    assert split_words("orate", words) is None
    assert split_words("", words) == ()


def test_protected_domain_must_be_registrable() -> None:
    with pytest.raises(InputError, match="not a registrable domain"):
        protected_domain("co.uk")
    with pytest.raises(InputError):
        protected_domain("not a domain")
    assert protected_domain("Contoso.COM.").domain == "contoso.com"


def test_a_finding_says_which_domain_and_why() -> None:
    protected = (protected_domain("contoso.com"), protected_domain("fabrikam.com"))
    name = parse_name("login.fabrikam.com.evil.net")
    assert name is not None
    [finding] = find_lookalikes(name, protected)
    assert (finding.domain, finding.technique) == ("fabrikam.com", "impersonation")
    assert "fabrikam.com written inside evil.net" in finding.detail


def test_own_names_never_alert_even_when_they_look_like_another() -> None:
    protected = (protected_domain("contoso.com"), protected_domain("contoso.net"))
    for text in ("contoso.net", "www.contoso.net", "c0ntoso.contoso.com"):
        name = parse_name(text)
        assert name is not None and find_lookalikes(name, protected) == []
