"""Which format a report file gets, chosen by its extension, and the text of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from trustwatch.errors import InputError
from trustwatch.report.html import render_html
from trustwatch.report.markdown import render_markdown
from trustwatch.report.model import Report

RENDERERS: dict[str, Callable[[Report], str]] = {
    ".html": render_html,
    ".htm": render_html,
    ".md": render_markdown,
    ".markdown": render_markdown,
}


def renderer_for(path: PurePath) -> Callable[[Report], str]:
    """The renderer of a report file by its extension.

    Raises:
        InputError: the extension is neither HTML nor Markdown.
    """
    found = RENDERERS.get(path.suffix.lower())
    if found is None:
        raise InputError(
            f"--report {path.name}: the file's extension chooses the format",
            hint="name it FILE.html (a self-contained page) or FILE.md (Markdown for a ticket)",
        )
    return found
