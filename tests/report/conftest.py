"""Fixtures of the report tests: the demo hunted, grouped and investigated once; a browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trustwatch.api import Session
from trustwatch.guides.investigate import Investigation
from trustwatch.incidents import group
from trustwatch.ingest import pipeline
from trustwatch.records import SecurityAlert, SecurityIncident
from trustwatch.report.build import build_report
from trustwatch.report.gather import data_summary, investigate_incidents
from trustwatch.report.model import Report
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning, default_tuning_path, load_tuning

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "trustwatch" / "content" / "samples" / "hunt"
CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


@dataclass
class Hunted:
    """A hunt with everything a report is built from."""

    session: Session
    tuning: Tuning
    result: HuntResult
    incidents: list[SecurityIncident]
    investigations: dict[str, Investigation]

    def report(self, incidents: list[SecurityIncident] | None = None) -> Report:
        chosen = self.incidents if incidents is None else incidents
        return build_report(
            title="trustwatch hunt report",
            generated="2026-01-01 00:00:00 UTC",
            command="trustwatch hunt samples/hunt --report r.html",
            hunt=self.result,
            tuning=self.tuning,
            data=data_summary(self.session),
            incidents=chosen,
            investigations=self.investigations,
        )


def hunt_engine(engine: Any) -> Hunted:
    """The default pack and tuning over a workspace's engine, grouped and investigated."""
    tuning = load_tuning(default_tuning_path(), ())
    session = Session(tuning.tables(), engine=engine, views=pipeline.query_views(engine))
    rules = load_rules(("default",))
    result = Hunter(session, tuning).run(rules)
    from trustwatch.certs.enrich import enrich_hunt

    enrich_hunt(result.alerts, session)
    incidents = group([SecurityAlert.from_record(a) for a in result.alerts])
    return Hunted(
        session, tuning, result, incidents, investigate_incidents(incidents, rules, session)
    )


@pytest.fixture(scope="session")
def demo() -> Hunted:
    from trustwatch.cli.ingest_cmd import ingest_paths

    ws, _, _ = ingest_paths((str(DEMO),), None)
    return hunt_engine(ws.engine)


def chromium_path() -> str | None:
    for name in CHROMIUM:
        found = shutil.which(name) if "/" not in name else (name if Path(name).exists() else None)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's, installed by ./dev) driven by Playwright."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("needs headless Chromium: ./dev test installs it (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs Playwright to drive Chromium: pip install -e '.[dev]'")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable)
        yield launched
        launched.close()
