"""Hand-written character scanner turning KQL text into tokens with spans."""

from __future__ import annotations

from trustwatch.errors import KqlSyntaxError, Span
from trustwatch.kql.deep import check_size
from trustwatch.kql.tokens import (
    PUNCTUATION,
    RAW_LITERAL_WORDS,
    TIMESPAN_UNITS,
    Token,
    TokenType,
)

_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_LONG = 2**63 - 1
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _is_digit(ch: str) -> bool:
    """An ASCII digit: ``str.isdigit`` also holds for superscripts, which ``int`` refuses."""
    return len(ch) == 1 and "0" <= ch <= "9"


def _short(literal: str) -> str:
    """A literal quoted in a message: its first 40 characters and its length past that."""
    return literal if len(literal) <= 40 else f"{literal[:40]}... ({len(literal):,} characters)"


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class Lexer:
    """Scans one source text. Use :func:`tokenize`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[Token] = []

    def error(
        self, message: str, start: int, end: int | None = None, hint: str | None = None
    ) -> KqlSyntaxError:
        return KqlSyntaxError(
            message, span=Span(start, end if end is not None else start + 1), hint=hint
        )

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def run(self) -> list[Token]:
        text = self.text
        while True:
            self.skip_space_and_comments()
            if self.pos >= len(text):
                self.tokens.append(Token(TokenType.EOF, "", Span(len(text), len(text))))
                return self.tokens
            ch = text[self.pos]
            if ch in "\"'":
                self.scan_string(self.pos, self.pos, verbatim=False)
            elif ch == "@" and self.peek(1) in ('"', "'"):
                self.scan_string(self.pos, self.pos + 1, verbatim=True)
            elif ch in "hH" and self.peek(1) in ('"', "'"):
                self.scan_string(self.pos, self.pos + 1, verbatim=False)
            elif ch in "hH" and self.peek(1) == "@" and self.peek(2) in ('"', "'"):
                self.scan_string(self.pos, self.pos + 2, verbatim=True)
            elif text.startswith("```", self.pos):
                self.scan_multiline_string()
            elif _is_digit(ch) or (ch == "." and _is_digit(self.peek(1))):
                self.scan_number()
            elif _is_ident_start(ch) or (ch == "$" and _is_ident_start(self.peek(1))):
                self.scan_word()
            else:
                self.scan_punctuation()

    def skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch.isspace():
                self.pos += 1
            elif text.startswith("//", self.pos):
                eol = text.find("\n", self.pos)
                self.pos = len(text) if eol < 0 else eol + 1
            else:
                return

    def scan_string(self, start: int, quote_at: int, *, verbatim: bool) -> None:
        text = self.text
        quote = text[quote_at]
        i = quote_at + 1
        out: list[str] = []
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error(
                    "unterminated string literal", start, i, hint=f"close it with {quote}"
                )
            ch = text[i]
            if verbatim:
                if ch == quote:
                    if i + 1 < len(text) and text[i + 1] == quote:
                        out.append(quote)
                        i += 2
                        continue
                    break
                out.append(ch)
                i += 1
                continue
            if ch == "\\":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                    i += 2
                    continue
                if nxt == "u":
                    digits = text[i + 2 : i + 6]
                    if len(digits) == 4 and all(c in _HEX for c in digits):
                        out.append(chr(int(digits, 16)))
                        i += 6
                        continue
                    raise self.error(
                        "a \\u escape needs four hexadecimal digits", i, min(i + 6, len(text))
                    )
                raise self.error(
                    f"unknown escape sequence '\\{nxt}' in string literal",
                    i,
                    i + 2,
                    hint='use \\\\ for a backslash, or a verbatim string @"..."',
                )
            if ch == quote:
                break
            out.append(ch)
            i += 1
        self.pos = i + 1
        self.tokens.append(
            Token(TokenType.STRING, text[start : self.pos], Span(start, self.pos), "".join(out))
        )

    def scan_multiline_string(self) -> None:
        start = self.pos
        end = self.text.find("```", start + 3)
        if end < 0:
            raise self.error("unterminated ``` string literal", start, start + 3)
        self.pos = end + 3
        value = self.text[start + 3 : end]
        self.tokens.append(
            Token(TokenType.STRING, self.text[start : self.pos], Span(start, self.pos), value)
        )

    def scan_number(self) -> None:
        text = self.text
        start = i = self.pos
        if text.startswith(("0x", "0X"), i):
            i += 2
            while i < len(text) and text[i] in "0123456789abcdefABCDEF":
                i += 1
            self.pos = i
            if i == start + 2:
                raise self.error("a hexadecimal literal needs digits after 0x", start, i + 1)
            self.tokens.append(
                Token(TokenType.INT, text[start:i], Span(start, i), int(text[start + 2 : i], 16))
            )
            return
        while i < len(text) and _is_digit(text[i]):
            i += 1
        is_real = False
        if i < len(text) and text[i] == "." and i + 1 < len(text) and _is_digit(text[i + 1]):
            is_real = True
            i += 1
            while i < len(text) and _is_digit(text[i]):
                i += 1
        if (
            i < len(text)
            and text[i] in "eE"
            and (
                _is_digit(text[i + 1 : i + 2])
                or (text[i + 1 : i + 2] in "+-" and _is_digit(text[i + 2 : i + 3]))
            )
        ):
            is_real = True
            i += 2
            while i < len(text) and _is_digit(text[i]):
                i += 1
        number = text[start:i]
        if i < len(text) and _is_ident_start(text[i]):
            j = i
            while j < len(text) and _is_ident_char(text[j]):
                j += 1
            unit = text[i:j]
            if unit.lower() not in TIMESPAN_UNITS:
                # Kusto names may start with digits (let 2022Cves = ...): a name, not a number
                self.pos = j
                self.tokens.append(Token(TokenType.IDENT, text[start:j], Span(start, j)))
                return
            ticks_real = float(number) * TIMESPAN_UNITS[unit.lower()]
            if not ticks_real < 2**63:  # past a timespan's range (inf included)
                raise self.error(
                    f"timespan literal {_short(text[start:j])} is out of range", start, j
                )
            ticks = round(ticks_real)
            self.pos = j
            self.tokens.append(Token(TokenType.TIMESPAN, text[start:j], Span(start, j), ticks))
            return
        self.pos = i
        if is_real:
            self.tokens.append(Token(TokenType.REAL, number, Span(start, i), float(number)))
        else:
            # int() of thousands of digits is refused by Python itself (ValueError)
            if len(number.lstrip("0")) > 19 or int(number) > _MAX_LONG:
                raise self.error(
                    f"integer literal {_short(number)} does not fit in a long",
                    start,
                    i,
                    hint="write it as a real, e.g. real(" + _short(number) + ")",
                )
            self.tokens.append(Token(TokenType.INT, number, Span(start, i), int(number)))

    def scan_word(self) -> None:
        text = self.text
        start = i = self.pos
        if text[i] == "$":
            i += 1
        while i < len(text) and _is_ident_char(text[i]):
            i += 1
        word = text[start:i]
        self.pos = i
        if word in RAW_LITERAL_WORDS:
            j = i
            while j < len(text) and text[j] in " \t":
                j += 1
            if j < len(text) and text[j] == "(":
                close = text.find(")", j)
                if close < 0:
                    raise self.error(f"unterminated {word}(...) literal", start, j + 1)
                self.pos = close + 1
                raw = text[j + 1 : close].strip()
                self.tokens.append(Token(TokenType.TYPED_RAW, word, Span(start, self.pos), raw))
                return
        self.tokens.append(Token(TokenType.IDENT, word, Span(start, i)))

    def scan_punctuation(self) -> None:
        text = self.text
        for punct, ttype in PUNCTUATION:
            if text.startswith(punct, self.pos):
                start = self.pos
                self.pos += len(punct)
                self.tokens.append(Token(ttype, punct, Span(start, self.pos)))
                return
        raise self.error(f"unexpected character {text[self.pos]!r}", self.pos)


def tokenize(text: str) -> list[Token]:
    """Turn KQL text into tokens ending with an EOF token.

    Raises:
        KqlSyntaxError: on an unterminated string, a bad number or an unknown character, or a
            text longer than the ``query-bytes`` limit.
    """
    check_size(text)
    return Lexer(text).run()
