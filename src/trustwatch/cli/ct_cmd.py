"""``trustwatch ct scan``: certificates logged for look-alikes of the domains you protect.

Certificate names, issuers and file contents are attacker-chosen text: the table is drawn from
inert cells (``trustwatch.cli.render.cell``), stderr lines go through ``echo``, and JSON output
escapes unsafe characters.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from trustwatch.cli.common import EXIT_FOUND, EXIT_SKIPPED, echo, limit_option, reports_errors
from trustwatch.cli.render import cell, emit, format_option, stdout_console
from trustwatch.errors import InputError

if TYPE_CHECKING:
    from trustwatch.ct.scan import Lookalike, Scan, SourceAccount

SHOWN_PER_SOURCE = 5  # skipped records listed one by one per source; the rest counted
SEVERITY_STYLE = {"High": "bold red", "Medium": "red", "Low": "yellow"}


@click.group()
def ct() -> None:
    """Certificate transparency: certificates issued for look-alikes of your domains."""


@ct.command("scan")
@click.argument("paths", nargs=-1, metavar="FILE...")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="A domain you own (its subdomains are yours too). Repeatable; at least one.",
)
@click.option(
    "--allow",
    "allowed",
    multiple=True,
    metavar="NAME",
    help="A name you own that is not one of your domains (contoso.sharepoint.com): it and the "
    "names under it never alert. Repeatable.",
)
@click.option(
    "--fetch",
    is_flag=True,
    help="Also ask crt.sh's public JSON endpoint for names holding each domain's brand "
    "(network; finds added words, other TLDs, impersonation - not homoglyphs or typos).",
)
@click.option(
    "--fetch-timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for crt.sh.",
)
@click.option(
    "--min-score",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Only alert on certificates scoring at least this (0-100).",
)
@format_option(
    help_text="Alerts on stdout: a table, or SecurityAlert records as JSON / JSONL, or CSV."
)
@click.option("--out", metavar="FILE", help="Write the alerts as SecurityAlert JSON Lines to FILE.")
@limit_option
@reports_errors
def scan(
    paths: tuple[str, ...],
    domains: tuple[str, ...],
    allowed: tuple[str, ...],
    fetch: bool,
    fetch_timeout: float,
    min_score: int,
    fmt: str,
    out: str | None,
) -> None:
    """Flag certificates for look-alike names of your domains in CT logs, scored, CA named.

    FILEs (or folders) are crt.sh JSON exports (https://crt.sh/?q=...&output=json) and
    certstream-style JSON lines, gzip or not. A look-alike is a homoglyph or IDN confusable,
    a typo, the brand with words added, under another TLD, or your domain inside another's
    name; your domains and their subdomains never alert. A record that cannot be read is
    skipped with its line and the scan goes on. Exit 1 when there are alerts, 0 when there are
    none, 3 when there are none but input was skipped, 2 on bad input.
    """
    from trustwatch.ct.alerts import alert_record
    from trustwatch.ct.lookalike import allowed_name, protected_domain
    from trustwatch.ct.readers import read_ct_file
    from trustwatch.ct.scan import Scan
    from trustwatch.ingest.pipeline import expand
    from trustwatch.output import records_jsonl

    if not domains:
        raise InputError(
            "no --domain given", hint="trustwatch ct scan --domain contoso.com crtsh.json"
        )
    if not paths and not fetch:
        raise InputError(
            "no CT records given",
            hint="give crt.sh JSON exports or certstream JSON lines, or --fetch (network)",
        )
    protected = tuple(dict.fromkeys(protected_domain(d) for d in domains))
    out_path = Path(out) if out else None
    if out_path is not None and not out_path.parent.exists():
        raise InputError(f"--out: folder {out_path.parent} does not exist")
    not_read: list[tuple[Path, str]] = []
    files = list(expand(paths, not_read))
    run = Scan(protected, tuple(dict.fromkeys(allowed_name(a) for a in allowed)))
    if fetch:
        _fetch(run, fetch_timeout)
    for path in files:
        account = run.add_source(str(path), read_ct_file(path))
        _report_source(account)
    for _, reason in not_read:
        echo(f"skipped: {reason}", err=True, keep="")
    found = run.lookalikes(min_score)
    _report_summary(run, found, min_score)
    _print(found, fmt)
    if out_path is not None:
        out_path.write_text(records_jsonl(alert_record(f) for f in found), encoding="utf-8")
        echo(f"wrote {len(found)} alert(s) to {out_path}", err=True, keep="")
    skipped = _skipped_line(run.accounts, len(not_read))
    if skipped:
        echo(skipped, err=True, keep="")
    if found:
        sys.exit(EXIT_FOUND)
    if skipped:
        sys.exit(EXIT_SKIPPED)


def _fetch(run: Scan, timeout: float) -> None:
    from trustwatch.ct.fetch import brand_query, fetch_crtsh

    for query in dict.fromkeys(brand_query(p) for p in run.protected):
        account = run.add_source(f"crt.sh {query}", fetch_crtsh(query, timeout=timeout))
        echo(f"fetched: crt.sh {query}: {account.records:,} certificate record(s)", err=True)
        _report_source(account)


def _report_source(account: SourceAccount) -> None:
    """The source's skipped records on stderr: the first few one by one, then a count."""
    failed = account.failed
    if failed is not None:
        echo(f"unreadable: {account.origin}: {failed.reason}", err=True, keep="")
        return
    for item in account.skipped[:SHOWN_PER_SOURCE]:
        text = f"skipped: {account.origin}:{item.ref_kind} {item.ref}: {item.reason}"
        shown = item.excerpt[:80].strip()
        echo(text + (f" [{shown}]" if shown else ""), err=True, keep="")
    rest = len(account.skipped) - SHOWN_PER_SOURCE
    if rest > 0:
        last = account.skipped[-1]
        echo(
            f"skipped: {account.origin}: ... {rest:,} more; the last: {last.ref_kind} "
            f"{last.ref}: {last.reason}",
            err=True,
            keep="",
        )


def _report_summary(run: Scan, found: list[Lookalike], min_score: int) -> None:
    records = sum(a.records for a in run.accounts)
    names = sum(a.names for a in run.accounts)
    own = sum(a.own for a in run.accounts)
    not_dns = sum(a.not_dns for a in run.accounts)
    passed = sum(a.passed for a in run.accounts)
    domains = ", ".join(p.domain for p in run.protected)
    line = (
        f"ct scan: {records:,} certificate record(s), {names:,} name(s) from "
        f"{len(run.accounts)} source(s) against {domains}: {own:,} name(s) your own, "
        f"{not_dns:,} not DNS names"
    )
    if passed:
        line += f", {passed:,} certstream message(s) not certificates"
    echo(line, err=True, keep="")
    by_severity = {s: sum(f.severity == s for f in found) for s in SEVERITY_STYLE}
    counts = ", ".join(f"{n} {s}" for s, n in by_severity.items() if n)
    above = f" scoring {min_score} or more" if min_score else ""
    echo(
        f"look-alike certificates{above}: {len(found)}" + (f" ({counts})" if counts else ""),
        err=True,
        keep="",
    )


def _skipped_line(accounts: list[SourceAccount], not_read: int) -> str:
    """The last stderr line when input was skipped (``input skipped: ...``), else ''."""
    unreadable = sum(a.failed is not None for a in accounts)
    records = sum(len(a.skipped) for a in accounts if a.failed is None)
    files = sum(bool(a.skipped) for a in accounts if a.failed is None)
    parts = []
    if not_read:
        parts.append(f"{not_read} file(s) not read")
    if unreadable:
        parts.append(f"{unreadable} file(s) unreadable")
    if records:
        parts.append(f"{records:,} record(s) skipped in {files} file(s)")
    if not parts:
        return ""
    return "input skipped: " + ", ".join(parts) + " - the results cover only the rest"


def _print(found: list[Lookalike], fmt: str) -> None:
    from trustwatch.ct.alerts import alert_record

    if fmt in ("json", "jsonl"):
        emit(fmt, lambda: [alert_record(f) for f in found], lambda: None)
    elif fmt == "csv":
        emit(fmt, lambda: [_csv_row(f) for f in found], lambda: None)
    else:
        _print_table(found)


def _csv_row(found: Lookalike) -> dict[str, Any]:
    from trustwatch.ct.alerts import why

    first = found.first
    issuer = found.issuer
    logged = first.logged or first.not_before
    return {
        "Score": found.score,
        "Severity": found.severity,
        "Names": " ".join(found.names),
        "ProtectedDomains": " ".join(found.domains),
        "Techniques": " ".join(found.techniques),
        "CertificateAuthority": issuer.label,
        "FreeOrAutomated": issuer.automated.kind if issuer.automated else "",
        "Logged": logged.strftime("%Y-%m-%dT%H:%M:%SZ") if logged else "",
        "SerialNumber": first.serial,
        "CrtShId": first.crtsh_id if first.crtsh_id is not None else "",
        "Why": " | ".join([*why(found), "score: " + "; ".join(found.score_parts)]),
    }


def _print_table(found: list[Lookalike]) -> None:
    if not found:
        return
    console = stdout_console(200)
    grid = Table(show_lines=True, header_style="bold")
    for name in ("score", "look-alike", "imitates", "technique", "CA", "logged", "why"):
        grid.add_column(name, overflow="fold")
    for item in found:
        first = item.first
        logged = first.logged or first.not_before
        issuer = item.issuer
        ca = issuer.label + (f" [{issuer.automated.kind}]" if issuer.automated else "")
        reasons = [f"{f.name.raw.lower()}: {f.finding.detail}" for f in item.findings]
        reasons.append("score: " + "; ".join(item.score_parts))
        grid.add_row(
            cell(f"{item.score} {item.severity}", SEVERITY_STYLE.get(item.severity, "")),
            _lines(item.names),
            cell(", ".join(item.domains)),
            cell(", ".join(item.techniques)),
            cell(ca, "yellow" if issuer.automated else ""),
            cell(logged.strftime("%Y-%m-%d %H:%M") if logged else ""),
            _lines(reasons),
        )
    console.print(grid)


def _lines(values: list[str] | tuple[str, ...]) -> Text:
    """Several values, one per line, each inert."""
    return Text("\n").join(cell(v) for v in values)
