"""Sentinel's scheduler, replayed over recorded data.

A scheduled rule runs every ``queryFrequency``; each run sees the rows whose ``TimeGenerated``
is in ``(run - queryPeriod, run]`` and evaluates the query with ``now()`` = the run time. Runs
sit on a fixed grid (multiples of ``queryFrequency`` since 1970-01-01 UTC).

Only runs whose window holds data can raise an alert (with ``gt``/``eq``/``ne`` triggers on a
positive count), so the replay visits those. When the compiled query does not depend on
``now()``, consecutive runs that see exactly the same rows return the same result: the replay
evaluates the first of each such group and counts the rest as repeats.

A query evaluated once for many runs (``rules.locality``) reads its tables with a hidden
column: each row's own time (:meth:`Window.bind_times`), or the run it is read for, a row being
read once per run whose window holds it (:meth:`Window.bind_runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from sqlglot import exp

from trustwatch.engines.base import Engine, row_tuples
from trustwatch.kql.compiler import CatalogTable
from trustwatch.schema.model import Column

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW_FROM, WINDOW_TO = "tw_from", "tw_to"  # query parameters of a run's window
RUN_IDS, RUN_STARTS, RUN_ENDS = "tw_runs", "tw_starts", "tw_ends"  # lists: one item per run


@dataclass(frozen=True, slots=True)
class Run:
    """One evaluation: the run time, its window, and how many grid runs it stands for."""

    at: datetime
    start: datetime
    repeats: int = 1  # grid runs with the same window content (1: this run only)
    k: int = 0  # the run's place on the grid (replays only)


_MIN = datetime(1, 1, 1, tzinfo=UTC)
_MAX = datetime(9999, 12, 31, tzinfo=UTC)
_US = timedelta(microseconds=1)


def grid_time(k: int, frequency: timedelta) -> datetime:
    """Run k's time, clamped to the datetime range (events dated year 1 or 9999 exist)."""
    try:
        return EPOCH + k * frequency
    except OverflowError:
        return _MIN if k < 0 else _MAX


def first_run(us: int, frequency_us: int) -> int:
    """The first grid run whose window holds an event at ``us`` (microseconds since 1970)."""
    return -(-us // frequency_us)


def end_run(us: int, frequency_us: int, period_us: int) -> int:
    """The first grid run after :func:`first_run` whose window no longer holds the event."""
    return -(-(us + period_us) // frequency_us)


def micros(value: timedelta) -> int:
    return value // _US


def representable_us() -> tuple[int, int]:
    """The run times :func:`grid_time` gives unclamped, in microseconds since 1970 (bounds)."""
    return micros(_MIN - EPOCH), micros(_MAX - EPOCH)


def runs_per_day(first: int, end: int, frequency: timedelta) -> Iterator[tuple[date, int]]:
    """Grid runs ``first .. end-1`` counted per UTC day of their time, a step per day, not run."""
    k = first
    while k < end:
        day = grid_time(k, frequency).date()
        try:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        except OverflowError:  # the last day there is
            stop = end
        else:
            after = first_run(micros(midnight - EPOCH), micros(frequency))
            stop = min(end, max(k + 1, after))
        yield day, stop - k
        k = stop


def window_start(at: datetime, period: timedelta) -> datetime:
    try:
        return at - period
    except OverflowError:
        return _MIN


def window_catalog(catalog: dict[str, CatalogTable]) -> tuple[dict[str, CatalogTable], Window]:
    """The catalog seen by a scheduled run: each timed table with data stands for its window.

    Queries compile against marker names; :meth:`Window.bind` then replaces each marker with
    the table limited to ``(from, to]`` through the query parameters ``$tw_from``/``$tw_to``, so
    one prepared plan serves every run.
    """
    windowed: dict[str, CatalogTable] = {}
    markers: dict[str, str] = {}
    for name, table in catalog.items():
        if table.sql_name is None or table.schema.column("TimeGenerated") is None:
            windowed[name] = table
            continue
        marker = f"tw_window_{len(markers)}"
        markers[marker] = table.sql_name
        windowed[name] = CatalogTable(table.schema, marker)
    return windowed, Window(markers)


def timed_tables(catalog: dict[str, CatalogTable]) -> list[str]:
    """The tables a run sees through its window: those with a ``TimeGenerated`` column."""
    return [n for n, t in catalog.items() if t.schema.column("TimeGenerated") is not None]


def hidden_catalog(catalog: dict[str, CatalogTable], column: str) -> dict[str, CatalogTable]:
    """``catalog`` (a window catalog) with a hidden ``long`` column after each timed table's own.

    Compiled against it, a query sees the column that :meth:`Window.bind_times` or
    :meth:`Window.bind_runs` adds (empty tables have it too, as null).
    """
    out = dict(catalog)
    for name in timed_tables(catalog):
        table = catalog[name]
        schema = replace(table.schema, columns=(*table.schema.columns, Column(column, "long")))
        out[name] = CatalogTable(schema, table.sql_name)
    return out


class Window:
    """Replaces marker tables with their window-limited selects; gives a run's parameters."""

    def __init__(self, markers: dict[str, str]) -> None:
        self.markers = markers

    def bind(self, query: exp.Query) -> exp.Query:
        """Each marker read as its table limited to the run's window ``($tw_from, $tw_to]``."""
        return self._bind(query, lambda sql_name: _limited(exp.Star(), sql_name))

    def bind_untimed(self, query: exp.Query) -> exp.Query:
        """Each marker read as its rows without a time (``TimeGenerated`` null), which no
        run's window holds (see :meth:`trustwatch.rules.runner.Hunter` on untimed rows)."""

        def read(sql_name: str) -> exp.Query:
            return (
                exp.Select(expressions=[exp.Star()])
                .from_(exp.to_table(sql_name, quoted=True))
                .where(exp.Is(this=_time(), expression=exp.null()))
            )

        return self._bind(query, read)

    def bind_times(self, query: exp.Query, column: str) -> exp.Query:
        """As :meth:`bind`, each row with its time in microseconds since 1970 in ``column``."""
        time_us = exp.Anonymous(this="epoch_us", expressions=[_time()])
        return self._bind(
            query, lambda sql_name: _limited(exp.Star(), sql_name, exp.alias_(time_us, column))
        )

    def bind_runs(self, query: exp.Query, column: str) -> exp.Query:
        """Each marker read once per run whose window holds the row, the run's id in ``column``.

        The runs are the list parameters ``$tw_runs``, ``$tw_starts`` and ``$tw_ends``
        (:meth:`run_params`); a run ``r`` holds a row when ``start_r < TimeGenerated <= end_r``.
        """
        runs = exp.select(
            *(
                exp.alias_(exp.Unnest(expressions=[exp.Placeholder(this=param)]), name)
                for param, name in ((RUN_IDS, column), (RUN_STARTS, "s"), (RUN_ENDS, "e"))
            )
        ).subquery("tw_r")
        time = exp.column("TimeGenerated", table="tw_t", quoted=True)
        on = exp.and_(
            exp.GT(this=time, expression=exp.column("s", table="tw_r")),
            exp.LTE(this=time.copy(), expression=exp.column("e", table="tw_r")),
        )

        def read(sql_name: str) -> exp.Query:
            return (
                exp.select(
                    exp.Column(this=exp.Star(), table=exp.to_identifier("tw_t")),
                    exp.column(column, table="tw_r", quoted=True),
                )
                .from_(exp.to_table(sql_name, quoted=True, alias="tw_t"))
                .join(runs.copy(), on=on.copy(), join_type="INNER")
            )

        return self._bind(query, read)

    def _bind(self, query: exp.Query, read: Callable[[str], exp.Query]) -> exp.Query:
        def replace_marker(node: exp.Expr) -> exp.Expr:
            if not isinstance(node, exp.Table) or node.name not in self.markers:
                return node
            return read(self.markers[node.name]).subquery(node.alias or None)

        bound = query.transform(replace_marker)
        assert isinstance(bound, exp.Query)
        return bound

    @staticmethod
    def params(start: datetime | None, end: datetime | None) -> dict[str, datetime]:
        """The parameters of a run over ``(start, end]`` (None: unbounded), as naive UTC."""
        return {
            WINDOW_FROM: (start or _MIN).astimezone(UTC).replace(tzinfo=None),
            WINDOW_TO: (end or _MAX).astimezone(UTC).replace(tzinfo=None),
        }

    @staticmethod
    def run_params(runs: Sequence[Run], first_id: int = 0) -> dict[str, list[int] | list[datetime]]:
        """The list parameters of :meth:`bind_runs` for ``runs`` (ids from ``first_id`` on)."""
        return {
            RUN_IDS: list(range(first_id, first_id + len(runs))),
            RUN_STARTS: [_naive(run.start) for run in runs],
            RUN_ENDS: [_naive(run.at) for run in runs],
        }


def _time() -> exp.Column:
    return exp.column("TimeGenerated", quoted=True)


def _limited(star: exp.Expr, sql_name: str, *extra: exp.Expr) -> exp.Query:
    """``SELECT *[, extra] FROM table WHERE $tw_from < TimeGenerated <= $tw_to``."""
    return (
        exp.Select(expressions=[star, *extra])
        .from_(exp.to_table(sql_name, quoted=True))
        .where(
            exp.and_(
                exp.GT(this=_time(), expression=exp.Placeholder(this=WINDOW_FROM)),
                exp.LTE(this=_time(), expression=exp.Placeholder(this=WINDOW_TO)),
            )
        )
    )


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def activity(
    engine: Engine, tables: Iterable[CatalogTable], frequency: timedelta, period: timedelta
) -> list[tuple[int, int]]:
    """For each distinct event time in ``tables``: the grid runs ``[first, end)`` that see it.

    An event at ``x`` is in run ``k`` when ``k*F - P < x <= k*F``.
    """
    return [(first, end) for first, end, _ in weighted_activity(engine, tables, frequency, period)]


def weighted_activity(
    engine: Engine, tables: Iterable[CatalogTable], frequency: timedelta, period: timedelta
) -> list[tuple[int, int, int]]:
    """As :func:`activity`, with the number of events seen by exactly runs ``[first, end)``."""
    query = activity_query(tables, frequency, period)
    return [] if query is None else activity_rows(engine.execute(query))


def activity_rows(table: pa.Table) -> list[tuple[int, int, int]]:
    """:func:`activity_query`'s result as ``(first, end, events)``."""
    return [(int(a), int(b), int(n)) for a, b, n in row_tuples(table)]


def activity_query(
    tables: Iterable[CatalogTable], frequency: timedelta, period: timedelta
) -> exp.Query | None:
    """The query of :func:`weighted_activity` (None: no table has a time)."""
    f_us = frequency // timedelta(microseconds=1)
    p_us = period // timedelta(microseconds=1)
    time = exp.column("TimeGenerated", quoted=True)
    parts: list[exp.Query] = [
        exp.select(exp.alias_(exp.Anonymous(this="epoch_us", expressions=[time]), "us"))
        .from_(exp.to_table(table.sql_name, quoted=True))
        .where(exp.Not(this=exp.Is(this=time, expression=exp.null())))
        for table in tables
        if table.sql_name and table.schema.column("TimeGenerated") is not None
    ]
    if not parts:
        return None
    first = exp.cast(
        exp.Ceil(this=exp.Div(this=exp.column("us"), expression=_double(f_us))), "BIGINT"
    )
    end = exp.cast(
        exp.Ceil(
            this=exp.Div(
                this=exp.paren(exp.Add(this=exp.column("us"), expression=exp.Literal.number(p_us))),
                expression=_double(f_us),
            )
        ),
        "BIGINT",
    )
    return (
        exp.select(exp.alias_(first, "first"), exp.alias_(end, "end"), "count(*)")
        .from_(union_all(parts).subquery("t"))
        .group_by("1", "2")
    )


def batches(runs: Sequence[Run], weighted: Sequence[tuple[int, int, int]], limit: int) -> list[int]:
    """Where to cut ``runs`` so that the events the runs of a batch read add up to ``limit``.

    A batched evaluation (:meth:`Window.bind_runs`) reads each event once per run whose window
    holds it; bounding that sum bounds its memory. A run alone over ``limit`` is a batch of its
    own. Returns the start index of each batch.
    """
    delta: dict[int, int] = {}
    for first, end, count in weighted:
        delta[first] = delta.get(first, 0) + count
        delta[end] = delta.get(end, 0) - count
    bounds = sorted(delta)
    cuts: list[int] = []
    load = total = 0
    b = 0
    for i, run in enumerate(runs):  # runs are in grid order: sweep the bounds along them
        while b < len(bounds) and bounds[b] <= run.k:
            load += delta[bounds[b]]
            b += 1
        if not cuts or total + load > limit:
            cuts.append(i)
            total = 0
        total += load
    return cuts


def _double(value: int) -> exp.Expr:
    return exp.cast(exp.Literal.number(value), "DOUBLE")


def union_all(parts: list[exp.Query]) -> exp.Query:
    """``UNION ALL`` of the queries (one query stays as it is)."""
    result = parts[0]
    for part in parts[1:]:
        result = exp.union(result, part, distinct=False)
    return result


def replay_runs(
    spans: list[tuple[int, int]], frequency: timedelta, period: timedelta, depends_on_now: bool
) -> Iterator[Run]:
    """The runs to evaluate, in time order, from :func:`activity`'s spans."""
    if not spans:
        return
    if depends_on_now:
        ks = sorted({k for first, end in spans for k in range(first, end)})
        for k in ks:
            at = grid_time(k, frequency)
            yield Run(at, window_start(at, period), k=k)
        return
    # the window's content changes only where an event enters (first) or leaves (end)
    changes = sorted({k for span in spans for k in span})
    active = _active(spans)
    for i, k in enumerate(changes):
        if not active(k):
            continue
        nxt = changes[i + 1] if i + 1 < len(changes) else k + 1
        at = grid_time(k, frequency)
        yield Run(at, window_start(at, period), repeats=nxt - k, k=k)


def _active(spans: list[tuple[int, int]]) -> _Coverage:
    return _Coverage(sorted(spans))


class _Coverage:
    """Is grid run k inside any [first, end) span?"""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for first, end in spans:
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([first, end])
        self.merged = merged

    def __call__(self, k: int) -> bool:
        lo, hi = 0, len(self.merged)
        while lo < hi:
            mid = (lo + hi) // 2
            first, end = self.merged[mid]
            if k < first:
                hi = mid
            elif k >= end:
                lo = mid + 1
            else:
                return True
        return False


def run_count(spans: list[tuple[int, int]]) -> int:
    """How many grid runs see at least one event."""
    return sum(end - first for first, end in _Coverage(sorted(spans)).merged)


def single_run(at: datetime, period: timedelta) -> Run:
    return Run(at, window_start(at, period))
