"""The HTML report without a browser: self-contained, escaped, every anchor resolves."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

from tests.report.conftest import Hunted
from trustwatch.report.html import render_html
from trustwatch.report.output import renderer_for

EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'\u202e"


class Page(HTMLParser):
    """The ids, fragment links, tags and attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((name, value or ""))
            if name == "id" and value:
                self.ids.add(value)
            if name == "href" and value:
                self.links.append(value)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_every_incident_and_alert_has_its_anchor(demo: Hunted) -> None:
    page = parse(render_html(demo.report()))
    assert len(demo.incidents) == 7
    for incident in demo.incidents:
        assert f"incident-{incident.incident_name}" in page.ids
        for alert in incident.alerts:
            assert f"alert-{alert.system_alert_id}" in page.ids
    assert sum(len(i.alerts) for i in demo.incidents) == 22


def test_every_link_is_a_fragment_that_resolves(demo: Hunted) -> None:
    page = parse(render_html(demo.report()))
    assert page.links
    for link in page.links:
        assert link.startswith("#"), link  # nothing leaves the file
        assert link[1:] in page.ids, link


def test_self_contained(demo: Hunted) -> None:
    html = render_html(demo.report())
    page = parse(html)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert not [v for n, v in page.attrs if n in ("src", "srcset", "action")]
    assert not re.search(r"url\(|@import", html)
    assert "<svg" in html and "<style>" in html


def test_the_report_holds_what_an_analyst_needs(demo: Hunted) -> None:
    html = render_html(demo.report())
    assert "tls-inspection-and-vpn-agents" in html  # what tuning suppressed, and why
    assert "lookalike" in html and "Imitates a known root" in html  # verdict and findings
    assert "certutil -delstore" in html  # a filled playbook step
    assert "DeviceRegistryEvents" in html  # a pivot's query
    assert 'class="chart timeline"' in html and 'class="chart noise"' in html
    assert "T1553.004" in html and "T1588.004" in html


def test_hostile_values_are_escaped(demo: Hunted) -> None:
    incident = demo.incidents[0]
    alert = incident.alerts[0]
    row = {**alert.main_row, "DeviceName": EVIL, "ProcessCommandLine": EVIL}
    hostile = dataclasses.replace(alert, evidence=(row,), alert_name=EVIL, display_name=EVIL)
    changed = dataclasses.replace(incident, alerts=(hostile,), title=EVIL, description=EVIL)
    html = render_html(demo.report([changed]))
    page = parse(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert not [n for n, _ in page.attrs if n.startswith("on")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\u202e" not in html and "\\u202e" in html


def test_the_extension_chooses_the_format() -> None:
    from pathlib import Path

    import pytest

    from trustwatch.errors import InputError

    assert renderer_for(Path("r.HTML")) is render_html
    assert renderer_for(Path("r.md")).__name__ == "render_markdown"
    with pytest.raises(InputError, match="extension"):
        renderer_for(Path("r.pdf"))
