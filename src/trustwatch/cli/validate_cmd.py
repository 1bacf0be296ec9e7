"""``trustwatch validate`` (the scenario x rule matrix) and ``trustwatch simulate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trustwatch.cli.common import (
    EXIT_FOUND,
    duckdb_only_engine_option,
    echo,
    limit_option,
    reports_errors,
)
from trustwatch.cli.render import cell, write_exact
from trustwatch.inert import json_text

if TYPE_CHECKING:
    from trustwatch.scenarios.validate import Matrix, Row

SYMBOLS = {
    "fired": ("fired", "green"),
    "quiet": ("-", "dim"),
    "known-miss": ("miss*", "yellow"),
    "MISSED": ("MISSED", "bold red"),
    "UNEXPECTED": ("ALERT!", "bold red"),
}
LEGEND = (
    "fired = fired as expected; - = quiet as expected; miss* = documented blind spot of the "
    "rule (expected miss); MISSED = expected alert absent; ALERT! = alert not expected"
)


@click.command()
@click.argument("scenario_ids", nargs=-1, required=False, metavar="[SCENARIO]...")
@click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help="Rules to run (repeatable). Default: all and network (every shipped pack).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option("--seed", type=int, default=None, help="Seed of the simulated hosts (default 4).")
@duckdb_only_engine_option
@limit_option
@reports_errors
def validate(
    scenario_ids: tuple[str, ...], rule_sources: tuple[str, ...], fmt: str, seed: int | None
) -> None:
    """Emulate the scenarios on Windows hosts and network sensors; show what fires.

    Windows scenarios run on Sysmon, Defender and Security-auditing hosts, network scenarios
    on Zeek (TSV and JSON) and Suricata sensors. Each scenario's telemetry is ingested like any
    log and hunted with the default tuning; every cell is checked against the expectation
    stored with the scenario. Exit 1 on any mismatch.
    """
    from trustwatch.scenarios.model import load_scenarios
    from trustwatch.scenarios.render import DEFAULT_SEED
    from trustwatch.scenarios.validate import DEFAULT_RULES
    from trustwatch.scenarios.validate import validate as run_matrix

    scenarios = load_scenarios(list(scenario_ids) or None)
    chosen_seed = DEFAULT_SEED if seed is None else seed
    matrix = run_matrix(scenarios, rule_sources or DEFAULT_RULES, chosen_seed)
    if fmt == "json":
        write_exact(json_text(json.dumps(matrix_json(matrix), indent=2)) + "\n")
    else:
        _print_table(matrix)
    if not matrix.ok:
        sys.exit(EXIT_FOUND)


@click.command()
@click.argument("scenario_ids", nargs=-1, required=True, metavar="SCENARIO...")
@click.option("--out", required=True, metavar="DIR", help="Folder to write the files into.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="SOURCE",
    help="Telemetry source(s) to write (repeatable; default: every source of each scenario's "
    "host kind).",
)
@click.option("--seed", type=int, default=None, help="Seed of the simulated hosts (default 4).")
@limit_option
@reports_errors
def simulate(
    scenario_ids: tuple[str, ...], out: str, sources: tuple[str, ...], seed: int | None
) -> None:
    """Write scenarios' telemetry files, per scenario and telemetry source.

    A scenario runs on the same simulated device in every source: hunt one source's files
    at a time, or the mix `trustwatch simulate` writes for distinct scenarios. A Windows
    scenario writes one file per host (sysmon, defender, security); a network scenario writes
    Zeek ssl.log and x509.log (zeek), their JSON (zeek-json) and Suricata eve.json (suricata).
    """
    from trustwatch.errors import InputError
    from trustwatch.scenarios.model import ALL_SOURCES, load_scenarios
    from trustwatch.scenarios.render import DEFAULT_SEED, write

    unknown = [s for s in sources if s not in ALL_SOURCES]
    if unknown:
        raise InputError(
            f"--source: unknown telemetry source '{unknown[0]}'",
            hint="one of " + ", ".join(ALL_SOURCES),
        )
    for scenario in load_scenarios(list(scenario_ids)):
        chosen = sources or None
        written = write(scenario, Path(out), DEFAULT_SEED if seed is None else seed, chosen)
        for source, paths in written.items():
            for path in paths:
                echo(f"{scenario.id} [{source}]: {path}", keep="")


def matrix_json(matrix: Matrix) -> dict[str, Any]:
    """The matrix as a JSON document."""
    return {
        "ok": matrix.ok,
        "rules": matrix.rules,
        "rows": [
            {
                "scenario": row.scenario.id,
                "kind": row.scenario.kind,
                "source": row.source,
                "ok": row.ok,
                "cells": row.cells,
                "alerts": row.alerts,
                "known_misses": dict(row.scenario.expect[row.source].known_misses),
                "suppressed": row.suppressed,
                "certificate_verdict": row.certificate_verdict,
                "expected_certificate_verdict": row.scenario.expect[row.source].certificate_verdict,
                "problems": row.problems,
            }
            for row in matrix.rows
        ],
    }


def _print_table(matrix: Matrix) -> None:
    console = Console(width=max(160, Console().width), emoji=False)
    table = Table(title="trustwatch validation matrix", show_lines=False)
    table.add_column("scenario")
    table.add_column("kind")
    table.add_column("source")
    for n, _ in enumerate(matrix.rules, start=1):
        table.add_column(f"R{n}", justify="center")
    table.add_column("certificate")
    table.add_column("ok")
    for row in matrix.rows:
        table.add_row(*_cells(row, matrix.rules))
    console.print(table)
    for n, stem in enumerate(matrix.rules, start=1):
        console.print(cell(f"R{n} = {stem}"))
    console.print(LEGEND, markup=False)
    for row in matrix.rows:
        for stem, why in sorted(row.scenario.expect[row.source].known_misses.items()):
            if row.cells.get(stem) == "known-miss":
                console.print(cell(f"miss* {row.scenario.id} [{row.source}] {stem}: {why}"))
        for problem in row.problems:
            console.print(
                Text.assemble(
                    ("problem ", "bold red"), cell(f"{row.scenario.id} [{row.source}]: {problem}")
                )
            )
    bad = sum(not r.ok for r in matrix.rows)
    verdict = "[green]all green[/]" if not bad else f"[bold red]{bad} row(s) with mismatches[/]"
    console.print(f"{len(matrix.rows)} rows: {verdict}")


def _cells(row: Row, rules: list[str]) -> list[Text]:
    cells = [cell(row.scenario.id), cell(row.scenario.kind), cell(row.source)]
    for stem in rules:
        text, style = SYMBOLS[row.cells[stem]]
        cells.append(cell(text, style))
    expected = row.scenario.expect[row.source].certificate_verdict
    verdict = row.certificate_verdict or "-"
    if expected:
        cells.append(cell(verdict, "green" if expected == row.certificate_verdict else "bold red"))
    else:
        cells.append(cell(verdict, "dim"))
    cells.append(cell("yes", "green") if row.ok else cell("NO", "bold red"))
    return cells


@click.group()
def atomics() -> None:
    """Atomic Red Team tests for the specification's four validation tests."""


@atomics.command("export")
@click.option(
    "--out", metavar="FILE", help="Write the YAML to FILE (default: stdout), e.g. T1588.004.yaml."
)
@reports_errors
def atomics_export(out: str | None) -> None:
    """Write the specification's 4 tests as Atomic Red Team YAML for Invoke-AtomicRedTeam.

    Run them on a Windows test host (Invoke-AtomicTest T1588.004 -PathToAtomicsFolder ...,
    with -GetPrereqs first, and -Cleanup after), collect its Sysmon, PowerShell and Security
    logs, then `trustwatch hunt` them.
    """
    from importlib import resources

    from trustwatch.errors import InputError

    text = (
        resources.files("trustwatch.content").joinpath("atomics/T1588.004.yaml").read_text("utf-8")
    )
    if out is None:
        click.echo(text, nl=False)
        return
    path = Path(out)
    if not path.parent.exists():
        raise InputError(f"--out: folder {path.parent} does not exist")
    path.write_text(text, encoding="utf-8")
    echo(f"wrote 4 Atomic Red Team tests to {path}", err=True, keep="")
