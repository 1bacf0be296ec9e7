"""`trustwatch hunt` over real EVTX files spanning years, against a bare parse of the same files.

A replay's run-by-run cost grows with the number of hours that hold data, not with the number
of events: real EVTX samples recorded years apart are the case that shows it. This script copies
every ``*.evtx`` under ``../shared/data`` and ``../shared/reference/sigma/regression`` into one
temporary folder (the files unchanged, so the events keep their original times), reads them once
to warm the page cache, then runs child processes one after the other:

1. *bare parse*: ``evtx.PyEvtxParser(f).records_json()`` iterated over each file, counting
   records: the floor no hunt over EVTX can beat;
2. *hunt*: ``trustwatch hunt FOLDER --format json``, the default (one evaluation per rule where
   the rule's syntax tree allows it);
3. *hunt, run by run*: the same command with ``Hunter(..., fast=False)`` as the default: every
   group of scheduled runs that see the same rows evaluated on its own, as before.

Both hunts use one compiled-content cache in a temporary folder, filled by a first, untimed hunt
(its time, with the cache cold, is printed too); both must print the same alerts. Times are wall
clock around each child, interpreter start-up, ingest and enrichment included. ``--repeat R``
alternates the three R times and reports medians. Prints events, the span in days, seconds, the
ratio hunt / bare parse (target <= 4) and run by run / hunt.

Then, in this process, where a hunt's time goes: the ingest (``Workspace.ingest``) and
``Hunter.run`` both ways over the same workspace (rules compiled beforehand). Usage::

    .venv/bin/python bench/hunt_span.py [--repeat 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import evtx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SOURCES = [SHARED / "data", SHARED / "reference" / "sigma" / "regression"]
TARGET = 4.0
_TIME = re.compile(r'"SystemTime":\s*"([^"]+)"')

BARE = """
import sys, evtx
n = 0
for path in sys.argv[1:]:
    for _ in evtx.PyEvtxParser(path).records_json():
        n += 1
print(n)
"""
HUNT = """
import sys
from trustwatch.cli.main import main
if sys.argv[1] == "run-by-run":  # the keyword's default, as no command-line option sets it
    from trustwatch.rules.runner import Hunter
    Hunter.__init__.__kwdefaults__["fast"] = False
sys.argv = ["trustwatch", "hunt", *sys.argv[2:], "--format", "json"]
main()
"""


def collect(folder: Path) -> list[Path]:
    """Copies of every EVTX file of the sources in ``folder`` (numbered: names repeat)."""
    found = sorted(p for root in SOURCES for p in root.rglob("*") if p.suffix.lower() == ".evtx")
    copies = []
    for i, path in enumerate(found):
        copy = folder / f"{i:04d}-{path.name}"
        shutil.copy2(path, copy)
        copies.append(copy)
    return copies


def span_days(files: list[Path]) -> tuple[int, datetime, datetime]:
    """Records and the earliest and latest event time (untimed: read here, not in a child)."""
    times: list[datetime] = []
    count = 0
    for path in files:
        for record in evtx.PyEvtxParser(str(path)).records_json():
            count += 1
            found = _TIME.search(record["data"])
            if found:
                times.append(datetime.fromisoformat(found.group(1).replace("Z", "+00:00")))
    return count, min(times), max(times)


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    return time.perf_counter() - started, done


def hunt(mode: str, folder: Path) -> tuple[float, list[dict[str, Any]]]:
    seconds, done = timed([sys.executable, "-c", HUNT, mode, str(folder)])
    if done.returncode not in (0, 1):  # 1: there are alerts
        sys.exit(f"hunt ({mode}) failed with exit {done.returncode}:\n{done.stderr[-3000:]}")
    alerts: list[dict[str, Any]] = json.loads(done.stdout)
    return seconds, alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", help="build the folder here and keep it")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="trustwatch-span-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TRUSTWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="trustwatch-span-cache-")
    try:
        files = collect(folder)
        events, first, last = span_days(files)  # also warms the page cache
        cold_s, _ = hunt("fast", folder)  # fills the compiled-content cache
        bare: list[float] = []
        fast: list[float] = []
        slow: list[float] = []
        for _ in range(args.repeat):
            seconds, done = timed([sys.executable, "-c", BARE, *map(str, files)])
            if int(done.stdout) != events:
                sys.exit(f"bare parse counted {done.stdout.strip()} records, not {events}")
            bare.append(seconds)
            seconds, alerts = hunt("fast", folder)
            fast.append(seconds)
            seconds, slow_alerts = hunt("run-by-run", folder)
            slow.append(seconds)
            if alerts != slow_alerts:
                sys.exit("the two hunts printed different alerts")
        report(files, events, (first, last), (bare, fast, slow), cold_s, len(alerts))
        breakdown(files)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def report(
    files: list[Path],
    events: int,
    span: tuple[datetime, datetime],
    times: tuple[list[float], list[float], list[float]],
    cold_s: float,
    alerts: int,
) -> None:
    b, f, s = (statistics.median(x) for x in times)
    first, last = span
    days = (last - first).total_seconds() / 86400
    print(f"{len(files)} EVTX files, {events:,} events, {first:%Y-%m-%d} .. {last:%Y-%m-%d}")
    print(f"span {days:,.0f} days; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(f"bare parse:                      {b:7.2f} s")
    print(f"hunt (one evaluation per rule):  {f:7.1f} s  hunt / bare parse {f / b:.1f}x", end="")
    print(f" (target <= {TARGET:g}x); compile cache cold: {cold_s:.1f} s")
    print(f"hunt, run by run (fast=False):   {s:7.1f} s  / bare parse {s / b:.1f}x")
    print(f"run by run / one evaluation: {s / f:.1f}x; {alerts} alerts, the same both ways")


def breakdown(files: list[Path]) -> None:
    """Ingest, then ``Hunter.run`` both ways, timed in this process over one workspace."""
    from trustwatch.api import Session
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.runner import Hunter
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    started = time.perf_counter()
    planned, _ = pipeline.plan(files, skip_unknown=True)
    ws = Workspace(None)
    ws.ingest(planned)
    ingest_s = time.perf_counter() - started
    tuning = load_tuning(default_tuning_path())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    rules = load_rules(["default"])
    for rule in rules:
        Hunter(session, tuning).compile(rule)
    seconds = []
    for fast in (True, False):
        started = time.perf_counter()
        result = Hunter(session, tuning, fast=fast).run(rules)
        seconds.append(time.perf_counter() - started)
        evaluations = sum(s.evaluations for s in result.stats)
        print(f"  Hunter.run(fast={fast}): {seconds[-1]:6.2f} s, {evaluations} evaluations")
    print(f"in process: ingest {ingest_s:.2f} s; replay run by run / one evaluation", end="")
    print(f" {seconds[1] / seconds[0]:.1f}x")


if __name__ == "__main__":
    main()
