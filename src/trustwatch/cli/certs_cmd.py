"""``trustwatch certs``: classify a certificate or thumbprint, audit trust stores, manage lists.

Subjects, issuers, friendly names and file names are attacker-chosen text: printed inert
(``trustwatch.cli.render.cell``), and the JSON output escapes unsafe characters.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from trustwatch.cli.common import EXIT_FOUND, echo, limit_option, reports_errors
from trustwatch.cli.render import cell, emit, format_option, stdout_console, write_exact
from trustwatch.errors import InputError

if TYPE_CHECKING:
    from datetime import datetime

    from trustwatch.certs.classify import Classification
    from trustwatch.certs.intel import Intel
    from trustwatch.certs.stores import StoreCertificate

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}[\s:]?){16,64}$")
VERDICT_STYLE = {
    "known-bad": "bold red",
    "lookalike": "bold red",
    "suspicious": "red",
    "unknown": "yellow",
    "free-ca": "yellow",
    "public-root": "green",
    "microsoft-root": "green",
}
# Stores whose certificates Windows trusts as anchors: a root nobody can vouch for is a finding
ROOT_STORES = frozenset({"root", "authroot"})
# Stores that grant trust without being anchors: flag what is suspicious or worse
TRUST_STORES = frozenset({"ca", "trustedpublisher", "trustedpeople", "trust"})
# Elsewhere (My, Disallowed, ...) only known-bad certificates and forged roots are findings
ALWAYS_FLAGGED = frozenset({"known-bad", "lookalike"})

data_dir_option = click.option(
    "--data-dir",
    metavar="DIR",
    help="Where imported lists live (default: $TRUSTWATCH_DATA_DIR/certs, else "
    "~/.local/share/trustwatch/certs).",
)


@click.group()
def certs() -> None:
    """Certificate intelligence: classify certificates, audit trust stores, manage the lists."""


@certs.command("check")
@click.argument("target", metavar="THUMBPRINT|FILE")
@click.option("--password", metavar="TEXT", help="Password of a protected .pfx/.p12 file.")
@click.option(
    "--at", "at_text", metavar="ISO8601", help="Judge validity at this time (default: now)."
)
@format_option()
@data_dir_option
@limit_option
@reports_errors
def check(
    target: str, password: str | None, at_text: str | None, fmt: str, data_dir: str | None
) -> None:
    """Classify a certificate file or a bare thumbprint, with the evidence.

    FILE may be .cer/.crt/.der/.pem, .p7b, .pfx/.p12 (its private key is ignored), a registry
    Blob, a .reg export or a hive. A thumbprint is SHA-1, SHA-256 or MD5 hex. Exit 1 when a
    certificate is not a listed public or Microsoft root, 0 when all are, 2 on bad input.
    """
    from trustwatch.certs.classify import classify
    from trustwatch.certs.files import load_certificate_file, load_der_certificate
    from trustwatch.certs.intel import load_intel

    intel = load_intel(data_dir)
    at = _parse_at(at_text)
    path = Path(target)
    results: list[tuple[str, Classification]] = []
    if path.exists():
        loaded = load_certificate_file(path, password=password)
        for note in loaded.notes:
            echo(f"note: {note}", err=True)
        if not loaded.certificates:
            raise InputError(f"{path}: no certificate in this {loaded.kind} file")
        for found in loaded.certificates:
            cert = load_der_certificate(found.der)
            results.append((found.source, classify(cert, intel=intel, at=at)))
    elif _HEX.match(target.strip()):
        results.append(("thumbprint", classify(thumbprint=target, intel=intel)))
    else:
        raise InputError(
            f"'{target}' is neither a file nor a thumbprint",
            hint="give a SHA-1 (40 hex digits), SHA-256 or MD5 thumbprint, or a certificate file",
        )

    def view() -> None:
        for source, classification in results:
            _print_classification(source, classification)

    emit(fmt, lambda: [{"source": s, **c.to_dict()} for s, c in results], view)
    if any(c.suspicious for _, c in results):
        sys.exit(EXIT_FOUND)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One certificate of one store, classified, and whether it needs a look."""

    entry: StoreCertificate
    classification: Classification
    flagged: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "location": e.location,
            "sid": e.sid,
            "store": e.store,
            "thumbprint": e.thumbprint,
            "thumbprint_matches": e.thumbprint_matches,
            "friendly_name": e.friendly_name,
            "key": e.key,
            "source": e.source,
            "problem": e.problem,
            "flagged": self.flagged,
            "why": self.why,
            "classification": self.classification.to_dict(),
        }


@certs.command("audit")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--all", "show_all", is_flag=True, help="List every certificate, not only flagged.")
@click.option(
    "--at", "at_text", metavar="ISO8601", help="Judge validity at this time (default: now)."
)
@format_option()
@data_dir_option
@limit_option
@reports_errors
def audit(
    paths: tuple[str, ...], show_all: bool, at_text: str | None, fmt: str, data_dir: str | None
) -> None:
    """Classify every certificate in the trust stores of registry exports or offline hives.

    PATH: `reg export` files of the SystemCertificates, EnterpriseCertificates or Policies keys,
    SOFTWARE / NTUSER.DAT hives (with the 'hives' extra), or folders of them. Root and AuthRoot
    certificates that are not listed public or Microsoft roots are flagged; in CA,
    TrustedPublisher and TrustedPeople, suspicious ones; anywhere, known-bad and lookalike
    certificates and Blobs that do not match their key. Exit 1 when anything is flagged.
    """
    from trustwatch.certs.intel import load_intel

    intel = load_intel(data_dir)
    at = _parse_at(at_text)
    entries = list(_store_entries(_registry_files(paths)))
    rows = [_audit_row(e, intel, at) for e in entries]
    flagged = [r for r in rows if r.flagged]
    shown = rows if show_all else flagged
    emit(fmt, lambda: [r.to_dict() for r in shown], lambda: _print_audit(shown, len(rows)))
    stores = len({(r.entry.location, r.entry.sid, r.entry.store) for r in rows})
    echo(
        f"audit: {len(rows)} certificate(s) in {stores} store(s), {len(flagged)} flagged", err=True
    )
    if flagged:
        sys.exit(EXIT_FOUND)


@certs.command("update")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@data_dir_option
@limit_option
@reports_errors
def update(files: tuple[str, ...], data_dir: str | None) -> None:
    """Import reference lists from files (never from the network).

    Kinds, told apart by content: public-root SHA-1 lists (one per line, e.g. Mozilla's union
    of roots; also how to list your own approved corporate roots), certifi_roots.csv-style CSV,
    abuse.ch SSLBL CSV, PEM bundles of roots. Bad rows are reported with file:line and left out.
    """
    from trustwatch.certs.refresh import update_intel

    report = update_intel(files, data_dir)
    for record in report.files:
        echo(
            f"{record.file}: {record.kind}, {record.rows} row(s) stored, {record.bad_rows} bad, "
            f"as of {record.as_of} ({record.as_of_basis})",
            keep="",
        )
    for problem in report.problems:
        echo(f"  {problem}", err=True, keep="")
    echo(f"lists stored in {report.data_dir}", err=True, keep="")


@certs.command("lists")
@data_dir_option
@reports_errors
def lists(data_dir: str | None) -> None:
    """Show the reference lists in use: shipped, certifi's roots and imported, with dates."""
    from trustwatch.certs.intel import load_intel

    intel = load_intel(data_dir)
    counts: dict[str, int] = {}
    for entry in intel.entries:
        counts[entry.source.label] = counts.get(entry.source.label, 0) + 1
    table = Table(header_style="bold")
    for name in ("list", "as of", "origin", "entries", "note"):
        table.add_column(name, overflow="fold")
    for source in intel.sources:
        table.add_row(
            *map(
                cell,
                (
                    source.name,
                    source.date,
                    source.origin,
                    counts.get(source.label, 0),
                    source.note[:120],
                ),
            )
        )
    stdout_console(200).print(table)
    echo(f"free / automated CAs: {len(intel.free_cas)} organisation(s)", err=True)


@certs.command("watchlist")
@click.option("--out", metavar="FILE.csv", help="Write to FILE.csv (default: stdout).")
@data_dir_option
@reports_errors
def watchlist(out: str | None, data_dir: str | None) -> None:
    """Write the reference lists as a CSV to upload to Sentinel as watchlist CertificateIntel.

    Rules read it as _GetWatchlist('CertificateIntel') in trustwatch (built in) and, once
    uploaded with SearchKey = Thumbprint, in Sentinel too.
    """
    import csv
    import io

    from trustwatch.certs.intel import intel_watchlist, load_intel

    table = intel_watchlist(load_intel(data_dir)).drop_columns(["SearchKey", "_DTItemId"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(row.values())
    if out is None:
        write_exact(buf.getvalue())
        return
    path = Path(out)
    if not path.parent.exists():
        raise InputError(f"--out: folder {path.parent} does not exist")
    path.write_text(buf.getvalue(), encoding="utf-8")
    echo(f"wrote {table.num_rows} row(s) to {path}", err=True, keep="")


# --- helpers ----------------------------------------------------------------------------------


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    from trustwatch.kql.literals import parse_datetime_text

    return parse_datetime_text(text)


def _registry_files(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"no such file or folder: {path}")
    if not files:
        raise InputError("no files to audit", hint="give .reg exports or hives, or folders")
    return files


def _store_entries(files: list[Path]) -> Iterable[StoreCertificate]:
    from trustwatch.certs.files import load_certificate_file

    readable = 0
    for path in files:
        try:
            loaded = load_certificate_file(path)
        except InputError as exc:
            echo(f"skipped {path}: {exc}", err=True, keep="")
            continue
        if loaded.kind not in ("reg", "hive"):
            echo(f"skipped {path}: a {loaded.kind} file, not a registry export", err=True, keep="")
            continue
        readable += 1
        for note in loaded.notes:
            echo(f"note: {note}", err=True)
        yield from loaded.store_entries
    if not readable:
        raise InputError("nothing to audit: no .reg export or hive among the files")


def _audit_row(entry: StoreCertificate, intel: Intel, at: datetime | None) -> AuditRow:
    from trustwatch.certs.classify import classify
    from trustwatch.certs.files import load_der_certificate

    if entry.der is not None:
        classification = classify(load_der_certificate(entry.der), intel=intel, at=at)
    else:
        classification = classify(thumbprint=entry.thumbprint, intel=intel)
    verdict = str(classification.verdict)
    store = entry.store.casefold()
    why = ""
    if entry.problem:
        why = entry.problem
    elif verdict in ALWAYS_FLAGGED:
        why = f"{verdict} certificate"
    elif store in ROOT_STORES and classification.suspicious:
        why = f"{verdict} certificate in a root store"
    elif store in TRUST_STORES and verdict == "suspicious":
        why = "suspicious certificate in a trust-granting store"
    return AuditRow(entry, classification, bool(why), why)


def _print_classification(source: str, c: Classification) -> None:
    console = stdout_console(200)
    style = VERDICT_STYLE.get(str(c.verdict), "")
    console.print(
        Text.assemble(cell(c.verdict, style), "  ", cell(c.subject or "(no certificate)"))
    )
    console.print(cell(f"  source  {source}"))
    console.print(cell(f"  sha1    {c.sha1}"))
    if c.sha256:
        console.print(cell(f"  sha256  {c.sha256}"))
    if c.issuer and c.issuer != c.subject:
        console.print(cell(f"  issuer  {c.issuer}"))
    for finding in c.findings:
        console.print(cell(f"  - {finding.label}: {finding.evidence}"))


def _print_audit(rows: list[AuditRow], total: int) -> None:
    table = Table(header_style="bold", title=f"{len(rows)} of {total} certificate(s)")
    for name in ("location", "store", "thumbprint", "verdict", "subject", "why"):
        table.add_column(name, overflow="fold")
    for row in rows:
        e, c = row.entry, row.classification
        where = e.location + (f" {e.sid}" if e.sid else "")
        style = VERDICT_STYLE.get(str(c.verdict), "")
        table.add_row(
            cell(where),
            cell(e.store),
            cell(e.thumbprint),
            cell(c.verdict, style),
            cell(c.subject),
            cell(row.why or (c.findings[0].label if c.findings else "")),
        )
    stdout_console(250).print(table)
