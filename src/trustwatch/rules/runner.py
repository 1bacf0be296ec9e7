"""Running a rule pack as Sentinel would: scheduled runs, trigger, tuning, de-duplication.

``Hunter(session, tuning).run(rules, now=None)``:

* ``now=None`` (the default of ``hunt``): replay each rule's schedule across the data's time
  span (``schedule.replay_runs``) and keep each result once — forensic data is old, so the wall
  clock is never used.
* ``now=T``: one run per rule as at ``T``, over ``(T - queryPeriod, T]``.

Each run's rows first lose those an exclusion suppresses (counted per exclusion), then the
trigger (``triggerOperator``/``triggerThreshold``) decides on the rest, and rows already alerted
by an earlier run are dropped. ``AlertPerResult`` rules raise one alert per row, others one
alert per run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlglot import exp

from trustwatch.api import Session, typed_result
from trustwatch.errors import Source, TrustwatchError
from trustwatch.kql import ast
from trustwatch.kql.compiler import CatalogTable, CompiledStatement, compile_query
from trustwatch.kql.parser import parse_query
from trustwatch.rules import schedule
from trustwatch.rules.alerts import build_alert, row_key
from trustwatch.rules.model import Rule
from trustwatch.rules.tuning import Tuning

_PROBE_TIME = datetime(2001, 1, 1, tzinfo=UTC)
CLOCK_FUNCTIONS = frozenset({"now", "ago"})


@dataclass(slots=True)
class RuleStats:
    """What one rule did during a hunt."""

    rule: Rule
    runs: int = 0  # scheduled runs whose window held data
    evaluations: int = 0  # queries actually executed (equivalent runs are evaluated once)
    results: int = 0  # alerts Sentinel would raise without de-duplication
    alerts: int = 0
    suppressed: int = 0


@dataclass(slots=True)
class HuntResult:
    """Alerts and the account of how they were produced."""

    alerts: list[dict[str, Any]]
    stats: list[RuleStats]
    suppressed: dict[str, dict[str, int]]  # exclusion id -> rule name -> results suppressed
    daily: dict[tuple[str, str], dict[str, int]]  # (UTC day, rule name) -> counts
    span: tuple[datetime, datetime] | None  # earliest and latest TimeGenerated in the data
    now: datetime | None = None


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    source: Source
    statement: CompiledStatement | None  # None: compile per run (the query reads now())
    sql: str  # the prepared plan's name (fixed statements); each run executes it
    tables: list[CatalogTable]


class Hunter:
    """Runs rules over one session's tables."""

    def __init__(self, session: Session, tuning: Tuning | None = None) -> None:
        self.session = session
        self.tuning = tuning or Tuning()
        self.engine = session.engine
        self.catalog, self.window = schedule.window_catalog(dict(session.catalog))
        self._signers: dict[str, list[str]] | None = None

    # --- preparation ------------------------------------------------------------------------

    def compile(self, rule: Rule) -> _Compiled:
        """Compile a rule's query (located errors); find the tables it reads."""
        text = rule.runnable_query
        prefix_lines = text.count("\n") - rule.query.count("\n")
        source = Source(text, str(rule.path), line_offset=rule.query_line - prefix_lines)
        try:
            tree = parse_query(text, str(rule.path))
            last = compile_query(tree, self.catalog, _PROBE_TIME).statements[-1]
        except TrustwatchError as exc:
            raise exc.with_source(source) from None
        # a query that reads the clock is compiled again for each run, at the run's time
        fixed = not any(
            isinstance(node, ast.Call) and node.name in CLOCK_FUNCTIONS for node in tree.walk()
        )
        names = {t.name for t in last.sql.find_all(exp.Table)}
        # the stored tables behind the windows it reads: their times drive the schedule
        read = [self.session.catalog[n] for n, t in self.catalog.items() if t.sql_name in names]
        sql = ""
        if fixed:  # planned once; each run executes the plan with its own window parameters
            sql = self.engine.prepare(self.window.bind(last.sql).sql(dialect=self.engine.dialect))
        return _Compiled(rule, source, last if fixed else None, sql, read)

    def span(self) -> tuple[datetime, datetime] | None:
        """Earliest and latest TimeGenerated over every table with data."""
        time = exp.column("TimeGenerated", quoted=True)
        parts: list[exp.Query] = [
            exp.select(
                exp.alias_(exp.Min(this=time), "lo"), exp.alias_(exp.Max(this=time), "hi")
            ).from_(exp.to_table(t.sql_name, quoted=True))
            for t in self.session.catalog.values()
            if t.sql_name and t.schema.column("TimeGenerated") is not None
        ]
        if not parts:
            return None
        query = exp.select("min(lo)", "max(hi)").from_(schedule.union_all(parts).subquery("t"))
        lo, hi = self.engine.con.execute(query.sql(dialect="duckdb")).fetchall()[0]
        if lo is None:
            return None
        return _utc(lo), _utc(hi)

    # --- running ----------------------------------------------------------------------------

    def run(
        self,
        rules: Sequence[Rule],
        now: datetime | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> HuntResult:
        """Run every rule; all are compiled first, so a broken rule stops the hunt at once."""
        compiled = [self.compile(rule) for rule in rules]
        result = HuntResult([], [], {}, {}, self.span(), now)
        for item in compiled:
            result.stats.append(self._run_rule(item, now, result, on_progress))
        result.alerts.sort(key=lambda a: (datetime.fromisoformat(a["StartTime"]), a["AlertName"]))
        return result

    def _runs(self, item: _Compiled, now: datetime | None) -> tuple[list[schedule.Run], int]:
        rule = item.rule
        if now is not None:
            return [schedule.single_run(now, rule.query_period)], 1
        spans = schedule.activity(self.engine, item.tables, rule.query_frequency, rule.query_period)
        runs = list(
            schedule.replay_runs(
                spans, rule.query_frequency, rule.query_period, item.statement is None
            )
        )
        return runs, schedule.run_count(spans)

    def _run_rule(
        self,
        item: _Compiled,
        now: datetime | None,
        result: HuntResult,
        on_progress: Callable[[str, int, int], None] | None,
    ) -> RuleStats:
        rule = item.rule
        runs, grid_runs = self._runs(item, now)
        stats = RuleStats(rule, runs=grid_runs)
        seen: set[str] = set()
        suppressed_seen: set[str] = set()
        for done, run in enumerate(runs, 1):
            rows = self._evaluate(item, run)
            stats.evaluations += 1
            if on_progress is not None:
                on_progress(rule.name, done, len(runs))
            kept = []
            for row in rows:
                exclusion = self.tuning.suppressing(rule, row, self._signer_lookup)
                if exclusion is None:
                    kept.append(row)
                    continue
                key = row_key(row)
                if key not in suppressed_seen:
                    suppressed_seen.add(key)
                    stats.suppressed += 1
                    by_rule = result.suppressed.setdefault(exclusion.id, {})
                    by_rule[rule.name] = by_rule.get(rule.name, 0) + 1
            if not kept or not rule.triggered(len(kept)):
                continue
            per_result = rule.grouping == "AlertPerResult"
            per_run = len(kept) if per_result else 1
            stats.results += per_run * run.repeats
            for repeat in range(run.repeats):  # equivalent runs raise the same alerts again
                at = (
                    run.at
                    if not repeat
                    else schedule.grid_time(run.k + repeat, rule.query_frequency)
                )
                self._count_daily(result, rule, at, per_run, "results")
            fresh = []
            for row in kept:
                key = row_key(row)
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
            groups = [[r] for r in fresh] if per_result else ([fresh] if fresh else [])
            for group in groups:
                result.alerts.append(
                    build_alert(
                        rule,
                        group,
                        run_at=run.at,
                        window_start=run.start,
                        results_in_run=len(kept),
                    )
                )
                stats.alerts += 1
            self._count_daily(result, rule, run.at, len(groups), "alerts")
        return stats

    def _evaluate(self, item: _Compiled, run: schedule.Run) -> list[dict[str, Any]]:
        params = self.window.params(run.start, run.at)
        statement = item.statement
        if statement is None:
            try:
                tree = parse_query(item.source.text, item.source.name)
                statement = compile_query(tree, self.catalog, run.at).statements[-1]
            except TrustwatchError as exc:
                raise exc.with_source(item.source) from None
            bound = self.window.bind(statement.sql).sql(dialect=self.engine.dialect)
            arrow = self.engine.execute_sql(bound, params)
        else:
            arrow = self.engine.execute_prepared(item.sql, params)
        table = typed_result(arrow, statement.columns)
        rows: list[dict[str, Any]] = table.to_pylist()
        dynamic = [name for name, ktype in statement.columns if ktype == "dynamic"]
        for row in rows:  # dynamic values as JSON values, as in the evidence Sentinel keeps
            for name in dynamic:
                if isinstance(row[name], str):
                    row[name] = _json_or_text(row[name])
        return rows

    @staticmethod
    def _count_daily(result: HuntResult, rule: Rule, at: datetime, count: int, what: str) -> None:
        if not count:
            return
        day = at.astimezone(UTC).date().isoformat()
        counts = result.daily.setdefault((day, rule.name), {"alerts": 0, "results": 0})
        counts[what] += count

    # --- signer lookup for tuning -----------------------------------------------------------

    def _signer_lookup(self, sha1: str) -> list[str]:
        if self._signers is None:
            self._signers = self._load_signers()
        return self._signers.get(sha1.lower(), [])

    def _load_signers(self) -> dict[str, list[str]]:
        table = self.session.catalog.get("DeviceFileCertificateInfo")
        if table is None or table.sql_name is None:
            return {}
        query = (
            exp.select("lower(SHA1)", "Signer")
            .distinct()
            .from_(exp.to_table(table.sql_name, quoted=True))
            .where("Signer <> '' AND IsTrusted")
        )
        rows = self.engine.con.execute(query.sql(dialect="duckdb")).fetchall()
        signers: dict[str, list[str]] = {}
        for sha1, signer in rows:
            signers.setdefault(sha1, []).append(signer)
        return signers


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
