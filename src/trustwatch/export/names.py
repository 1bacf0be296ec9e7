"""Safe file names from rule names (text from anyone): no folders, no control characters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_STEM = 80
_UNSAFE = re.compile(r"[^a-z0-9]+")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)


def safe_stem(text: str, fallback: str = "rule") -> str:
    """Lower-case ASCII letters, digits and single underscores only, at most 80 characters.

    Path separators, dots, control and format characters all become ``_``, so the result can
    never name a folder, a hidden file or a device (``con``, ``nul``: prefixed with ``rule_``).
    An empty result gives ``safe_stem(fallback)``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", ascii_text.lower()).strip("_")[:MAX_STEM].rstrip("_")
    if not stem:
        return safe_stem(fallback) if fallback and fallback != text else "rule"
    return f"rule_{stem}" if stem in _RESERVED else stem


def unique_stems(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """A distinct safe stem for each ``(name, id)``: a clash gets the id's first 8 characters."""
    stems: list[str] = []
    for name, rule_id in pairs:
        stem = safe_stem(name, rule_id)
        if stem in stems:
            stem = f"{stem[: MAX_STEM - 9]}_{safe_stem(rule_id)[:8]}"
        while stem in stems:
            stem += "_"
        stems.append(stem)
    return stems
