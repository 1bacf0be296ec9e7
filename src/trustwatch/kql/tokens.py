"""Token types and the Token record produced by the lexer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from trustwatch.errors import Span


class TokenType(Enum):
    """Kinds of token. Words are all IDENT: KQL's keywords are soft, the parser decides."""

    IDENT = auto()
    INT = auto()
    REAL = auto()
    STRING = auto()
    TIMESPAN = auto()
    TYPED_RAW = auto()  # datetime(...), timespan(...), guid(...): raw text between the parens
    PIPE = auto()
    LPAREN = auto()
    RPAREN = auto()
    LBRACK = auto()
    RBRACK = auto()
    LBRACE = auto()
    RBRACE = auto()
    COMMA = auto()
    SEMI = auto()
    COLON = auto()
    DOT = auto()
    DOTDOT = auto()
    ASSIGN = auto()  # =
    EQ = auto()  # ==
    NEQ = auto()  # != and <>
    LT = auto()
    LE = auto()
    GT = auto()
    GE = auto()
    PLUS = auto()
    MINUS = auto()
    STAR = auto()
    SLASH = auto()
    PERCENT = auto()
    EQ_TILDE = auto()  # =~
    BANG_TILDE = auto()  # !~
    BANG = auto()
    TILDE = auto()
    ARROW = auto()  # =>
    QUESTION = auto()
    EOF = auto()


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its type, its source text, its span, and its decoded value for literals."""

    type: TokenType
    text: str
    span: Span
    value: object = None

    def is_word(self, *words: str) -> bool:
        """True if this is an identifier spelled as one of ``words`` (case-sensitive, like KQL)."""
        return self.type is TokenType.IDENT and self.text in words


# Punctuation, longest first so that "==" wins over "=".
PUNCTUATION: tuple[tuple[str, TokenType], ...] = (
    ("==", TokenType.EQ),
    ("!=", TokenType.NEQ),
    ("<>", TokenType.NEQ),
    ("<=", TokenType.LE),
    (">=", TokenType.GE),
    ("=~", TokenType.EQ_TILDE),
    ("!~", TokenType.BANG_TILDE),
    ("=>", TokenType.ARROW),
    ("..", TokenType.DOTDOT),
    ("|", TokenType.PIPE),
    ("(", TokenType.LPAREN),
    (")", TokenType.RPAREN),
    ("[", TokenType.LBRACK),
    ("]", TokenType.RBRACK),
    ("{", TokenType.LBRACE),
    ("}", TokenType.RBRACE),
    (",", TokenType.COMMA),
    (";", TokenType.SEMI),
    (":", TokenType.COLON),
    (".", TokenType.DOT),
    ("=", TokenType.ASSIGN),
    ("<", TokenType.LT),
    (">", TokenType.GT),
    ("+", TokenType.PLUS),
    ("-", TokenType.MINUS),
    ("*", TokenType.STAR),
    ("/", TokenType.SLASH),
    ("%", TokenType.PERCENT),
    ("!", TokenType.BANG),
    ("~", TokenType.TILDE),
    ("?", TokenType.QUESTION),
)

# Timespan unit suffixes and their length in 100-ns ticks.
# https://learn.microsoft.com/kusto/query/scalar-data-types/timespan
TIMESPAN_UNITS: dict[str, int] = {
    **dict.fromkeys(("d", "day", "days"), 864_000_000_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 36_000_000_000),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 600_000_000),
    **dict.fromkeys(("s", "sec", "second", "seconds"), 10_000_000),
    **dict.fromkeys(("ms", "milli", "millis", "millisecond", "milliseconds"), 10_000),
    **dict.fromkeys(("microsecond", "microseconds", "micros", "microsec"), 10),
    **dict.fromkeys(("tick", "ticks"), 1),
}

# Words whose parenthesised argument is raw literal text rather than tokens.
RAW_LITERAL_WORDS = frozenset({"datetime", "timespan", "time", "guid"})
