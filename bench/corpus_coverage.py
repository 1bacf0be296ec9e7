"""Measure how much of the real-world KQL corpus trustwatch parses, compiles and runs.

Reads ``manifest.csv`` of the shared corpus (``../shared/kql-corpus`` by default) and, for every
query Microsoft's own parser accepts (``official_parse_ok == "True"``):

* parses it with :func:`trustwatch.kql.parser.parse_query`;
* if every table it reads (manifest ``tables``, ``;``-separated, ``*`` ignored) has a shipped
  schema, compiles it and runs it on one shared :class:`trustwatch.api.Session` in which every
  table exists, empty and fully typed, with a fixed ``now``.

Prints totals, the parse and run rates with their denominators, the top failure causes (error
code + message with quoted names stripped), the unknown or unsupported functions and operators
by name, and, with ``--list-failures``, every failing query id with its message.

Usage::

    .venv/bin/python bench/corpus_coverage.py [--corpus DIR] [--list-failures] [--timeout S]
"""

from __future__ import annotations

import argparse
import csv
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from trustwatch.api import Session, typed_result
from trustwatch.errors import EngineError, TrustwatchError
from trustwatch.kql.compiler import CompiledStatement
from trustwatch.kql.parser import parse_query
from trustwatch.schema.model import builtin_schemas

T = TypeVar("T")

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "kql-corpus"
FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
PARSE_TARGET = 95.0
RUN_TARGET = 70.0
TOP = 15

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
# (kind, pattern) pairs naming the construct a compile/run failure is about.
_SUBJECTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unknown function", re.compile(r"^unknown (?:tabular )?function '([^']+)'")),
    ("unsupported function", re.compile(r"^the function '([^']+?)(?:\(\))?' is not supported")),
    ("unsupported operator", re.compile(r"^the '([^']+)' operator is not supported")),
    ("unsupported construct", re.compile(r"^(.+?) is not supported by trustwatch")),
    ("unknown column", re.compile(r"^unknown column(?: or variable)? '([^']+)'")),
    ("unknown table", re.compile(r"^(?:unknown table|no table matches) '([^']+)'")),
    ("type mismatch", re.compile(r"^(cannot compare .+)$")),
)


class QueryTimeout(Exception):
    """A query exceeded the per-query time limit."""


@dataclass(slots=True)
class Failure:
    """One query that did not make it through a stage."""

    query_id: str
    stage: str  # parse | compile | execute
    code: str
    message: str
    context: str = ""  # for syntax errors: the construct the error is inside (heuristic)

    @property
    def group(self) -> str:
        return f"{self.code}  {normalise(self.message)}"


@dataclass(slots=True)
class Outcome:
    """What happened to one query."""

    query_id: str
    eligible_for_run: bool
    parse_failure: Failure | None = None
    run_failure: Failure | None = None
    seconds: float = 0.0


def first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else ""


def normalise(message: str) -> str:
    """The message's first line with quoted names replaced, so similar errors group together."""
    return _QUOTED.sub("'…'", first_line(message))[:160]


def subject_of(message: str) -> tuple[str, str] | None:
    """The (kind, name) of the function, operator, column or construct a message is about."""
    first = first_line(message)
    for kind, pattern in _SUBJECTS:
        match = pattern.search(first)
        if match:
            return kind, match.group(1)
    return None


def syntax_context(text: str, offset: int) -> str:
    """Name the construct a syntax error sits in, to group failures by what is missing.

    A heuristic over the raw text (string literals and comments are not skipped): the call with
    an unclosed ``(`` before the error (``externaldata(…)``), else the token the error points at
    (``(union …)``, ``search``), prefixed for punctuation by the statement's last pipe operator
    or first word (``union … *``, ``| extend … [``).
    """
    before = text[max(0, offset - 2000) : offset]
    call = _enclosing_call(before)
    if call:
        return f"{call}(…)"
    after = text[offset : offset + 80]
    if match := re.match(r"\(\s*([A-Za-z_][\w-]*)", after):
        return f"({match.group(1)} …)"
    if match := re.match(r"[A-Za-z_][\w-]*", after):
        return match.group(0)
    match = re.match(r"[^\w\s]+|\S+", after.lstrip())
    token = match.group(0)[:12] if match else "<end>"
    statement = before[before.rfind(";") + 1 :]
    ops = re.findall(r"\|\s*([A-Za-z][\w-]*)", statement)
    if ops:
        return f"| {ops[-1]} … {token}"
    lines = [ln for ln in statement.splitlines() if ln.strip() and not ln.strip().startswith("//")]
    words = re.findall(r"[A-Za-z_][\w-]*", lines[0]) if lines else []
    return f"{words[0]} … {token}" if words else token


def _enclosing_call(before: str) -> str | None:
    """The name before the innermost '(' left open at the end of ``before``, if any."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        ch = before[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth == 0:
                match = re.search(r"([A-Za-z_][\w-]*)\s*$", before[:i])
                return match.group(1) if match else None
            depth -= 1
        elif ch == ";" and depth == 0:
            return None
    return None


@contextmanager
def time_limit(seconds: float, on_timeout: Callable[[], None]) -> Iterator[threading.Event]:
    """Raise QueryTimeout in Python code after ``seconds``, and call ``on_timeout`` from a thread.

    SIGALRM interrupts pure-Python work (parsing, compiling); ``on_timeout`` (the DuckDB
    connection's ``interrupt``) stops a query running inside the engine. The yielded event is
    set when the limit was hit. Without SIGALRM (Windows) only the engine interrupt applies.
    """
    fired = threading.Event()

    def _fire() -> None:
        fired.set()
        on_timeout()

    timer = threading.Timer(seconds, _fire)
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    previous = None
    if use_alarm:

        def _alarm(signum: int, frame: object) -> None:
            fired.set()
            raise QueryTimeout(f"exceeded {seconds:g}s")

        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds + 0.5)  # leave the engine interrupt first go
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        timer.join()
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def guarded(
    action: Callable[[], T],
    seconds: float,
    on_timeout: Callable[[], None],
    query_id: str,
    stage: str,
    text: str = "",
) -> Failure | None:
    """Run ``action`` under the time limit and turn any error into a Failure (None on success)."""
    try:
        with time_limit(seconds, on_timeout) as fired:
            try:
                action()
            except EngineError as exc:
                if fired.is_set():
                    raise QueryTimeout(f"exceeded {seconds:g}s") from exc
                raise
    except QueryTimeout as exc:
        return Failure(query_id, stage, "TIMEOUT", str(exc))
    except TrustwatchError as exc:
        diag = exc.diagnostic
        context = ""
        if exc.code.startswith("KQL1") and diag.span is not None and text:
            context = syntax_context(text, diag.span.start)
        return Failure(query_id, stage, exc.code, diag.message, context)
    except RecursionError as exc:
        return Failure(query_id, stage, "INTERNAL", f"RecursionError: {exc}")
    except Exception as exc:  # noqa: BLE001 - a crash is a finding to report, not a reason to stop
        return Failure(query_id, stage, "INTERNAL", f"{type(exc).__name__}: {exc}")
    return None


def read_manifest(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tables_of(row: dict[str, str]) -> list[str]:
    return [t.strip() for t in row.get("tables", "").split(";") if t.strip() and t.strip() != "*"]


def measure(corpus: Path, timeout: float, now: datetime) -> tuple[list[Outcome], int]:
    """Parse, compile and run each officially-parseable query; return outcomes and manifest size."""
    rows = read_manifest(corpus)
    known = set(builtin_schemas())
    session = Session()  # every table exists, empty and fully typed
    outcomes: list[Outcome] = []
    try:
        for row in rows:
            if row.get("official_parse_ok") == "True":
                outcomes.append(_measure_one(session, corpus, row, known, timeout, now))
    finally:
        session.engine.close()
    return outcomes, len(rows)


def _measure_one(
    session: Session,
    corpus: Path,
    row: dict[str, str],
    known: set[str],
    timeout: float,
    now: datetime,
) -> Outcome:
    query_id = row["id"]
    text = (corpus / query_id).read_text(encoding="utf-8")
    outcome = Outcome(query_id, all(t in known for t in tables_of(row)))
    started = time.perf_counter()
    outcome.parse_failure = guarded(
        lambda: parse_query(text, query_id),
        timeout,
        session.engine.con.interrupt,
        query_id,
        "parse",
        text,
    )
    if outcome.eligible_for_run:
        if outcome.parse_failure is not None:
            outcome.run_failure = outcome.parse_failure
        else:
            outcome.run_failure = _compile_and_run(session, text, now, timeout, query_id)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _compile_and_run(
    session: Session, text: str, now: datetime, timeout: float, query_id: str
) -> Failure | None:
    """Compile (stage ``compile``), then run every statement on the engine (stage ``execute``)."""
    interrupt = session.engine.con.interrupt
    compiled: list[CompiledStatement] = []

    def _compile() -> None:
        compiled.extend(session.compile(text, now, query_id)[0])

    def _execute() -> None:
        for statement in compiled:
            typed_result(session.engine.execute(statement.sql), statement.columns)

    failure = guarded(_compile, timeout, interrupt, query_id, "compile", text)
    if failure is not None:
        return failure
    return guarded(_execute, timeout, interrupt, query_id, "execute", text)


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "  n/a"


def print_counter(title: str, counter: Counter[str], total: int, top: int = TOP) -> None:
    print(f"\n{title}")
    if not counter:
        print("  (none)")
        return
    for key, count in counter.most_common(top):
        print(f"  {count:4d}  {pct(count, total)}  {key}")
    rest = len(counter) - top
    if rest > 0:
        print(f"  … {rest} more distinct causes")


def _target(value: int, whole: int, target: float) -> str:
    met = whole > 0 and 100.0 * value / whole >= target
    return f"(target >= {target:.0f}%: {'MET' if met else 'NOT MET'})"


def report(outcomes: list[Outcome], manifest_rows: int, list_failures: bool) -> None:
    accepted = len(outcomes)
    parsed = sum(1 for o in outcomes if o.parse_failure is None)
    eligible = [o for o in outcomes if o.eligible_for_run]
    n_eligible = len(eligible)
    ran = sum(1 for o in eligible if o.run_failure is None)
    parse_failures = [o.parse_failure for o in outcomes if o.parse_failure is not None]
    run_failures = [
        o.run_failure
        for o in eligible
        if o.run_failure is not None and o.run_failure.stage != "parse"
    ]
    unparsed = sum(1 for o in eligible if o.parse_failure is not None)
    compiled = sum(1 for o in eligible if o.run_failure is None or o.run_failure.stage == "execute")

    print("=" * 78)
    print("trustwatch KQL corpus coverage")
    print("=" * 78)
    print(f"manifest rows                        : {manifest_rows}")
    print(f"accepted by Microsoft's parser       : {accepted}")
    print(
        f"  parse here                         : {parsed}/{accepted} = {pct(parsed, accepted)}"
        f"   {_target(parsed, accepted, PARSE_TARGET)}"
    )
    print(f"  reading only tables with a schema  : {n_eligible} (the run denominator)")
    print(
        f"    parse                            : {n_eligible - unparsed}/{n_eligible}"
        f" = {pct(n_eligible - unparsed, n_eligible)}"
    )
    print(
        f"    compile                          : {compiled}/{n_eligible}"
        f" = {pct(compiled, n_eligible)}"
    )
    print(
        f"    compile and run (empty tables)   : {ran}/{n_eligible} = {pct(ran, n_eligible)}"
        f"   {_target(ran, n_eligible, RUN_TARGET)}"
    )
    print(f"  not run (a table has no schema)    : {accepted - n_eligible}")
    slowest = sorted(outcomes, key=lambda o: -o.seconds)[:3]
    print(
        f"time: {sum(o.seconds for o in outcomes):.1f}s in all; slowest: "
        + ", ".join(f"{o.query_id} {o.seconds:.1f}s" for o in slowest)
    )

    print_counter(
        f"Top {TOP} parse failure causes ({len(parse_failures)} failures;"
        f" % of {accepted} accepted):",
        Counter(f.group for f in parse_failures),
        accepted,
    )
    print_counter(
        "Parse failures by construct (heuristic: the enclosing call, the token at the"
        " error, or the operator):",
        Counter(f"{f.context or '?'}  [{f.code}]" for f in parse_failures),
        accepted,
    )
    print_counter(
        f"Top {TOP} compile/run failure causes ({len(run_failures)} parsed but failing,"
        f" besides {unparsed} unparsed; % of {n_eligible} run):",
        Counter(f"[{f.stage}] {f.group}" for f in run_failures),
        n_eligible,
    )
    subjects: Counter[str] = Counter()
    for failure in run_failures:
        subject = subject_of(failure.message)
        if subject:
            subjects[f"{subject[0]}: {subject[1]}"] += 1
    print_counter(
        "Compile/run failures by kind:",
        Counter(k.split(":")[0] for k in subjects.elements()),
        n_eligible,
    )
    print_counter(
        "Top unknown/unsupported functions, operators and constructs, by name:",
        Counter(
            {
                k: v
                for k, v in subjects.items()
                if not k.startswith(("unknown column", "type mismatch"))
            }
        ),
        n_eligible,
        25,
    )
    print_counter(
        "Top unknown columns (schema gaps or the queries' own mistakes):",
        Counter({k: v for k, v in subjects.items() if k.startswith("unknown column")}),
        n_eligible,
        10,
    )

    if list_failures:
        print("\nParse failures (id: code message [construct]):")
        for f in parse_failures:
            print(f"  {f.query_id}: {f.code} {first_line(f.message)}  [{f.context}]")
        print("\nCompile/run failures (id: stage code message):")
        for f in run_failures:
            print(f"  {f.query_id}: {f.stage} {f.code} {first_line(f.message)[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help=f"corpus directory holding manifest.csv (default: {DEFAULT_CORPUS})",
    )
    parser.add_argument(
        "--list-failures", action="store_true", help="print every failing id with its message"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="time limit per query and stage, in seconds (default 30)",
    )
    parser.add_argument(
        "--now",
        default=FIXED_NOW.isoformat(),
        help="the fixed value of now(), ISO 8601 (default %(default)s)",
    )
    args = parser.parse_args(argv)

    corpus: Path = args.corpus.resolve()
    if not (corpus / "manifest.csv").is_file():
        print(f"error: no manifest.csv in {corpus}", file=sys.stderr)
        return 2
    now = datetime.fromisoformat(args.now)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    outcomes, manifest_rows = measure(corpus, args.timeout, now)
    report(outcomes, manifest_rows, args.list_failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
