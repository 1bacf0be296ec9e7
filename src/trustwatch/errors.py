"""Spans, located diagnostics and the trustwatch exception hierarchy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trustwatch.inert import visible


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of character offsets into one source text."""

    start: int
    end: int

    def to(self, other: Span) -> Span:
        """Return the span covering this span and ``other``."""
        return Span(min(self.start, other.start), max(self.end, other.end))


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located problem: a code, a message, where it is and, when known, how to fix it."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """A named source text (a query string, a file, a rule's query block)."""

    text: str
    name: str = "<query>"
    line_offset: int = 0  # added to line numbers, for KQL embedded in a YAML block

    def line_col(self, offset: int) -> tuple[int, int]:
        """Return the 1-based line and column of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset)
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line + 1 + self.line_offset, offset - line_start + 1


class TrustwatchError(Exception):
    """Base class of every error trustwatch reports to a user."""

    default_code = "TW000"

    def __init__(
        self,
        message: str,
        *,
        span: Span | None = None,
        hint: str | None = None,
        code: str | None = None,
        source: Source | None = None,
        diagnostics: Sequence[Diagnostic] = (),
    ) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics) or [
            Diagnostic(code or self.default_code, message, span, hint)
        ]
        self.source = source
        super().__init__(self.diagnostics[0].message)

    @property
    def diagnostic(self) -> Diagnostic:
        """The first (usually the only) diagnostic."""
        return self.diagnostics[0]

    @property
    def code(self) -> str:
        """The first diagnostic's code."""
        return self.diagnostic.code

    def with_source(self, source: Source) -> TrustwatchError:
        """Attach the source text the spans point into (kept if one is already set)."""
        if self.source is None:
            self.source = source
        return self

    def render(self, color: bool = False) -> str:
        """Render every diagnostic as text with the source line and a caret under the span."""
        return "\n".join(render_diagnostic(d, self.source, color) for d in self.diagnostics)


class KqlSyntaxError(TrustwatchError):
    """The query text is not valid KQL."""

    default_code = "KQL101"


class KqlSemanticError(TrustwatchError):
    """Valid KQL that names unknown tables, columns or functions, or misuses types."""

    default_code = "KQL200"


class UnsupportedKql(TrustwatchError):
    """Valid KQL that this engine does not implement: never silently ignored."""

    default_code = "KQL301"


class EngineError(TrustwatchError):
    """The execution engine failed while running a compiled query."""

    default_code = "ENG001"


class InputError(TrustwatchError):
    """A table file or argument given by the user cannot be used."""

    default_code = "IN001"


class RuleFileError(TrustwatchError):
    """A rule or tests file is malformed."""

    default_code = "RULE001"


class IngestError(TrustwatchError):
    """Telemetry could not be read."""

    default_code = "ING001"


def render_diagnostic(diag: Diagnostic, source: Source | None, color: bool = False) -> str:
    """Render one diagnostic in the compiler style: header, location, source line, caret.

    Message, hint, source name and source line are made inert (:func:`trustwatch.inert.visible`):
    they may quote a log value, a file name or query text an attacker wrote. The caret is placed
    under the span as shown, escapes and tabs included.
    """
    red, bold, blue, reset = ("\x1b[31m", "\x1b[1m", "\x1b[34m", "\x1b[0m") if color else ("",) * 4
    message = visible(diag.message, "\n")
    hint = visible(diag.hint, "\n") if diag.hint else ""
    lines = [f"{bold}{red}error[{visible(diag.code)}]{reset}{bold}: {message}{reset}"]
    if source is not None and diag.span is not None:
        line_no, col = source.line_col(diag.span.start)
        # lines as line_col counts them: by line feed only (splitlines also breaks at \x1c,
        # \x85, \u2028 ..., which would show another line than the one the caret is on)
        text_line = source.text.split("\n")[line_no - 1 - source.line_offset].removesuffix("\r")
        gutter = " " * len(str(line_no))
        eol = source.text.find("\n", diag.span.start)
        eol = len(source.text) if eol < 0 else eol
        # widths as shown: escapes are several characters, a tab reaches the next tab stop
        margin = f"{line_no} | "
        before = margin + visible(text_line[: col - 1], "\t")
        upto = before + visible(source.text[diag.span.start : min(diag.span.end, eol)], "\t")
        pad = len(before.expandtabs()) - len(margin)
        width = max(1, len(upto.expandtabs()) - len(before.expandtabs()))
        shown = visible(text_line, "\t")
        lines.append(f"{gutter}{blue}-->{reset} {visible(source.name)}:{line_no}:{col}")
        lines.append(f"{gutter} {blue}|{reset}")
        lines.append(f"{blue}{line_no} |{reset} {shown}")
        caret = " " * pad + "^" * width
        tail = f" {hint}" if hint else ""
        lines.append(f"{gutter} {blue}|{reset} {red}{caret}{reset}{tail}")
    elif hint:
        lines.append(f"  = hint: {hint}")
    return "\n".join(lines)
