"""SigmaHQ's Windows rules through trustwatch: coverage, regression, and hunt throughput.

Coverage (``--coverage``, the figures of docs/sigma.md): every rule under
``../shared/reference/sigma/rules`` converted with pySigma's Kusto backend (Microsoft XDR
pipeline), compiled against a session over ``../shared/data`` ingested as tests/conftest.py
ingests it, and run one by one by the ``Hunter`` over it (schedule replayed): counts per stage,
the top failure reasons, the alerts raised, and the regression cases' pass count. Conversion
and compilation are timed with an empty cache (a temporary ``TRUSTWATCH_CACHE_DIR``), then the
conversion again from that cache.

Throughput (``--throughput``): a Sysmon EVTX corpus of ``--events`` events built by
bench/evtx_corpus.py, then, in child processes one after the other on the same files,
``trustwatch hunt CORPUS --rules default --no-tuning`` (the native pack) and ``trustwatch hunt
CORPUS --sigma RULES --no-tuning`` (every Windows rule of ../shared/reference/sigma/rules;
those that do not convert or compile are reported and left out, as hunt does), each after one
warm-up hunt of a small file that fills the compiled-rule cache (so compile time is not counted
in the rate). Wall time, events/s and the child's peak RSS for each, and their ratios.

Usage::

    .venv/bin/python bench/sigma.py --coverage
    .venv/bin/python bench/sigma.py --throughput --events 100000 [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this script's folder is first on sys.path, and its name would hide pySigma's ``sigma`` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
SHARED = ROOT.parent / "shared"
SIGMA = SHARED / "reference" / "sigma"
RULES = SIGMA / "rules"
TRUSTWATCH = str(ROOT / ".venv" / "bin" / "trustwatch")
SMALL = (
    ROOT
    / "src"
    / "trustwatch"
    / "content"
    / "samples"
    / "hunt"
    / "spec-test-1-certutil-root.sysmon.xml"
)


def coverage() -> None:
    os.environ["TRUSTWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="tw-sigma-cache-")
    sys.path.insert(0, str(ROOT))
    from tests.conftest import shared_data_paths

    from trustwatch import compiled
    from trustwatch.api import Session
    from trustwatch.errors import TrustwatchError
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace
    from trustwatch.rules.runner import Hunter
    from trustwatch.rules.tuning import Tuning
    from trustwatch.sigma import regression
    from trustwatch.sigma.load import load_sigma, reason_counts, runnable

    t0 = time.perf_counter()
    found = load_sigma([RULES])
    convert_s = time.perf_counter() - t0
    compiled.clear_memo()
    t0 = time.perf_counter()
    load_sigma([RULES])
    cached_s = time.perf_counter() - t0
    total = len(found.rules) + len(found.failures)
    print(f"rule files: {found.files}, rules: {total}")
    print(f"converted: {len(found.rules)} ({convert_s:.1f} s; {cached_s:.1f} s from the cache)")

    t0 = time.perf_counter()
    planned, _ = pipeline.plan(shared_data_paths(), skip_unknown=True)
    ws = Workspace(None)
    stats = ws.ingest(planned)
    events = sum(s.stored for s in stats)
    print(f"ingested ../shared/data: {events} events stored ({time.perf_counter() - t0:.1f} s)")
    session = Session(Tuning().tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    hunter = Hunter(session, Tuning())
    t0 = time.perf_counter()
    checked = runnable(hunter, found)
    compile_s = time.perf_counter() - t0
    print(f"compiled: {len(checked.rules)} ({compile_s:.1f} s, cold cache)")

    t0 = time.perf_counter()
    ran, alerts, errors = 0, Counter[str](), Counter[str]()
    for rule in checked.rules:
        try:
            result = hunter.run([rule])
        except TrustwatchError as exc:
            errors[exc.diagnostic.message[:100]] += 1
            continue
        ran += 1
        if result.alerts:
            alerts[rule.name] = len(result.alerts)
    run_s = time.perf_counter() - t0
    print(f"ran over ../shared/data: {ran} ({run_s:.1f} s); runtime errors: {sum(errors.values())}")
    for reason, n in errors.most_common(10):
        print(f"  {n} x {reason}")
    print(f"rules alerting: {len(alerts)}, alerts: {sum(alerts.values())}")
    for name, n in alerts.most_common(15):
        print(f"  {n:4d}  {name}")
    print("not run, by reason:")
    for reason, n in reason_counts(checked.failures)[:12]:
        print(f"  {n:4d} x {reason}")
    stages = Counter(f.stage for f in checked.failures)
    print(f"  by stage: {dict(stages)}")

    t0 = time.perf_counter()
    cases = regression.load_manifest(SIGMA / "regression" / "manifest.csv")
    files = regression.find_rule_files([RULES], [c.rule_id for c in cases])
    outcomes = regression.run_regression(list(files.values()), cases)
    passed = sum(o.passed for o in outcomes)
    ran_cases = [o for o in outcomes if o.stage == "match"]
    print(
        f"regression: {passed}/{len(outcomes)} pass; {len(ran_cases)} cases' rules convert and "
        f"compile, {sum(o.passed for o in ran_cases)} of them pass "
        f"({time.perf_counter() - t0:.1f} s)"
    )


def _child(args: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 3):
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        raise SystemExit(f"{args[:3]} failed: exit {proc.returncode}")
    return wall, usage.ru_maxrss, proc.returncode


def throughput(events: int, workdir: Path, keep: bool) -> None:
    corpus = workdir / f"corpus-{events}"
    if not corpus.is_dir():
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                str(ROOT / "bench" / "evtx_corpus.py"),
                "--events",
                str(events),
                "--out",
                str(corpus),
            ],
            check=True,
        )
    # the corpus holds whole rounds of events: at least the count asked for (corpus.json says)
    events = int(json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))["events"])
    windows = [
        str(RULES / "rules" / "windows"),
        str(RULES / "rules-emerging-threats"),
        str(RULES / "rules-threat-hunting"),
    ]
    sigma_args = [a for w in windows for a in ("--sigma", w)]
    runs: dict[str, Any] = {}
    for name, rule_args in (("native pack", ["--rules", "default"]), ("SigmaHQ", sigma_args)):
        base = [TRUSTWATCH, "hunt", "--no-tuning", "--format", "jsonl", *rule_args]
        warm, _, _ = _child([*base, str(SMALL)])  # fills the compiled-rule cache
        wall, rss, code = _child([*base, str(corpus)])
        runs[name] = (wall, rss, code, warm)
    print(f"corpus: {events:,} Sysmon events in {corpus}")
    print(f"{'rules':14} {'wall s':>8} {'events/s':>10} {'peak RSS MiB':>13} {'warm-up s':>10}")
    for name, (wall, rss, _, warm) in runs.items():
        print(f"{name:14} {wall:8.1f} {events / wall:10.0f} {rss / 1024:13.0f} {warm:10.1f}")
    (n_wall, n_rss, _, _), (s_wall, s_rss, _, _) = runs["native pack"], runs["SigmaHQ"]
    print(f"SigmaHQ / native: time x{s_wall / n_wall:.1f}, peak RSS x{s_rss / n_rss:.2f}")
    if not keep:
        shutil.rmtree(corpus, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--coverage", action="store_true")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tw-sigma")
    parser.add_argument("--keep", action="store_true", help="keep the corpus for the next run")
    args = parser.parse_args()
    if not SIGMA.is_dir():
        raise SystemExit(f"needs ../shared reference data at {SIGMA}")
    if args.coverage:
        coverage()
    if args.throughput:
        args.workdir.mkdir(parents=True, exist_ok=True)
        throughput(args.events, args.workdir, args.keep)
    if not (args.coverage or args.throughput):
        parser.error("give --coverage and/or --throughput")


if __name__ == "__main__":
    main()
