"""``trustwatch hunt``: ingest, run the rule pack as Sentinel would, print and write alerts.

Alerts are grouped into incidents (``trustwatch.incidents``) and printed incidents first, each
with its alerts under it (``cli.alert_view``); ``--no-grouping`` prints the flat alert table.
``--format json``/``jsonl`` stay SecurityAlert records (the contract); ``--incidents FILE``
writes the SecurityIncident records, CSV gains ``incident`` and ``why`` columns.

Alert values (device, account, process, certificate) come from the logs and rule names from
rule files: every one is printed inert (``trustwatch.cli.render.cell``, ``common.echo``), and
the JSON formats escape unsafe characters (``trustwatch.inert.json_text``).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from trustwatch.cli.common import (
    EXIT_FOUND,
    EXIT_SKIPPED,
    echo,
    engine_options,
    limit_option,
    memory_limit_option,
    reports_errors,
    spark_engine,
)
from trustwatch.cli.render import cell, emit, format_option, stdout_console
from trustwatch.cli.report_file import report_path, write_hunt_report
from trustwatch.errors import InputError
from trustwatch.inert import visible

if TYPE_CHECKING:
    from datetime import datetime

    from trustwatch.certs.enrich import EnrichStats
    from trustwatch.cli.ingest_cmd import SkippedInput
    from trustwatch.records import SecurityAlert, SecurityIncident
    from trustwatch.rules.model import Rule
    from trustwatch.rules.runner import Hunter, HuntResult
    from trustwatch.rules.tuning import Tuning


@click.command()
@click.argument("paths", nargs=-1, required=False)
@click.option(
    "--workspace",
    metavar="W",
    help="Hunt a workspace made by 'trustwatch ingest' (PATHs, if given, are ingested into it).",
)
@click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help="Rules to run: a file, a folder, or a pack (default, reference, network, all; all is "
    "default and reference). Repeatable. Default: the default pack.",
)
@click.option(
    "--sigma",
    "sigma_sources",
    multiple=True,
    metavar="DIR|FILE",
    help="Sigma rules to run too: a file, or a folder searched for *.yml/*.yaml; converted "
    "with pySigma's Kusto backend (Microsoft XDR pipeline). Repeatable. Given without --rules, "
    "only the Sigma rules run.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="With --sigma: list each rule not run and why, and each reading a column ingest "
    "does not fill.",
)
@click.option(
    "--tuning",
    metavar="FILE",
    help="Tuning file (exclusions, change windows, watchlists). Default: the shipped one.",
)
@click.option(
    "--allow-path",
    "allow_paths",
    multiple=True,
    metavar="DIR",
    help="A folder the tuning file's watchlists may read from besides the tuning file's own "
    "(by default a watchlist path leading anywhere else is refused). Repeatable.",
)
@click.option("--no-tuning", is_flag=True, help="Run without any exclusion.")
@click.option(
    "--now",
    metavar="ISO8601",
    help="Run each rule once, as Sentinel would at this UTC time (window: its queryPeriod).",
)
@click.option(
    "--replay",
    is_flag=True,
    help="Show the schedule replay: alerts per day per rule, with and without de-duplication.",
)
@format_option(
    help_text="Alerts on stdout: a table, or SecurityAlert records as JSON / JSONL, or CSV."
)
@click.option("--out", metavar="FILE", help="Write the alerts as SecurityAlert JSON Lines to FILE.")
@click.option(
    "--incidents",
    "incidents_out",
    metavar="FILE",
    help="Write the incidents as SecurityIncident JSON Lines to FILE.",
)
@click.option(
    "--group-window",
    default="24h",
    show_default=True,
    metavar="TIMESPAN",
    help="Group an alert into an incident sharing its device or certificate thumbprint whose "
    "first alert is at most this much older (a KQL timespan: 5h, 24h, 7d).",
)
@click.option(
    "--no-grouping", is_flag=True, help="Print the alerts as one table, not in incidents."
)
@click.option("--wide", is_flag=True, help="Table: every column at full width, nothing shortened.")
@click.option(
    "--columns",
    metavar="A,B,...",
    help="Table: these alert columns, in this order (time, severity, rule, device, account, "
    "process, store, thumbprint, certificate, why).",
)
@click.option(
    "--report",
    metavar="FILE.html|FILE.md",
    help="Write the report: one self-contained HTML page (FILE.html) or Markdown for a ticket "
    "(FILE.md): summary, incidents, timelines, evidence, certificates, pivots, playbooks, noise.",
)
@engine_options
@memory_limit_option
@limit_option
@reports_errors
def hunt(
    paths: tuple[str, ...],
    workspace: str | None,
    rule_sources: tuple[str, ...],
    sigma_sources: tuple[str, ...],
    verbose: bool,
    tuning: str | None,
    allow_paths: tuple[str, ...],
    no_tuning: bool,
    now: str | None,
    replay: bool,
    fmt: str,
    out: str | None,
    incidents_out: str | None,
    group_window: str,
    no_grouping: bool,
    wide: bool,
    columns: str | None,
    report: str | None,
    engine: str,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
    memory_limit: str | None,
) -> None:
    """Run the certificate-abuse rule pack over telemetry and print its alerts.

    PATHs are telemetry files or folders in any format 'ingest' reads; they are ingested in
    memory unless --workspace is given. Without --now every rule's schedule is replayed across
    the data's time span and each alert is kept once.

    A file that cannot be read, and each record that cannot, is skipped and the hunt goes on
    with the rest; the last line on stderr then counts what was skipped. Exit 1 when there are
    alerts (even if input was skipped), 0 when there are none, 3 when there are none but input
    was skipped, 2 on bad input.

    With --engine spark the telemetry is ingested as without it, then written as Parquet to a
    temporary folder that Spark reads (deleted at the end), and the rules run on Spark.
    """
    from trustwatch.api import Session
    from trustwatch.certs.enrich import enrich_hunt
    from trustwatch.incidents import group
    from trustwatch.kql.literals import parse_datetime_text
    from trustwatch.output import records_jsonl
    from trustwatch.records import SecurityAlert
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.runner import Hunter
    from trustwatch.rules.tuning import Tuning, default_tuning_path, load_tuning
    from trustwatch.sigma.load import load_sigma, report_lines, runnable

    if now and replay:
        raise InputError("give --now or --replay, not both")
    if tuning and no_tuning:
        raise InputError("give --tuning FILE or --no-tuning, not both")
    if not paths and not workspace:
        raise InputError(
            "no telemetry given",
            hint="trustwatch hunt logs/ (files or folders), or --workspace W from 'ingest'",
        )
    pinned = parse_datetime_text(now) if now else None
    rules = load_rules(rule_sources or ("default",)) if rule_sources or not sigma_sources else []
    sigma = load_sigma(sigma_sources) if sigma_sources else None
    for folder in allow_paths:
        if not Path(folder).is_dir():
            raise InputError(f"--allow-path: {folder} is not a folder")
    tuned = Tuning() if no_tuning else load_tuning(tuning or default_tuning_path(), allow_paths)
    out_path = _out_path("--out", out)
    incidents_path = _out_path("--incidents", incidents_out)
    report_file = report_path(report)
    window = None if no_grouping else _window(group_window)
    chosen = _columns(columns)
    spark = spark_engine(engine, spark_master, spark_conf)
    telemetry, skipped = _hunt_telemetry(paths, workspace, memory_limit)
    if spark is not None:
        telemetry = _on_spark(telemetry, spark)
    session = Session(tuned.tables(), **telemetry)
    hunter = Hunter(session, tuned)
    if sigma is not None:  # the Sigma rules that compile here run with the others
        sigma = runnable(hunter, sigma)
        for line in report_lines(sigma, verbose):
            echo(line, err=True, keep="")
        rules = [*rules, *sigma.rules]
    result = _run_with_progress(hunter, rules, pinned)
    enriched = enrich_hunt(result.alerts, session)

    for notice in session.notices:
        echo(f"notice: {notice}", err=True)
    _print_account(result, tuned)
    _print_enrichment(enriched)
    alerts = [SecurityAlert.from_record(a) for a in result.alerts]
    incidents = group(alerts, window) if window is not None or incidents_path else []
    if incidents and window is not None:
        echo(
            f"incidents: {len(incidents)} (alerts grouped by device or certificate within "
            f"{group_window})",
            err=True,
            keep="",
        )
    if replay:
        _print_replay(result)
    _print_alerts(alerts, incidents if window is not None else None, fmt, wide, chosen)
    if out_path is not None:
        out_path.write_text(records_jsonl(a.to_record() for a in alerts), encoding="utf-8")
        echo(f"wrote {len(alerts)} alert(s) to {out_path}", err=True, keep="")
    if incidents_path is not None:
        text = records_jsonl(i.to_record() for i in incidents)
        incidents_path.write_text(text, encoding="utf-8")
        echo(f"wrote {len(incidents)} incident(s) to {incidents_path}", err=True, keep="")
    if report_file is not None:
        grouped = incidents if window is not None else group(alerts, None)
        write_hunt_report(
            report_file, hunt=result, tuning=tuned, incidents=grouped, rules=rules, session=session
        )
    if skipped is not None:
        skipped.report()
    if result.alerts:
        sys.exit(EXIT_FOUND)
    if skipped:
        sys.exit(EXIT_SKIPPED)


def _run_with_progress(hunter: Hunter, rules: list[Rule], now: datetime | None) -> HuntResult:
    """Run the rules with a progress bar on stderr (on a terminal): rule, runs evaluated."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True, emoji=False),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("rules", total=None)

        def update(rule: str, done: int, total: int) -> None:
            progress.update(task, description=visible(rule)[:50], completed=done, total=total)

        return hunter.run(rules, now=now, on_progress=update)


def _print_enrichment(stats: EnrichStats) -> None:
    if not stats.alerts:
        return
    verdicts = ", ".join(f"{n} {v}" for v, n in stats.verdicts.most_common())
    echo(
        f"certificates: {stats.alerts} alert(s) name one ({verdicts}); "
        f"{stats.from_certificate} classified from the certificate in the data, the rest by "
        f"thumbprint; severity raised on {stats.raised}, lowered on {stats.lowered}",
        err=True,
    )


def _hunt_telemetry(
    paths: tuple[str, ...], workspace: str | None, memory_limit: str | None = None
) -> tuple[dict[str, Any], SkippedInput | None]:
    """Ingest PATHs (into the workspace when one is given); the session's engine and views,
    and what of the PATHs could not be read (without PATHs: what the workspace's ingests
    could not read).

    Raises:
        InputError: PATHs were given and not one record in them could be read.
    """
    from trustwatch.cli.ingest_cmd import SkippedInput, ingest_paths
    from trustwatch.ingest import pipeline

    if not paths:
        assert workspace is not None
        engine, views = pipeline.open_workspace_for_query(workspace, memory_limit)
        earlier = SkippedInput.of_workspace(engine, workspace)
        return {"engine": engine, "views": views}, earlier
    ws, results, unknown = ingest_paths(paths, workspace, memory_limit)
    skipped = SkippedInput.of(results, unknown, workspace)
    if workspace:  # hunt what the workspace now holds, through a read-only connection
        ws.close()
        engine, views = pipeline.open_workspace_for_query(workspace, memory_limit)
        return {"engine": engine, "views": views}, skipped
    return {"engine": ws.engine, "views": pipeline.query_views(ws.engine)}, skipped


def _on_spark(telemetry: dict[str, Any], spark: Any) -> dict[str, Any]:
    """The ingested tables (stored tables and the Sentinel views over raw events) written as
    Parquet to a temporary folder, deleted when the command ends, and Spark's views of it."""
    import shutil
    import tempfile

    from trustwatch.engines.spark import parquet_views
    from trustwatch.ingest.export import export_parquet

    folder = Path(tempfile.mkdtemp(prefix="trustwatch-spark-"))
    click.get_current_context().call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    duckdb = telemetry["engine"]
    written = export_parquet(duckdb.con, telemetry["views"], folder)
    duckdb.close()
    views = parquet_views(spark, [str(folder)]) if written else {}
    return {"engine": spark, "views": views}


def _print_account(result: HuntResult, tuning: Tuning) -> None:
    """How the hunt went, on stderr: data span, per-rule runs and alerts, suppressions."""
    span = result.span
    untimed = sum(stats.untimed for stats in result.stats)
    if span is None and not any(stats.evaluations for stats in result.stats):
        echo("hunt: the data holds no rows the rules read; no rule can fire", err=True)
    elif span is None:
        echo(
            "hunt: the data holds no timed rows; each rule ran once over the untimed ones", err=True
        )
    else:
        mode = f"one run at {result.now.isoformat()}" if result.now else "schedule replayed"
        echo(
            f"hunt: data from {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M} UTC, {mode}",
            err=True,
        )
    for stats in result.stats:
        echo(
            f"  {stats.rule.name}: {stats.runs} run(s) with data, {stats.evaluations} "
            f"evaluated, {stats.alerts} alert(s)"
            + (f", {stats.suppressed} suppressed by tuning" if stats.suppressed else "")
            + (f", {stats.untimed} from rows without a time" if stats.untimed else ""),
            err=True,
            keep="",
        )
    if untimed:
        echo(
            f"untimed: {untimed} alert(s) come from rows whose time is empty (masked or "
            "impossible in the log): each rule ran once over those rows, as Sentinel sees rows "
            "dated at ingestion; the alerts are dated by this hunt",
            err=True,
            keep="",
        )
    origin = tuning.path.name if tuning.path else "none"
    if tuning.exclusions:
        echo(f"tuning ({origin}):", err=True, keep="")
        for exclusion in tuning.exclusions:
            counts = result.suppressed.get(exclusion.id, {})
            total = sum(counts.values())
            detail = ", ".join(f"{n} x {rule}" for rule, n in sorted(counts.items()))
            echo(
                f"  {exclusion.id}: suppressed {total}" + (f" ({detail})" if detail else ""),
                err=True,
                keep="",
            )
    from trustwatch.severity import SEVERITIES

    severities = Counter(a["AlertSeverity"] for a in result.alerts)
    order = {s: n for n, s in enumerate(reversed(SEVERITIES))}  # High first
    summary = ", ".join(
        f"{n} {s}" for s, n in sorted(severities.items(), key=lambda i: order.get(i[0], 9))
    )
    echo(f"alerts: {len(result.alerts)}" + (f" ({summary})" if summary else ""), err=True)


def _print_replay(result: HuntResult) -> None:
    console = stdout_console(400)
    grid = Table(title="schedule replay: alerts per day per rule", header_style="bold")
    for name, justify in (
        ("day", "left"),
        ("rule", "left"),
        ("alerts", "right"),
        ("without de-duplication", "right"),
    ):
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    for (day, rule), counts in sorted(result.daily.items()):
        grid.add_row(*map(cell, (day, rule, counts["alerts"], counts["results"])))
    console.print(grid)
    total_runs = sum(s.runs for s in result.stats)
    console.print(
        f"{total_runs} scheduled run(s) saw data; 'without de-duplication' counts an alert for "
        "every run whose look-back window still holds the event, as Sentinel raises them "
        "without alert suppression",
        style="dim",
    )


def _out_path(option: str, value: str | None) -> Path | None:
    path = Path(value) if value else None
    if path is not None and not path.parent.exists():
        raise InputError(f"{option}: folder {path.parent} does not exist")
    return path


def _window(text: str) -> timedelta:
    from trustwatch.kql.literals import parse_timespan_text

    try:
        window = parse_timespan_text(text)
    except ValueError:
        window = timedelta(-1)
    if window < timedelta(0):
        raise InputError(
            f"--group-window {text!r} is not a timespan",
            hint="a KQL timespan such as 5h, 24h or 7d; --no-grouping for none",
        )
    return window


def _columns(text: str | None) -> list[str] | None:
    from trustwatch.cli.alert_view import COLUMNS

    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or not names:
        raise InputError(
            f"--columns: unknown column {visible(', '.join(unknown) or text)!r}",
            hint="choose from " + ", ".join(COLUMNS),
        )
    return names


def _print_alerts(
    alerts: list[SecurityAlert],
    incidents: list[SecurityIncident] | None,
    fmt: str,
    wide: bool,
    columns: list[str] | None,
) -> None:
    """Alerts on stdout: SecurityAlert JSON/JSONL, CSV rows, or the terminal view."""
    from trustwatch.cli import alert_view
    from trustwatch.output import records_csv

    def csv() -> str:  # one row per alert, its incident and the columns of the table view
        of = {a.system_alert_id: i.incident_name for i in incidents or () for a in i.alerts}
        rows = (alert_view.csv_cells(a, of.get(a.system_alert_id, "")) for a in alerts)
        return records_csv(rows, alert_view.CSV_COLUMNS)

    def view() -> None:
        console = stdout_console(400)
        shortened = not wide and sys.stdout.isatty()  # into a pipe or file: nothing shortened
        if incidents is None:
            alert_view.print_alerts(console, alerts, wide=not shortened, columns=columns)
        else:
            alert_view.print_incidents(console, incidents, wide=not shortened, columns=columns)

    emit(fmt, lambda: [a.to_record() for a in alerts], view, indent=None, csv=csv)
