"""The Markdown report: every value from the logs stays text once a Markdown renderer reads it."""

from __future__ import annotations

import dataclasses

import pytest
from markdown_it import MarkdownIt

from tests.report.conftest import Hunted
from trustwatch.report import markdown as md

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![x](http://evil.example/x.png)",
    "<https://evil.example>",
    "a | b | c",
    "``` fence `` ticks `",
    "*bold* _em_ # heading &amp; &lt;",
    "line one\nline two",
]


def render(text: str) -> str:
    """What GitHub-like renderers make of it: CommonMark with raw HTML allowed, GFM tables."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_code_span_holds_the_value_exactly(value: str) -> None:
    html = render(md.code(value))
    assert "<img" not in html and "<a " not in html
    inner = html.removeprefix("<p><code>").removesuffix("</code></p>\n")
    expected = value.replace("\n", "\\n").replace("&", "&amp;").replace("<", "&lt;")
    assert inner == expected.replace(">", "&gt;").replace('"', "&quot;")


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_escaped_text_renders_as_its_characters(value: str) -> None:
    html = render(md.text(value))
    assert "<img" not in html and "<a " not in html and "<em>" not in html
    assert "<strong>" not in html and "<h1>" not in html
    assert html.startswith("<p>")


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_table_cell_stays_in_its_cell(value: str) -> None:
    html = render(md.table(("column", "value"), [("name", value)]))
    assert html.count("<td>") == 2, html
    assert "<img" not in html and "<a " not in html


def test_a_fence_is_longer_than_any_run_of_backticks_inside() -> None:
    block = md.fence("x ```` y\n```\n<b>z</b>", "text")
    assert block.startswith("`````text\n") and block.endswith("\n`````")
    html = render(block + "\n\nafter")
    assert "<b>" not in html and "&lt;b&gt;z&lt;/b&gt;" in html
    assert html.endswith("<p>after</p>\n")


def test_invisible_characters_are_shown() -> None:
    assert md.code("evil\u202etxt.exe") == "` evil\\u202etxt.exe `"
    assert "\x1b" not in md.text("\x1b[2Jclear")


def test_the_demo_report_reads_as_markdown(demo: Hunted) -> None:
    text = md.render_markdown(demo.report())
    html = render(text)
    for incident in demo.incidents:
        assert incident.incident_name in text
        for alert in incident.alerts:
            assert alert.system_alert_id in text
    assert html.count("<h2>") == len(demo.incidents) + 2  # summary, incidents, noise
    assert "<a " not in html and "<img" not in html
    assert "certutil -addstore" in html  # a command of a filled playbook step


def test_hostile_values_in_the_demo_report_stay_text(demo: Hunted) -> None:
    incident = demo.incidents[0]
    alert = incident.alerts[0]
    evil = "<img src=x onerror=alert(1)>[x](javascript:alert(1))|`"
    row = {**alert.main_row, "DeviceName": evil, "ProcessCommandLine": evil}
    hostile = dataclasses.replace(alert, evidence=(row,), alert_name=evil, description=evil)
    changed = dataclasses.replace(
        incident, alerts=(hostile,), title=evil, description=evil, entities=incident.entities
    )
    html = render(md.render_markdown(demo.report([changed])))
    assert "<img" not in html and "<a " not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
