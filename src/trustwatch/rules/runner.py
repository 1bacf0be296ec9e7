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

A replay does not have to evaluate the query once per run (``rules.locality``): a row-local
query is evaluated once over the whole span and its rows given to the runs that see them
(``rules.rowlocal``); a partitionable one is evaluated once over every run's rows, each row
tagged with its run. Both give exactly the alerts and counts of the run-by-run replay, which
``Hunter(..., fast=False)`` forces and which rules reading the clock always take.

Row-local *filter* rules (``T | where ...``: nearly every converted Sigma rule) over one table
are evaluated together, a few hundred to a query (``rules.fusion``): one scan gives each rule
the rows its own evaluation would, and each rule's replay, tuning, alerts and statistics then
proceed as if it had been evaluated alone. ``Hunter(..., fuse=False)`` evaluates each on its
own. The schedule's activity (which runs see data) is computed once per tables and schedule.

A shipped rule's compiled SQL (and how it may be evaluated) is kept across runs
(``trustwatch.compiled``): a hunt compiles each built-in rule once per trustwatch version.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlglot import exp

from trustwatch import compiled
from trustwatch.api import Session, typed_result
from trustwatch.engines.base import row_tuples
from trustwatch.errors import Source, TrustwatchError
from trustwatch.kql import ast
from trustwatch.kql.compiler import CatalogTable, CompiledStatement, compile_query
from trustwatch.kql.parser import parse_query
from trustwatch.rules import fusion, rowlocal, schedule
from trustwatch.rules.alerts import build_alert, row_key
from trustwatch.rules.locality import Locality, lift
from trustwatch.rules.model import Rule, shipped_rules_dir
from trustwatch.rules.tuning import Tuning

_PROBE_TIME = datetime(2001, 1, 1, tzinfo=UTC)
_ALL_TIME = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
# a batched evaluation reads each event once per run that sees it: at most this many reads
# (summed over its runs' windows) per evaluation bounds its memory
BATCH_READS = 2_000_000
CLOCK_FUNCTIONS = frozenset({"now", "ago"})
# packs whose compiled forms are cached like the shipped rules': converted Sigma rules
# (trustwatch.sigma) number thousands and would be compiled again on every hunt (the key holds
# the query text, so a changed rule is a new entry)
CACHED_PACKS = frozenset({"sigma"})
# filter rules evaluated together: at most this many in one query (its SQL grows with each)
FUSE_CHUNK = 100
# ExtendedProperties["Event Time"] of an alert raised by rows without a time (Hunter._untimed)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNTIMED_NOTE = "unknown: the rows give no time; the alert is dated by the hunt"


@dataclass(slots=True)
class RuleStats:
    """What one rule did during a hunt."""

    rule: Rule
    runs: int = 0  # scheduled runs whose window held data
    evaluations: int = 0  # queries actually executed (equivalent runs are evaluated once)
    locality: str = Locality.PER_RUN.value  # how the replay evaluated it (rules.locality)
    results: int = 0  # alerts Sentinel would raise without de-duplication
    alerts: int = 0
    suppressed: int = 0
    untimed: int = 0  # of the alerts, those raised by rows without a time


@dataclass(slots=True)
class HuntResult:
    """Alerts and the account of how they were produced."""

    alerts: list[dict[str, Any]]
    stats: list[RuleStats]
    suppressed: dict[str, dict[str, int]]  # exclusion id -> rule name -> results suppressed
    daily: dict[tuple[str, str], dict[str, int]]  # (UTC day, rule name) -> counts
    span: tuple[datetime, datetime] | None  # earliest and latest TimeGenerated in the data
    now: datetime | None = None


Columns = tuple[tuple[str, str], ...]
Evaluate = Callable[[int, schedule.Run], list[dict[str, Any]]]
Timed = list[tuple[dict[str, Any], int]]  # result rows, each with its source time (rowlocal)


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    source: Source
    fixed: bool  # False: compiled again for each run (the query reads now())
    sql: str  # fixed: the SQL each run executes with its window parameters
    columns: Columns
    tables: list[CatalogTable]  # the stored tables behind the windows it reads
    locality: Locality = Locality.PER_RUN
    once_sql: str = ""  # row-local or batched: the SQL one evaluation runs for every run
    once_columns: Columns = ()
    hidden: str = ""  # the hidden column once_sql adds (rules.locality)
    reason: str = ""  # per-run although fixed: why
    filter_table: str = ""  # row-local filter query over this table (rules.fusion)
    untimed_sql: str = ""  # fixed: the query over the rows without a time (Hunter._untimed)
    plan: str = ""  # the prepared plan of sql, made on first use


class _Ahead:
    """Statements running ahead of the replay, their results taken in order (Hunter._arrow)."""

    def __init__(
        self, statements: list[tuple[str, dict[str, Any]]], results: Iterator[pa.Table | None]
    ) -> None:
        self._keys = [_statement_key(sql, params) for sql, params in statements]
        self._results = results
        self._next = 0

    def take(self, sql: str, params: Mapping[str, Any]) -> pa.Table | None:
        """The result of the next listed statement if it is this one (None: run it now).

        Results of statements listed before it and not asked for are dropped; a statement not
        listed from here on, or one that failed, is run by the caller.
        """
        key = _statement_key(sql, params)
        try:
            found = self._keys.index(key, self._next)
        except ValueError:
            return None
        while self._next < found:
            next(self._results)
            self._next += 1
        self._next += 1
        return next(self._results)

    def close(self) -> None:
        close = getattr(self._results, "close", None)
        if close is not None:
            close()


def _statement_key(sql: str, params: Mapping[str, Any]) -> tuple[str, str]:
    return sql, repr(sorted(params.items()))


def _schedule(rule: Rule) -> tuple[timedelta, timedelta]:
    return rule.query_frequency, rule.query_period


def _activity_key(item: _Compiled) -> tuple[Any, ...]:
    """What a rule's activity (Hunter._runs) depends on: its tables and schedule."""
    return (tuple(t.sql_name for t in item.tables), *_schedule(item.rule))


def _untimed_query(sql_name: str) -> exp.Query:
    """Whether a table holds rows without a time (Hunter._has_untimed)."""
    time = exp.column("TimeGenerated", quoted=True)
    return (
        exp.select(exp.Count(this=exp.Star()))
        .from_(exp.to_table(sql_name, quoted=True))
        .where(exp.Is(this=time, expression=exp.null()))
    )


def _untimed_found(table: pa.Table) -> bool:
    return int(row_tuples(table)[0][0]) > 0


class Hunter:
    """Runs rules over one session's tables.

    ``fast=False`` evaluates every replayed run on its own, as Sentinel does (the reference the
    one-evaluation paths are tested against); ``fuse=False`` evaluates each filter rule on its
    own rather than with the others over its table (the reference of ``rules.fusion``).
    """

    def __init__(
        self,
        session: Session,
        tuning: Tuning | None = None,
        *,
        fast: bool = True,
        fuse: bool = True,
    ) -> None:
        self.session = session
        self.tuning = tuning or Tuning()
        self.engine = session.engine
        self.fast = fast
        self.fuse = fuse
        # weighted activity per (tables, frequency, period), for the hunt under way
        self._activity: dict[tuple[Any, ...], list[tuple[int, int, int]]] = {}
        self._untimed_rows: dict[str, bool] = {}  # sql name -> holds rows without a time
        self._ahead: _Ahead | None = None  # the hunt's statements, run ahead (Hunter._prefetch)
        self.catalog, self.window = schedule.window_catalog(dict(session.catalog))
        self._signers: dict[str, list[str]] | None = None
        self._catalog_key: list[str] | None = None

    # --- preparation ------------------------------------------------------------------------

    def compile(self, rule: Rule) -> _Compiled:
        """Compile a rule's query (located errors); find the tables it reads.

        A shipped rule's result comes from the compiled-content cache when it has it.
        """
        text = rule.runnable_query
        prefix_lines = text.count("\n") - rule.query.count("\n")
        source = Source(text, str(rule.path), line_offset=rule.query_line - prefix_lines)
        try:
            if rule.pack in CACHED_PACKS or _shipped(rule):
                parts = [text, self.engine.dialect, *self._catalog_parts()]
                entry = compiled.cached_text("hunt-rule", parts, lambda: self._build(text, source))
                try:
                    return self._compiled(rule, source, entry)
                except (ValueError, KeyError, TypeError):  # a damaged entry costs a compile
                    pass
            return self._compiled(rule, source, self._build(text, source))
        except TrustwatchError as exc:
            raise exc.with_source(source) from None

    def _compiled(self, rule: Rule, source: Source, entry: str) -> _Compiled:
        """A rule's compiled form from its JSON entry (:meth:`_build`)."""
        doc = json.loads(entry)
        return _Compiled(
            rule,
            source,
            fixed=bool(doc["fixed"]),
            sql=str(doc["sql"]),
            columns=_columns(doc["columns"]),
            tables=[self.session.catalog[name] for name in doc["tables"]],
            locality=Locality(doc["locality"]),
            once_sql=str(doc["once_sql"]),
            once_columns=_columns(doc["once_columns"]),
            hidden=str(doc["hidden"]),
            reason=str(doc["reason"]),
            filter_table=str(doc.get("filter_table", "")),
            untimed_sql=str(doc.get("untimed_sql", "")),
        )

    def _build(self, text: str, source: Source) -> str:
        """The compiled rule as JSON: per-run SQL, columns, tables read, one-evaluation SQL."""
        tree = parse_query(text, source.name)
        last = compile_query(tree, self.catalog, _PROBE_TIME).statements[-1]
        # a query that reads the clock is compiled again for each run, at the run's time
        fixed = not any(
            isinstance(node, ast.Call) and node.name in CLOCK_FUNCTIONS for node in tree.walk()
        )
        names = {t.name for t in last.sql.find_all(exp.Table)}
        doc: dict[str, Any] = {
            "fixed": fixed,
            "sql": "",
            "columns": last.columns,
            "tables": [n for n, t in self.catalog.items() if t.sql_name in names],
            "locality": Locality.PER_RUN.value,
            "once_sql": "",
            "once_columns": [],
            "hidden": "",
            "reason": "reads the clock",
        }
        if fixed:
            doc["sql"] = self.engine.to_sql(self.window.bind(last.sql))
            doc.update(self._lift(tree, last.columns))
            doc["untimed_sql"] = self.engine.to_sql(self.window.bind_untimed(last.sql))
            if doc["locality"] == Locality.ROW.value:
                doc["filter_table"] = fusion.filter_table(tree) or ""
        return json.dumps(doc)

    def _lift(self, tree: ast.Query, columns: Columns) -> dict[str, Any]:
        """How one evaluation can stand for every run (rules.locality), and its SQL."""
        lifted = lift(tree, schedule.timed_tables(self.catalog))
        if lifted.query is None:
            return {"reason": lifted.reason}
        catalog = schedule.hidden_catalog(self.catalog, lifted.hidden)
        try:
            statement = compile_query(lifted.query, catalog, _PROBE_TIME).statements[-1]
        except TrustwatchError as exc:  # the rewrite's limits, not the rule's: run it per run
            return {"reason": f"the rewritten query does not compile: {exc}"}
        visible = tuple(c for c in statement.columns if c[0] != lifted.hidden)
        if visible != tuple(columns) or len(visible) + 1 != len(statement.columns):
            return {"reason": "the rewritten query's columns differ"}
        bind = self.window.bind_times if lifted.locality is Locality.ROW else self.window.bind_runs
        return {
            "locality": lifted.locality.value,
            "once_sql": self.engine.to_sql(bind(statement.sql, lifted.hidden)),
            "once_columns": statement.columns,
            "hidden": lifted.hidden,
            "reason": "",
        }

    def _catalog_parts(self) -> list[str]:
        """What compiling depends on in the session: each table's name, engine name, columns."""
        if self._catalog_key is None:
            self._catalog_key = [
                f"{name}\t{table.sql_name}\t"
                + ",".join(f"{c.name}:{c.type}" for c in table.schema.columns)
                for name, table in self.session.catalog.items()
            ]
        return self._catalog_key

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
        lo, hi = row_tuples(self.engine.execute(query))[0]
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
        items = [self.compile(rule) for rule in rules]
        result = HuntResult([], [], {}, {}, self.span(), now)
        self._activity = {}  # the data may have changed since the last hunt
        self._untimed_rows = {}
        one_pass = self.fast and now is None
        self._warm(items, now)
        chunks = self._fused_chunks(items) if one_pass and self.fuse else []
        try:
            if one_pass:
                self._ahead = self._prefetch(items, chunks)
            fused = self._fused(items, chunks) if one_pass and self.fuse else {}
            started = datetime.now(UTC).replace(microsecond=0)
            for i, item in enumerate(items):
                stats = self._run_rule(item, now, result, on_progress, fused.get(i))
                at = now or _after(result.span, item.rule.query_frequency) or started
                self._untimed(item, at, stats, result)
                result.stats.append(stats)
        finally:
            if self._ahead is not None:
                self._ahead.close()
                self._ahead = None
        # ties (one rule, one start time) in a fixed order, whatever order the engine returned
        result.alerts.sort(
            key=lambda a: (
                datetime.fromisoformat(a["StartTime"]),
                a["AlertName"],
                a["SystemAlertId"],
            )
        )
        return result

    # --- filter rules evaluated together (rules.fusion) ---------------------------------------

    def _fused_chunks(self, items: Sequence[_Compiled]) -> list[tuple[list[int], list[Any]]]:
        """The fused queries: for each chunk of rules (positions in ``items``), its parts.

        Row-local filter rules over one table with data are evaluated together, ``FUSE_CHUNK``
        to a query (:meth:`_fused`).
        """
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            if item.filter_table and item.locality is Locality.ROW and item.tables:
                groups.setdefault(item.filter_table, []).append(i)
        chunks: list[tuple[list[int], list[Any]]] = []
        for table, members in groups.items():
            if len(members) < 2:  # alone, it is evaluated as it is
                continue
            for start in range(0, len(members), FUSE_CHUNK):
                chunk = members[start : start + FUSE_CHUNK]
                chunks.append((chunk, self._fused_parts(table, [items[i] for i in chunk])))
        return chunks

    def _fused(
        self, items: Sequence[_Compiled], chunks: list[tuple[list[int], list[Any]]]
    ) -> dict[int, Timed]:
        """Each fused rule's rows and source times, by its position in ``items``.

        A rule whose predicate does not compile in the fused query, or whose fused query fails
        to run, is left out: it is evaluated on its own (and fails there, if it does, with its
        own location).
        """
        out: dict[int, Timed] = {}
        for positions, parts in chunks:
            out.update(self._run_fused([items[i] for i in positions], positions, parts))
        return out

    def _fused_parts(self, table: str, chunk: list[_Compiled]) -> list[Any]:
        parts_text = [table, self.engine.dialect, *self._catalog_parts()]
        parts_text += [item.source.text for item in chunk]
        build = functools.partial(self._build_fused, table, chunk)
        if all(item.rule.pack in CACHED_PACKS or _shipped(item.rule) for item in chunk):
            entry = compiled.cached_text("hunt-fused", parts_text, build)
        else:
            entry = build()
        parts: list[Any] = json.loads(entry)
        return parts

    def _run_fused(
        self, chunk: list[_Compiled], positions: list[int], parts: list[Any]
    ) -> dict[int, Timed]:
        out: dict[int, Timed] = {}
        params = self.window.params(*_ALL_TIME)
        for part in parts:
            members = [int(k) for k in part["rules"]]
            columns = _columns(part["columns"])
            try:
                arrow = self._arrow(str(part["sql"]), params)
            except TrustwatchError:  # each is evaluated on its own, and fails there if it does
                continue
            names = fusion.flags(len(members))
            hidden = str(part["hidden"])
            visible = tuple(c for c in columns if c[0] != hidden and c[0] not in names)
            rows = _rows(arrow.select([name for name, _ in visible]), visible)
            times = [int(us) for us in arrow.column(hidden).to_pylist()]
            for k, name in zip(members, names, strict=True):
                if visible != chunk[k].columns:
                    continue
                hits = arrow.column(name).to_pylist()
                out[positions[k]] = [(rows[j], times[j]) for j, hit in enumerate(hits) if hit]
        return out

    def _prefetch(
        self, items: Sequence[_Compiled], chunks: list[tuple[list[int], list[Any]]]
    ) -> _Ahead:
        """The statements the one-evaluation replay will run, started ahead on every core.

        Listed in the order :meth:`run` asks for them (the fused queries, then each rule's
        evaluation or batches and its query over the rows without a time), with the conditions
        :meth:`_run_rule` and :meth:`_untimed` apply; the engine runs them several at once
        (``Engine.execute_many``) and :meth:`_arrow` takes each result when its turn comes. A
        rule evaluated run by run (it reads the clock, or its rows fall outside the datetime
        range) runs its own statements as before.
        """
        all_time: dict[str, Any] = dict(self.window.params(*_ALL_TIME))
        statements: list[tuple[str, dict[str, Any]]] = []
        fused: set[int] = set()
        for positions, parts in chunks:
            statements += [(str(part["sql"]), all_time) for part in parts]
            fused.update(positions)
        for i, item in enumerate(items):
            runs, _, weighted = self._runs(item, None)
            if runs and item.once_sql and i not in fused:
                if item.locality is Locality.ROW:
                    statements.append((item.once_sql, all_time))
                elif item.locality is Locality.BATCH:
                    batches = self._batch_params(runs, weighted)
                    statements += [(item.once_sql, params) for params in batches]
            if item.fixed and item.untimed_sql and any(self._has_untimed(t) for t in item.tables):
                statements.append((item.untimed_sql, {}))
        return _Ahead(statements, self.engine.execute_many(statements))

    def _build_fused(self, table: str, chunk: list[_Compiled]) -> str:
        """The fused queries of ``chunk`` as JSON: rules (positions in ``chunk``), SQL, columns.

        A set of rules whose fused query does not compile is split in two, down to single
        rules, which are left out (evaluated on their own).
        """
        trees = [parse_query(item.source.text, item.source.name) for item in chunk]
        taken = {name for item in chunk for name, _ in item.columns}
        columns = fusion.shared_columns(trees, taken) or []
        predicates = [fusion.predicate(tree, inline=not columns) for tree in trees]
        parts: list[dict[str, Any]] = []
        pending = [list(range(len(chunk)))]
        while pending:
            members = pending.pop()
            try:
                chosen = [predicates[k] for k in members]
                parts.append({"rules": members, **self._fused_sql(table, chosen, columns)})
            except (TrustwatchError, fusion.NotFusable):
                if len(members) > 1:
                    half = len(members) // 2
                    pending += [members[half:], members[:half]]
        parts.sort(key=lambda part: part["rules"][0])
        return json.dumps(parts)

    def _fused_sql(
        self, table: str, predicates: list[ast.Expr], columns: Sequence[ast.Assignment] = ()
    ) -> dict[str, Any]:
        """One fused query: its SQL, its columns and the hidden time column it adds."""
        flagged = fusion.flagged_query(table, predicates, columns)
        lifted = lift(flagged, schedule.timed_tables(self.catalog))
        if lifted.query is None or lifted.locality is not Locality.ROW:
            raise fusion.NotFusable(f"not row-local: {lifted.reason}")
        catalog = schedule.hidden_catalog(self.catalog, lifted.hidden)
        statement = compile_query(lifted.query, catalog, _PROBE_TIME).statements[-1]
        bound = self.window.bind_times(statement.sql, lifted.hidden)
        query = fusion.filter_flags(bound, fusion.flags(len(predicates)))
        return {
            "sql": self.engine.to_sql(query),
            "columns": statement.columns,
            "hidden": lifted.hidden,
        }

    def _runs(
        self, item: _Compiled, now: datetime | None
    ) -> tuple[list[schedule.Run], int, list[tuple[int, int, int]]]:
        """The runs to evaluate, how many grid runs saw data, and the events per window span."""
        rule = item.rule
        if now is not None:
            return [schedule.single_run(now, rule.query_period)], 1, []
        frequency, period = _schedule(rule)
        key = _activity_key(item)
        weighted = self._activity.get(key)
        if weighted is None:
            weighted = schedule.weighted_activity(self.engine, item.tables, frequency, period)
            self._activity[key] = weighted
        spans = [(first, end) for first, end, _ in weighted]
        runs = list(schedule.replay_runs(spans, frequency, period, not item.fixed))
        return runs, schedule.run_count(spans), weighted

    def _run_rule(
        self,
        item: _Compiled,
        now: datetime | None,
        result: HuntResult,
        on_progress: Callable[[str, int, int], None] | None,
        fused: Timed | None = None,
    ) -> RuleStats:
        """One rule's replay; ``fused``: its rows from a fused evaluation (:meth:`_fused`)."""
        rule = item.rule
        runs, grid_runs, weighted = self._runs(item, now)
        stats = RuleStats(rule, runs=grid_runs)
        mode = item.locality if self.fast and now is None and runs else Locality.PER_RUN
        if mode is Locality.ROW and self._row_local(item, stats, result, fused):
            pass
        elif mode is Locality.BATCH:
            by_run = self._batched(item, runs, weighted, stats)
            self._replay(item, runs, lambda i, _: by_run.get(i, []), stats, result)
        else:
            mode = Locality.PER_RUN

            def evaluate(i: int, run: schedule.Run) -> list[dict[str, Any]]:
                stats.evaluations += 1
                if on_progress is not None:
                    on_progress(rule.name, i + 1, len(runs))
                return self._evaluate(item, run)

            self._replay(item, runs, evaluate, stats, result)
        stats.locality = mode.value
        if on_progress is not None and mode is not Locality.PER_RUN:
            on_progress(rule.name, 1, 1)
        return stats

    def _untimed(self, item: _Compiled, at: datetime, stats: RuleStats, result: HuntResult) -> None:
        """A rule's alerts over the rows that have no time, evaluated as one more run.

        A row whose log gives no time (Zeek's masked ``ts``, an impossible date: see
        docs/ingest.md) has an empty ``TimeGenerated``, so no scheduled run's window holds it
        and the replay never sees it. Sentinel dates a record that has no time at its
        ingestion, and its rules see such records together in the first run after it; so each
        rule runs once more over the rows without a time of the tables it reads (and nothing
        else of them), as a run at ``at`` would: ``--now``, else the rule's first scheduled run
        at or after the latest time in the data (the hunt's start when no row has a time). Its
        alerts are dated ``at``, and their ``ExtendedProperties`` say the event time is unknown.
        """
        if not any(self._has_untimed(t) for t in item.tables):
            return
        if item.fixed:
            sql = item.untimed_sql
        else:  # a query that reads the clock, compiled for this run's time
            statement = self._compile_at(item, at)
            sql = self.engine.to_sql(self.window.bind_untimed(statement.sql))
        if not sql:
            return

        def evaluate(_: int, __: schedule.Run) -> list[dict[str, Any]]:
            stats.evaluations += 1
            return self._execute(sql, {}, item.columns)

        first = len(result.alerts)
        run = schedule.Run(at=at, start=at - item.rule.query_period)
        self._replay(item, [run], evaluate, stats, result)  # tuning, trigger, alerts, counts
        for alert in result.alerts[first:]:
            extended = json.loads(alert["ExtendedProperties"])
            extended["Event Time"] = UNTIMED_NOTE
            alert["ExtendedProperties"] = json.dumps(extended, ensure_ascii=False)
        stats.untimed += len(result.alerts) - first

    def _has_untimed(self, table: CatalogTable) -> bool:
        """Whether ``table`` holds rows without a time (asked once per table and hunt)."""
        if table.sql_name is None or table.schema.column("TimeGenerated") is None:
            return False
        found = self._untimed_rows.get(table.sql_name)
        if found is None:
            found = _untimed_found(self.engine.execute(_untimed_query(table.sql_name)))
            self._untimed_rows[table.sql_name] = found
        return found

    def _warm(self, items: Sequence[_Compiled], now: datetime | None) -> None:
        """Ask the engine at once which runs see data and which tables hold rows without a
        time: small statements each rule would otherwise ask in turn (their planning is most of
        their cost). A statement that fails is asked again in turn, and raises there."""
        activity: dict[tuple[Any, ...], exp.Query] = {}
        untimed: set[str] = set()
        for item in items:
            key = _activity_key(item)
            if now is None and key not in self._activity and key not in activity:
                query = schedule.activity_query(item.tables, *_schedule(item.rule))
                if query is None:
                    self._activity[key] = []
                else:
                    activity[key] = query
            untimed.update(
                t.sql_name
                for t in item.tables
                if t.sql_name is not None and t.schema.column("TimeGenerated") is not None
            )
        untimed -= set(self._untimed_rows)
        statements: list[tuple[str, Mapping[str, object]]] = [
            (self.engine.to_sql(q), {}) for q in activity.values()
        ]
        statements += [(self.engine.to_sql(_untimed_query(name)), {}) for name in sorted(untimed)]
        results = iter(self.engine.execute_many(statements))
        for key in activity:
            table = next(results)
            if table is not None:
                self._activity[key] = schedule.activity_rows(table)
        for name in sorted(untimed):
            table = next(results)
            if table is not None:
                self._untimed_rows[name] = _untimed_found(table)

    def _replay(
        self,
        item: _Compiled,
        runs: list[schedule.Run],
        evaluate: Evaluate,
        stats: RuleStats,
        result: HuntResult,
    ) -> None:
        """Sentinel's runs one by one: suppression, trigger, de-duplication, alerts."""
        rule = item.rule
        seen: set[str] = set()
        suppressed_seen: set[str] = set()
        per_result = rule.grouping == "AlertPerResult"
        for i, run in enumerate(runs):
            kept = self._unsuppressed(rule, evaluate(i, run), stats, result, suppressed_seen)
            if not kept or not rule.triggered(len(kept)):
                continue
            per_run = len(kept) if per_result else 1
            stats.results += per_run * run.repeats
            if run.repeats == 1:
                self._count_daily(result, rule, run.at, per_run, "results")
            else:  # equivalent runs raise the same alerts again, a day at a time
                repeats = schedule.runs_per_day(run.k, run.k + run.repeats, rule.query_frequency)
                for day, count in repeats:
                    _add_daily(result, day.isoformat(), rule, "results", per_run * count)
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

    def _unsuppressed(
        self,
        rule: Rule,
        rows: list[dict[str, Any]],
        stats: RuleStats,
        result: HuntResult,
        suppressed_seen: set[str],
    ) -> list[dict[str, Any]]:
        """The rows no exclusion removes; the others counted once per distinct row."""
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
        return kept

    def _row_local(
        self, item: _Compiled, stats: RuleStats, result: HuntResult, fused: Timed | None = None
    ) -> bool:
        """One evaluation over the whole span, each row given to its runs (rules.rowlocal).

        ``fused``: the rows and times of that evaluation, already made with other rules'.
        Returns False, having raised no alert, when a row's runs would fall outside the
        datetime range (events dated year 1 or 9999): those take the run-by-run replay.
        """
        rule = item.rule
        if fused is None:
            params = self.window.params(*_ALL_TIME)
            rows = self._execute(item.once_sql, params, item.once_columns)
            times = [int(row.pop(item.hidden)) for row in rows]
        else:
            rows, times = [row for row, _ in fused], [us for _, us in fused]
        stats.evaluations += 1
        if not rowlocal.exact(times, rule):
            return False

        def suppressing(row: Mapping[str, Any]) -> str | None:
            exclusion = self.tuning.suppressing(rule, row, self._signer_lookup)
            return None if exclusion is None else exclusion.id

        replayed = rowlocal.replay(rule, list(zip(rows, times, strict=True)), suppressing)
        result.alerts.extend(replayed.alerts)
        stats.alerts += len(replayed.alerts)
        stats.results += replayed.results
        stats.suppressed += replayed.suppressed
        for exclusion_id, count in replayed.exclusions.items():
            by_rule = result.suppressed.setdefault(exclusion_id, {})
            by_rule[rule.name] = by_rule.get(rule.name, 0) + count
        for (day, what), count in replayed.daily.items():
            _add_daily(result, day.isoformat(), rule, what, count)
        return True

    def _batched(
        self,
        item: _Compiled,
        runs: list[schedule.Run],
        weighted: list[tuple[int, int, int]],
        stats: RuleStats,
    ) -> dict[int, list[dict[str, Any]]]:
        """Every run's rows, by run (its position in ``runs``), from one evaluation per batch."""
        by_run: dict[int, list[dict[str, Any]]] = {}
        for params in self._batch_params(runs, weighted):
            for row in self._execute(item.once_sql, params, item.once_columns):
                by_run.setdefault(int(row.pop(item.hidden)), []).append(row)
            stats.evaluations += 1
        return by_run

    def _batch_params(
        self, runs: list[schedule.Run], weighted: list[tuple[int, int, int]]
    ) -> list[dict[str, Any]]:
        """The parameters of each batch of ``runs`` one evaluation reads (``BATCH_READS``)."""
        cuts = schedule.batches(runs, weighted, BATCH_READS)
        return [
            dict(self.window.run_params(runs[start:stop], start))
            for start, stop in zip(cuts, [*cuts[1:], len(runs)], strict=True)
        ]

    def _evaluate(self, item: _Compiled, run: schedule.Run) -> list[dict[str, Any]]:
        params = self.window.params(run.start, run.at)
        if not item.fixed:
            statement = self._compile_at(item, run.at)
            bound = self.engine.to_sql(self.window.bind(statement.sql))
            return self._execute(bound, _used(params, bound), statement.columns)
        if not item.plan:  # planned once; each run executes the plan with its own window
            item.plan = self.engine.prepare(item.sql)
        return _rows(self.engine.execute_prepared(item.plan, _used(params, item.sql)), item.columns)

    def _compile_at(self, item: _Compiled, at: datetime) -> CompiledStatement:
        """A query that reads the clock, compiled for a run at ``at`` (located errors)."""
        try:
            tree = parse_query(item.source.text, item.source.name)
            return compile_query(tree, self.catalog, at).statements[-1]
        except TrustwatchError as exc:
            raise exc.with_source(item.source) from None

    def _execute(self, sql: str, params: dict[str, Any], columns: Columns) -> list[dict[str, Any]]:
        return _rows(self._arrow(sql, params), columns)

    def _arrow(self, sql: str, params: Mapping[str, Any]) -> pa.Table:
        """The statement's result: run ahead (:meth:`_prefetch`) when it was, else run now."""
        table = self._ahead.take(sql, params) if self._ahead is not None else None
        return table if table is not None else self.engine.execute_sql(sql, params)

    @staticmethod
    def _count_daily(result: HuntResult, rule: Rule, at: datetime, count: int, what: str) -> None:
        _add_daily(result, at.astimezone(UTC).date().isoformat(), rule, what, count)

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
        signers: dict[str, list[str]] = {}
        for sha1, signer in row_tuples(self.engine.execute(query)):
            signers.setdefault(sha1, []).append(signer)
        return signers


def _after(span: tuple[datetime, datetime] | None, frequency: timedelta) -> datetime | None:
    """The first run of the schedule grid (multiples of ``frequency`` since 1970) at or after
    the end of ``span`` (None: no span)."""
    if span is None:
        return None
    since = span[1] - _EPOCH
    return _EPOCH + -(-since // frequency) * frequency


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _add_daily(result: HuntResult, day: str, rule: Rule, what: str, count: int) -> None:
    if not count:
        return
    counts = result.daily.setdefault((day, rule.name), {"alerts": 0, "results": 0})
    counts[what] += count


def _used(params: dict[str, Any], sql: str) -> dict[str, Any]:
    """The window parameters ``sql`` reads: a query over tables without data (only empty ones
    are not windowed, e.g. the network pack over endpoint telemetry) reads none, and DuckDB
    refuses parameters a statement does not have."""
    return {name: value for name, value in params.items() if f"${name}" in sql}


def _rows(arrow: pa.Table, columns: Columns) -> list[dict[str, Any]]:
    """Result rows as dicts, dynamic values as JSON values (as in the evidence Sentinel keeps)."""
    rows: list[dict[str, Any]] = typed_result(arrow, columns).to_pylist()
    dynamic = [name for name, ktype in columns if ktype == "dynamic"]
    for row in rows:
        for name in dynamic:
            if isinstance(row[name], str):
                row[name] = _json_or_text(row[name])
    return rows


def _columns(items: list[list[str]] | Columns) -> Columns:
    return tuple((str(name), str(ktype)) for name, ktype in items)


def _shipped(rule: Rule) -> bool:
    """Is the rule one of trustwatch's own (its compiled form may be kept across runs)?"""
    return rule.path.resolve().is_relative_to(shipped_rules_dir().resolve())
