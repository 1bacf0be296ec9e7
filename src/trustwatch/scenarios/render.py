"""Render a scenario to its telemetry files (one per source), deterministically from a seed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trustwatch.scenarios.defender import render_defender
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import SOURCES, Scenario
from trustwatch.scenarios.security import render_security
from trustwatch.scenarios.sysmon import render_sysmon

DEFAULT_SEED = 4
FILE_NAMES = {
    "sysmon": "{id}.sysmon.xml",
    "defender": "{id}.defender.json",
    "security": "{id}.security.jsonl",
}
# The ingest format each source's file must be recognised as (``trustwatch ingest
# --list-formats``): validate checks it, so a renderer drifting from its reader shows.
INGEST_FORMATS = {"sysmon": "xml", "defender": "defender-stream", "security": "evtx-json"}


def render(scenario: Scenario, source: str, seed: int = DEFAULT_SEED) -> str:
    """The scenario's telemetry for one source (``sysmon``, ``defender``, ``security``) as text.

    Each source is drawn from a fresh host, so one source's output never depends on whether
    another was rendered first.
    """
    host = make_host(scenario, seed)
    if source == "sysmon":
        return render_sysmon(host, f"{scenario.id} ({scenario.source})")
    if source == "defender":
        return render_defender(host)
    if source == "security":
        return render_security(host)
    raise ValueError(f"unknown telemetry source {source!r}; one of {SOURCES}")


def write(
    scenario: Scenario,
    out: Path,
    seed: int = DEFAULT_SEED,
    sources: Iterable[str] = SOURCES,
) -> dict[str, Path]:
    """Write the telemetry files of ``scenario`` into ``out``; source -> path."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for source in sources:
        path = out / FILE_NAMES[source].format(id=scenario.id)
        path.write_text(render(scenario, source, seed), encoding="utf-8")
        written[source] = path
    return written
