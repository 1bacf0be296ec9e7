"""Benchmark ``trustwatch ingest`` against a bare pyevtx-rs parse of the same Sysmon EVTX corpus.

For every size (events), a corpus is built with ``bench/evtx_corpus.py`` in
``WORKDIR/corpus-<size>`` (reused when a matching one is already there, i.e. with ``--keep``),
its files are read once to warm the page cache, then two child processes run in turn:

1. bare parse: ``PyEvtxParser(f).records_json()`` iterated over every file, counting records
   (default threads, like an ingest would use); the count must equal the corpus size;
2. ``trustwatch ingest <files...> --workspace WORKDIR/ws-<size>.duckdb``; it must exit 0. Its
   output (per-file summary) is shown, and the rows then in the workspace's tables are counted
   ("table rows": the event tables, not the ``_``-prefixed bookkeeping ones; informational, as
   unmapped event ids are not stored there, but a collapse would show de-duplication).

Each child is started through a tiny wrapper process (``python -I -S``) that ``posix_spawn``s it
and takes its ``ru_maxrss`` from ``os.wait4``: the child's own peak RSS (the max over it and any
children it waited for, not their sum). The wrapper also sums VmRSS over the child and its
descendants every 0.1 s (an ingest's stager process runs beside it); the peak RSS reported is the
larger of the two. Spawning straight from this process would not do: Linux
carries the spawning process's high-water RSS into the child's ``ru_maxrss`` across ``exec``.
The wrapper's own footprint is the floor of that figure; it is measured (``/bin/true`` through
the wrapper) and printed. Times are the wrapper's wall clock around the child, interpreter
start-up included on both sides. The wrapper also polls the child's RSS and kills it above
``--rss-limit-mib`` (default 60% of RAM; the machine may be shared), which is then reported, not
measured. With ``--repeat R`` the two sides alternate R times (a fresh
workspace each time) and the median times and the largest peak RSS are reported.

Printed per size: wall time, records/s, peak RSS of both, the ratio ingest / bare parse (target
<= 3, product goal 1.5), the ingest's peak RSS (target < 1 GiB at every size), the workspace's
size per million events and the load average before the ingest; then the largest size's ratio
over the smallest's (linear: ~1.0, target <= 1.15). Corpus (~1.5 GiB per 1M events) and
workspace are deleted after each size unless ``--keep``.

Usage::

    .venv/bin/python bench/ingest.py [--sizes 1000000,5000000,10000000] [--workdir DIR]
                                     [--keep] [--file-events M] [--repeat R] [--memory-limit S]
    .venv/bin/python bench/ingest.py --quick          # 100k events, files of 25k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evtx_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATIO_TARGET = 3.0  # the acceptance bound; the product goal is 1.5
RATIO_GOAL = 1.5
SCALE_TARGET = 1.15  # the largest size's ratio / the smallest's
RSS_TARGET = 2**30
MIB = 2**20

# Runs argv[3:] and writes {"rc", "wall", "maxrss", "treerss", "killed"} to argv[1]; maxrss is
# the child's own peak (wait4); treerss the largest sum of VmRSS over the child and its
# descendants (an ingest's stager process), polled every 0.1 s. Above argv[2] bytes (that sum),
# the child is killed.
WRAPPER = """
import json, os, signal, sys, threading, time
limit, killed, tree = int(sys.argv[2]), [], [0]
def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0
def family(pid):
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                for child in fh.read().split():
                    out += family(int(child))
    except OSError:
        pass
    return out
def watch(pid):
    while True:
        if not os.path.exists(f"/proc/{pid}"):
            return
        total = sum(rss(p) for p in family(pid))
        tree[0] = max(tree[0], total)
        if limit and total > limit:
            killed.append(total)
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[3], sys.argv[3:], os.environ)
threading.Thread(target=watch, args=(pid,), daemon=True).start()
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall": wall,
               "maxrss": usage.ru_maxrss * 1024, "treerss": tree[0],
               "killed": bool(killed)}, fh)
"""

BARE_PARSE = """
import sys
from evtx import PyEvtxParser
count = 0
for path in sys.argv[1:]:
    for _ in PyEvtxParser(path).records_json():
        count += 1
print(count)
"""


@dataclass
class Run:
    rc: int
    wall: float
    maxrss: int
    stdout: str
    stderr: str
    killed: bool = False  # by the wrapper, for going over the RSS limit


def measured(cmd: list[str], scratch: Path, rss_limit: int = 0) -> Run:
    """Run ``cmd`` through the wrapper; its exit code, wall time and peak RSS (bytes): the larger
    of its own peak and its process tree's (it and its stager process together)."""
    result = scratch / "run.json"
    result.unlink(missing_ok=True)
    wrapper = [sys.executable, "-I", "-S", "-c", WRAPPER, str(result), str(rss_limit)]
    proc = subprocess.run([*wrapper, *cmd], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"measurement wrapper failed: {proc.stderr.strip()[-2000:]}")
    stats = json.loads(result.read_text(encoding="utf-8"))
    # the peak: the child's own (wait4), or its process tree's (ingest + stager), if larger
    peak = max(stats["maxrss"], stats.get("treerss", 0))
    out = Run(stats["rc"], stats["wall"], peak, proc.stdout, proc.stderr)
    out.killed = stats["killed"]
    return out


def trustwatch_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "trustwatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "trustwatch.cli.main"]


def ingest_available() -> tuple[bool, str]:
    proc = subprocess.run(
        [*trustwatch_cmd(), "ingest", "--help"], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a corpus built earlier in ``out``, if every file it lists is there."""
    try:
        manifest: dict[str, Any] = json.loads(
            (out / evtx_corpus.MANIFEST).read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    names = manifest.get("files")
    if not isinstance(names, list) or not all((out / str(n)).is_file() for n in names):
        return None
    return manifest


def corpus_for(size: int, workdir: Path, file_events: int) -> tuple[list[Path], int, int, bool]:
    """The corpus of ``size`` events: (files, events, bytes, reused)."""
    out = workdir / f"corpus-{size}"
    manifest = read_manifest(out)
    if (
        manifest
        and manifest.get("builder_version") == evtx_corpus.BUILDER_VERSION
        and manifest.get("events_requested") == size
        and manifest.get("file_events") == file_events
    ):
        files = [out / str(name) for name in manifest["files"]]
        return files, int(manifest["events"]), int(manifest["bytes"]), True
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    corpus = evtx_corpus.build_corpus(size, out, file_events)
    print(
        f"  built {corpus.events:,} events in {len(corpus.files)} files "
        f"({corpus.bytes / 2**30:.2f} GiB) in {time.perf_counter() - started:.1f}s"
    )
    return corpus.files, corpus.events, corpus.bytes, False


def warm(files: list[Path]) -> None:
    """Read every file once so both sides start from the page cache."""
    for path in files:
        with path.open("rb") as fh:
            while fh.read(8 * MIB):
                pass


def workspace_rows(path: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE' ORDER BY ALL"
        ).fetchall()
        rows: dict[str, int] = {}
        for schema, name in tables:
            result = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
            rows[name if schema == "main" else f"{schema}.{name}"] = int(result[0] if result else 0)
        return rows
    finally:
        con.close()


def table_rows(rows: dict[str, int]) -> int:
    """Rows in the event tables (the workspace's own ``_``-prefixed tables left out)."""
    return sum(n for name, n in rows.items() if not name.split(".")[-1].startswith("_"))


def show_output(run: Run, head: int = 24, tail: int = 8) -> None:
    """The child's output (its per-file summary), shortened in the middle when long."""
    lines = (run.stdout + run.stderr).strip().splitlines()
    if len(lines) > head + tail + 1:
        lines = [*lines[:head], f"... ({len(lines) - head - tail} lines)", *lines[-tail:]]
    for line in lines:
        print(f"  | {line}")


@dataclass
class Result:
    size: int
    events: int
    files: int
    corpus_bytes: int
    bare_walls: list[float] = field(default_factory=list)
    bare_rss: int = 0
    ingest_walls: list[float] = field(default_factory=list)
    ingest_rss: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    error: str = ""
    workspace_bytes: int = 0  # the workspace file(s) after the ingest
    loads: list[float] = field(default_factory=list)  # 1-minute load average before each run

    @property
    def bare(self) -> float:
        return statistics.median(self.bare_walls)

    @property
    def ingest(self) -> float:
        return statistics.median(self.ingest_walls)


def bench_size(size: int, workdir: Path, args: argparse.Namespace, can_ingest: bool) -> Result:
    print(f"size {size:,} (load average {os.getloadavg()[0]:.2f}):")
    files, events, nbytes, reused = corpus_for(size, workdir, args.file_events)
    if reused:
        print(f"  reusing {workdir / f'corpus-{size}'} ({events:,} events, {len(files)} files)")
    warm(files)
    paths = [str(p) for p in files]
    result = Result(size, events, len(files), nbytes)
    ws = workdir / f"ws-{size}.duckdb"
    for _ in range(args.repeat):
        bare = measured([sys.executable, "-c", BARE_PARSE, *paths], workdir)
        if bare.rc != 0 or bare.stdout.strip() != str(events):
            raise RuntimeError(
                f"bare parse: rc={bare.rc}, {bare.stdout.strip()!r} records, "
                f"expected {events}: {bare.stderr.strip()[-2000:]}"
            )
        result.bare_walls.append(bare.wall)
        result.bare_rss = max(result.bare_rss, bare.maxrss)
        print(
            f"  bare parse   {bare.wall:8.2f}s  {events / bare.wall:>10,.0f} rec/s"
            f"  peak RSS {bare.maxrss / MIB:7.1f} MiB"
        )
        if not can_ingest or result.error:
            continue
        for stale in workdir.glob(f"ws-{size}.duckdb*"):  # re-ingesting a file adds nothing
            _remove(stale)
        cmd = [*trustwatch_cmd(), "ingest", *paths, "--workspace", str(ws)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
        result.loads.append(os.getloadavg()[0])
        run = measured(cmd, workdir, args.rss_limit_mib * MIB)
        show_output(run)
        if run.killed:
            result.error = (
                f"ingest killed after {run.wall:.0f}s: RSS {run.maxrss / MIB:,.0f} MiB"
                f" > --rss-limit-mib {args.rss_limit_mib}"
            )
            print(f"  {result.error}")
            continue
        if run.rc != 0:
            result.error = f"trustwatch ingest exited {run.rc}"
            continue
        result.ingest_walls.append(run.wall)
        result.ingest_rss = max(result.ingest_rss, run.maxrss)
        result.rows = workspace_rows(ws)
        result.workspace_bytes = sum(p.stat().st_size for p in workdir.glob(f"ws-{size}.duckdb*"))
        print(
            f"  ingest       {run.wall:8.2f}s  {events / run.wall:>10,.0f} ev/s"
            f"   peak RSS {run.maxrss / MIB:7.1f} MiB  ratio {run.wall / bare.wall:.2f}"
            f"  table rows {table_rows(result.rows):,}"
        )
    if not args.keep:
        for path in workdir.glob(f"ws-{size}.duckdb*"):
            _remove(path)
        shutil.rmtree(workdir / f"corpus-{size}", ignore_errors=True)
    return result


def _remove(path: Path) -> None:
    """A workspace file, or the spill folder (``.tmp``) an interrupted ingest left beside it."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def versions() -> str:
    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "?",
    )
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"{cores} cores ({usable} usable), {cpu}\n"
        f"python {platform.python_version()}, evtx {pkg('evtx')}, duckdb {pkg('duckdb')}, "
        f"trustwatch {pkg('trustwatch')} @ {head or '?'}{' (uncommitted changes)' if dirty else ''}"
    )


def report(results: list[Result], floor: int, repeat: int, ingest_note: str) -> None:
    print()
    print(versions())
    print(f"peak RSS floor of the wrapper (/bin/true through it): {floor / MIB:.1f} MiB")
    print(f"times: median of {repeat} run(s) per side; peak RSS: max over the runs")
    cols = "events|files|GiB|parse s|parse rec/s|parse MiB|ingest s|ingest ev/s|ingest MiB|ratio"
    cols += "|table rows|MiB/M events|load"
    print(
        (
            "{:>11} {:>5} {:>5} {:>8} {:>11} {:>9} {:>9} {:>11} {:>10} {:>6} {:>11} {:>12} {:>5}"
        ).format(*cols.split("|"))
    )
    for r in results:
        line = (
            f"{r.events:>11,} {r.files:>5} {r.corpus_bytes / 2**30:>5.2f} {r.bare:>8.2f}"
            f" {r.events / r.bare:>11,.0f} {r.bare_rss / MIB:>9.1f}"
        )
        if r.ingest_walls and not r.error:
            line += (
                f" {r.ingest:>9.2f} {r.events / r.ingest:>11,.0f}"
                f" {r.ingest_rss / MIB:>10.1f} {r.ingest / r.bare:>6.2f}"
                f" {table_rows(r.rows):>11,}"
                f" {r.workspace_bytes / MIB / (r.events / 1e6):>12.1f}"
                f" {max(r.loads):>5.2f}"
            )
        else:
            line += f"  {r.error or 'ingest not run'}"
        print(line)
    done = [r for r in results if r.ingest_walls and not r.error]
    if done:
        worst = max(r.ingest / r.bare for r in done)
        peak = max(r.ingest_rss for r in done)
        verdict = "met" if worst <= RATIO_TARGET else "MISSED"
        goal = "met" if worst <= RATIO_GOAL else "not yet"
        print(
            f"ratio ingest/bare parse: worst {worst:.2f} (target <= {RATIO_TARGET}: {verdict}; "
            f"product goal <= {RATIO_GOAL}: {goal})"
        )
        verdict = "met" if peak < RSS_TARGET else "MISSED"
        print(f"ingest peak RSS: max {peak / MIB:.0f} MiB (target < 1024 MiB: {verdict})")
        if len(done) > 1:
            small, large = done[0], done[-1]
            print(
                f"ingest peak RSS {large.events:,} / {small.events:,} events: "
                f"{large.ingest_rss / small.ingest_rss:.2f}x (flat = ~1.0)"
            )
            scale = (large.ingest / large.bare) / (small.ingest / small.bare)
            verdict = "met" if scale <= SCALE_TARGET else "MISSED"
            print(
                f"ratio at {large.events:,} / ratio at {small.events:,} events: {scale:.2f} "
                f"(linear = ~1.0; target <= {SCALE_TARGET}: {verdict})"
            )
        tables = ", ".join(f"{k} {v:,}" for k, v in done[-1].rows.items() if v)
        print(f"workspace rows after the {done[-1].events:,}-event ingest: {tables or 'none'}")
    if ingest_note:
        print(ingest_note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000000,5000000,10000000", help="comma-separated event counts"
    )
    parser.add_argument("--memory-limit", help="passed to trustwatch ingest --memory-limit")
    parser.add_argument("--workdir", type=Path, help="corpora and workspaces (default: a tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep corpora and workspaces")
    parser.add_argument("--file-events", type=int, default=250_000, help="events per EVTX file")
    parser.add_argument("--quick", action="store_true", help="one 100k-event run, files of 25k")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side (median taken)")
    parser.add_argument(
        "--rss-limit-mib",
        type=int,
        default=os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 6 // 10 // MIB,
        help="kill the ingest above this RSS (default: 60%% of RAM; 0: no limit)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        sizes, args.file_events = [100_000], 25_000
    workdir = args.workdir or Path(tempfile.gettempdir()) / "trustwatch-bench-ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    can_ingest, help_text = ingest_available()
    note = ""
    if not can_ingest:
        note = (
            "trustwatch ingest is NOT available (`trustwatch ingest --help` failed: "
            f"{help_text.splitlines()[-1] if help_text else 'no output'}); "
            "only the bare parse was measured, no ingest figures exist for this run"
        )
        print(note)
    floor = measured(["/bin/true"], workdir).maxrss
    results = [bench_size(size, workdir, args, can_ingest) for size in sizes]
    (workdir / "run.json").unlink(missing_ok=True)
    report(results, floor, args.repeat, note)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if can_ingest and all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
