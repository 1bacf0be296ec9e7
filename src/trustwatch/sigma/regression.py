"""SigmaHQ's regression cases (an EVTX a rule must match, and how often) run through a hunt.

A case is a Sigma rule id, an EVTX file and the expected match count (``None``: at least
one, as SigmaHQ's runner requires when ``info.yml`` gives no ``match_count``). The rule is
converted (:mod:`trustwatch.sigma.load`), the EVTX ingested as ``hunt`` ingests it, and the
rule run by the ``Hunter`` over the whole span with its schedule replayed.

**Match count.** Sigma counts the events a rule matches. A converted rule is
``Table | where ...``: one result row per matching event, and the replay shows each event to
exactly one run (``queryPeriod`` = ``queryFrequency``). The match count is therefore the
number of evidence rows over the rule's alerts - the rows of the query over the whole span,
each kept once.

**Grouping.** Ingesting and hunting each case apart costs a workspace and a hunter per case:
cases are grouped so that one ingest and one ``Hunter`` serve many. Within a group no two
EVTX files share an event (device and EventRecordID), and a rule's evidence rows are counted
for a case only when they are events of that case's file (``DeviceName`` and ``ReportId``,
which every Sysmon map fills from Computer and EventRecordID). Files with a common event -
copies of one recording - go to different groups.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.api import Session
from trustwatch.errors import RuleFileError, TrustwatchError
from trustwatch.ingest import pipeline
from trustwatch.ingest.readers.evtx import read_evtx
from trustwatch.ingest.records import EventBatch
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules.model import Rule
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import Tuning
from trustwatch.sigma.convert import Failure
from trustwatch.sigma.load import SigmaSet, load_sigma, runnable

Identity = tuple[str, int]  # (device name as the tables hold it, EventRecordID)


@dataclass(frozen=True, slots=True)
class RegressionCase:
    """One regression case: the rule, its EVTX, and how many events it must match."""

    name: str  # the case's folder under the regression root
    rule_id: str
    evtx: Path
    expected: int | None  # None: at least one


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What a case gave: passed, the events matched (None: the rule did not run), and why."""

    case: RegressionCase
    passed: bool
    matches: int | None
    stage: str  # "match" (the rule ran), or where it stopped: "rule", "convert", "compile"
    detail: str


@dataclass(slots=True)
class _Group:
    cases: list[RegressionCase] = field(default_factory=list)
    identities: set[Identity] = field(default_factory=set)
    by_case: dict[RegressionCase, set[Identity]] = field(default_factory=dict)  # its events


def load_manifest(path: Path) -> list[RegressionCase]:
    """The cases of a ``manifest.csv`` (columns case_path, rule_id, expected_match_count,
    match_count_explicit); each EVTX is ``<case_path>/<rule_id>.evtx`` beside the manifest.

    Raises:
        RuleFileError: the manifest cannot be read or lacks a column.
    """
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RuleFileError(f"cannot read regression manifest {path}: {exc}") from exc
    cases = []
    for line, row in enumerate(rows, start=2):
        try:
            explicit = row["match_count_explicit"].strip().lower() == "yes"
            count = row["expected_match_count"].strip()
            cases.append(
                RegressionCase(
                    name=row["case_path"],
                    rule_id=row["rule_id"].strip().lower(),
                    evtx=path.parent / row["case_path"] / f"{row['rule_id'].strip()}.evtx",
                    expected=int(count) if explicit and count else None,
                )
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise RuleFileError(f"{path}:{line}: not a regression case row ({exc})") from exc
    return cases


def load_info_cases(root: Path) -> list[RegressionCase]:
    """The cases of every ``info.yml`` under ``root`` (SigmaHQ's ``regression_data`` layout:
    ``regression_tests_info`` entries of type evtx, paths starting ``regression_data/``).

    Raises:
        RuleFileError: an info.yml that cannot be read.
    """
    cases = []
    for info in sorted(root.rglob("info.yml")):
        try:
            doc = yamlio.load(info.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RuleFileError(f"cannot read regression case {info}: {exc}") from exc
        meta = (doc or {}).get("rule_metadata") or [{}]
        rule_id = str(meta[0].get("id", "")).lower()
        for test in doc.get("regression_tests_info") or []:
            if str(test.get("type", "")) != "evtx":
                continue
            relative = str(test.get("path", "")).removeprefix("regression_data/")
            count = test.get("match_count")
            cases.append(
                RegressionCase(
                    name=str(info.parent.relative_to(root)),
                    rule_id=rule_id,
                    evtx=root / relative,
                    expected=int(count) if count is not None else None,
                )
            )
    return cases


def find_rule_files(roots: Iterable[Path], ids: Iterable[str]) -> dict[str, Path]:
    """Sigma id -> the rule file under ``roots`` whose top-level ``id:`` it is."""
    wanted = {i.lower() for i in ids}
    found: dict[str, Path] = {}
    for root in roots:
        files = sorted(root.rglob("*.yml")) if root.is_dir() else [root]
        for path in files:
            try:
                head = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for line in head.splitlines():
                if line.startswith("id:"):
                    rule_id = line[3:].strip().strip("'\"").lower()
                    if rule_id in wanted:
                        found.setdefault(rule_id, path)
                    break
    return found


def run_regression(
    rule_paths: Iterable[str | Path], cases: Sequence[RegressionCase]
) -> list[CaseOutcome]:
    """Run each case's rule (found by Sigma id among ``rule_paths``) over its EVTX.

    Returns:
        One outcome per case, in the order given.
    """
    found = load_sigma(rule_paths)
    by_id = {rule.id.lower(): rule for rule in found.rules}
    failed = {f.sigma_id.lower(): f for f in found.failures if f.sigma_id}
    outcomes: dict[RegressionCase, CaseOutcome] = {}
    ready: list[RegressionCase] = []
    for case in cases:
        if case.rule_id in by_id:
            ready.append(case)
        elif case.rule_id in failed:
            outcomes[case] = _stopped(case, failed[case.rule_id])
        else:
            outcomes[case] = CaseOutcome(case, False, None, "rule", "no Sigma rule with this id")
    for group in _groups(ready):
        outcomes.update(_run_group(group, by_id))
    return [outcomes[case] for case in cases]


def _stopped(case: RegressionCase, failure: Failure) -> CaseOutcome:
    return CaseOutcome(case, False, None, failure.stage, f"{failure.reason}: {failure.detail}")


def _identities(path: Path) -> set[Identity]:
    """(device, record id) of each event in an EVTX (device as ingest writes it: lower case)."""
    out: set[Identity] = set()
    for item in read_evtx(path):
        if not isinstance(item, EventBatch):
            continue
        for doc in item.docs:
            system = json.loads(doc).get("Event", {}).get("System", {})
            out.add((str(system.get("Computer", "")).lower(), int(system["EventRecordID"])))
    return out


def _groups(cases: Iterable[RegressionCase]) -> Iterator[_Group]:
    """Cases in groups whose files share no event (first group with room, in order)."""
    groups: list[_Group] = []
    for case in cases:
        try:
            mine = _identities(case.evtx)
        except (OSError, TrustwatchError):
            mine = set()  # unreadable: its own group, where the ingest reports it
        home = next(
            (g for g in groups if mine and g.identities and not (mine & g.identities)), None
        )
        if home is None:
            home = _Group()
            groups.append(home)
        home.cases.append(case)
        home.identities |= mine
        home.by_case[case] = mine
    yield from groups


def _run_group(group: _Group, by_id: dict[str, Rule]) -> dict[RegressionCase, CaseOutcome]:
    files = sorted({case.evtx for case in group.cases})
    planned, skipped = pipeline.plan(files, skip_unknown=True)
    workspace = Workspace(None)
    stats = workspace.ingest(planned)
    try:
        views = pipeline.query_views(workspace.engine)
        session = Session(Tuning().tables(), engine=workspace.engine, views=views)
        hunter = Hunter(session, Tuning())
        rules = {by_id[case.rule_id].id: by_id[case.rule_id] for case in group.cases}
        checked = runnable(hunter, SigmaSet(list(rules.values())))
        result = hunter.run(checked.rules)
    finally:
        workspace.close()
    ran = {rule.id for rule in checked.rules}
    compile_failures = {f.sigma_id: f for f in checked.failures}
    rows: dict[str, list[dict[str, Any]]] = {}
    for alert in result.alerts:
        rows.setdefault(alert["AlertType"].removeprefix("trustwatch_"), []).extend(
            alert["Evidence"]
        )
    unread = {str(p): reason for p, reason in skipped}
    unread.update({s.path: s.failed for s in stats if s.failed})
    outcomes: dict[RegressionCase, CaseOutcome] = {}
    for case in group.cases:
        rule = by_id[case.rule_id]
        if rule.id not in ran:
            failure = compile_failures.get(rule.id)
            detail = f"{failure.reason}: {failure.detail}" if failure else "does not compile"
            outcomes[case] = CaseOutcome(case, False, None, "compile", detail)
            continue
        mine = group.by_case.get(case, set())
        events = rows.get(rule.id, [])
        matches = sum(1 for r in events if (r.get("DeviceName"), r.get("ReportId")) in mine)
        outcomes[case] = _judge(case, matches, unread.get(str(case.evtx)))
    return outcomes


def _judge(case: RegressionCase, matches: int, unread: str | None) -> CaseOutcome:
    expected = "at least 1" if case.expected is None else str(case.expected)
    passed = matches >= 1 if case.expected is None else matches == case.expected
    detail = f"{matches} event(s) matched, expected {expected}"
    if unread:
        detail += f" (the EVTX could not be read: {unread})"
    return CaseOutcome(case, passed, matches, "match", detail)
