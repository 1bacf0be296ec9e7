"""Distinguished names as comparable keys, so a forged root is caught by the name it copies.

A clone keeps the genuine root's name and swaps the key (SpecterOps cert cloning, Atomic Red Team
T1553.004 test 7), so names are compared *normalised*: attribute names by their RFC 4514 short
form, values case-folded with whitespace collapsed. Names arrive as ``x509.Name`` objects or as
text (RFC 4514 as ``cryptography`` and ``certifi_roots.csv`` write it, or the Windows display form
with ``S=`` and double quotes), and both give the same keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

# Windows and OpenSSL spellings of the attributes cryptography names otherwise
_ALIASES = {
    "S": "ST",
    "E": "1.2.840.113549.1.9.1",
    "EMAIL": "1.2.840.113549.1.9.1",
    "EMAILADDRESS": "1.2.840.113549.1.9.1",
    "SERIALNUMBER": "2.5.4.5",
}
_HEX = frozenset("0123456789abcdefABCDEF")

Pairs = tuple[tuple[str, str], ...]


def normalise(value: str) -> str:
    """Case-fold and collapse runs of whitespace: ``Microsoft  ROOT`` == ``microsoft root``."""
    return " ".join(value.split()).casefold()


def _attribute(name: str) -> str:
    upper = name.strip().upper()
    return _ALIASES.get(upper, upper)


def pairs_of_name(name: x509.Name) -> Pairs:
    """The (attribute, value) pairs of a certificate name, most specific first (RFC 4514 order)."""
    return tuple(
        (_attribute(attr.rfc4514_attribute_name), str(attr.value))
        for rdn in reversed(name.rdns)
        for attr in rdn
    )


def parse_dn(text: str) -> Pairs:
    """Split a distinguished name written as text into (attribute, value) pairs.

    Handles RFC 4514 escapes (``\\,``, ``\\+``, ``\\XX`` hex bytes) and the double-quoted values
    that Windows prints (``OU="VeriSign, Inc."``). Multi-valued RDNs (``+``) become separate pairs.
    A part without ``=`` is kept as a value with an empty attribute, so nothing is dropped silently.
    """
    pairs: list[tuple[str, str]] = []
    for part in _split_unescaped(text, ",;+"):
        attr, sep, value = _partition_unescaped(part, "=")
        if not sep:
            if part.strip():
                pairs.append(("", _unescape(part)))
            continue
        pairs.append((_attribute(_unescape(attr)), _unescape(value)))
    return tuple(pairs)


def _split_unescaped(text: str, separators: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in separators and not quoted:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _partition_unescaped(text: str, sep: str) -> tuple[str, str, str]:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            return text[:i], sep, text[i + 1 :]
        i += 1
    return text, "", ""


def _unescape(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"')
    out = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and _is_hex(value[i + 1 : i + 3]):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        elif ch == "\\" and i + 1 < len(value):
            out.extend(value[i + 1].encode())
            i += 2
        else:
            out.extend(ch.encode())
            i += 1
    return out.decode("utf-8", errors="replace")


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in _HEX for c in text)


@dataclass(frozen=True, slots=True)
class NameKeys:
    """Three keys of one name, strictest first: the whole DN, common name + organisation, CN.

    A name without a CN (some old roots are ``OU=..., O=...``) uses its OUs in place of the CN.
    """

    display: str  # CN, else the OUs, else O: what a person calls the certificate
    dn: str
    cn_o: str
    cn: str

    def levels(self) -> tuple[tuple[str, str], ...]:
        """(level, key) pairs for an index, strictest first; empty levels left out."""
        levels = (("dn", self.dn), ("cn+o", self.cn_o), ("cn", self.cn))
        return tuple((level, key) for level, key in levels if key)


def name_keys(pairs: Iterable[tuple[str, str]]) -> NameKeys:
    """The comparison keys of a name given as (attribute, value) pairs."""
    items = [(attr, value) for attr, value in pairs if value.strip()]
    cns = [v for a, v in items if a == "CN"]
    ous = [v for a, v in items if a == "OU"]
    orgs = [v for a, v in items if a == "O"]
    display = cns[0] if cns else (", ".join(ous) if ous else (orgs[0] if orgs else ""))
    cn = normalise(cns[0]) if cns else "|".join(sorted(normalise(v) for v in ous))
    org = normalise(orgs[0]) if orgs else ""
    dn = "|".join(sorted(f"{a}={normalise(v)}" for a, v in items))
    return NameKeys(display, dn, f"{cn}|{org}" if cn else "", cn)


def keys_of_name(name: x509.Name) -> NameKeys:
    """The comparison keys of a certificate's subject or issuer."""
    return name_keys(pairs_of_name(name))


def keys_of_text(text: str) -> NameKeys:
    """The comparison keys of a distinguished name written as text."""
    return name_keys(parse_dn(text))


def organisation(pairs: Iterable[tuple[str, str]]) -> str:
    """The normalised first O= value, or ''."""
    return next((normalise(v) for a, v in pairs if a == "O" and v.strip()), "")
