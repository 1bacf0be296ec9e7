"""``trustwatch rules list | show | lint | test``: rule text is printed inert (a rule pack may
come from anyone)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from trustwatch.cli.common import EXIT_FOUND, echo, limit_option, reports_errors
from trustwatch.cli.render import cell, stdout_console

RULES_OPTION = click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help="Rule files, folders or packs (default, reference, all). Default: all.",
)


@click.group()
def rules() -> None:
    """List, show, lint and test the analytic rules."""


@rules.command("list")
@RULES_OPTION
@limit_option
@reports_errors
def list_rules(rule_sources: tuple[str, ...]) -> None:
    """One line per rule: id, pack, severity, techniques, name."""
    from trustwatch.rules.model import load_rules

    grid = Table(header_style="bold")
    for name in ("id", "pack", "file", "severity", "schedule", "techniques", "name"):
        grid.add_column(name, overflow="fold")
    for rule in load_rules(rule_sources or ("all",)):
        grid.add_row(
            *map(
                cell,
                (
                    rule.id,
                    rule.pack,
                    rule.path.stem,
                    rule.severity,
                    f"{rule.doc.get('queryFrequency', '?')}/{rule.doc.get('queryPeriod', '?')}",
                    ", ".join(rule.techniques),
                    rule.name,
                ),
            )
        )
    stdout_console(400).print(grid)


@rules.command("show")
@click.argument("rule_id")
@RULES_OPTION
@limit_option
@reports_errors
def show_rule(rule_id: str, rule_sources: tuple[str, ...]) -> None:
    """Print a rule file (by id, file stem or name), and what trustwatch runs if it differs."""
    from trustwatch.rules.model import find_rule, load_rules

    rule = find_rule(load_rules(rule_sources or ("all",)), rule_id)
    echo(f"# {rule.path}  (pack: {rule.pack})", keep="")
    echo(rule.path.read_text(encoding="utf-8"), nl=False, keep="\t\n")
    if rule.tests.run_with:
        echo(f"\n# trustwatch runs this query after (documented in {rule.tests.path}):")
        echo(rule.tests.run_with, nl=False, keep="\t\n")
    for defect in rule.tests.known_defects:
        echo(f"# known defect {defect.code}: {defect.reason}")


@rules.command("lint")
@RULES_OPTION
@limit_option
@reports_errors
def lint(rule_sources: tuple[str, ...]) -> None:
    """Azure-Sentinel repository checks plus a compile of every query. Exit 1 on errors."""
    from trustwatch.rules.lint import lint_rules
    from trustwatch.rules.model import load_rules

    loaded = load_rules(rule_sources or ("all",), strict=False)  # lint reports every problem
    findings = lint_rules(loaded)
    for finding in findings:
        echo(finding.render())
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    known = sum(f.severity == "known" for f in findings)
    echo(
        f"{len(loaded)} rule(s): {errors} error(s), {warnings} warning(s), {known} known defect(s)",
        err=True,
    )
    if errors:
        sys.exit(EXIT_FOUND)


@rules.command("test")
@RULES_OPTION
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
@limit_option
@reports_errors
def test(rule_sources: tuple[str, ...], verbose: bool) -> None:
    """Run every rule's tests file. Exit 1 if any case fails."""
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.testing import run_tests

    failed = total = 0
    for result in run_tests(load_rules(rule_sources or ("all",))):
        total += 1
        if not result.passed:
            failed += 1
        if verbose or not result.passed:
            mark = "ok  " if result.passed else "FAIL"
            echo(f"{mark} {result.rule.path.stem}: {result.case.name}: {result.detail}")
    echo(f"{total - failed} of {total} case(s) passed", err=True)
    if failed:
        sys.exit(EXIT_FOUND)


@rules.command("export", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def export(args: tuple[str, ...]) -> None:
    """(not available yet) Export rules as Sentinel YAML / ARM / Defender / Sigma."""
    from trustwatch.errors import InputError

    raise InputError(
        "rules export is not available yet",
        hint="the rule files in src/trustwatch/content/rules/ are already Azure-Sentinel "
        "repository YAML; `trustwatch rules show ID` prints one",
    )
