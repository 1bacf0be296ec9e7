"""How long `hunt` takes over ../shared/data, against running each rule's query once.

Measured in this run, side by side on one ingested workspace:

1. *one pass*: each default rule's query run once over all the data (no schedule; what a
   hand-run hunting query costs);
2. *hunt*: the same rules with Sentinel's schedule replayed (``Hunter.run``: a run per
   ``queryFrequency`` where there is data, prepared plans, tuning, de-duplication);
3. *hunt, unprepared*: as 2, but each run re-plans its SQL (what the replay cost before plans
   were prepared once per rule).

Prints the times, the evaluations and the ratios hunt / one pass. Usage::

    .venv/bin/python bench/hunt.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import default_tuning_path, load_tuning

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()

    started = time.perf_counter()
    planned, _ = pipeline.plan([args.data], skip_unknown=True)
    ws = Workspace(None)
    stats = ws.ingest(planned)
    ingest_s = time.perf_counter() - started
    events = sum(s.stored for s in stats)
    rules = load_rules(["default"])
    tuning = load_tuning(default_tuning_path())

    def session() -> Session:
        return Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))

    one = session()
    started = time.perf_counter()
    rows = sum(one.run(r.runnable_query, "2030-01-01T00:00:00Z").tables[-1].num_rows for r in rules)
    once_s = time.perf_counter() - started

    started = time.perf_counter()
    result = Hunter(session(), tuning).run(rules)
    hunt_s = time.perf_counter() - started
    evaluations = sum(s.evaluations for s in result.stats)

    hunter = Hunter(session(), tuning)
    engine = hunter.engine  # no plan reuse: the SQL text is "prepared", and run with parameters
    engine.prepare = lambda sql: sql  # type: ignore[method-assign]
    engine.execute_prepared = engine.execute_sql  # type: ignore[assignment]
    started = time.perf_counter()
    plain = hunter.run(rules)
    plain_s = time.perf_counter() - started
    assert len(plain.alerts) == len(result.alerts)

    print(f"data: {args.data}: {events:,} events stored, ingest {ingest_s:.1f} s")
    print(f"rules: {len(rules)} (default pack)")
    print(f"one pass (each query once over all data): {once_s:6.1f} s  ({rows} rows)")
    print(
        f"hunt (schedule replayed, prepared plans): {hunt_s:6.1f} s  "
        f"({evaluations} evaluations, {len(result.alerts)} alerts)  ratio {hunt_s / once_s:.1f}"
    )
    print(
        f"hunt, each run re-planned:                {plain_s:6.1f} s  "
        f"ratio {plain_s / once_s:.1f}  (prepared: {plain_s / hunt_s:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
