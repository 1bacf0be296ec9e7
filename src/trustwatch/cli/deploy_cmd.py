"""``trustwatch deploy sentinel | defender``: plan (read what exists, compare), print the plan,
then create or update; ``--dry-run`` stops after the plan. See docs/deploy.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from trustwatch.cli.common import echo, limit_option, reports_errors

if TYPE_CHECKING:
    from trustwatch.deploy.model import Plan
    from trustwatch.deploy.rest import RestClient, Service
    from trustwatch.rules.model import Rule

RULES_OPTION = click.option(
    "--rules",
    "rule_sources",
    multiple=True,
    metavar="DIR|FILE|PACK",
    help="Rule files, folders or packs to deploy (repeatable). Default: the default pack.",
)
DRY_RUN_OPTION = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and change nothing. It still signs in and reads (GET) what exists, "
    "to compare; add --offline to read nothing.",
)
OFFLINE_OPTION = click.option(
    "--offline",
    is_flag=True,
    help="With --dry-run: no sign-in, no request; every resource is listed as "
    "'create (not compared: no access)'.",
)
TENANT_OPTION = click.option(
    "--tenant", metavar="TENANT_ID", help="Sign in to this Microsoft Entra tenant."
)


@click.group()
def deploy() -> None:
    """Create or update the rules in Sentinel or Defender XDR, printing the plan first."""


@deploy.command("sentinel")
@click.argument("rule_keys", nargs=-1, metavar="[RULE]...")
@click.option("--subscription", required=True, metavar="S", help="Azure subscription id.")
@click.option("--resource-group", required=True, metavar="G", help="The workspace's group.")
@click.option("--workspace", required=True, metavar="W", help="Log Analytics workspace name.")
@RULES_OPTION
@click.option(
    "--tuning",
    "tuning_path",
    metavar="FILE",
    help="Tuning file whose watchlists and exclusions are deployed (default: the shipped one).",
)
@DRY_RUN_OPTION
@OFFLINE_OPTION
@TENANT_OPTION
@limit_option
@reports_errors
def deploy_sentinel(
    rule_keys: tuple[str, ...],
    subscription: str,
    resource_group: str,
    workspace: str,
    rule_sources: tuple[str, ...],
    tuning_path: str | None,
    dry_run: bool,
    offline: bool,
    tenant: str | None,
) -> None:
    """Deploy rules (alertRules, named by rule id) and watchlists to a Sentinel workspace.

    Creates or updates the rules, the CertificateIntel watchlist and the tuning file's
    watchlists and exclusions (TrustwatchExclusions), as `rules export --format arm` writes
    them. Needs Microsoft Sentinel Contributor on the workspace (Reader for --dry-run).
    """
    from trustwatch.deploy.sentinel import Workspace, plan_sentinel, sentinel_service
    from trustwatch.export.watchlists import builtin_watchlists_data, tuning_watchlists
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    _check_offline(dry_run, offline)
    rules = _rules(rule_sources, rule_keys)
    tuning = load_tuning(tuning_path or default_tuning_path())
    watchlists = [*builtin_watchlists_data(rules), *tuning_watchlists(tuning)]
    target = Workspace(subscription, resource_group, workspace)
    client = None if offline else make_client(sentinel_service(target), tenant)
    _run(plan_sentinel(client, target, rules, watchlists), dry_run)


@deploy.command("defender")
@click.argument("rule_keys", nargs=-1, metavar="[RULE]...")
@RULES_OPTION
@DRY_RUN_OPTION
@OFFLINE_OPTION
@TENANT_OPTION
@limit_option
@reports_errors
def deploy_defender(
    rule_keys: tuple[str, ...],
    rule_sources: tuple[str, ...],
    dry_run: bool,
    offline: bool,
    tenant: str | None,
) -> None:
    """Deploy rules as Defender XDR custom detections (Microsoft Graph beta).

    A rule whose query lacks Timestamp, ReportId or an entity column is skipped (Defender
    refuses it). Needs the Graph permission CustomDetection.ReadWrite.All.
    """
    from trustwatch.api import Session
    from trustwatch.deploy.defender import GRAPH_SERVICE, defender_rules, plan_defender
    from trustwatch.export.defender import detection_notes
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    _check_offline(dry_run, offline)
    rules = _rules(rule_sources, rule_keys)
    session = Session(load_tuning(default_tuning_path()).tables())
    bodies = defender_rules(rules, session)
    for item in bodies:
        if not item.refused:  # a refused rule's line in the plan says why
            for note in detection_notes(item.rule, item.columns):
                echo(f"{note.kind}: {note.rule}: {note.message}", err=True, keep="")
    client = None if offline else make_client(GRAPH_SERVICE, tenant)
    _run(plan_defender(client, bodies), dry_run)


def make_client(service: Service, tenant: str | None) -> RestClient:
    """A client signed in with DefaultAzureCredential (tests replace this function)."""
    from trustwatch.deploy.rest import RestClient, default_credential

    return RestClient(service, default_credential(tenant))


def _check_offline(dry_run: bool, offline: bool) -> None:
    from trustwatch.errors import InputError

    if offline and not dry_run:
        raise InputError(
            "--offline plans without reading the target, so it cannot deploy",
            hint="add --dry-run to list what would be deployed",
        )


def _rules(rule_sources: tuple[str, ...], rule_keys: tuple[str, ...]) -> list[Rule]:
    from trustwatch.rules.model import find_rule, load_rules

    loaded = load_rules(rule_sources or ("default",))
    return [find_rule(loaded, key) for key in rule_keys] if rule_keys else loaded


def _run(plan: Plan, dry_run: bool) -> None:
    """Print the plan; unless a dry run, carry it out, reporting each change when done."""
    from trustwatch.deploy.model import execute, plan_lines

    for line in plan_lines(plan):
        echo(line, keep="")
    if dry_run:
        read = "" if plan.compared else " (and nothing was read: --offline)"
        echo(f"dry run: nothing was changed{read}")
        return
    if not plan.pending:
        echo("nothing to change")
        return
    done = execute(plan, lambda line: echo(line, keep=""))
    echo(f"deployed: {done} change(s)")
