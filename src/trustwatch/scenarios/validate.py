"""The validation matrix: each scenario x telemetry source through ingest and the rule packs.

The telemetry goes through the real readers and normalisers (``pipeline.plan`` and
``Workspace.ingest``), then ``Hunter`` runs every rule once, as Sentinel would five minutes
after the last event, with the default tuning. Every scenario of a seed starts at the same
moment on its own device, so one ingest and one hunt per telemetry source cover them all; the
alerts (and the exclusions' suppressions) are told apart by device: the ``DeviceName`` of a
Windows host, the ``ClientIP`` of a network scenario's client. Scenarios that happen to share a
device are hunted in separate batches. A scenario runs on the sources of its host kind
(``model.HOSTS``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustwatch.certs.model import RANK, Verdict
from trustwatch.rules.tuning import Exclusion, Tuning
from trustwatch.scenarios.host import make_host
from trustwatch.scenarios.model import ALL_SOURCES, Scenario
from trustwatch.scenarios.network import make_wire
from trustwatch.scenarios.render import DEFAULT_SEED, INGEST_FORMATS, render_files

if TYPE_CHECKING:
    from trustwatch.rules.model import Rule

# Cell states
FIRED = "fired"  # fired, as expected
QUIET = "quiet"  # did not fire, as expected
KNOWN_MISS = "known-miss"  # did not fire; a documented blind spot of the rule
MISSED = "MISSED"  # expected to fire, did not
FALSE_ALERT = "UNEXPECTED"  # fired, not expected
BAD_STATES = (MISSED, FALSE_ALERT)


@dataclass(slots=True)
class Row:
    """One scenario on one telemetry source: every rule's cell."""

    scenario: Scenario
    source: str
    cells: dict[str, str]  # rule file stem -> state
    alerts: dict[str, int]  # rule file stem -> alerts raised
    suppressed: dict[str, int] = field(default_factory=dict)  # exclusion id -> results
    problems: list[str] = field(default_factory=list)
    certificate_verdict: str = ""  # the worst verdict of the alerts' certificates ("": none)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(s in BAD_STATES for s in self.cells.values())


@dataclass(slots=True)
class Matrix:
    rules: list[str]  # rule file stems, in pack order
    rows: list[Row]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)


class _RecordingTuning(Tuning):
    """The given tuning, noting which device each suppressed result came from."""

    def __init__(self, base: Tuning) -> None:
        Tuning.__init__(self, base.path, base.exclusions, base.watchlists)
        self.removed: list[tuple[str, str]] = []  # (device, exclusion id)

    def suppressing(
        self, rule: Rule, row: Mapping[str, Any], signers: Any = None
    ) -> Exclusion | None:
        exclusion = Tuning.suppressing(self, rule, row, signers)
        if exclusion is not None:
            self.removed.append((device_of(row), exclusion.id))
        return exclusion


def device_of(row: Mapping[str, Any]) -> str:
    """The device a result row is about: its DeviceName, else (sensor rows) its ClientIP."""
    return str(row.get("DeviceName") or row.get("ClientIP") or "")


def cell(expected: bool, fired: bool, known_miss: bool) -> str:
    """The state of one matrix cell."""
    if fired:
        return FIRED if expected else FALSE_ALERT
    if expected:
        return MISSED
    return KNOWN_MISS if known_miss else QUIET


DEFAULT_RULES = ("all", "network")


def validate(
    scenarios: Iterable[Scenario],
    rule_sources: Iterable[str] = DEFAULT_RULES,
    seed: int = DEFAULT_SEED,
    sources: Iterable[str] = ALL_SOURCES,
) -> Matrix:
    """Run every scenario on the sources of its host kind (those of ``sources``); the matrix of
    what fired against expectations."""
    from trustwatch.rules.model import load_rules
    from trustwatch.rules.tuning import default_tuning_path, load_tuning

    rules = load_rules(list(rule_sources))
    tuning = load_tuning(default_tuning_path())
    chosen = list(scenarios)
    wanted = list(sources)
    rows: dict[tuple[str, str], Row] = {}
    for source in wanted:
        group = [s for s in chosen if source in s.sources]
        for batch in _batches(group, seed):
            for row in _run_batch(batch, source, rules, tuning, seed):
                rows[(row.scenario.id, source)] = row
    ordered = [rows[(s.id, src)] for s in chosen for src in s.sources if src in wanted]
    return Matrix([r.path.stem for r in rules], ordered)


def device(scenario: Scenario, seed: int) -> str:
    """The device a scenario runs on: a Windows host's name, a network client's address."""
    if scenario.host == "network":
        return make_wire(scenario, seed).device
    return make_host(scenario, seed).device


def _batches(scenarios: list[Scenario], seed: int) -> list[dict[str, Scenario]]:
    """Scenarios grouped so that no two in a group share a device; device -> scenario."""
    batches: list[dict[str, Scenario]] = []
    for scenario in scenarios:
        device_name = device(scenario, seed)
        target = next((b for b in batches if device_name not in b), None)
        if target is None:
            target = {}
            batches.append(target)
        target[device_name] = scenario
    return batches


def _run_batch(
    batch: dict[str, Scenario], source: str, rules: list[Rule], base: Tuning, seed: int
) -> list[Row]:
    from trustwatch.api import Session
    from trustwatch.certs.enrich import enrich_hunt
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace
    from trustwatch.rules.runner import Hunter

    tuning = _RecordingTuning(base)
    with tempfile.TemporaryDirectory(prefix="trustwatch-validate-") as tmp:
        for scenario in batch.values():
            for name, text in render_files(scenario, source, seed).items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
        ws = Workspace(None)
        try:
            planned, _ = pipeline.plan([tmp])
            wrong = sorted({fmt for _, fmt, _ in planned} - {INGEST_FORMATS[source]})
            ws.ingest(planned)
            views = pipeline.query_views(ws.engine)
            session = Session(tuning.tables(), engine=ws.engine, views=views)
            result = Hunter(session, tuning).run(rules, now=_hunt_time(batch, seed))
            # as hunt does: each alert naming a thumbprint gets its certificate's verdict
            enrich_hunt(result.alerts, session)
        finally:
            ws.close()
    stems = {r.name: r.path.stem for r in rules}
    fired: dict[tuple[str, str], int] = {}
    verdicts: dict[str, str] = {}  # device -> worst certificate verdict of its alerts
    for alert in result.alerts:
        where = device_of(alert["Evidence"][0])
        key = (where, stems[alert["AlertName"]])
        fired[key] = fired.get(key, 0) + 1
        for cert in alert.get("Certificates") or []:
            verdicts[where] = _worse(verdicts.get(where, ""), cert["verdict"])
    rows = [
        _row(scenario, source, where, rules, fired, tuning.removed)
        for where, scenario in batch.items()
    ]
    for row, where in zip(rows, batch, strict=True):
        row.certificate_verdict = verdicts.get(where, "")
        expected = row.scenario.expect[source].certificate_verdict
        if expected and expected != row.certificate_verdict:
            got = row.certificate_verdict or "no alert naming a certificate"
            row.problems.append(f"certificate verdict: {got}, expected {expected}")
    for row in rows:
        if wrong:  # the file was read, but not as the format its source stands for
            expected = INGEST_FORMATS[source]
            row.problems.append(f"read as {', '.join(wrong)}, not as {expected}")
    return rows


def _worse(a: str, b: str) -> str:
    """The verdict that deserves more attention ("" when there is none yet)."""
    if not a:
        return b
    return a if RANK[Verdict(a)] >= RANK[Verdict(b)] else b


def _hunt_time(batch: dict[str, Scenario], seed: int) -> Any:
    ends = []
    for scenario in batch.values():
        if scenario.host == "network":
            ends.append(make_wire(scenario, seed).end)
            continue
        host = make_host(scenario, seed)
        ends += [p.created for p in host.procs] + [a.time for a in host.activity]
    return max(ends) + timedelta(minutes=5)


def _row(
    scenario: Scenario,
    source: str,
    where: str,
    rules: list[Rule],
    fired: dict[tuple[str, str], int],
    removed: list[tuple[str, str]],
) -> Row:
    expectation = scenario.expect[source]
    alerts = {r.path.stem: fired.get((where, r.path.stem), 0) for r in rules}
    cells = {
        stem: cell(stem in expectation.fire, n > 0, stem in expectation.known_misses)
        for stem, n in alerts.items()
    }
    suppressed: dict[str, int] = {}
    for removed_on, exclusion in removed:
        if removed_on == where:
            suppressed[exclusion] = suppressed.get(exclusion, 0) + 1
    row = Row(scenario, source, cells, alerts, suppressed)
    fp = scenario.known_false_positive
    if fp and not expectation.fp_not_removed and not suppressed.get(fp["exclusion"]):
        row.problems.append(f"known false positive not removed by exclusion '{fp['exclusion']}'")
    return row
