"""Making hostile text inert: every character that could steer or hide on a terminal, made visible.

Log values, file names, rule names and query text may have been written by an attacker. Printed
raw, an escape sequence in a command line clears the analyst's screen or retitles the window,
a carriage return or a bidi override hides the malicious part of the line, and a zero-width
character makes two different names look the same. :func:`visible` is the one place that
decides what reaches a terminal: it replaces each such character with its Python-style escape
(``\\x1b``, ``\\u202e``, ``\\U000e0001``), so an escape *sequence* is shown as text
(``\\x1b[2J``) and does nothing. :func:`json_text` does the same inside JSON text, where the
escape (``\\u001b``) keeps the value exact once parsed.

What is made visible (``UNSAFE``): C0 controls (tab and line feed only where a caller keeps
them), DEL, C1 controls, Unicode format characters (category Cf: bidi embeddings, overrides,
isolates and marks, zero-width space / joiners, word joiner, BOM, soft hyphen, tag characters),
the line and paragraph separators, lone surrogates (undecodable bytes of a file name), and the
few letters that render as nothing (Hangul fillers, the combining grapheme joiner).

Backslashes are left alone (Windows paths are full of them), so a literal four-character
``\\x1b`` in a value looks like an escaped ESC: the JSON, JSONL and CSV formats give the exact
value. This module imports nothing from trustwatch: error rendering uses it too.
"""

from __future__ import annotations

import re

# Unicode's format characters (category Cf, Unicode 15.1) as ranges; tests/test_inert.py checks
# this covers every Cf character of the running Python's unicodedata.
_FORMAT = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# letters and marks that draw nothing, used to make look-alike names (not category Cf)
_BLANK = "\u034f\u115f\u1160\u3164\uffa0"
UNSAFE = f"\x00-\x1f\x7f-\x9f{_FORMAT}\u2028\u2029\ud800-\udfff{_BLANK}"
_UNSAFE = re.compile(f"[{UNSAFE}]")
_PATTERNS: dict[str, re.Pattern[str]] = {"": _UNSAFE}


def escape_char(char: str) -> str:
    """The visible form of one character: ``\\x1b``, ``\\u202e`` or ``\\U000e0001``."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_match(match: re.Match[str]) -> str:
    return escape_char(match.group())


def _pattern(keep: str) -> re.Pattern[str]:
    pattern = _PATTERNS.get(keep)
    if pattern is None:
        kept = "".join(f"\\x{ord(c):02x}" for c in sorted(set(keep)) if ord(c) < 0x20)
        pattern = re.compile(f"(?![{kept}])[{UNSAFE}]") if kept else _UNSAFE
        _PATTERNS[keep] = pattern
    return pattern


def visible(value: object, keep: str = "") -> str:
    """``value`` as text safe to print on a terminal: unsafe characters shown as escapes.

    Args:
        value: any value; not a ``str``, it is converted with ``str()`` first.
        keep: C0 characters to leave as they are where the layout needs them, e.g. ``"\\n"``
            for text printed as several lines, ``"\\t\\n"`` for a file's text. Only tab and
            line feed are meant here; a carriage return is never safe to keep.

    Returns:
        The text, unchanged if it held nothing unsafe.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():  # the usual case, 5x faster than the search
        return text
    pattern = _pattern(keep)
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape_match, text)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP JSON writes a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_JSON_UNSAFE = _pattern("\t\n\r")


def json_text(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with unsafe characters escaped.

    The escapes (``\\u001b``, ``\\u202e``, surrogate pairs past the BMP) parse back to the same
    characters, so the document's values are unchanged; the text itself is inert on a
    terminal. Raw tab, line feed and carriage return are kept: ``json.dumps`` only writes them
    as layout between tokens (``indent``), never inside a string.
    """
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(_json_escape, text)
