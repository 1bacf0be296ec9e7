"""DNS names from certificates, made comparable: IDN decoded, split at the public suffix, skeletons.

A certificate name is attacker-chosen text. :func:`parse_name` accepts only what a DNS name can
be (labels of letters, marks and digits of any script, hyphens and underscores, at most 63
characters each, 253 in all),
decodes each ``xn--`` label with Python's punycode codec (an undecodable one is kept as written and
said so), and splits the name into subdomain labels, the registrable label and its public suffix.
:func:`skeleton` maps a text to the ASCII it is drawn like (UTS #39's idea, with the characters of
``content/ct/lookalike.yaml``), so ``cоntoso`` (Cyrillic о) and ``c0ntoso`` both become
``contoso``.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustwatch import yamlio
from trustwatch.errors import InputError

MAX_NAME = 253  # characters of a DNS name (RFC 1035), after any wildcard and trailing dot
MAX_LABEL = 63
_LABEL_PUNCTUATION = frozenset("-_")


@dataclass(frozen=True, slots=True)
class NameData:
    """The lists of ``content/ct/lookalike.yaml``, parsed."""

    confusables: Mapping[str, str]
    sequences: tuple[tuple[str, str], ...]
    neighbours: Mapping[str, frozenset[str]]
    added_words: frozenset[str]
    public_suffixes: frozenset[str]
    source: str
    as_of: str


@functools.cache
def name_data() -> NameData:
    """The shipped look-alike lists (read once per process).

    Raises:
        InputError: the shipped file is malformed.
    """
    where = "trustwatch/content/ct/lookalike.yaml"
    doc = yamlio.load_shipped("ct", "lookalike.yaml")
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a mapping")
    confusables = _mapping(doc, "confusables", where)
    return NameData(
        confusables={k: v for k, v in confusables.items() if len(k) == 1},
        sequences=tuple(_mapping(doc, "sequences", where).items()),
        neighbours=keyboard_neighbours(tuple(str(r) for r in _list(doc, "keyboard_rows", where))),
        added_words=frozenset(str(w).lower() for w in _list(doc, "added_words", where)),
        public_suffixes=frozenset(str(s).lower() for s in _list(doc, "public_suffixes", where)),
        source=" ".join(str(doc.get("source") or "").split()),
        as_of=str(doc.get("as_of") or ""),
    )


def _mapping(doc: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise InputError(f"{where}: '{key}' must be a mapping")
    return {str(k): str(v) for k, v in value.items()}


def _list(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(f"{where}: '{key}' must be a list")
    return value


def keyboard_neighbours(rows: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Each key's neighbours on a staggered keyboard: beside it, and the two keys above and below
    it (row r, column c touches columns c and c+1 of the row above, c-1 and c of the row below)."""
    near: dict[str, set[str]] = {}
    for r, row in enumerate(rows):
        for c, key in enumerate(row):
            found = near.setdefault(key, set())
            spots = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
            for rr, cc in spots:
                if 0 <= rr < len(rows) and 0 <= cc < len(rows[rr]):
                    found.add(rows[rr][cc])
    return {key: frozenset(keys) for key, keys in near.items()}


def skeleton(text: str, data: NameData | None = None) -> str:
    """What ``text`` looks like in ASCII: NFKC, case folded, confusables mapped, accents dropped,
    letter pairs drawn like one letter (``rn`` -> ``m``) merged. Characters with no ASCII look
    stay as they are."""
    data = data or name_data()
    folded = unicodedata.normalize("NFKC", text).casefold()
    mapped = "".join(data.confusables.get(ch, ch) for ch in folded)
    stripped = "".join(
        ch for ch in unicodedata.normalize("NFKD", mapped) if not unicodedata.combining(ch)
    )
    for pair, letter in data.sequences:
        stripped = stripped.replace(pair, letter)
    return stripped


@dataclass(frozen=True, slots=True)
class Name:
    """One DNS name, decoded and split. ``labels`` are Unicode (IDN decoded)."""

    raw: str  # as the certificate wrote it (without a leading "*." or trailing ".")
    text: str  # decoded, lower case: what a person reads
    labels: tuple[str, ...]
    suffix: str  # the public suffix ("com", "co.uk")
    registrable: str  # the label before the suffix ("contoso")
    wildcard: bool = False
    idn: bool = False  # some label was punycode (xn--) or the name was written in Unicode
    notes: tuple[str, ...] = ()  # what could not be decoded

    @property
    def subdomain(self) -> tuple[str, ...]:
        """The labels left of the registrable label."""
        return self.labels[: max(0, len(self.labels) - 1 - self.suffix.count(".") - 1)]

    @property
    def domain(self) -> str:
        """The registrable domain: its label and the suffix (``contoso.co.uk``)."""
        return f"{self.registrable}.{self.suffix}" if self.registrable else self.suffix


def parse_name(value: str, data: NameData | None = None) -> Name | None:
    """The name as a :class:`Name`, or None when it is not a DNS name (an organisation's name in
    a CN, an IP address, a name too long). ``user@domain`` (an e-mail SAN) gives its domain."""
    data = data or name_data()
    text = value.strip().rstrip(".")
    if "@" in text:
        text = text.rpartition("@")[2]
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    if not text or len(text) > MAX_NAME or "." not in text:
        return None
    raw_labels = text.split(".")
    if any(not label or len(label) > MAX_LABEL or not is_label(label) for label in raw_labels):
        return None
    if all(label.isdigit() for label in raw_labels):
        return None  # an IPv4 address
    labels: list[str] = []
    notes: list[str] = []
    idn = not text.isascii()
    for label in raw_labels:
        decoded, note = decode_label(label)
        idn = idn or decoded != label.lower()
        labels.append(decoded)
        if note:
            notes.append(note)
    suffix_size = _suffix_size(labels, data)
    suffix = ".".join(labels[-suffix_size:])
    registrable = labels[-suffix_size - 1] if len(labels) > suffix_size else ""
    return Name(
        raw=text,
        text=".".join(labels),
        labels=tuple(labels),
        suffix=suffix,
        registrable=registrable,
        wildcard=wildcard,
        idn=idn,
        notes=tuple(notes),
    )


def is_label(text: str) -> bool:
    """Whether ``text`` can be a DNS label as a person reads it: letters, marks and digits of any
    script, ``-`` and ``_`` (no spaces, punctuation, controls or format characters)."""
    if text.isascii():
        return all(ch.isalnum() or ch in _LABEL_PUNCTUATION for ch in text)
    return all(
        ch.isalnum() or ch in _LABEL_PUNCTUATION or unicodedata.category(ch).startswith("M")
        for ch in text
    )


def decode_label(label: str) -> tuple[str, str]:
    """A label in Unicode, lower case: ``xn--`` labels decoded from punycode (RFC 3492).

    Returns the label and, when it could not be decoded, why (the label is then kept as it is).
    """
    lower = unicodedata.normalize("NFC", label).lower()
    if not lower.startswith("xn--"):
        return lower, ""
    try:
        decoded = lower[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError) as exc:
        return lower, f"{lower}: not valid punycode ({type(exc).__name__})"
    if not decoded or not is_label(decoded):
        return lower, f"{lower}: decodes to characters a host name cannot hold"
    return decoded.lower(), ""


def _suffix_size(labels: list[str], data: NameData) -> int:
    """Labels in the longest known public suffix at the end of ``labels`` (at least 1)."""
    for size in range(min(len(labels), 4), 1, -1):
        if ".".join(labels[-size:]) in data.public_suffixes:
            return size
    return 1


def edit_operation(candidate: str, target: str, data: NameData | None = None) -> str | None:
    """The one typing slip that turns ``target`` into ``candidate``, or None if it takes more.

    Returns ``omission`` (a character left out), ``repetition`` (one doubled), ``insertion``
    (another added), ``hyphenation`` (a hyphen added), ``transposition`` (two neighbours
    swapped), ``keyboard`` (a character replaced by its neighbour on the keyboard) or
    ``substitution`` (replaced by another).
    """
    data = data or name_data()
    if candidate == target:
        return None
    lc, lt = len(candidate), len(target)
    if lc == lt - 1:
        for i in range(lt):
            if target[:i] + target[i + 1 :] == candidate:
                return "omission"
        return None
    if lc == lt + 1:
        for i in range(lc):
            if candidate[:i] + candidate[i + 1 :] == target:
                extra = candidate[i]
                if extra == "-":
                    return "hyphenation"
                near = candidate[i - 1 : i] + candidate[i + 1 : i + 2]
                return "repetition" if extra in near else "insertion"
        return None
    if lc != lt:
        return None
    diffs = [i for i in range(lt) if candidate[i] != target[i]]
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1:
        i, j = diffs
        if candidate[i] == target[j] and candidate[j] == target[i]:
            return "transposition"
        return None
    if len(diffs) == 1:
        i = diffs[0]
        neighbours = data.neighbours.get(target[i], frozenset())
        return "keyboard" if candidate[i] in neighbours else "substitution"
    return None


def split_words(text: str, words: frozenset[str]) -> tuple[str, ...] | None:
    """``text`` as a sequence of ``words`` (hyphens between them allowed), or None."""
    if not text:
        return ()
    best: list[tuple[str, ...] | None] = [None] * (len(text) + 1)
    best[0] = ()
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - 20), end):
            before = best[start]
            if before is None:
                continue
            piece = text[start:end]
            if piece == "-":
                best[end] = before
                break
            if piece in words:
                best[end] = (*before, piece)
                break
    return best[len(text)]
