"""Render a scenario to its telemetry files (per source), deterministically from a seed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trustwatch.scenarios.defender import render_defender
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import ALL_SOURCES, Scenario
from trustwatch.scenarios.network import (
    make_wire,
    render_suricata,
    render_zeek_json,
    render_zeek_tsv,
)
from trustwatch.scenarios.security import render_security
from trustwatch.scenarios.sysmon import render_sysmon

DEFAULT_SEED = 4
# {log} is the Zeek log (ssl, x509): a Zeek source writes one file per log, as Zeek does
FILE_NAMES = {
    "sysmon": "{id}.sysmon.xml",
    "defender": "{id}.defender.json",
    "security": "{id}.security.jsonl",
    "ca-security": "{id}.ca-security.jsonl",
    "zeek": "{id}.{log}.log",
    "zeek-json": "{id}.{log}.json",
    "suricata": "{id}.eve.json",
}
# The ingest format each source's files must be recognised as (``trustwatch ingest
# --list-formats``): validate checks it, so a renderer drifting from its reader shows.
INGEST_FORMATS = {
    "sysmon": "xml",
    "defender": "defender-stream",
    "security": "evtx-json",
    "ca-security": "evtx-json",
    "zeek": "zeek-tsv",
    "zeek-json": "zeek-json",
    "suricata": "suricata-eve",
}


def render(scenario: Scenario, source: str, seed: int = DEFAULT_SEED) -> str:
    """The scenario's telemetry for one single-file source (all but the Zeek ones) as text.

    Each source is drawn from a fresh host, so one source's output never depends on whether
    another was rendered first.
    """
    _check_source(scenario, source)
    if source in ("zeek", "zeek-json"):
        raise ValueError(f"source {source!r} writes one file per Zeek log: use render_files")
    if source == "suricata":
        return render_suricata(make_wire(scenario, seed))
    host = make_host(scenario, seed)
    if source == "sysmon":
        return render_sysmon(host, f"{scenario.id} ({scenario.source})")
    if source == "defender":
        return render_defender(host)
    return render_security(host)  # security, and ca-security (a CA's Security log)


def render_files(scenario: Scenario, source: str, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """File name -> text of the scenario's telemetry for one source."""
    _check_source(scenario, source)
    if source in ("zeek", "zeek-json"):
        wire = make_wire(scenario, seed)
        logs = render_zeek_tsv(wire) if source == "zeek" else render_zeek_json(wire)
        return {FILE_NAMES[source].format(id=scenario.id, log=k): v for k, v in logs.items()}
    return {FILE_NAMES[source].format(id=scenario.id): render(scenario, source, seed)}


def _check_source(scenario: Scenario, source: str) -> None:
    if source not in ALL_SOURCES:
        raise ValueError(f"unknown telemetry source {source!r}; one of {ALL_SOURCES}")
    if source not in scenario.sources:
        raise ValueError(
            f"scenario {scenario.id!r} runs on a {scenario.host} host: sources "
            f"{', '.join(scenario.sources)}, not {source!r}"
        )


def write(
    scenario: Scenario,
    out: Path,
    seed: int = DEFAULT_SEED,
    sources: Iterable[str] | None = None,
) -> dict[str, list[Path]]:
    """Write the telemetry files of ``scenario`` into ``out``; source -> paths.

    ``sources`` defaults to every source of the scenario's host kind; sources of another host
    kind are skipped.
    """
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    chosen = scenario.sources if sources is None else sources
    for source in chosen:
        if source not in scenario.sources:
            continue
        for name, text in render_files(scenario, source, seed).items():
            path = out / name
            path.write_text(text, encoding="utf-8", newline="\n")
            written.setdefault(source, []).append(path)
    return written
