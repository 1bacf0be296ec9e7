"""How long trustwatch takes to give a first answer: import, a one-file query, the demo hunt.

Measured in this run, each as a child process, medians of ``--repeat`` runs (default 5):

(a) ``python -c 'import trustwatch'`` (target 0.4 s);
(b) ``trustwatch query --data <one EVTX> 'DeviceProcessEvents | take 10'`` (target 1 s);
(c) ``trustwatch hunt src/trustwatch/content/samples/hunt``, the demo (target 2 s; exit code 1,
    alerts found, is success).

*Cold*: every run gets a new, empty compile cache (``TRUSTWATCH_CACHE_DIR`` pointed at a fresh
temporary folder). *Warm*: the runs share one cache, filled by an untimed run before them.
Before either, one untimed run of each command writes Python's bytecode and fills the OS page
cache: the figures are those of an installed trustwatch, not of its first run ever.
``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment for that reason (with it,
every run compiles trustwatch's ~110 modules from source: ``--keep-env`` measures that).

Then, for (b) and (c), one in-process run each, cold and warm, with ``time.perf_counter``
around the public functions the command calls (ingest, rules and tuning loading, the session,
the hunt, enrichment, printing), printed as a breakdown. Usage::

    .venv/bin/python bench/latency.py [--repeat 5] [--evtx FILE] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVTX = (
    ROOT.parent
    / "shared"
    / "data"
    / "hayabusa_sample_evtx"
    / "Sysmon-27-BlockExeWrite_AbusingCertutil.evtx"
)
DEMO = ROOT / "src" / "trustwatch" / "content" / "samples" / "hunt"
QUERY = "DeviceProcessEvents | take 10"


# --- running children ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    label: str
    target_s: float
    argv: list[str]
    ok_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float
    cpu_s: float  # the child's user + system time
    code: int
    stderr: str


def trustwatch_argv() -> list[str]:
    """The console script beside this interpreter, as `pip install` makes it."""
    script = Path(sys.executable).with_name("trustwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from trustwatch.cli.main import main; main()"]


def scenarios(evtx: Path) -> list[Scenario]:
    tw = trustwatch_argv()
    return [
        Scenario(
            "import", "(a) import trustwatch", 0.4, [sys.executable, "-c", "import trustwatch"]
        ),
        Scenario(
            "query", "(b) query --data one.evtx", 1.0, [*tw, "query", "--data", str(evtx), QUERY]
        ),
        Scenario("demo", "(c) demo hunt", 2.0, [*tw, "hunt", str(DEMO)], (0, 1)),
    ]


SOURCE: Path | None = None  # --src: measure trustwatch from this source tree instead


def child_env(cache: Path, keep_env: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not keep_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if SOURCE is not None:  # ahead of the editable install's path entry
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    env["TRUSTWATCH_CACHE_DIR"] = str(cache)
    env.pop("COLUMNS", None)
    return env


def measured(argv: list[str], env: dict[str, str]) -> Run:
    """Run ``argv`` to completion: wall time, the child's CPU time, exit code, stderr."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, proc.returncode, err.read())


@dataclass(slots=True)
class Series:
    runs: list[Run] = field(default_factory=list)

    def ok(self, scenario: Scenario) -> bool:
        return all(r.code in scenario.ok_codes for r in self.runs)

    def summary(self) -> str:
        walls = [r.wall_s for r in self.runs]
        cpu = statistics.median(r.cpu_s for r in self.runs)
        return (
            f"{statistics.median(walls):6.2f} s ({min(walls):.2f}-{max(walls):.2f})"
            f"  cpu {cpu:5.2f} s"
        )

    def median(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)


def measure(scenario: Scenario, repeat: int, scratch: Path, keep_env: bool) -> dict[str, Series]:
    """Cold and warm series of one scenario (after an untimed warm-up run)."""
    measured(scenario.argv, child_env(scratch / f"{scenario.key}-warmup", keep_env))
    cold = Series()
    for i in range(repeat):
        cold.runs.append(
            measured(scenario.argv, child_env(scratch / f"{scenario.key}-cold-{i}", keep_env))
        )
    shared = scratch / f"{scenario.key}-warm"
    measured(scenario.argv, child_env(shared, keep_env))  # fills the cache
    warm = Series([measured(scenario.argv, child_env(shared, keep_env)) for _ in range(repeat)])
    return {"cold": cold, "warm": warm}


# --- the breakdown (runs inside a child) -------------------------------------------------------

# label, "module:attribute" (a function or Class.method the command looks up when it runs)
PHASES: dict[str, list[tuple[str, str]]] = {
    "query": [
        ("command module import", "trustwatch.cli.lazy:LazyGroup.get_command"),
        ("ingest: all (ingest_paths)", "trustwatch.cli.ingest_cmd:ingest_paths"),
        ("ingest: plan files", "trustwatch.ingest.pipeline:plan"),
        ("ingest: Workspace()", "trustwatch.ingest.workspace:Workspace.__init__"),
        ("ingest: read, map, store", "trustwatch.ingest.workspace:Workspace.ingest"),
        ("query views", "trustwatch.ingest.pipeline:query_views"),
        ("Session() (catalog)", "trustwatch.api:Session.__init__"),
        ("query: run (Session.run)", "trustwatch.api:Session.run"),
        ("query: parse + compile", "trustwatch.api:Session.compile"),
        ("query: DuckDB", "trustwatch.engines.duckdb:DuckDBEngine.execute_sql"),
        ("printing", "trustwatch.cli.render:print_result"),
    ],
    "demo": [
        ("command module import", "trustwatch.cli.lazy:LazyGroup.get_command"),
        ("rules (load_rules)", "trustwatch.rules.model:load_rules"),
        ("tuning (load_tuning)", "trustwatch.rules.tuning:load_tuning"),
        ("ingest: all (ingest_paths)", "trustwatch.cli.ingest_cmd:ingest_paths"),
        ("ingest: plan files", "trustwatch.ingest.pipeline:plan"),
        ("ingest: Workspace()", "trustwatch.ingest.workspace:Workspace.__init__"),
        ("ingest: read, map, store", "trustwatch.ingest.workspace:Workspace.ingest"),
        ("query views", "trustwatch.ingest.pipeline:query_views"),
        ("watchlists (Tuning.tables)", "trustwatch.rules.tuning:Tuning.tables"),
        ("Session() (catalog, watchlists)", "trustwatch.api:Session.__init__"),
        ("hunt: all (Hunter.run)", "trustwatch.rules.runner:Hunter.run"),
        ("hunt: compile rules", "trustwatch.rules.runner:Hunter.compile"),
        ("hunt: data span", "trustwatch.rules.runner:Hunter.span"),
        ("hunt: DuckDB", "trustwatch.engines.duckdb:DuckDBEngine.execute_sql"),
        ("certificate enrichment", "trustwatch.certs.enrich:enrich_hunt"),
        ("printing: account", "trustwatch.cli.hunt_cmd:_print_account"),
        ("printing: alerts", "trustwatch.cli.hunt_cmd:_print_alerts"),
    ],
}


@dataclass(slots=True)
class Phase:
    calls: int = 0
    inclusive: float = 0.0
    exclusive: float = 0.0  # minus the timed phases called inside it
    outermost: float = 0.0  # of calls made outside any other timed phase


class Clock:
    """Inclusive and exclusive (minus timed phases called inside) time per phase."""

    def __init__(self) -> None:
        self.phases: dict[str, Phase] = {}
        self._stack: list[list[float]] = []  # per open phase: [time in timed children]

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0])
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                inner = self._stack.pop()[0]
                phase = self.phases.setdefault(label, Phase())
                if self._stack:
                    self._stack[-1][0] += spent
                else:
                    phase.outermost += spent
                phase.calls += 1
                phase.inclusive += spent
                phase.exclusive += spent - inner

        return timed


def install(clock: Clock, phases: list[tuple[str, str]]) -> list[str]:
    """Wrap each phase's function in place; the phases not found (code moved) are returned."""
    missing = []
    for label, target in phases:
        module_name, _, path = target.partition(":")
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            missing.append(target)
            continue
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None:
            missing.append(target)
            continue
        setattr(owner, name, clock.wrap(label, fn))
    return missing


def breakdown_child(which: str, evtx: str, out: str) -> None:
    """One in-process run of ``which`` ("query" or "demo"), its phases written to ``out``."""
    started = time.perf_counter()
    import trustwatch.cli.main as cli_main

    imported = time.perf_counter()
    clock = Clock()
    modules = sorted({t.partition(":")[0] for _, t in PHASES[which]})
    missing = install(clock, PHASES[which])
    prepared = time.perf_counter()
    argv = ["query", "--data", evtx, QUERY] if which == "query" else ["hunt", str(DEMO)]
    code = 0
    with (
        Path(os.devnull).open("w", encoding="utf-8") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        try:
            cli_main.cli.main(argv, prog_name="trustwatch", standalone_mode=False)
        except SystemExit as exc:
            code = int(exc.code or 0)
    finished = time.perf_counter()
    gc.freeze()  # as the console script's main() does: no collection of everything at exit
    report = {
        "import trustwatch.cli.main": imported - started,
        "import modules of the phases": prepared - imported,
        "modules": modules,
        "run": finished - prepared,
        "code": code,
        "missing": missing,
        "phases": {
            label: [p.calls, p.inclusive, p.exclusive, p.outermost]
            for label, p in clock.phases.items()
        },
    }
    Path(out).write_text(json.dumps(report), encoding="utf-8")


def breakdown(which: str, evtx: Path, scratch: Path, keep_env: bool) -> None:
    """Cold and warm breakdowns of one command, side by side."""
    cache = scratch / f"breakdown-{which}"
    results: dict[str, dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for state in ("cold", "warm"):
        out = scratch / f"breakdown-{which}-{state}.json"
        argv = [sys.executable, __file__, "--breakdown-child", which, "--evtx", str(evtx)]
        run = measured([*argv, "--out", str(out)], child_env(cache, keep_env))
        if run.code != 0 or not out.exists():
            print(f"  {which} {state}: breakdown failed (exit {run.code})\n{run.stderr[-2000:]}")
            return
        results[state] = json.loads(out.read_text(encoding="utf-8"))
        walls[state] = run.wall_s
    cold, warm = results["cold"], results["warm"]
    print(f"\n{which}: where the time goes, one in-process run (ms, cold | warm cache)")
    print(f"  {'':44s} {'calls':>5s} {'inclusive':>15s} {'exclusive':>15s}")

    def row(
        label: str, calls: str, inclusive: tuple[float, float] | None, own: tuple[float, float]
    ) -> None:
        shown = f"{inclusive[0] * 1000:7.0f} | {inclusive[1] * 1000:5.0f}" if inclusive else ""
        print(f"  {label:44s} {calls:>5s} {shown:>15s} {own[0] * 1000:7.0f} | {own[1] * 1000:5.0f}")

    outside = (walls["cold"] - _in_process(cold), walls["warm"] - _in_process(warm))
    row("python start-up and exit, bench harness", "", None, outside)
    for key in ("import trustwatch.cli.main", "import modules of the phases"):
        row(key, "", None, (cold[key], warm[key]))
    rest = [cold["run"], warm["run"]]
    for label, _ in PHASES[which]:
        if label not in cold["phases"]:
            continue
        calls, c_in, c_ex, c_top = cold["phases"][label]
        _, w_in, w_ex, w_top = warm["phases"].get(label, [0, 0.0, 0.0, 0.0])
        rest[0] -= c_top
        rest[1] -= w_top
        row(label, str(calls), (c_in, w_in), (c_ex, w_ex))
    row("rest of the command (in no phase above)", "", None, (rest[0], rest[1]))
    row("total (child process, wall)", "", None, (walls["cold"], walls["warm"]))
    print(f"  exit code {cold['code']} | {warm['code']}; imported before the run: ", end="")
    print(", ".join(cold["modules"]))
    if cold["missing"]:
        print(f"  not found (code moved?), not timed: {', '.join(cold['missing'])}")


def _in_process(result: dict[str, Any]) -> float:
    return float(
        result["import trustwatch.cli.main"]
        + result["import modules of the phases"]
        + result["run"]
    )


# --- report -------------------------------------------------------------------------------------


def machine() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        cpuinfo = []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or "?",
    )
    return (
        f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}"
    )


def commit() -> str:
    if SOURCE is not None:
        return f"trustwatch from {SOURCE} (--src)"

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"trustwatch @ {head}" + (" (with uncommitted changes in the tree)" if dirty else "")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="trustwatch-latency-") as folder:
        yield Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per series (median)")
    parser.add_argument("--evtx", default=str(DEFAULT_EVTX), help="the file (b) queries")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--keep-env",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE (if set) in the children's environment",
    )
    parser.add_argument(
        "--src",
        help="measure the trustwatch package under this folder (e.g. an older commit's src/, "
        "from `git archive`) instead of the installed one",
    )
    parser.add_argument("--breakdown-child", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global SOURCE
    SOURCE = Path(args.src).resolve() if args.src else None
    if args.breakdown_child:
        breakdown_child(args.breakdown_child, args.evtx, args.out)
        return 0
    evtx = Path(args.evtx)
    if not evtx.is_file():
        print(f"no EVTX file at {evtx} (give one with --evtx)", file=sys.stderr)
        return 2

    print(machine())
    print(commit())
    bytecode = "kept" if args.keep_env else "removed for the children"
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    print(f"PYTHONDONTWRITEBYTECODE: {'set' if flag else 'not set'} here; {bytecode}")
    before = load()
    print(f"load average before: {before}")
    failed = False
    results: list[tuple[Scenario, dict[str, Series]]] = []
    with scratch_dir() as scratch:
        for scenario in scenarios(evtx):
            series = measure(scenario, args.repeat, scratch, args.keep_env)
            results.append((scenario, series))
            for state, s in series.items():
                if not s.ok(scenario):
                    failed = True
                    bad = next(r for r in s.runs if r.code not in scenario.ok_codes)
                    print(f"{scenario.label} {state}: exit {bad.code}\n{bad.stderr[-2000:]}")
        after = load()
        print(f"\nmedians of {args.repeat} runs, wall (min-max), and the child's CPU time")
        print(f"  {'':28s} {'target':>7s}   {'cold cache':34s} {'warm cache':34s}")
        for scenario, series in results:
            verdict = "met" if series["warm"].median() <= scenario.target_s else "missed"
            print(
                f"  {scenario.label:28s} {scenario.target_s:6.1f}s   "
                f"{series['cold'].summary():34s} {series['warm'].summary():34s} {verdict} (warm)"
            )
        print(f"load average after: {after} (before: {before})")
        if not args.no_breakdown:
            for which in ("query", "demo"):
                breakdown(which, evtx, scratch, args.keep_env)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
