"""Long fuzz runs: the properties of ``tests/fuzz`` with random seeds, for minutes per target.

Targets (``--target``, repeatable; ``kql``, ``readers`` and ``all`` name groups):

- ``kql-parse``: generated, mutated (from the generator, the conformance suite and, when
  present, ``../shared/kql-corpus``) and huge queries parse or fail with a located
  ``TrustwatchError``;
- ``kql-fmt``: the same inputs, printed by ``kql fmt`` and parsed again, give the same tree;
- ``kql-run``: generated and mutated queries compile and run on DuckDB (three tables with a few
  odd rows, the others empty) or fail located;
- ``kql-huge``: long ``or``/``in`` chains, deep nesting, hundreds of stages, wide unions
  (sizes up to 10,000) parse, print and compile, or are refused located;
- ``readers``: mutated real files (``tests/fuzz/mutation.py``) detected and read: only
  batches and rejections, only ``TrustwatchError``;
- ``workspace``: each mutated file ingested beside an intact one: per file ``read == stored +
  quarantined + duplicates`` and the intact file keeps every record.

Each target runs for ``--minutes`` or ``--examples`` inputs, whichever ends first, with the
hypothesis generator (no shrinking: the run keeps going after a failure). An input that breaks
a property is saved under ``--out`` (default ``bench/out/fuzz``), one folder per distinct
failure (the property, the exception and the innermost trustwatch frame), with a ``.txt``
saying what broke. An input that takes longer than ``--timeout`` seconds is counted as slow
and saved too, and the target goes on in a new process; so does a target whose process died
(the input it was checking is saved as a failure). Printed per target: inputs tried, results
(ok / refused, with the most common error codes), failures, distinct failures, slow inputs and
inputs per second. Usage::

    .venv/bin/python bench/fuzz.py --minutes 5                  # every target, 5 minutes each
    .venv/bin/python bench/fuzz.py --target kql --examples 2000 --seed 1
    nice -n 19 .venv/bin/python bench/fuzz.py --target readers --minutes 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.fuzz: the strategies and properties the tests use
from tests.fuzz import kql_grammar as grammar  # noqa: E402
from tests.fuzz import mutation  # noqa: E402
from tests.fuzz.properties import (  # noqa: E402
    PropertyFailed,
    check_parse,
    check_pipeline,
    check_reader,
    check_round_trip,
    check_workspace,
)

INTACT = mutation.SAMPLES / "spec-test-1-certutil-root.sysmon.xml"
GROUPS = {
    "kql": ["kql-parse", "kql-fmt", "kql-run", "kql-huge"],
    "readers": ["readers", "workspace"],
}
GROUPS["all"] = GROUPS["kql"] + GROUPS["readers"]
ROUND = 200  # examples per hypothesis run (each run has its own seed)
RESTART = 4  # a child's exit status after a slow input: go on in a new process


class InputTimeout(BaseException):
    """One input ran past ``--timeout`` (raised by SIGALRM)."""


@dataclass
class Tally:
    """What one target's inputs gave."""

    tried: int = 0
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    slow: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # signature -> inputs
    smallest: dict[str, int] = field(default_factory=dict)  # signature -> its smallest input
    seconds: float = 0.0


# --- targets -------------------------------------------------------------------------------------


def _kql_inputs() -> st.SearchStrategy[str]:
    bases = [grammar.queries(), grammar.corpus_queries()]
    if grammar.shared_corpus():
        bases.append(st.sampled_from(grammar.shared_corpus()))
    return st.one_of(
        grammar.queries(max_stages=10, max_depth=4),
        *(grammar.mutated(base) for base in bases),
        grammar.huge(sizes=(10, 200, 1_100)),
        *(bases[2:]),  # the real-world corpus as it is
    )


def _huge_check(text: str) -> str:
    outcome = check_parse(text)
    check_round_trip(text)
    if outcome == "ok":
        outcome = check_pipeline(text, run=False)
    return outcome


def _with_file(check: Callable[[Path], str]) -> Callable[[mutation.Recipe], str]:
    def run(recipe: mutation.Recipe) -> str:
        with tempfile.TemporaryDirectory(prefix="twfuzz-") as folder:
            path = Path(folder) / recipe.seed
            path.write_bytes(recipe.build())
            return check(path)

    return run


_intact: list[int] = []


def _workspace_check(path: Path) -> str:
    if not _intact:
        from trustwatch.ingest import pipeline
        from trustwatch.ingest.workspace import Workspace

        planned, _ = pipeline.plan([INTACT])
        _intact.append(Workspace(None).ingest(planned)[0].stored)
        if not _intact[0]:
            raise RuntimeError(f"{INTACT.name} stores no record on its own: nothing to compare")
    return check_workspace([path, INTACT], intact={str(INTACT): _intact[0]})


def targets() -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], str]]]:
    """Target name -> (input strategy, the check that returns an outcome or raises)."""
    return {
        "kql-parse": (_kql_inputs(), check_parse),
        "kql-fmt": (_kql_inputs(), check_round_trip),
        "kql-run": (_kql_inputs(), check_pipeline),
        "kql-huge": (grammar.huge(sizes=(10, 200, 1_100, 2_500, 10_000)), _huge_check),
        "readers": (mutation.recipes(max_edits=4), _with_file(check_reader)),
        "workspace": (mutation.recipes(), _with_file(_workspace_check)),
    }


# --- running -------------------------------------------------------------------------------------


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise InputTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_FRAME = re.compile(r'File "[^"]*/src/(trustwatch/[^"]+)", line (\d+), in (\w+)')


def signature(exc: PropertyFailed) -> str:
    """What tells one failure from another: property, exception, innermost trustwatch frame."""
    cause = exc.__cause__
    if cause is not None:
        frames = _FRAME.findall("".join(traceback.format_exception(cause)))
        where = f"{frames[-1][0]}:{frames[-1][2]}" if frames else "outside trustwatch"
        return f"{exc.prop} | {type(cause).__name__} | {where}"
    first = re.sub(r"\d+", "N", exc.detail.splitlines()[0] if exc.detail else "")
    return f"{exc.prop} | {first[:120]}"


def _save(out: Path, target: str, sig: str, value: Any, detail: str, n: int) -> Path:
    folder = out / target / hashlib.sha1(sig.encode()).hexdigest()[:10]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signature.txt").write_text(sig + "\n", encoding="utf-8")
    path = _write_input(folder, str(n), value)
    literal = repr(value) if len(repr(value)) < 20_000 else f"<{_size(value):,} characters: {path}>"
    (folder / f"{n}.txt").write_text(f"{literal}\n\n{detail}\n", encoding="utf-8")
    return path


def _write_input(folder: Path, stem: str, value: Any) -> Path:
    for old in folder.glob(f"{stem}[-.]*"):
        old.unlink()
    if isinstance(value, str):
        path = folder / f"{stem}.kql"
        path.write_bytes(value.encode("utf-8", "surrogatepass"))
    else:
        path = folder / f"{stem}-{value.seed}"
        path.write_bytes(value.build())
        (folder / f"{stem}.recipe").write_text(repr(value) + "\n", encoding="utf-8")
    return path


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(value.build())


def run_target(
    name: str, minutes: float | None, examples: int | None, run_seed: int, out: Path, timeout: float
) -> Tally:
    """Run one target in this process; the tally and the input being checked go to ``out``.

    The tally is written every few seconds and the current input before each check, so that
    the parent can account for a process that dies (a stack overflow aborts the interpreter).
    """
    strategy, check = targets()[name]
    tally = Tally()
    stop = time.monotonic() + minutes * 60 if minutes else float("inf")
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    written = [time.monotonic()]

    def one(value: Any) -> None:
        if time.monotonic() > stop or (examples and tally.tried >= examples):
            return  # the rest of this round: generated, not checked
        tally.tried += 1
        _write_input(folder, "current", value)
        try:
            with time_limit(timeout):
                outcome = check(value)
        except PropertyFailed as exc:
            tally.failed += 1
            sig = signature(exc)
            n = tally.failures.get(sig, 0) + 1
            tally.failures[sig] = n
            size = _size(value)
            if n <= 3 or size < tally.smallest.get(sig, size + 1):
                _save(out, name, sig, value, str(exc), n)
            tally.smallest[sig] = min(size, tally.smallest.get(sig, size))
            outcome = "failed"
        except InputTimeout:
            tally.slow += 1
            tally.seconds = time.monotonic() - started
            _save(out, name, f"slow input (> {timeout:g} s)", value, "", tally.slow)
            _write_tally(folder, tally)
            # the check may go on in a thread (kql.deep runs passes in one) or hold DuckDB:
            # a new process goes on with the next inputs
            os._exit(RESTART)
        if outcome == "ok":
            tally.ok += 1
        elif outcome != "failed":
            tally.refused[outcome] += 1
        if time.monotonic() - written[0] > 2:
            tally.seconds = time.monotonic() - started
            _write_tally(folder, tally)
            written[0] = time.monotonic()

    started = time.monotonic()
    # rounds of ROUND examples, each from its own seed: hypothesis has no clean way to stop a
    # run on time (an exception raised to stop it counts as a bug, and it goes on looking)
    round_seed = run_seed
    try:
        while time.monotonic() < stop and not (examples and tally.tried >= examples):
            rounds = settings(
                max_examples=ROUND,
                phases=[Phase.generate],
                derandomize=False,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                verbosity=Verbosity.quiet,  # no multi-megabyte "Falsifying example" reprs
            )
            rounds(seed(round_seed)(given(strategy)(one)))()
            round_seed += 1
    except BaseException as exc:  # said in a few lines, without the input
        tally.seconds = time.monotonic() - started
        _write_tally(folder, tally)
        tail = "".join(traceback.format_exception(exc, limit=-12))
        print(
            f"fuzz child stopped: {type(exc).__name__}: {str(exc)[:300]}\n{tail[-8000:]}",
            file=sys.stderr,
        )
        raise SystemExit(3) from None
    tally.seconds = time.monotonic() - started
    _write_tally(folder, tally)
    return tally


def _write_tally(folder: Path, tally: Tally) -> None:
    data = {**asdict(tally), "refused": dict(tally.refused)}  # asdict miscopies a Counter
    (folder / ".tally.tmp").write_text(json.dumps(data), encoding="utf-8")
    (folder / ".tally.tmp").replace(folder / ".tally.json")


def _read_tally(folder: Path) -> Tally:
    path = folder / ".tally.json"
    if not path.is_file():
        return Tally()
    data = json.loads(path.read_text(encoding="utf-8"))
    return Tally(**{**data, "refused": Counter(data["refused"])})


def _merge(into: Tally, part: Tally) -> None:
    into.tried += part.tried
    into.ok += part.ok
    into.refused.update(part.refused)
    into.failed += part.failed
    into.slow += part.slow
    for sig, n in part.failures.items():
        into.failures[sig] = into.failures.get(sig, 0) + n
        into.smallest[sig] = min(into.smallest.get(sig, part.smallest[sig]), part.smallest[sig])
    into.seconds += part.seconds


def supervise(name: str, args: argparse.Namespace, examples: int | None, run_seed: int) -> Tally:
    """Run ``name`` in child processes until its time or inputs are used up.

    A child that dies (killed by a signal, or aborted by a fatal error) counts its current
    input as a failure, saved with the child's last words, and a new child goes on with the
    next seed.
    """
    total = Tally()
    folder = args.out / name
    stop = time.monotonic() + args.minutes * 60 if args.minutes else None
    child_seed = run_seed
    while True:
        left_minutes = (stop - time.monotonic()) / 60 if stop else None
        left_examples = examples - total.tried if examples else None
        if (left_minutes is not None and left_minutes <= 0) or (
            left_examples is not None and left_examples <= 0
        ):
            return total
        (folder / ".tally.json").unlink(missing_ok=True)
        command = [sys.executable, __file__, "--child", name, "--seed", str(child_seed)]
        command += ["--out", str(args.out), "--timeout", str(args.timeout)]
        command += ["--memory-gb", str(args.memory_gb)]
        command += ["--minutes", str(left_minutes)] if left_minutes is not None else []
        command += ["--examples", str(left_examples)] if left_examples is not None else []
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        part = _read_tally(folder)
        _merge(total, part)
        if child.returncode == 0:
            return total
        if child.returncode == RESTART:
            child_seed += 100_003
            continue
        # the child died on its current input: that input is a failure of its own
        how = f"signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}"
        said = [
            ln
            for ln in child.stderr.splitlines()
            if ln.startswith(("fuzz child stopped:", "Fatal Python error"))
        ]
        sig = f"process died ({how}) | {said[0][:120] if said else 'no message'}"
        total.failed += 1
        total.failures[sig] = total.failures.get(sig, 0) + 1
        current = sorted(folder.glob("current*"))
        size = current[0].stat().st_size if current else 0
        total.smallest[sig] = min(total.smallest.get(sig, size), size)
        saved = folder / hashlib.sha1(sig.encode()).hexdigest()[:10]
        saved.mkdir(parents=True, exist_ok=True)
        (saved / "signature.txt").write_text(sig + "\n", encoding="utf-8")
        n = total.failures[sig]
        for path in current:
            path.replace(saved / path.name.replace("current", str(n)))
        lines = [ln if len(ln) < 300 else ln[:300] + " ..." for ln in child.stderr.splitlines()]
        (saved / f"{n}.txt").write_text("\n".join(lines[-200:]) + "\n", encoding="utf-8")
        child_seed += 100_003  # far from the seeds of the dead child's rounds


# --- report --------------------------------------------------------------------------------------


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


def report(results: dict[str, Tally], run_seed: int, out: Path) -> None:
    print()
    print(
        f"{'target':<10} {'tried':>8} {'ok':>8} {'refused':>8} {'failed':>7} {'distinct':>8} "
        f"{'slow':>5} {'s':>7} {'/s':>7}  most common refusals"
    )
    for name, t in results.items():
        common = ", ".join(f"{code} {n}" for code, n in t.refused.most_common(3))
        rate = t.tried / t.seconds if t.seconds else 0.0
        print(
            f"{name:<10} {t.tried:>8,} {t.ok:>8,} {sum(t.refused.values()):>8,} {t.failed:>7,} "
            f"{len(t.failures):>8} {t.slow:>5} {t.seconds:>7.1f} {rate:>7.1f}  {common}"
        )
    for name, t in results.items():
        for sig, n in sorted(t.failures.items(), key=lambda kv: -kv[1]):
            print(f"  {name}: {n:,} x {sig} (smallest input {t.smallest[sig]:,} bytes/chars)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nseed {run_seed}, commit {_commit()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load:.1f}; failing inputs under {out}"
    )
    summary = {
        name: {
            "tried": t.tried,
            "ok": t.ok,
            "refused": dict(t.refused),
            "failed": t.failed,
            "slow": t.slow,
            "failures": t.failures,
            "seconds": round(t.seconds, 1),
        }
        for name, t in results.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps({"seed": run_seed, "commit": _commit(), "targets": summary}, indent=2),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=[*targets(), *GROUPS])
    parser.add_argument("--minutes", type=float, help="per target")
    parser.add_argument("--examples", type=int, help="per target (default 200 without --minutes)")
    parser.add_argument("--seed", type=int, help="default: a random one, printed")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "fuzz")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per input")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one target, in this process
    args = parser.parse_args(argv)
    if args.child:
        if args.memory_gb:  # a runaway input fails with MemoryError, not the machine
            limit = int(args.memory_gb * (1 << 30))
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        run_target(args.child, args.minutes, args.examples, args.seed, args.out, args.timeout)
        return 0
    names: list[str] = []
    for target in args.target or ["all"]:
        names += [n for n in GROUPS.get(target, [target]) if n not in names]
    examples = args.examples if args.examples or args.minutes else 200
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    if not mutation.shared_seeds_present() and set(names) & set(GROUPS["readers"]):
        print(
            f"note: ../shared/data is absent ({mutation.DATA}): the readers fuzz only the "
            "repository's Defender sample"
        )
    results: dict[str, Tally] = {}
    bound = " / ".join(
        [
            *([f"{args.minutes:g} minutes"] if args.minutes else []),
            *([f"{examples} inputs"] if examples else []),
        ]
    )
    for name in names:
        print(f"{name}: {bound} ...", flush=True)
        results[name] = supervise(name, args, examples, run_seed)
        t = results[name]
        print(
            f"  {t.tried:,} tried, {t.failed:,} failed ({len(t.failures)} distinct), "
            f"{t.slow} slow, {t.seconds:.1f} s",
            flush=True,
        )
    report(results, run_seed, args.out)
    return 1 if any(t.failed or t.slow for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
