"""SigmaHQ's converted rules hunted over ../shared/data fused (rules.fusion) and one by one.

The rules: every rule of SigmaHQ's process_creation and registry folders that has a regression
case (so that the hunt alerts: ../shared/data holds the cases' events), and every 25th of the
others, in file order - about 130 rules, a sample that keeps the test in seconds (compiling all
1,400 takes minutes on a cold cache). Fused, they must raise exactly the alerts (whole
SecurityAlert records: evidence, times, entities, ids) and statistics of each rule evaluated
on its own.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning
from trustwatch.sigma.load import load_sigma, runnable

pytestmark = needs_shared

SIGMA = SHARED / "reference" / "sigma"
RULES = SIGMA / "rules"
FOLDERS = ("rules/windows/process_creation", "rules/windows/registry")
EVERY = 25


def chosen_files() -> list[Path]:
    with (SIGMA / "regression" / "manifest.csv").open(encoding="utf-8", newline="") as f:
        cased = {row["rule_file"] for row in csv.DictReader(f)}
    files = sorted(p for folder in FOLDERS for p in (RULES / folder).rglob("*.yml"))
    return [
        p for i, p in enumerate(files) if i % EVERY == 0 or p.relative_to(RULES).as_posix() in cased
    ]


def stats_of(result: HuntResult) -> list[tuple[Any, ...]]:
    return [
        (s.rule.id, s.runs, s.evaluations, s.locality, s.results, s.alerts, s.suppressed)
        for s in result.stats
    ]


def canonical(result: HuntResult) -> list[str]:
    return sorted(json.dumps(a, sort_keys=True, default=str) for a in result.alerts)


def test_sigma_rules_fused_alert_as_one_by_one(
    shared_workspace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = shared_workspace[0]
    tuning = Tuning()
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    hunter = Hunter(session, tuning)
    rules = runnable(hunter, load_sigma(chosen_files())).rules
    assert len(rules) > 100
    fused_positions: list[int] = []
    original = Hunter._fused

    def spy(self: Hunter, items: Any, chunks: Any) -> Any:
        out = original(self, items, chunks)
        fused_positions.extend(out)
        return out

    monkeypatch.setattr(Hunter, "_fused", spy)
    fused = hunter.run(rules)
    alone = Hunter(session, tuning, fuse=False).run(rules)

    assert len(fused_positions) > 0.95 * len(rules)  # nearly all are filters
    tables = {r.query.split("\n", 1)[0] for r in (rules[i] for i in fused_positions)}
    assert tables == {"DeviceProcessEvents", "DeviceRegistryEvents"}
    assert len(fused.alerts) > 20
    assert stats_of(fused) == stats_of(alone)
    assert canonical(fused) == canonical(alone)
    assert fused.alerts == alone.alerts
    assert fused.daily == alone.daily
    assert fused.suppressed == alone.suppressed
