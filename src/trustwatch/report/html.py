"""The report as one self-contained HTML file: ``templates/report.html.j2`` through Jinja2.

Autoescape is on for the whole template, and every value printed passes through
:func:`trustwatch.inert.visible` first (the environment's ``finalize``): control, bidi and
invisible characters are shown as escapes (``\\u202e``), then ``& < > " '`` are escaped. Values
from the logs therefore never become markup, and a lone surrogate from an undecodable file name
cannot break the file's UTF-8. The page has no script and loads nothing (a Content-Security-Policy
of ``default-src 'none'`` says so to the browser), so it works from a USB stick.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from trustwatch.inert import visible
from trustwatch.report.model import Report

TEMPLATE = "report.html.j2"


def _source(name: str) -> str:
    return (resources.files("trustwatch.report") / "templates" / name).read_text(encoding="utf-8")


def _finalize(value: Any) -> Any:
    """Each printed value made visible; markup the template itself built is left alone."""
    if isinstance(value, Markup):
        return value
    return visible(value, keep="\n\t")


def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: autoescape, strict undefined names, inert values."""
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_source),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: Report) -> str:
    """The report as HTML text."""
    template = environment().get_template(TEMPLATE)
    return template.render(r=report, s=report.summary)
