"""How long `hunt` takes over ../shared/data, against running each rule's query once.

Measured in this run, side by side on one ingested workspace:

1. *one pass*: each default rule's query run once over all the data (no schedule; what a
   hand-run hunting query costs: the floor);
2. *hunt*: ``Hunter.run`` with Sentinel's schedule replayed, each rule evaluated once where its
   syntax tree allows (``rules.locality``: row-local rules once over the whole span, rules that
   group or join only within a run once over every run's rows), tuning and de-duplication;
3. *hunt, run by run*: the same replay with ``Hunter(..., fast=False)``: one evaluation per
   group of scheduled runs that see the same rows (prepared plans), as before the fast paths.

The rules are compiled once before the timings (into a temporary compiled-content cache, timed
and printed), so both hunts time the replay alone; the one pass compiles each query, so the hunt
with its cold compile is printed beside it. The two hunts must give the same alerts.
Prints each rule's locality, the times, the evaluations and the ratios. Usage::

    .venv/bin/python bench/hunt.py [--data ../shared/data] [--rules default]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import default_tuning_path, load_tuning

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--rules", default="default", help="pack or path (default: default)")
    args = parser.parse_args()
    os.environ["TRUSTWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="trustwatch-bench-cache-")

    started = time.perf_counter()
    paths = [p for p in sorted(Path(args.data).iterdir()) if p.name != "network"]
    planned, _ = pipeline.plan(paths, skip_unknown=True)
    ws = Workspace(None)
    stats = ws.ingest(planned)
    ingest_s = time.perf_counter() - started
    events = sum(s.stored for s in stats)
    rules = load_rules([args.rules])
    tuning = load_tuning(default_tuning_path())

    # one session: a new one would load the watchlists again under new names, and the
    # compiled-content cache is keyed by the tables' names (a new key: compiled again)
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    started = time.perf_counter()
    rows = sum(
        session.run(r.runnable_query, "2030-01-01T00:00:00Z").tables[-1].num_rows for r in rules
    )
    once_s = time.perf_counter() - started

    started = time.perf_counter()
    compiled = [Hunter(session, tuning).compile(rule) for rule in rules]
    compile_s = time.perf_counter() - started

    started = time.perf_counter()
    fast = Hunter(session, tuning).run(rules)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    slow = Hunter(session, tuning, fast=False).run(rules)
    slow_s = time.perf_counter() - started
    same = fast.alerts == slow.alerts and fast.daily == slow.daily

    print(f"data: {args.data}: {events:,} events stored, ingest {ingest_s:.1f} s")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"rules: {len(rules)} ({args.rules}); compiled in {compile_s:.1f} s (cache cold)")
    for item, fs, ss in zip(compiled, fast.stats, slow.stats, strict=True):
        why = f" ({item.reason})" if item.reason else ""
        print(
            f"  {item.rule.path.stem:42} {fs.locality:8} evaluations {fs.evaluations:5} "
            f"(run by run {ss.evaluations}){why}"
        )
    print(f"one pass (each query once over all data):  {once_s:6.1f} s  ({rows} rows)")
    line(f"hunt (one evaluation per rule if possible): {fast_s:6.1f} s", fast, once_s, fast_s)
    line(f"hunt, run by run (fast=False):              {slow_s:6.1f} s", slow, once_s, slow_s)
    print(
        f"hunt with its compile (cache cold):         {compile_s + fast_s:6.1f} s  "
        f"ratio to one pass {(compile_s + fast_s) / once_s:.1f} (one pass compiles too)"
    )
    print(f"run by run / one evaluation: {slow_s / fast_s:.1f}x; same alerts and days: {same}")


def line(head: str, result: HuntResult, once_s: float, seconds: float) -> None:
    evaluations = sum(s.evaluations for s in result.stats)
    print(
        f"{head}  ({evaluations} evaluations, {len(result.alerts)} alerts)  "
        f"ratio to one pass {seconds / once_s:.1f}"
    )


if __name__ == "__main__":
    main()
