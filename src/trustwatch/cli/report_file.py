"""``--report FILE``: the HTML or Markdown report of ``hunt`` and ``investigate``, written.

The commands call :func:`report_path` while checking their options (a bad name fails before
any work) and one ``write_*`` function at the end; the content is ``trustwatch.report``'s.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustwatch.cli.common import echo
from trustwatch.errors import InputError

if TYPE_CHECKING:
    from trustwatch.api import Session
    from trustwatch.guides.investigate import Investigation
    from trustwatch.records import SecurityIncident
    from trustwatch.report.model import Report
    from trustwatch.rules.model import Rule
    from trustwatch.rules.runner import HuntResult
    from trustwatch.rules.tuning import Tuning


def report_path(value: str | None) -> Path | None:
    """The report file asked for, checked: a known extension, an existing folder.

    Raises:
        InputError: an unknown extension or a missing folder.
    """
    if not value:
        return None
    from trustwatch.report.output import renderer_for

    path = Path(value)
    renderer_for(path)
    if not path.parent.is_dir():
        raise InputError(f"--report: folder {path.parent} does not exist")
    return path


def _command() -> str:
    return "trustwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _write(path: Path, report: Report, started: float) -> None:
    from trustwatch.report.output import renderer_for

    text = renderer_for(path)(report)
    path.write_text(text, encoding="utf-8")
    size = len(text.encode("utf-8"))
    took = time.perf_counter() - started
    echo(
        f"wrote the report to {path} ({size / 1024:.0f} KiB, {took:.1f} s)",
        err=True,
    )


def write_hunt_report(
    path: Path,
    *,
    hunt: HuntResult,
    tuning: Tuning,
    incidents: Sequence[SecurityIncident],
    rules: Sequence[Rule],
    session: Session,
) -> None:
    """The hunt's report: every incident investigated (its pivots run, playbooks filled)."""
    from trustwatch.report.build import build_report
    from trustwatch.report.gather import data_summary, investigate_incidents

    started = time.perf_counter()
    report = build_report(
        title="trustwatch hunt report",
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        command=_command(),
        hunt=hunt,
        tuning=tuning,
        data=data_summary(session),
        incidents=incidents,
        investigations=investigate_incidents(incidents, rules, session),
    )
    _write(path, report, started)


def write_investigation_report(
    path: Path,
    *,
    hunt: HuntResult,
    tuning: Tuning,
    incident: SecurityIncident,
    investigation: Investigation,
    session: Session,
) -> None:
    """The report of one investigation: its incident (or single alert) and what was found."""
    from trustwatch.report.build import build_report
    from trustwatch.report.gather import data_summary

    started = time.perf_counter()
    report = build_report(
        title=f"trustwatch investigation: {incident.title}",
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        command=_command(),
        hunt=hunt,
        tuning=tuning,
        data=data_summary(session),
        incidents=[incident],
        investigations={incident.incident_name: investigation},
    )
    _write(path, report, started)
