"""``trustwatch rules list | show | lint | test``: rule text is printed inert (a rule pack may
come from anyone)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from trustwatch.cli.common import EXIT_FOUND, echo, limit_option, reports_errors
from trustwatch.cli.render import F, cell, stdout_console
from trustwatch.errors import InputError

EVERY_PACK = ("all", "network")  # the default of these commands: every shipped rule

RULES_OPTION = click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help=(
        "Rule files, folders or packs (default, reference, network, all). Default: all and network."
    ),
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
    for rule in load_rules(rule_sources or EVERY_PACK):
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

    rule = find_rule(load_rules(rule_sources or EVERY_PACK), rule_id)
    echo(f"# {rule.path}  (pack: {rule.pack})", keep="")
    echo(rule.path.read_text(encoding="utf-8"), nl=False, keep="\t\n")
    if rule.tests.run_with:
        echo(f"\n# trustwatch runs this query after (documented in {rule.tests.path}):")
        echo(rule.tests.run_with, nl=False, keep="\t\n")
    for defect in rule.tests.known_defects:
        echo(f"# known defect {defect.code}: {defect.reason}")


def _tuning_option(help_text: str) -> Callable[[F], F]:
    return click.option("--tuning", "tuning_path", metavar="FILE", help=help_text)


WATCHLISTS_HELP = (
    "Tuning file whose watchlists _GetWatchlist reads (default: the shipped one, as for hunt)."
)


def _watchlists(tuning_path: str | None) -> dict[str, Any]:
    """The catalog tables of a tuning file's watchlists (and the built-in CertificateIntel)."""
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    return load_tuning(tuning_path or default_tuning_path()).tables()


@rules.command("lint")
@RULES_OPTION
@_tuning_option(WATCHLISTS_HELP)
@limit_option
@reports_errors
def lint(rule_sources: tuple[str, ...], tuning_path: str | None) -> None:
    """Azure-Sentinel repository checks plus a compile of every query. Exit 1 on errors."""
    from trustwatch.api import Session
    from trustwatch.rules.lint import lint_rules
    from trustwatch.rules.model import load_rules

    loaded = load_rules(rule_sources or EVERY_PACK, strict=False)  # lint reports every problem
    watchlists = _watchlists(tuning_path)
    findings = lint_rules(loaded, lambda: Session(watchlists))
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
@click.option(
    "--sigma",
    "sigma_sources",
    multiple=True,
    metavar="DIR|FILE",
    help="Sigma rules (files or folders, repeatable) whose regression cases to run, given by "
    "--regression, instead of the pack's tests files.",
)
@click.option(
    "--regression",
    metavar="DIR|manifest.csv",
    help="With --sigma: SigmaHQ regression cases, a regression_data folder (an info.yml per "
    "case) or a manifest.csv (case_path, rule_id, expected_match_count, ...).",
)
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
@_tuning_option(WATCHLISTS_HELP)
@limit_option
@reports_errors
def test(
    rule_sources: tuple[str, ...],
    sigma_sources: tuple[str, ...],
    regression: str | None,
    verbose: bool,
    tuning_path: str | None,
) -> None:
    """Run every rule's tests file, or (--sigma) Sigma rules' regression cases: each case's
    EVTX hunted through trustwatch must match its expected number of events. Exit 1 if any
    case fails."""
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.testing import run_tests

    if sigma_sources or regression:
        _test_sigma(sigma_sources, regression, verbose)
        return
    failed = total = 0
    for result in run_tests(load_rules(rule_sources or EVERY_PACK), _watchlists(tuning_path)):
        total += 1
        if not result.passed:
            failed += 1
        if verbose or not result.passed:
            mark = "ok  " if result.passed else "FAIL"
            echo(f"{mark} {result.rule.path.stem}: {result.case.name}: {result.detail}")
    echo(f"{total - failed} of {total} case(s) passed", err=True)
    if failed:
        sys.exit(EXIT_FOUND)


def _test_sigma(sources: tuple[str, ...], regression: str | None, verbose: bool) -> None:
    """``rules test --sigma RULES --regression CASES``."""
    from trustwatch.sigma import regression as reg

    if not sources or not regression:
        raise InputError(
            "give both --sigma RULES and --regression CASES",
            hint="e.g. --sigma rules/windows --regression regression_data",
        )
    where = Path(regression)
    if not where.exists():
        raise InputError(f"--regression: no such file or folder: {where}")
    cases = reg.load_manifest(where) if where.is_file() else reg.load_info_cases(where)
    if not cases:
        raise InputError(f"--regression: no regression case in {where}")
    roots = [Path(s) for s in sources]
    for root in roots:
        if not root.exists():
            raise InputError(f"--sigma: no such file or folder: {root}")
    files = reg.find_rule_files(roots, [c.rule_id for c in cases])
    outcomes = reg.run_regression(list(files.values()), cases)
    failed = 0
    for outcome in outcomes:
        failed += not outcome.passed
        if verbose or not outcome.passed:
            mark = "ok  " if outcome.passed else "FAIL"
            want = ">= 1" if outcome.case.expected is None else str(outcome.case.expected)
            matched = "-" if outcome.matches is None else str(outcome.matches)
            why = f" ({outcome.stage}): {outcome.detail}" if outcome.detail else ""
            echo(f"{mark} {outcome.case.name}: expected {want}, matched {matched}{why}")
    echo(f"{len(outcomes) - failed} of {len(outcomes)} regression case(s) passed", err=True)
    if failed:
        sys.exit(EXIT_FOUND)


EXPORT_FORMATS = ("sentinel-yaml", "arm", "defender", "sigma", "splunk", "elastic", "playbook")


@rules.command("export")
@click.argument("rule_keys", nargs=-1, metavar="[RULE]...")
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="What to write."
)
@click.option("--out", metavar="DIR", help="Folder for one file per rule (and the pack's).")
@RULES_OPTION
@click.option(
    "--tuning",
    "tuning_path",
    metavar="FILE",
    help="Tuning file whose watchlists and exclusions go into ARM templates (default: shipped).",
)
@click.option(
    "--apply-exclusions",
    is_flag=True,
    help="Write the tuning file's exclusions into each rule's query (sentinel-yaml, arm, "
    "defender), so the platform suppresses what 'hunt' suppresses.",
)
@limit_option
@reports_errors
def export(
    rule_keys: tuple[str, ...],
    fmt: str,
    out: str | None,
    rule_sources: tuple[str, ...],
    tuning_path: str | None,
    apply_exclusions: bool,
) -> None:
    """Export rules (default: the default pack) for Sentinel, Defender, Sigma, Splunk, Elastic.

    Without --out, the pack is printed (YAML documents, one JSON template or array, or
    queries); notes about what a format cannot say go to stderr. See docs/export.md.
    """
    from trustwatch.export.formats import export_rules
    from trustwatch.rules.model import find_rule, load_rules
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    loaded = load_rules(rule_sources or ("default",))
    rules = [find_rule(loaded, key) for key in rule_keys] if rule_keys else loaded
    folder = Path(out) if out is not None else None
    if folder is not None:
        _check_out(folder)
    tuning = load_tuning(tuning_path or default_tuning_path())
    result = export_rules(rules, fmt, tuning, apply_exclusions=apply_exclusions)
    for note in result.notes:
        echo(f"{note.kind}: {note.rule}: {note.message}", err=True, keep="")
    if folder is None:
        echo(result.stdout, nl=False, keep="\t\n")
    else:
        _write_files(folder, [(f.name, f.text) for f in result.files])
    where = f" in {folder}" if folder is not None else ""
    echo(
        f"{len(rules)} rule(s) as {fmt}: {len(result.files)} file(s){where}, "
        f"{len(result.notes)} note(s)",
        err=True,
    )


def _check_out(folder: Path) -> None:
    from trustwatch.errors import InputError

    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is not a folder", hint="give a folder (made if missing)")
    folder.mkdir(parents=True, exist_ok=True)


def _write_files(folder: Path, files: list[tuple[str, str]]) -> None:
    """Write each file directly inside ``folder``; never through a link, never elsewhere."""
    from trustwatch.errors import InputError

    root = folder.resolve()
    for name, text in files:
        target = root / name
        if target.parent != root or name in ("", ".", "..") or target.is_symlink():
            raise InputError(f"refusing to write {name!r}: not a plain file name inside {root}")
        if target.exists() and not target.is_file():
            raise InputError(f"refusing to write {target}: it exists and is not a file")
        target.write_text(text, encoding="utf-8", newline="")
