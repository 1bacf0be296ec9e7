"""``trustwatch hunt`` end to end over large Sysmon corpora seeded with attacks, vs the bare parse.

For each size (default 1,000,000 and 5,000,000 events) the Sysmon EVTX corpus of
``bench/evtx_corpus.py`` is built (or reused with ``--keep``), and the attack scenarios of the
validation suite (``kind: attack`` and ``evasion``, Sysmon host) are rendered with
``trustwatch simulate`` and their timestamps moved to points spread evenly over the corpus's
time span (years: the corpus is made of real samples from 2017-2025). Then, side by side in one
run, after reading every file once to warm the page cache:

1. *bare parse*: ``evtx.PyEvtxParser(f).records_json()`` over every corpus file;
2. *hunt*: ``trustwatch hunt CORPUS SEEDS --workspace W --format json`` (ingest + the default
   pack with its schedule replayed + enrichment), its wall time and peak RSS;
3. *replay*: the same workspace hunted again (no ingest: its files are already stored) once
   with the fast path and once run by run (``Hunter(fast=False)``), to compare the alerts.

Checked, and printed: every seeded scenario raises on its device the rules its Sysmon
expectation names (``expect`` in the scenario file), and the fast path and the run-by-run
replay give the same alerts (rule, device, start time, count). Printed per size: events, the
data's span in days, seconds of each step and the ratio hunt / bare parse (target <= 4).

Usage::

    .venv/bin/python bench/hunt_scale.py [--sizes 1000000,5000000] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ingest_bench  # noqa: E402
from hunt_span import HUNT  # noqa: E402  (the hunt child, run-by-run when asked)

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "src" / "trustwatch" / "content" / "scenarios"
TARGET = 4.0
# ISO times in the Sysmon XML (SystemTime='...Z') and Sysmon's UtcTime ("YYYY-MM-DD hh:mm:ss.fff")
_TIMES = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?")


def attack_scenarios() -> list[tuple[str, list[str]]]:
    """(scenario id, rule file stems its Sysmon host must fire) of every attack and evasion."""
    out = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc.get("kind") not in ("attack", "evasion"):
            continue
        expect = dict(doc.get("expect") or {})
        expect.update(((doc.get("sources") or {}).get("sysmon") or {}).get("expect") or {})
        fires = sorted(rule for rule, hit in expect.items() if hit)
        if fires:
            out.append((doc["id"], fires))
    return out


def seed(folder: Path, lo: datetime, hi: datetime) -> dict[str, datetime]:
    """Render the attack scenarios (Sysmon) into ``folder``, each moved to its point in time."""
    scenarios = attack_scenarios()
    folder.mkdir(parents=True, exist_ok=True)
    ids = [sid for sid, _ in scenarios]
    subprocess.run(
        [
            *ingest_bench.trustwatch_cmd(),
            "simulate",
            *ids,
            "--out",
            str(folder),
            "--source",
            "sysmon",
        ],
        check=True,
        capture_output=True,
    )
    placed = {}
    step = (hi - lo) / (len(ids) + 1)
    for n, sid in enumerate(ids, 1):
        path = folder / f"{sid}.sysmon.xml"
        text = path.read_text(encoding="utf-8")
        first = min(_parse(m) for m in _TIMES.finditer(text))
        shift = (lo + n * step) - first
        path.write_text(_TIMES.sub(lambda m, d=shift: _moved(m, d), text), encoding="utf-8")
        placed[sid] = lo + n * step
    return placed


def _parse(m: re.Match[str]) -> datetime:
    frac = (m[3] or ".0")[1:7].ljust(6, "0")
    return datetime.fromisoformat(f"{m[1]}T{m[2]}.{frac}+00:00")


def _moved(m: re.Match[str], delta: timedelta) -> str:
    t = _parse(m) + delta
    sep = m[0][10]
    digits = len(m[3]) - 1 if m[3] else 0
    frac = f".{t.microsecond:06d}"[: digits + 1] if digits else ""
    if digits > 6:
        frac = f".{t.microsecond:06d}" + "0" * (digits - 6)
    return f"{t:%Y-%m-%d}{sep}{t:%H:%M:%S}{frac}"


def corpus_span(files: list[Path]) -> tuple[datetime, datetime]:
    """The earliest and latest plausible TimeCreated of the corpus (every record read once)."""
    from evtx import PyEvtxParser

    lo = hi = None
    for path in files:
        for record in PyEvtxParser(str(path)).records_json():
            found = _TIMES.match(record["timestamp"])
            if found is None:
                continue
            t = _parse(found)
            if t.year < 1990:  # zero and impossible times exist in the samples
                continue
            lo = t if lo is None or t < lo else lo
            hi = t if hi is None or t > hi else hi
    assert lo is not None and hi is not None
    return lo, hi


def hunt(
    mode: str, args: list[str], scratch: Path
) -> tuple[ingest_bench.Run, list[dict[str, Any]]]:
    run = ingest_bench.measured([sys.executable, "-c", HUNT, mode, *args], scratch)
    if run.rc not in (0, 1):  # 1: alerts found
        sys.exit(f"hunt ({mode}) exited {run.rc}:\n{run.stderr[-3000:]}")
    try:
        alerts: list[dict[str, Any]] = json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        sys.exit(
            f"hunt ({mode}) printed no JSON ({exc}):\n{run.stdout[:2000]}\n{run.stderr[-2000:]}"
        )
    return run, alerts


def summary(alerts: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    def device(alert: dict[str, Any]) -> str:
        rows = alert.get("Evidence") or [{}]
        return str(rows[0].get("DeviceName", ""))

    return Counter((a["AlertName"], device(a), a["StartTime"]) for a in alerts)


def bench_size(size: int, workdir: Path, keep: bool) -> dict[str, Any]:
    print(f"size {size:,} (load average {os.getloadavg()[0]:.2f}):", flush=True)
    files, events, _, _ = ingest_bench.corpus_for(size, workdir, 250_000)
    started = time.perf_counter()
    lo, hi = corpus_span(files)
    print(f"  corpus span {lo:%Y-%m-%d} .. {hi:%Y-%m-%d} ({time.perf_counter() - started:.1f} s)")
    seeds = workdir / f"seeds-{size}"
    shutil.rmtree(seeds, ignore_errors=True)
    placed = seed(seeds, lo, hi)
    ingest_bench.warm(files)
    bare = ingest_bench.measured(
        [sys.executable, "-c", ingest_bench.BARE_PARSE, *map(str, files)], workdir
    )
    ws = workdir / f"hunt-{size}.duckdb"
    for stale in workdir.glob(f"hunt-{size}.duckdb*"):
        if stale.is_dir():  # the spill folder an interrupted run left
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink()
    paths = [*map(str, files), str(seeds)]
    full, alerts = hunt("fast", [*paths, "--workspace", str(ws)], workdir)
    fast, fast_alerts = hunt("fast", ["--workspace", str(ws)], workdir)
    slow, slow_alerts = hunt("run-by-run", ["--workspace", str(ws)], workdir)
    rules = {
        p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))["name"]
        for p in (REPO / "src" / "trustwatch" / "content" / "rules" / "default").glob("*.yaml")
        if not p.name.endswith((".tests.yaml", ".guide.yaml"))  # a rule's companions
    }
    missed = []
    for sid, fires in attack_scenarios():
        device = _device_of(seeds / f"{sid}.sysmon.xml")
        raised = {a["AlertName"] for a in alerts if _devices(a) & {device}}
        # the default pack's rules only (the reference rule is out of it)
        missed += [f"{sid}: {rules[r]}" for r in fires if r in rules and rules[r] not in raised]
    same = summary(fast_alerts) == summary(slow_alerts) == summary(alerts)
    result = {
        "events": events,
        "seeded": len(placed),
        "span_days": (hi - lo).days,
        "bare": bare.wall,
        "hunt": full.wall,
        "hunt_rss": full.maxrss,
        "fast": fast.wall,
        "slow": slow.wall,
        "alerts": len(alerts),
        "missed": missed,
        "same": same,
    }
    print(
        f"  bare parse {bare.wall:7.1f} s | hunt {full.wall:7.1f} s (x{full.wall / bare.wall:.2f}, "
        f"peak RSS {full.maxrss / 2**20:,.0f} MiB, {len(alerts)} alerts) | hunt of the stored "
        f"workspace: fast path {fast.wall:.1f} s, run by run {slow.wall:.1f} s",
        flush=True,
    )
    if not keep:
        shutil.rmtree(workdir / f"corpus-{size}", ignore_errors=True)
        for path in workdir.glob(f"hunt-{size}.duckdb*"):
            path.unlink()
    return result


def _device_of(path: Path) -> str:
    found = re.search(r"<Computer>([^<]+)</Computer>", path.read_text(encoding="utf-8"))
    return found[1].lower() if found else ""


def _devices(alert: dict[str, Any]) -> set[str]:
    return {str(row.get("DeviceName", "")).lower() for row in alert.get("Evidence") or []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "trustwatch-bench-hunt"
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRUSTWATCH_CACHE_DIR", str(workdir / "compiled"))
    results = [bench_size(int(s), workdir, args.keep) for s in args.sizes.split(",") if s]
    print()
    print(ingest_bench.versions())
    print(
        f"{'events':>11} {'seeded':>6} {'span d':>6} {'parse s':>8} {'hunt s':>8} {'ratio':>6} "
        f"{'RSS MiB':>8} {'alerts':>6} {'fast s':>7} {'by run s':>8} {'same':>5} missed"
    )
    ok = True
    for r in results:
        print(
            f"{r['events']:>11,} {r['seeded']:>6} {r['span_days']:>6} {r['bare']:>8.1f} "
            f"{r['hunt']:>8.1f} {r['hunt'] / r['bare']:>6.2f} {r['hunt_rss'] / 2**20:>8.0f} "
            f"{r['alerts']:>6} {r['fast']:>7.1f} {r['slow']:>8.1f} {r['same']!s:>5} "
            f"{'; '.join(r['missed']) or 'none'}"
        )
        ok = ok and r["same"] and not r["missed"]
    worst = max(r["hunt"] / r["bare"] for r in results)
    print(
        f"hunt / bare parse: worst {worst:.2f} (target <= {TARGET}: "
        f"{'met' if worst <= TARGET else 'MISSED'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
