"""The HTML report in headless Chromium: renders cleanly, complete, navigable, fits the width.

Chromium is the system's (``./dev`` installs it through apt where absent), driven by Playwright;
without it these tests are skipped, saying so.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_shared
from tests.report.conftest import Hunted, hunt_engine
from trustwatch.report.html import render_html
from trustwatch.report.model import Report

WIDTHS = (1280, 800)

# how much of a screenshot is not background, and how many colours it has: read by the browser
# itself (the PNG drawn on a canvas), so no imaging library is needed
INK = """async (data) => {
  const img = new Image();
  img.src = "data:image/png;base64," + data;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, img.width, img.height).data;
  let ink = 0; const colours = new Set();
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] < 235 || px[i + 1] < 235 || px[i + 2] < 235) ink++;
    colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  }
  return [ink / (px.length / 4), colours.size];
}"""


@dataclasses.dataclass
class Opened:
    page: Any
    errors: list[str]
    requests: list[str]


def write(report: Report, folder: Path) -> Path:
    path = folder / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def open_page(browser: Any, path: Path, width: int) -> Opened:
    page = browser.new_page(viewport={"width": width, "height": 900})
    opened = Opened(page, [], [])
    page.on(
        "console",
        lambda m: (
            opened.errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))
    page.on("dialog", lambda d: (opened.errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: opened.requests.append(r.url))
    page.goto(path.as_uri())
    return opened


@pytest.fixture(scope="module")
def demo_file(demo: Hunted, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(demo.report(), tmp_path_factory.mktemp("demo-report"))


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def demo_page(request: pytest.FixtureRequest, browser: Any, demo_file: Path) -> Iterator[Opened]:
    opened = open_page(browser, demo_file, request.param)
    yield opened
    opened.page.close()


def fits(page: Any) -> tuple[int, int]:
    """(scroll width of the document, viewport width): the body must not scroll sideways."""
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(width), int(inner)


def test_renders_without_errors_or_requests(demo_page: Opened, demo_file: Path) -> None:
    demo_page.page.wait_for_load_state("load")
    assert demo_page.errors == []
    assert demo_page.requests == [demo_file.as_uri()]  # the file itself, nothing else


def test_usable_at_this_width(demo_page: Opened) -> None:
    width, inner = fits(demo_page.page)
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"
    # the text is laid out, not squeezed: the narrative reads at a normal width
    box = demo_page.page.locator(".narrative").first.bounding_box()
    assert box is not None and box["width"] >= inner * 0.6


def test_every_incident_and_alert_is_shown(demo_page: Opened, demo: Hunted) -> None:
    page = demo_page.page
    assert page.locator("section.incident").count() == len(demo.incidents) == 7
    assert page.locator("article.alert").count() == 22
    for incident in demo.incidents:
        assert page.locator(f"#incident-{incident.incident_name}").is_visible()
        for alert in incident.alerts:
            found = page.locator(f"#alert-{alert.system_alert_id}")
            assert found.is_visible()
            assert alert.alert_name in found.inner_text()


def test_links_lead_to_their_targets(demo_page: Opened, demo: Hunted) -> None:
    page = demo_page.page
    broken = page.evaluate(
        """[...document.querySelectorAll('a[href^="#"]')]
             .map(a => a.getAttribute('href'))
             .filter(h => !document.getElementById(h.slice(1)))"""
    )
    assert broken == []
    last = demo.incidents[-1]
    page.locator(f'nav.toc a[href="#incident-{last.incident_name}"]').click()
    assert page.evaluate("location.hash") == f"#incident-{last.incident_name}"
    top = page.evaluate(
        f"document.getElementById('incident-{last.incident_name}').getBoundingClientRect().top"
    )
    assert abs(top) < 5  # scrolled to it
    alert = last.alerts[0]
    page.locator(f'svg.timeline a[href="#alert-{alert.system_alert_id}"]').first.click()
    assert page.evaluate("location.hash") == f"#alert-{alert.system_alert_id}"


def test_a_screenshot_is_not_blank(demo_page: Opened) -> None:
    page = demo_page.page
    shot = base64.b64encode(page.screenshot()).decode()
    ink, colours = page.evaluate(INK, shot)
    assert ink > 0.02 and colours > 20, (ink, colours)


def test_printing_hides_navigation(demo_page: Opened) -> None:
    page = demo_page.page
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('nav.toc')).display") == "none"
    width, inner = fits(page)
    assert width <= inner


def test_hostile_values_do_nothing(browser: Any, demo: Hunted, tmp_path: Path) -> None:
    evil = '<img src="http://127.0.0.1:9/x" onerror="alert(1)"><script>alert(2)</script>'
    incident = demo.incidents[0]
    alert = incident.alerts[0]
    row = {**alert.main_row, "DeviceName": evil, "ProcessCommandLine": evil}
    hostile = dataclasses.replace(alert, evidence=(row,), alert_name=evil)
    changed = dataclasses.replace(incident, alerts=(hostile,), title=evil, description=evil)
    path = write(demo.report([changed]), tmp_path)
    opened = open_page(browser, path, 800)
    page = opened.page
    assert opened.errors == [] and opened.requests == [path.as_uri()]
    assert page.locator("img").count() == 0 and page.locator("script").count() == 0
    assert evil in page.locator(".narrative").first.inner_text()
    assert fits(page)[0] <= 800
    page.close()


@needs_shared
def test_the_shared_data_report(browser: Any, shared_workspace: Any, tmp_path: Path) -> None:
    hunted = hunt_engine(shared_workspace[0].engine)
    alerts = [a for i in hunted.incidents for a in i.alerts]
    assert len(alerts) == len(hunted.result.alerts) > 0
    path = write(hunted.report(), tmp_path)
    for width in WIDTHS:
        opened = open_page(browser, path, width)
        page = opened.page
        assert opened.errors == []
        assert page.locator("article.alert").count() == len(alerts)
        for alert in alerts:
            assert page.locator(f"#alert-{alert.system_alert_id}").is_visible()
        assert page.locator("section.incident").count() == len(hunted.incidents)
        width_seen, inner = fits(page)
        assert width_seen <= inner
        page.close()
