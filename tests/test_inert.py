"""trustwatch.inert: each character that could steer or hide on a terminal is shown as an escape."""

from __future__ import annotations

import json
import re
import sys
import unicodedata

import pytest

from trustwatch.errors import Diagnostic, KqlSyntaxError, Source, Span, render_diagnostic
from trustwatch.inert import UNSAFE, escape_char, json_text, visible

C0 = "".join(map(chr, range(0x20)))
C1 = "".join(map(chr, range(0x80, 0xA0)))
SEQUENCES = {
    "clear screen": "\x1b[2J",
    "window title": "\x1b]0;title\x07",
    "hyperlink": "\x1b]8;;http://x\x1b\\",
    "C1 CSI colour": "\x9b31m",
    "hide text": "\x1b[8mhidden\x1b[0m",
    "carriage return": "safe\rEVIL",
    "backspaces": "evil\b\b\b\bsafe",
}
INVISIBLE = {
    "bidi override": "\u202e",
    "bidi isolates": "\u2066\u2067\u2068\u2069",
    "bidi marks": "\u200e\u200f\u061c",
    "bidi embeddings": "\u202a\u202b\u202c\u202d",
    "zero width": "\u200b\u200c\u200d\u2060\ufeff",
    "soft hyphen": "\u00ad",
    "separators": "\u2028\u2029",
    "tag characters": "\U000e0001\U000e0041",
    "lone surrogate": "\udcff",
    "hangul filler": "\u3164",
}
# everything above, and rich markup, in one value
HOSTILE = (
    C0
    + "\x7f"
    + C1
    + "".join(SEQUENCES.values())
    + "".join(INVISIBLE.values())
    + "[red]x[/] [link=http://x]y[/link] :smile:"
)
_UNSAFE = re.compile(f"[{UNSAFE}]")


def raw_unsafe(text: str, allowed: str = "") -> list[str]:
    """The unsafe characters in ``text`` but ``allowed`` (what a test asserts is empty)."""
    return [c for c in _UNSAFE.findall(text) if c not in allowed]


@pytest.mark.parametrize("char", list(C0 + "\x7f" + C1), ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_character_is_escaped(char: str) -> None:
    shown = visible(f"a{char}b")
    assert shown == f"a\\x{ord(char):02x}b"
    assert not raw_unsafe(shown)


@pytest.mark.parametrize("text", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_escape_sequences_are_shown_as_text(text: str) -> None:
    shown = visible(text)
    assert not raw_unsafe(shown)
    assert shown.replace("\\x1b", "").replace("\\x07", "").replace("\\x9b", "").replace(
        "\\x0d", ""
    ).replace("\\x08", "") == re.sub(r"[\x1b\x07\x9b\r\b]", "", text)


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_characters_are_shown(text: str) -> None:
    shown = visible(text)
    assert not raw_unsafe(shown)
    assert shown == "".join(escape_char(c) for c in text)


def test_escape_forms() -> None:
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("\u202egnp.exe") == "\\u202egnp.exe"
    assert visible("\U000e0001") == "\\U000e0001"
    assert visible("\udcff") == "\\udcff"


def test_ordinary_text_is_unchanged() -> None:
    text = r"C:\Windows\System32\certutil.exe -addstore -f Root c.cer  é ü 中文 😀 "
    assert visible(text) is text or visible(text) == text
    assert visible("") == ""
    assert visible(42) == "42"


def test_kept_characters_are_only_the_ones_asked_for() -> None:
    assert visible("a\tb\nc") == "a\\x09b\\x0ac"
    assert visible("a\tb\nc", "\n") == "a\\x09b\nc"
    assert visible("a\tb\nc\r\x1b", "\t\n") == "a\tb\nc\\x0d\\x1b"


def test_every_unicode_format_character_is_unsafe() -> None:
    """UNSAFE covers every Cf, Cc, Zl, Zp and Cs character of this Python's Unicode tables."""
    missing = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in {"Cf", "Cc", "Zl", "Zp", "Cs"}
        and not _UNSAFE.match(chr(code))
    ]
    assert missing == [], f"unicodedata {unicodedata.unidata_version}"


def test_json_text_is_inert_and_parses_to_the_same_value() -> None:
    value = {"k\u202e": HOSTILE, "list": [HOSTILE, 1, None]}
    for indent in (None, 2):
        text = json_text(json.dumps(value, ensure_ascii=False, indent=indent))
        assert not raw_unsafe(text, "\n")
        assert json.loads(text) == value
    assert json_text('"\U000e0001"') == '"\\udb40\\udc01"'


def test_an_error_shows_its_source_line_inert_with_the_caret_under_the_span() -> None:
    text = 'print x = "\x1b[2J\u202e", y = @'
    at = text.index("@")
    message = "unexpected '@' after \x1b]0;t\x07"
    diag = Diagnostic("KQL101", message, Span(at, at + 1), "hint \u202e")
    rendered = render_diagnostic(diag, Source(text, "q\x1b[2J.kql"))
    assert not raw_unsafe(rendered, "\n")
    lines = rendered.splitlines()
    assert lines[0] == "error[KQL101]: unexpected '@' after \\x1b]0;t\\x07"
    assert lines[1].endswith(f"q\\x1b[2J.kql:1:{at + 1}")
    source_line, caret_line = lines[3], lines[4]
    assert source_line == '1 | print x = "\\x1b[2J\\u202e", y = @'
    assert source_line[caret_line.index("^")] == "@"
    assert caret_line.endswith("^ hint \\u202e")


def test_the_caret_spans_an_escaped_character_whole() -> None:
    text = "a | where \x1b == 1"
    rendered = render_diagnostic(Diagnostic("KQL101", "bad", Span(10, 11)), Source(text))
    source_line, caret_line = rendered.splitlines()[3:5]
    start = caret_line.index("^")
    assert source_line[start : start + caret_line.count("^")] == "\\x1b"


def test_the_source_line_is_the_one_the_caret_points_into() -> None:
    # \x1c and \x85 split lines for str.splitlines but not for line numbers (line feeds only)
    text = "x\x1c\x85y\nprint @"
    rendered = KqlSyntaxError("bad", span=Span(len(text) - 1, len(text)), source=Source(text))
    lines = rendered.render().splitlines()
    assert lines[3] == "2 | print @"
    assert lines[4].index("^") == lines[3].index("@")
