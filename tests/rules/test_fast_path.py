"""One evaluation per rule (row-local and batched replays) against the run-by-run replay.

``Hunter(..., fast=False)`` evaluates every scheduled run on its own, as Sentinel does; the
default evaluates a row-local rule once over the whole span and a partitionable one once over
every run's rows. Both must give the same alerts, statistics, suppression counts and alerts per
day, on every validate scenario, on all of ../shared/data and on synthetic data spanning years.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import trustwatch
from tests.conftest import needs_shared
from tests.rules.test_runner import session_of, write_rule, write_tuning
from trustwatch.api import Session
from trustwatch.engines.duckdb import DuckDBEngine
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.kql.parser import parse_query
from trustwatch.rules import runner, schedule
from trustwatch.rules.locality import Locality, lift
from trustwatch.rules.model import Rule, load_rule, load_rules
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning, default_tuning_path, load_tuning
from trustwatch.scenarios.model import SOURCES, load_scenarios
from trustwatch.scenarios.render import FILE_NAMES, render

SAMPLES = Path(trustwatch.__file__).parent / "content" / "samples" / "hunt"  # ./dev demo's


def both_ways(
    session: Session, rules: list[Rule], tuning: Tuning | None = None
) -> tuple[HuntResult, HuntResult]:
    """The hunt with one evaluation per rule where possible, and run by run."""
    fast = Hunter(session, tuning).run(rules)
    slow = Hunter(session, tuning, fast=False).run(rules)
    return fast, slow


def stats_of(result: HuntResult) -> list[tuple[Any, ...]]:
    """Each rule's statistics but the evaluations (what the fast paths save) and how it ran."""
    return [(s.rule.id, s.runs, s.results, s.alerts, s.suppressed) for s in result.stats]


def assert_same(fast: HuntResult, slow: HuntResult) -> None:
    assert [s.locality for s in slow.stats] == [Locality.PER_RUN] * len(slow.stats)
    assert fast.span == slow.span
    assert stats_of(fast) == stats_of(slow)
    assert fast.suppressed == slow.suppressed
    assert fast.daily == slow.daily
    assert len(fast.alerts) == len(slow.alerts)
    for got, want in zip(fast.alerts, slow.alerts, strict=True):
        assert got == want, (got["AlertName"], got["StartTime"])


# --- synthetic data ---------------------------------------------------------------------------

ROW_LOCAL = """DeviceProcessEvents | where ProcessCommandLine has "addstore"
| extend Store = extract(@"addstore\\s+(\\w+)", 1, ProcessCommandLine)
| project TimeGenerated, DeviceName, ProcessCommandLine, Store"""
UNION = """union (DeviceProcessEvents | where FileName =~ "certutil.exe"),
  (DeviceEvents | where ActionType == "PowerShellCommand")
| project-away SHA256 | project-rename Host = DeviceName | extend DeviceName = Host"""


def monthly(years: int = 10, every: int = 1) -> list[dict[str, Any]]:
    """One certutil event a month from 2014 on; every 7th also on a second device."""
    rows = []
    start = datetime(2014, 1, 1, 3, 17, tzinfo=UTC)
    for i in range(0, years * 12, every):
        when = (start + timedelta(days=30.4 * i, minutes=7 * i)).isoformat()
        cmd = f"certutil -addstore {'root' if i % 3 else 'ca'} c{i % 5}.cer"
        rows.append(
            {
                "TimeGenerated": when,
                "DeviceName": "ws01",
                "FileName": "certutil.exe",
                "ProcessCommandLine": cmd,
            }
        )
        if i % 7 == 0:
            rows.append({**rows[-1], "DeviceName": "ws02"})
    return rows


SCHEDULES = [
    ("1h", "1h"),
    ("1h", "14d"),  # each event in 336 runs: many overlapping windows
    ("5h", "1d"),  # a period that is not a multiple of the frequency
    ("1d", "14d"),
]


@pytest.mark.parametrize(("frequency", "period"), SCHEDULES, ids=str)
@pytest.mark.parametrize(
    ("operator", "threshold"), [("gt", 0), ("gt", 1), ("eq", 2), ("lt", 2)], ids=str
)
@pytest.mark.parametrize("grouping", ["AlertPerResult", "SingleAlert"])
def test_row_local_rule_over_ten_years_is_evaluated_once(
    tmp_path: Path, frequency: str, period: str, operator: str, threshold: int, grouping: str
) -> None:
    rule = load_rule(
        write_rule(
            tmp_path,
            ROW_LOCAL,
            queryFrequency=frequency,
            queryPeriod=period,
            triggerOperator=operator,
            triggerThreshold=threshold,
            eventGroupingSettings={"aggregationKind": grouping},
        )
    )
    session = session_of(DeviceProcessEvents=monthly())
    fast, slow = both_ways(session, [rule])
    assert_same(fast, slow)
    assert fast.stats[0].locality == Locality.ROW
    assert fast.stats[0].evaluations == 1
    assert slow.stats[0].evaluations > 100
    if (operator, threshold) == ("gt", 0):
        assert fast.alerts


def test_row_local_union_and_suppression(tmp_path: Path) -> None:
    tuning = write_tuning(
        tmp_path,
        "exclusions:\n  - id: no-ca\n    when:\n      command_line: '*addstore ca*'\n",
    )
    rule = load_rule(write_rule(tmp_path, UNION, queryPeriod="2d", queryFrequency="6h"))
    events = [
        {"TimeGenerated": r["TimeGenerated"], "DeviceName": r["DeviceName"], "ActionType": a}
        for r, a in zip(monthly(every=5), ["PowerShellCommand", "Other"] * 100, strict=False)
    ]
    session = session_of(DeviceProcessEvents=monthly(), DeviceEvents=events)
    fast, slow = both_ways(session, [rule], tuning)
    assert_same(fast, slow)
    assert fast.stats[0].locality == Locality.ROW
    assert fast.stats[0].evaluations == 1
    assert fast.suppressed["no-ca"]


def test_equal_rows_at_different_times_alert_once(tmp_path: Path) -> None:
    """De-duplication by row content: the same row a year later is not alerted again."""
    query = "DeviceProcessEvents | project DeviceName, ProcessCommandLine"
    rule = load_rule(write_rule(tmp_path, query, queryPeriod="3h", triggerThreshold=1))
    rows = monthly(years=3)
    fast, slow = both_ways(session_of(DeviceProcessEvents=rows), [rule])
    assert_same(fast, slow)
    assert len(fast.alerts) < len(rows)
    assert fast.stats[0].evaluations == 1


@pytest.mark.parametrize(
    ("query", "locality"),
    [
        ("DeviceProcessEvents | where TimeGenerated > ago(1d) | project DeviceName", "per-run"),
        ("DeviceProcessEvents | summarize Count = count()", "per-run"),
        ("DeviceProcessEvents | take 1 | project DeviceName", "per-run"),
        ("DeviceProcessEvents | summarize Count = count() by DeviceName", "batch"),
        (
            "DeviceProcessEvents | where ProcessCommandLine has 'root' | project DeviceName, A = 1"
            " | join kind=inner (DeviceProcessEvents | project DeviceName, B = 2) on DeviceName"
            " | distinct DeviceName, A, B",
            "batch",
        ),
        (
            "let Known = datatable(N:string)['x.exe', 'CERTUTIL.EXE'];"
            " let K = Known | project L = tolower(N) | distinct L;"
            " DeviceProcessEvents | where tolower(FileName) in (K) | project DeviceName, FileName",
            "row",
        ),
        (
            "let K = datatable(N:string)['nothing.exe'];"
            " DeviceProcessEvents | where FileName !in (K)"
            " | summarize Count = count() by DeviceName",
            "batch",
        ),
        (
            "let K = datatable(N:string)['x'] | extend At = now();"
            " DeviceProcessEvents | where FileName !in (K | project N) | project DeviceName",
            "per-run",
        ),
    ],
    ids=[
        "now",
        "summarize-all",
        "take",
        "summarize-by",
        "join",
        "in-constant",
        "constant-batch",
        "constant-reads-clock",
    ],
)
def test_rules_that_read_the_clock_or_other_rows(tmp_path: Path, query: str, locality: str) -> None:
    rule = load_rule(write_rule(tmp_path, query, queryPeriod="2d", queryFrequency="12h"))
    fast, slow = both_ways(session_of(DeviceProcessEvents=monthly(years=2)), [rule])
    assert_same(fast, slow)
    assert fast.stats[0].locality == locality
    one = locality != "per-run"
    assert (fast.stats[0].evaluations == 1) is one
    assert fast.alerts


def test_batches_bound_what_one_evaluation_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "BATCH_READS", 5)  # events read, summed over a batch's runs
    query = (
        "DeviceProcessEvents | summarize Count = count(), Last = max(TimeGenerated) by DeviceName"
    )
    rule = load_rule(write_rule(tmp_path, query, queryPeriod="120d", queryFrequency="7d"))
    fast, slow = both_ways(session_of(DeviceProcessEvents=monthly(years=3)), [rule])
    assert_same(fast, slow)
    assert fast.stats[0].locality == Locality.BATCH
    assert 1 < fast.stats[0].evaluations < slow.stats[0].evaluations


def test_batch_cuts() -> None:
    runs = [schedule.Run(datetime.now(UTC), datetime.now(UTC), k=k) for k in (0, 1, 2, 5, 9)]
    weighted = [(0, 3, 2), (1, 2, 1), (5, 6, 4), (9, 10, 1)]  # window loads: 2, 3, 2, 4, 1
    assert schedule.batches(runs, weighted, 5) == [0, 2, 3]
    assert schedule.batches(runs, weighted, 100) == [0]
    assert schedule.batches(runs, weighted, 1) == [0, 1, 2, 3, 4]


def test_per_run_is_decided_on_the_syntax_tree() -> None:
    timed = ["DeviceProcessEvents", "DeviceEvents"]

    def of(query: str) -> Locality:
        return lift(parse_query(query, "q"), timed).locality

    assert of("DeviceProcessEvents | where FileName == 'a' | project FileName") is Locality.ROW
    assert of("let T = DeviceEvents | where A == 1; T | sort by B") is Locality.ROW
    assert of("DeviceProcessEvents | extend x = now()") is Locality.PER_RUN
    assert of("DeviceProcessEvents | serialize | extend n = row_number()") is Locality.PER_RUN
    assert of("DeviceProcessEvents | extend b = pack_all()") is Locality.PER_RUN
    assert of("Watchlist | where x == 1") is Locality.PER_RUN  # no window: every run sees it
    assert of("DeviceEvents | where x in (DeviceProcessEvents | project x)") is Locality.PER_RUN
    assert of("DeviceEvents | join kind=fullouter DeviceProcessEvents on x") is Locality.PER_RUN
    assert of("datatable(x:long)[1] | where x == 1") is Locality.PER_RUN
    # a constant table (datatable only) is the same in every run: 'in' over it is row-local
    constant = "let G = datatable(x:string)['a']; let D = G | project y = tolower(x) | distinct y;"
    assert of(constant + " DeviceEvents | where A !in (D)") is Locality.ROW
    assert (
        of(constant + " DeviceEvents | where A in (D) | summarize count() by A") is Locality.BATCH
    )
    assert of(constant + " G | where x == 'a'") is Locality.PER_RUN  # its rows are the result
    clock = "let G = datatable(x:string)['a'] | extend t = now();"
    assert of(clock + " DeviceEvents | where A !in (G)") is Locality.PER_RUN
    mixed = "let G = datatable(x:string)['a']; let H = union G, DeviceEvents;"
    assert of(mixed + " DeviceEvents | where A in (H)") is Locality.PER_RUN
    assert of("DeviceEvents | summarize count() by x | top 3 by x") is Locality.PER_RUN


def test_events_at_the_ends_of_time_take_the_run_by_run_replay(tmp_path: Path) -> None:
    rule = load_rule(write_rule(tmp_path, ROW_LOCAL))
    rows = [*monthly(years=1), {**monthly(years=1)[0], "TimeGenerated": "9999-12-31T23:00:00Z"}]
    fast, slow = both_ways(session_of(DeviceProcessEvents=rows), [rule])
    assert_same(fast, slow)
    assert fast.stats[0].locality == Locality.PER_RUN


def test_runs_per_day_counts_without_visiting_runs() -> None:
    frequency = timedelta(minutes=7)
    for first, end in [(0, 1000), (-(10**9), -(10**9) + 700), (5, 6), (7, 7)]:
        counted: dict[Any, int] = {}
        for k in range(first, end):
            day = schedule.grid_time(k, frequency).date()
            counted[day] = counted.get(day, 0) + 1
        assert dict(schedule.runs_per_day(first, end, frequency)) == counted


# --- the shipped rules over the validate scenarios and ../shared/data -------------------------


def hunt_both(paths: list[Path], rules: list[Rule]) -> tuple[HuntResult, HuntResult]:
    tuning = load_tuning(default_tuning_path())
    planned, _ = pipeline.plan(paths, skip_unknown=True)
    ws = Workspace(None)
    try:
        ws.ingest(planned)
        session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
        return both_ways(session, rules, tuning)
    finally:
        ws.close()


@pytest.mark.parametrize("source", SOURCES)
def test_every_validate_scenario_gives_the_same_hunt(tmp_path: Path, source: str) -> None:
    """Every scenario's telemetry of one source in one workspace, every rule, both ways."""
    for scenario in load_scenarios(host="windows"):
        path = tmp_path / FILE_NAMES[source].format(id=scenario.id)
        path.write_text(render(scenario, source), encoding="utf-8")
    rules = load_rules(["all"])
    fast, slow = hunt_both([tmp_path], rules)
    assert_same(fast, slow)
    assert fast.alerts
    once = {s.rule.path.stem: s.evaluations for s in fast.stats if s.locality != Locality.PER_RUN}
    assert "certificate_abuse_sequence" in once
    assert set(once.values()) == {1}


@needs_shared
def test_shared_data_gives_the_same_hunt(shared_workspace: Any) -> None:
    ws = shared_workspace[0]
    tuning = load_tuning(default_tuning_path())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    fast, slow = both_ways(session, load_rules(["all"]), tuning)
    assert_same(fast, slow)
    assert fast.alerts
    assert sum(s.evaluations for s in fast.stats) < sum(s.evaluations for s in slow.stats)


def test_the_replay_runs_its_statements_ahead_on_several_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-evaluation replay lists its statements first and the engine runs them several
    at once (Engine.execute_many); none is run a second time, and the alerts are those of an
    engine with one thread, which runs them one after the other."""
    listed: list[str] = []
    run_alone: list[str] = []
    many, alone = DuckDBEngine.execute_many, DuckDBEngine.execute_sql

    def spy_many(self: DuckDBEngine, statements: Any) -> Any:
        listed.extend(sql for sql, _ in statements)
        return many(self, statements)

    def spy_alone(self: DuckDBEngine, sql: str, params: Any = None) -> Any:
        run_alone.append(sql)
        return alone(self, sql, params)

    monkeypatch.setattr(DuckDBEngine, "execute_many", spy_many)
    monkeypatch.setattr(DuckDBEngine, "execute_sql", spy_alone)
    tuning = load_tuning(default_tuning_path())
    planned, _ = pipeline.plan([SAMPLES], skip_unknown=True)
    results = []
    for threads in (2, 1):
        ws = Workspace(None)
        try:
            ws.engine.con.execute(f"SET threads = {threads}")
            ws.ingest(planned)
            views = pipeline.query_views(ws.engine)
            session = Session(tuning.tables(), engine=ws.engine, views=views)
            run_alone.clear()
            results.append(Hunter(session, tuning).run(load_rules(["default"])))
        finally:
            ws.close()
        assert len(listed) >= 8  # the default rules with data in the samples
        assert not set(listed) & set(run_alone)
        listed.clear()
    assert results[0].alerts and results[0].alerts == results[1].alerts
    assert stats_of(results[0]) == stats_of(results[1])
