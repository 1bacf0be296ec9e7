"""``trustwatch hunt``: ingest, run the rule pack as Sentinel would, print and write alerts.

Alert values (device, account, process, certificate) come from the logs and rule names from
rule files: every one is printed inert (``trustwatch.cli.render.cell``, ``common.echo``), and
the JSON formats escape unsafe characters (``trustwatch.inert.json_text``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from trustwatch.cli.common import (
    EXIT_FOUND,
    EXIT_SKIPPED,
    echo,
    limit_option,
    memory_limit_option,
    reports_errors,
)
from trustwatch.cli.render import cell, stdout_console, write_exact
from trustwatch.errors import InputError
from trustwatch.inert import json_text, visible

if TYPE_CHECKING:
    from datetime import datetime

    from trustwatch.certs.enrich import EnrichStats
    from trustwatch.cli.ingest_cmd import SkippedInput
    from trustwatch.rules.model import Rule
    from trustwatch.rules.runner import Hunter, HuntResult
    from trustwatch.rules.tuning import Tuning

TABLE_COLUMNS = (
    "time",
    "rule",
    "severity",
    "device",
    "account",
    "process",
    "store",
    "thumbprint",
    "certificate",
)


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
    help="Rules to run: a file, a folder, or a pack (default, reference, all). Repeatable. "
    "Default: the default pack.",
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl", "csv"]),
    default="table",
    show_default=True,
    help="Alerts on stdout: a table, or SecurityAlert records as JSON / JSONL, or CSV.",
)
@click.option("--out", metavar="FILE", help="Write the alerts as SecurityAlert JSON Lines to FILE.")
@click.option("--report", metavar="FILE.html", help="(not available yet)")
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
    report: str | None,
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
    """
    from trustwatch.api import Session
    from trustwatch.certs.enrich import enrich_hunt
    from trustwatch.kql.literals import parse_datetime_text
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.runner import Hunter
    from trustwatch.rules.tuning import Tuning, default_tuning_path, load_tuning
    from trustwatch.sigma.load import load_sigma, report_lines, runnable

    if report:
        raise InputError(
            "HTML reports are not available yet; use --out FILE for SecurityAlert JSONL"
        )
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
    out_path = Path(out) if out else None
    if out_path is not None and not out_path.parent.exists():
        raise InputError(f"--out: folder {out_path.parent} does not exist")
    telemetry, skipped = _hunt_telemetry(paths, workspace, memory_limit)
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
    if replay:
        _print_replay(result)
    _print_alerts(result.alerts, fmt)
    if out_path is not None:
        with out_path.open("w", encoding="utf-8") as fh:
            for alert in result.alerts:
                fh.write(json_text(json.dumps(alert, ensure_ascii=False)) + "\n")
        echo(f"wrote {len(result.alerts)} alert(s) to {out_path}", err=True, keep="")
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
        console=Console(stderr=True),
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


def _print_account(result: HuntResult, tuning: Tuning) -> None:
    """How the hunt went, on stderr: data span, per-rule runs and alerts, suppressions."""
    span = result.span
    if span is None:
        echo("hunt: the data holds no timed rows; no rule can fire", err=True)
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
            + (f", {stats.suppressed} suppressed by tuning" if stats.suppressed else ""),
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


def alert_cells(alert: dict[str, Any]) -> dict[str, str]:
    """The summary columns of one alert, from its first evidence row."""
    row = alert["Evidence"][0] if alert["Evidence"] else {}

    def first(*names: str) -> str:
        for name in names:
            value = row.get(name)
            if value not in (None, ""):
                return str(value)
        return ""

    domain = first("AccountDomain", "InitiatingProcessAccountDomain")
    account = first("AccountName", "InitiatingProcessAccountName")
    return {
        "time": alert["StartTime"],
        "rule": alert["AlertName"],
        "severity": alert["AlertSeverity"],
        "device": first("DeviceName") or "(no device name)",
        "account": f"{domain}\\{account}" if domain and account else account,
        "process": first(
            "ProcessPath", "InitiatingProcessFolderPath", "InitiatingProcessFileName", "FolderPath"
        ),
        "store": first("CertStore", "CertStoreType"),
        "thumbprint": first("CertThumbprint"),
        "certificate": _certificate_cell(alert),
    }


def _certificate_cell(alert: dict[str, Any]) -> str:
    """The worst certificate verdict, with that certificate's subject CN when it has one."""
    certificates = alert.get("Certificates") or []
    if not certificates:
        return ""
    worst = json.loads(alert["ExtendedProperties"]).get("Certificate Verdict", "")
    chosen = next((c for c in certificates if c["verdict"] == worst), certificates[0])
    cn = chosen["subject"].split("CN=", 1)[1].split(",")[0] if "CN=" in chosen["subject"] else ""
    return f"{worst} ({cn})" if cn else worst


def _print_alerts(alerts: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        write_exact(json_text(json.dumps(alerts, ensure_ascii=False)) + "\n")
        return
    if fmt == "jsonl":
        for alert in alerts:
            write_exact(json_text(json.dumps(alert, ensure_ascii=False)) + "\n")
        return
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for alert in alerts:
            writer.writerow(alert_cells(alert))
        write_exact(buf.getvalue())
        return
    console = stdout_console(400)
    grid = Table(header_style="bold")
    for name in TABLE_COLUMNS:
        grid.add_column(name, overflow="fold")
    for alert in alerts:
        cells = alert_cells(alert)
        grid.add_row(*(cell(cells[c]) for c in TABLE_COLUMNS))
    console.print(grid)
    console.print(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}", style="dim")
