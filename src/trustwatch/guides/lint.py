"""Lint checks of a rule's guide and playbook (``RULE5xx``), run by ``trustwatch rules lint``.

Every rule needs a ``<stem>.guide.yaml`` beside it with what the alert means, triage questions,
pivot queries and playbook steps; each library name it uses must exist, each step must name
known parameters, phases and shells, and every pivot query must compile against the table
schemas with its parameters bound (as ``trustwatch investigate`` and Sentinel run it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from trustwatch.errors import TrustwatchError
from trustwatch.guides.bind import template
from trustwatch.guides.model import (
    PHASES,
    SHELLS,
    Guide,
    Library,
    Pivot,
    Step,
    guide_path,
    load_guide,
    load_library,
)

if TYPE_CHECKING:
    from trustwatch.api import Session


class GuideProblem(NamedTuple):
    """One finding: code, message, file and 1-based line (None: the file as a whole)."""

    code: str
    message: str
    file: Path
    line: int | None = None


def _step_problems(step: Step, guide: Guide, pivots: set[str]) -> Iterator[str]:
    if step.phase not in PHASES:
        yield f"step {step.id}: phase '{step.phase}' is not one of {', '.join(PHASES)}"
    if step.shell not in SHELLS:
        yield f"step {step.id}: shell '{step.shell}' is not one of {', '.join(SHELLS)}"
    for name in [*step.slots(), *step.when]:
        if name not in guide.parameters:
            yield f"step {step.id}: {{{name}}} is not a parameter"
    if step.shell == "kql" and step.pivot not in pivots:
        yield f"step {step.id}: pivot '{step.pivot}' does not exist"
    if step.shell not in ("kql", "manual") and not step.command:
        yield f"step {step.id}: a {step.shell} step needs a command"


def _compile_problem(pivot: Pivot, guide: Guide, session: Session) -> str:
    """Why the pivot does not compile with its parameters bound, or ""."""
    if not pivot.query.strip():
        return f"pivot {pivot.id} has no query"
    try:
        session.compile(template(pivot, guide.parameters), source_name=f"pivot {pivot.id}")
    except TrustwatchError as exc:
        d = exc.diagnostic
        return f"pivot {pivot.id} does not compile: {d.code}: {d.message}"
    return ""


def check_guide(
    rule_path: Path, rule_id: str, session: Session, library: Library | None = None
) -> list[GuideProblem]:
    """Every problem with the guide beside ``rule_path`` (RULE501 when there is none)."""
    path = guide_path(rule_path)
    if not path.exists():
        return [
            GuideProblem(
                "RULE501",
                f"no guide: write {path.name} beside the rule (meaning, triage, pivots, "
                "playbook; see docs/investigate.md)",
                rule_path,
            )
        ]
    try:
        library = library or load_library()
        guide = load_guide(path, library)
    except TrustwatchError as exc:
        return [GuideProblem("RULE502", exc.diagnostic.message, path, 1)]
    problems: list[GuideProblem] = []
    if guide.rule_id and guide.rule_id.lower() != rule_id.lower():
        problems.append(
            GuideProblem("RULE502", f"the guide is for rule {guide.rule_id}, not {rule_id}", path)
        )
    for what, value in (("meaning", guide.meaning), ("triage", guide.triage)):
        if not value:
            problems.append(GuideProblem("RULE503", f"the guide has no {what}", path))
    for what, items in (("pivots", guide.pivots), ("playbook", guide.steps)):
        if not items and not guide.unresolved:
            problems.append(GuideProblem("RULE504", f"the guide has no {what}", path))
    for name, line in guide.unresolved:
        problems.append(
            GuideProblem("RULE505", f"'{name}' is not a pivot or step of the library", path, line)
        )
    pivots = {*library.pivots, *(p.id for p in guide.pivots)}
    for step in guide.steps:
        for message in _step_problems(step, guide, pivots):
            problems.append(GuideProblem("RULE507", message, step.file or path, step.line))
    for pivot in guide.pivots:
        message = _compile_problem(pivot, guide, session)
        if message:
            problems.append(GuideProblem("RULE506", message, pivot.file or path, pivot.line))
    return problems
