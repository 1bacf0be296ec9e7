"""Whether a certificate name imitates a protected domain, and how: each technique a finding.

The checks, for a name that is neither a protected domain nor under one (those never alert), each
against the registrable label (``contoso`` of ``login.contoso.co.uk``) unless said otherwise:

- ``idn-homoglyph`` / ``homoglyph``: drawn like the brand but written otherwise (its skeleton,
  ``trustwatch.ct.names.skeleton``, is the brand's): Cyrillic or Greek letters, accents, ``0``
  for ``o``, ``rn`` for ``m``; IDN when a label is punycode or Unicode;
- ``typo``: one typing slip from the brand (``names.edit_operation``): omission, repetition,
  transposition, keyboard neighbour, hyphenation; a substitution or insertion of any other
  character only for brands of at least ``FUZZY_MIN`` characters (``corp`` has too many real
  neighbours: ``carp``, ``coral``...);
- ``added-word``: the brand with words around it, after a hyphen (``contoso-login``; for a brand
  shorter than ``FUZZY_MIN``, words of the list only: ``acme-corp`` is another company) or joined
  to words of the list only (``mycontoso``; ``corporate`` is not ``corp`` + a word);
- ``tld-swap``: the brand itself under another suffix (``contoso.net``, ``contoso.github.io``);
- ``impersonation``: the whole protected domain written inside another domain's name, as labels
  (``contoso.com.evil.net``) or with hyphens (``login-contoso-com.example``);
- ``brand-subdomain``: the brand as a subdomain label of another domain (``contoso.evil.net``),
  only for brands of at least ``FUZZY_MIN`` characters (``corp.example.com`` is everyday).

Skeletons are compared throughout, so a homoglyph inside an added word or impersonation is still
caught (and said). Weights are below; the score is in ``trustwatch.ct.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trustwatch.ct.names import (
    Name,
    NameData,
    edit_operation,
    name_data,
    parse_name,
    skeleton,
    split_words,
)
from trustwatch.errors import InputError

# A brand shorter than this matches only the look-alikes that are rare by chance (docs/ct.md).
FUZZY_MIN = 5

# technique -> weight (0-100) of a finding; typos by their slip
WEIGHTS: dict[str, int] = {
    "idn-homoglyph": 85,
    "homoglyph": 80,
    "impersonation": 75,
    "typo:transposition": 70,
    "typo:omission": 70,
    "typo:repetition": 70,
    "typo:keyboard": 70,
    "typo:hyphenation": 65,
    "typo:substitution": 60,
    "typo:insertion": 60,
    "tld-swap": 65,
    "added-word": 60,
    "brand-subdomain": 45,
}
# typo slips that happen by chance between short real words, allowed for long brands only
_CHANCE_SLIPS = frozenset({"substitution", "insertion"})


@dataclass(frozen=True, slots=True)
class Protected:
    """A domain to protect: its name, brand label, suffix and their skeletons."""

    domain: str
    brand: str
    suffix: str
    brand_skeleton: str
    tokens: tuple[str, ...]  # skeletons of the brand's hyphen parts and the suffix's labels


def protected_domain(text: str, data: NameData | None = None) -> Protected:
    """A ``--domain`` value as a :class:`Protected`.

    Raises:
        InputError: not a domain name with a registrable label (``com``, ``co.uk``, ``a b``).
    """
    data = data or name_data()
    name = parse_name(text, data)
    if name is None or name.wildcard or not name.registrable:
        raise InputError(
            f"--domain {text!r} is not a registrable domain name",
            hint="give the domain you own, e.g. --domain contoso.com (subdomains are covered)",
        )
    brand = name.registrable
    tokens = (*brand.split("-"), *name.suffix.split("."))
    return Protected(
        domain=name.text,
        brand=brand,
        suffix=name.suffix,
        brand_skeleton=skeleton(brand, data),
        tokens=tuple(skeleton(t, data) for t in tokens),
    )


def allowed_name(text: str, data: NameData | None = None) -> str:
    """An ``--allow`` value (a name you own that is not protected) as decoded text.

    Raises:
        InputError: not a DNS name.
    """
    name = parse_name(text, data or name_data())
    if name is None or name.wildcard:
        raise InputError(
            f"--allow {text!r} is not a DNS name",
            hint="give a name you own elsewhere, e.g. --allow contoso.sharepoint.com",
        )
    return name.text


@dataclass(frozen=True, slots=True)
class Finding:
    """One way a name imitates a protected domain."""

    domain: str  # the protected domain
    technique: str  # a WEIGHTS key
    weight: int
    detail: str  # why, in words


def is_own(name: Name, protected: tuple[Protected, ...]) -> bool:
    """The name is a protected domain or under one."""
    return any(name.text == p.domain or name.text.endswith("." + p.domain) for p in protected)


def find_lookalikes(
    name: Name, protected: tuple[Protected, ...], data: NameData | None = None
) -> list[Finding]:
    """Every way ``name`` imitates one of the protected domains; none for their own names."""
    data = data or name_data()
    if is_own(name, protected):
        return []
    findings: list[Finding] = []
    for target in protected:
        findings.extend(_against(name, target, data))
    return findings


def _finding(target: Protected, technique: str, detail: str) -> Finding:
    return Finding(target.domain, technique, WEIGHTS[technique], detail)


@dataclass(frozen=True, slots=True)
class _Subject:
    """One name against one protected domain: what every check looks at."""

    name: Name
    target: Protected
    data: NameData
    label: str  # the registrable label
    skeleton: str  # its skeleton
    where: str  # " under .net" when the suffix differs, else ""
    impersonation: Finding | None  # the domain written inside the name, if it is


def _against(name: Name, target: Protected, data: NameData) -> list[Finding]:
    """The findings of ``name`` against one protected domain: impersonation, the first of the
    LABEL_CHECKS that finds something, and a brand subdomain."""
    label = name.registrable
    other_suffix = name.suffix != target.suffix
    subject = _Subject(
        name=name,
        target=target,
        data=data,
        label=label,
        skeleton=skeleton(label, data),
        where=f" under .{name.suffix}" if other_suffix else "",
        impersonation=_impersonation(name, target, data),
    )
    label_finding = next(filter(None, (check(subject) for check in LABEL_CHECKS)), None)
    found = (subject.impersonation, label_finding, _brand_subdomain(subject))
    return [f for f in found if f is not None]


def _homoglyph(s: _Subject) -> Finding | None:
    if not s.label or s.skeleton != s.target.brand_skeleton or s.label == s.target.brand:
        return None
    technique = "idn-homoglyph" if not s.label.isascii() else "homoglyph"
    shown = f"'{s.label}'" + (f" (written {_ascii_label(s.name)})" if s.name.idn else "")
    return _finding(s.target, technique, f"{shown} is drawn like '{s.target.brand}'{s.where}")


def _tld_swap(s: _Subject) -> Finding | None:
    if s.label != s.target.brand or not s.where:
        return None
    detail = f"'{s.target.brand}' under .{s.name.suffix}, not .{s.target.suffix}"
    return _finding(s.target, "tld-swap", detail)


def _typo(s: _Subject) -> Finding | None:
    if not s.label or s.label == s.target.brand:
        return None
    slip = edit_operation(s.skeleton, s.target.brand_skeleton, s.data)
    if not slip or (slip in _CHANCE_SLIPS and len(s.target.brand) < FUZZY_MIN):
        return None
    detail = f"'{s.label}' is '{s.target.brand}' with one {_SLIP_WORDS[slip]}{s.where}"
    return _finding(s.target, f"typo:{slip}", detail)


def _added_word(s: _Subject) -> Finding | None:
    if not s.label or s.label == s.target.brand or s.impersonation:
        return None  # an impersonation's other words are part of it
    added = _added_words(s.label, s.skeleton, s.target, s.data)
    return _finding(s.target, "added-word", added + s.where) if added else None


def _brand_subdomain(s: _Subject) -> Finding | None:
    if s.impersonation or len(s.target.brand) < FUZZY_MIN:
        return None
    for sub in s.name.subdomain:
        sub_skeleton = skeleton(sub, s.data)
        brand = s.target.brand_skeleton
        if sub_skeleton == brand or brand in sub_skeleton.split("-"):
            detail = f"'{s.target.brand}' as a subdomain of {s.name.domain}"
            return _finding(s.target, "brand-subdomain", detail)
    return None


# the checks of the registrable label, in order: the first that finds something is its finding
LABEL_CHECKS: tuple[Callable[[_Subject], Finding | None], ...] = (
    _homoglyph,
    _tld_swap,
    _typo,
    _added_word,
)


_SLIP_WORDS = {
    "omission": "letter left out",
    "repetition": "letter doubled",
    "insertion": "letter added",
    "hyphenation": "hyphen added",
    "transposition": "pair of letters swapped",
    "keyboard": "letter replaced by its keyboard neighbour",
    "substitution": "letter replaced",
}


def _ascii_label(name: Name) -> str:
    """The registrable label as DNS carries it: punycode (``xn--...``) for an IDN label."""
    raw = name.raw.split(".")
    index = len(name.labels) - 1 - name.suffix.count(".") - 1
    label = raw[index].lower() if 0 <= index < len(raw) else name.registrable
    if label.isascii():
        return label
    try:
        return "xn--" + label.encode("punycode").decode("ascii")
    except UnicodeError:
        return label


def _impersonation(name: Name, target: Protected, data: NameData) -> Finding | None:
    """The protected domain written inside ``name``'s labels, as labels or with hyphens."""
    left = [*name.subdomain, name.registrable] if name.registrable else list(name.subdomain)
    tokens = [skeleton(part, data) for label in left for part in label.split("-")]
    size = len(target.tokens)
    for i in range(len(tokens) - size + 1):
        if tuple(tokens[i : i + size]) == target.tokens:
            if target.domain in name.text:
                how = "as labels"
            elif target.domain.replace(".", "-") in name.text:
                how = "with hyphens"
            else:
                how = "with look-alike characters"
            detail = f"{target.domain} written inside {name.domain} ({how})"
            return _finding(target, "impersonation", detail)
    return None


def _added_words(label: str, label_skeleton: str, target: Protected, data: NameData) -> str:
    """Why ``label`` is the brand with words added, or ''."""
    brand = target.brand_skeleton
    glyphs = "" if target.brand in label else " (with look-alike characters)"
    parts = label_skeleton.split("-")
    brand_parts = brand.split("-")
    for i in range(len(parts) - len(brand_parts) + 1):
        if parts[i : i + len(brand_parts)] == brand_parts and len(parts) > len(brand_parts):
            extra = [p for j, p in enumerate(parts) if not i <= j < i + len(brand_parts)]
            if len(target.brand) < FUZZY_MIN and not all(p in data.added_words for p in extra):
                break  # "acme-corp": another company's name, not "corp" with a lure word
            return f"'{target.brand}' with {'-'.join(extra)!r} added{glyphs}"
    start = label_skeleton.find(brand)
    while start >= 0:
        before, after = label_skeleton[:start], label_skeleton[start + len(brand) :]
        words_before = split_words(before, data.added_words)
        words_after = split_words(after, data.added_words)
        if words_before is not None and words_after is not None and (before or after):
            words = [*words_before, *words_after]
            return f"'{target.brand}' joined to {' + '.join(repr(w) for w in words)}{glyphs}"
        start = label_skeleton.find(brand, start + 1)
    return ""
