"""A deployment plan: one change per resource (create, update, unchanged, skip), and its errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from trustwatch.errors import TrustwatchError

#: Shown instead of a comparison when the plan was made without reading the target
NOT_COMPARED = "not compared: no access"


class DeployError(TrustwatchError):
    """A deployment could not be planned or carried out (sign-in, rights, target, server)."""

    default_code = "DEP000"


class Action(StrEnum):
    """What a deployment does to one resource."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIP = "skip"  # not sent: the target would refuse it (the detail says why)


@dataclass(frozen=True, slots=True)
class Change:
    """One resource of the plan: what it is, what will be done to it and why.

    ``apply`` carries the change out and returns the line to report (``created ...``); it is
    None for resources left alone (unchanged, skipped) and for plans made without access.
    """

    kind: str  # alertRule, watchlist, detectionRule
    name: str  # the resource's name: a rule id, a watchlist alias
    label: str  # what a person knows it by: the rule's name
    action: Action
    detail: str = ""  # what differs, why it is skipped, or that it was not compared
    apply: Callable[[], str] | None = None

    def line(self) -> str:
        """The plan's line for this resource (made inert by the caller's ``echo``)."""
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.action.value:<9}  {self.kind:<13}  {self.name}  {self.label}{detail}"


@dataclass(frozen=True, slots=True)
class Plan:
    """Every resource a deployment touches, in the order it acts on them."""

    target: str  # "Sentinel workspace W (resource group G, subscription S)"
    changes: tuple[Change, ...]
    compared: bool = True  # False: made without reading the target (--offline)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    @property
    def pending(self) -> list[Change]:
        """The changes that send something."""
        return [c for c in self.changes if c.action in (Action.CREATE, Action.UPDATE)]

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(a)} {a.value}" for a in Action if self.count(a))
        return f"plan: {counts or 'nothing to deploy'}"


def execute(plan: Plan, report: Callable[[str], None]) -> int:
    """Carry out the plan's changes in order, reporting each one when it is done.

    Returns:
        The number of changes made.

    Raises:
        DeployError: a change failed; its message says how many were made before it (each
            already reported) and that the rest were not attempted.
    """
    pending = plan.pending
    if not plan.compared:
        raise DeployError(
            "a plan made without access to the target cannot be applied",
            hint="run without --offline to sign in and compare",
            code="DEP001",
        )
    done = 0
    for change in pending:
        if change.apply is None:  # pragma: no cover - every pending change of a compared plan
            continue
        try:
            report(change.apply())
        except DeployError as exc:
            raise _stopped(exc, done, len(pending)) from exc
        done += 1
    return done


def while_planning(exc: DeployError) -> DeployError:
    """``exc`` raised while reading the target: said so, and that nothing was changed."""
    diagnostic = exc.diagnostic
    return DeployError(
        f"{diagnostic.message}\n(while planning: nothing was changed)",
        hint=diagnostic.hint,
        code=diagnostic.code,
    )


def _stopped(exc: DeployError, done: int, total: int) -> DeployError:
    diagnostic = exc.diagnostic
    made = (
        f"{done} of {total} changes were made before it (listed above)"
        if done
        else f"none of the {total} changes was made"
    )
    return DeployError(
        f"{diagnostic.message}\n{made}; the rest were not attempted",
        hint=diagnostic.hint,
        code=diagnostic.code,
    )


def plan_lines(plan: Plan) -> Sequence[str]:
    """The plan as printed: a heading, one line per resource, the counts."""
    return [
        f"target: {plan.target}",
        *(f"  {change.line()}" for change in plan.changes),
        plan.summary(),
    ]
