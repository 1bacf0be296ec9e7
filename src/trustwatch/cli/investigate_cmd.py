"""``trustwatch investigate``: an alert's or incident's guide pivots run, and its playbook filled.

Every value shown comes from the logs or from content files: rich text goes through
``render.cell``/``render.plain`` and JSON through ``trustwatch.inert.json_text``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from trustwatch.cli.common import echo, limit_option, memory_limit_option, reports_errors
from trustwatch.cli.render import cell, plain, stdout_console, write_exact
from trustwatch.cli.report_file import report_path, write_investigation_report
from trustwatch.errors import InputError
from trustwatch.inert import json_text, visible

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console, RenderableType

    from trustwatch.guides.investigate import AlertInvestigation, Investigation, PivotResult
    from trustwatch.guides.playbook import FilledStep
    from trustwatch.records import SecurityIncident

ROW_LIMIT = 50  # rows of one pivot shown in the table view (JSON has them all)
TEXT_LEAST = 24  # the room a text column needs for the rows to be shown as a table


@click.command()
@click.argument("key", metavar="ALERT_ID|INCIDENT_ID")
@click.argument("paths", nargs=-1, required=False)
@click.option("--workspace", metavar="W", help="Investigate in a workspace made by 'ingest'.")
@click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help="The rules the hunt ran (default: the default pack). Repeatable.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--report",
    metavar="FILE.html|FILE.md",
    help="Write the investigation as a report: a self-contained HTML page or Markdown.",
)
@memory_limit_option
@limit_option
@reports_errors
def investigate(
    key: str,
    paths: tuple[str, ...],
    workspace: str | None,
    rule_sources: tuple[str, ...],
    fmt: str,
    report: str | None,
    memory_limit: str | None,
) -> None:
    """Run an alert's (or incident's) investigation guide and fill in its playbook.

    The alert is found by hunting PATHs or the workspace as 'hunt' does (same rules, the
    shipped tuning, the whole time span); ALERT_ID is its SystemAlertId and INCIDENT_ID the
    IncidentName of 'hunt --format json', or a unique prefix of 8+ characters of either. The
    guide's pivot queries run against the same data; an incident's pivots are the union of its
    alerts'. The playbook's commands are filled with the alert's values, quoted for their shell.
    """
    from trustwatch.api import Session
    from trustwatch.guides.investigate import guides_of, investigate, select
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.runner import Hunter
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    report_file = report_path(report)
    if not paths and not workspace:
        raise InputError(
            "no telemetry given",
            hint="trustwatch investigate ID logs/ (the files the hunt ran on), or --workspace W",
        )
    rules = load_rules(rule_sources or ("default",))
    tuning = load_tuning(default_tuning_path(), ())
    session = Session(tuning.tables(), **_telemetry(paths, workspace, memory_limit))
    hunted = Hunter(session, tuning).run(rules)
    chosen, incident = select(hunted.alerts, key)
    result = investigate(chosen, guides_of(rules), rules, session)
    if report_file is not None:
        write_investigation_report(
            report_file,
            hunt=hunted,
            tuning=tuning,
            incident=incident or _single(chosen),
            investigation=result,
            session=session,
        )
    if fmt == "json":
        write_exact(json_text(json.dumps(_json(result, incident), ensure_ascii=False)) + "\n")
    else:
        _print(result, incident)


def _single(alerts: list[Mapping[str, Any]]) -> SecurityIncident:
    """One alert as an incident of its own (what the report shows for ALERT_ID)."""
    from trustwatch.incidents import group
    from trustwatch.records import SecurityAlert

    return group([SecurityAlert.from_record(a) for a in alerts], None)[0]


def _telemetry(
    paths: tuple[str, ...], workspace: str | None, memory_limit: str | None
) -> dict[str, Any]:
    from trustwatch.cli.ingest_cmd import ingest_paths
    from trustwatch.ingest import pipeline

    if paths:
        ws, _, _ = ingest_paths(paths, workspace, memory_limit)
        if not workspace:
            return {"engine": ws.engine, "views": pipeline.query_views(ws.engine)}
        ws.close()
    assert workspace is not None
    engine, views = pipeline.open_workspace_for_query(workspace, memory_limit)
    return {"engine": engine, "views": views}


# --- JSON -------------------------------------------------------------------------------------


def _alert_json(item: AlertInvestigation) -> dict[str, Any]:
    from trustwatch.guides.playbook import value_text

    guide = item.guide
    return {
        "SystemAlertId": item.alert.get("SystemAlertId"),
        "AlertName": item.alert.get("AlertName"),
        "AlertSeverity": item.alert.get("AlertSeverity"),
        "StartTime": item.alert.get("StartTime"),
        "Guide": str(guide.path.name) if guide else None,
        "Meaning": guide.meaning if guide else "",
        "Triage": list(guide.triage) if guide else [],
        "Parameters": {k: value_text(v) for k, v in item.values.items()},
        "Playbook": [
            {
                "Phase": s.step.phase,
                "Step": s.step.id,
                "Title": s.step.title,
                "Shell": s.step.shell,
                "Text": s.text,
                "Command": s.command,
                "Unfilled": s.unfilled,
            }
            for s in item.steps
        ],
    }


def _pivot_json(result: PivotResult) -> dict[str, Any]:
    from trustwatch.output import json_rows

    pivot = result.bound.pivot
    return {
        "Pivot": pivot.id,
        "Title": pivot.title,
        "Alerts": list(result.alerts),
        "Query": result.bound.text,
        "Skipped": result.bound.skipped,
        "Rows": list(json_rows(result.table)) if result.table is not None else [],
    }


def _json(result: Investigation, incident: SecurityIncident | None) -> dict[str, Any]:
    return {
        "Incident": incident.to_record() if incident is not None else None,
        "Alerts": [_alert_json(a) for a in result.alerts],
        "Pivots": [_pivot_json(p) for p in result.pivots],
    }


# --- the terminal -----------------------------------------------------------------------------


def _print(result: Investigation, incident: SecurityIncident | None) -> None:
    console = stdout_console(200)
    if incident is not None:
        console.print(cell(f"Incident {incident.incident_name}: {incident.title}", "bold"))
        console.print(plain(incident.description))
        console.print()
    for item in result.alerts:
        _print_alert(console, item)
    console.print(cell("Pivots", "bold underline"))
    for pivot in result.pivots:
        _print_pivot(console, pivot, several=len(result.alerts) > 1)
    _print_playbook(console, result.alerts)


def _print_alert(console: Console, item: AlertInvestigation) -> None:
    alert: Mapping[str, Any] = item.alert
    console.print(
        cell(f"Alert {alert.get('SystemAlertId')}  {alert.get('AlertSeverity')}", "bold"),
        cell(f"{alert.get('AlertName')}  on {alert.get('CompromisedEntity')} at "),
        cell(alert.get("StartTime")),
    )
    if item.guide is None:
        console.print(cell("  its rule has no guide", "yellow"))
        return
    console.print(plain(item.guide.meaning))
    for n, question in enumerate(item.guide.triage, 1):
        console.print(cell(f"  {n}. {question}"))
    console.print()


def _print_pivot(console: Console, result: PivotResult, *, several: bool) -> None:
    pivot = result.bound.pivot
    title = pivot.title + (
        f"  (alerts {', '.join(a[:8] for a in result.alerts)})" if several else ""
    )
    console.print(cell(title, "bold"))
    if result.bound.skipped:
        console.print(cell(f"  not run: {result.bound.skipped}", "yellow"))
        return
    console.print(plain(result.bound.text.rstrip(), "dim"))
    table = result.table
    if table is None or table.num_rows == 0:
        console.print(cell("  no rows", "dim"))
        return
    console.print(pivot_rows(table, console.width))
    more = (
        f" (first {ROW_LIMIT} shown; --format json has all)" if table.num_rows > ROW_LIMIT else ""
    )
    console.print(cell(f"{table.num_rows} row(s){more}", "dim"))
    console.print()


def pivot_rows(table: pa.Table, width: int) -> RenderableType:
    """A pivot's first ``ROW_LIMIT`` rows for ``width`` columns, no token split across lines.

    A column whose values have no space (a time, a hash, a thumbprint, an id, a path without
    spaces) is a token column: never wrapped, as wide as its widest value. When the token
    columns and a little room for each text column fit, the rows are a table (text wraps
    between words); otherwise each row is a block of "column  value" lines, one column a
    line, and only long text values wrap.
    """
    from rich.console import Group

    from trustwatch.output import json_rows, text_cell

    names = table.column_names
    rows = [
        [visible(text_cell(v)) for v in row.values()]
        for _, row in zip(range(ROW_LIMIT), json_rows(table), strict=False)
    ]
    tokens = [all(" " not in r[i] for r in rows) for i in range(len(names))]
    widest = [max([len(names[i]), *(len(r[i]) for r in rows)]) for i in range(len(names))]
    least = [
        w if token else min(w, max(len(name), TEXT_LEAST))
        for w, token, name in zip(widest, tokens, names, strict=True)
    ]
    need = sum(least)
    if need + 3 * len(names) + 1 <= width:
        grid = Table(header_style="bold")
        for i, name in enumerate(names):
            if tokens[i]:
                grid.add_column(cell(name), no_wrap=True, min_width=widest[i])
            else:
                grid.add_column(cell(name), overflow="fold", min_width=least[i])
        for r in rows:
            grid.add_row(*(Text(v) for v in r))
        return grid
    label = max(len(n) for n in names)
    blocks: list[RenderableType] = []
    for n, r in enumerate(rows, 1):
        block = Table.grid(padding=(0, 2))
        block.add_column(no_wrap=True, min_width=label, style="bold")
        block.add_column(overflow="fold")
        for name, value in zip(names, r, strict=True):
            if value:
                block.add_row(cell(name), Text(value))
        blocks.append(Text(f"row {n}", style="dim"))
        blocks.append(block)
    return Group(*blocks)


def merged_playbook(
    alerts: Sequence[AlertInvestigation],
) -> list[tuple[FilledStep, list[str]]]:
    """The alerts' playbook steps, each filled-in step once with the alerts it serves.

    Steps are the same when the library step, its filled command, its text and why it is not
    filled are; they come in phase order, then in the order first met. An incident's alerts
    share most steps (isolate the device, export the stores): one alert's list each repeated
    them (49 steps, 18 distinct, for the demo's first incident).
    """
    from trustwatch.guides.model import PHASES

    merged: dict[tuple[str, str, str, str, str], tuple[FilledStep, list[str]]] = {}
    for item in alerts:
        alert_id = str(item.alert.get("SystemAlertId") or "")
        for step in item.steps:
            key = (step.step.phase, step.step.id, step.command, step.text, step.unfilled)
            merged.setdefault(key, (step, []))[1].append(alert_id)
    order = {p: n for n, p in enumerate(PHASES)}
    return sorted(merged.values(), key=lambda m: order.get(m[0].step.phase, len(order)))


def _print_playbook(console: Console, alerts: Sequence[AlertInvestigation]) -> None:
    steps = merged_playbook(alerts)
    if not steps:
        return
    ids = [str(a.alert.get("SystemAlertId") or "") for a in alerts]
    whom = f"alert {ids[0]}" if len(ids) == 1 else f"the {len(ids)} alerts"
    console.print(cell(f"Playbook for {whom}", "bold underline"))
    phase = ""
    for step, served in steps:
        if step.step.phase != phase:
            phase = step.step.phase
            console.print(cell(phase.capitalize(), "bold"))
        some = f"  (alerts {', '.join(a[:8] for a in served)})" if len(served) < len(ids) else ""
        console.print(cell(f"  - {step.step.title}{some}"))
        if step.text:
            console.print(plain("    " + step.text.replace("\n", "\n    ")))
        if step.unfilled:
            console.print(cell(f"    not filled in: {step.unfilled}", "yellow"))
        elif step.command:
            shell = "" if step.step.shell == "kql" else f"[{step.step.shell}] "
            console.print(plain("    " + shell + step.command.rstrip().replace("\n", "\n    ")))
    console.print()
    echo(f"{len(steps)} playbook step(s) for {len(ids)} alert(s)", err=True, keep="")
