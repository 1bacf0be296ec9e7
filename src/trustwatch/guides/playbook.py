"""A rule's playbook filled with an alert's values: each step's command, quoted for its shell.

A step applies when its ``when`` conditions hold (``AlertStoreLocation: [LocalMachine]``); it
is *filled* when every parameter it names has a value that passes the parameter's pattern or
list of values and can be quoted for the step's shell (:mod:`trustwatch.guides.shell`).
Otherwise it is kept, unfilled, with the reason: the analyst sees what to do by hand, never a
command built from a value that could not be made safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from trustwatch.guides.bind import Value, bind
from trustwatch.guides.model import PHASES, PLACEHOLDER, Guide, Parameter, Pivot, Step
from trustwatch.guides.shell import Unquotable, command_line
from trustwatch.kql.literals import format_datetime_value


@dataclass(frozen=True, slots=True)
class FilledStep:
    """A playbook step for one alert: the command to run, or why it is not filled."""

    step: Step
    command: str  # "" for manual steps and unfilled ones
    text: str  # the step's instructions, parameters filled in
    unfilled: str = ""  # why no command is given


def value_text(value: Value) -> str:
    return format_datetime_value(value) if isinstance(value, datetime) else str(value)


def applies(step: Step, values: Mapping[str, Value]) -> bool:
    """Do the step's ``when`` conditions hold for the alert (values compared ignoring case)?"""
    for name, allowed in step.when.items():
        value = values.get(name)
        if value is None or value_text(value).lower() not in {a.lower() for a in allowed}:
            return False
    return True


def _refusal(parameter: Parameter, value: str) -> str:
    """Why a value may not go into a command, or "" when it may."""
    if parameter.pattern is not None and not parameter.pattern.fullmatch(value):
        return f"{parameter.name} {value!r} is not {parameter.about or 'in the expected form'}"
    if parameter.values and value.lower() not in {v.lower() for v in parameter.values}:
        return f"{parameter.name} {value!r} is not one of {', '.join(parameter.values)}"
    return ""


def _fill(word: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], word)


def fill_step(
    step: Step,
    parameters: Mapping[str, Parameter],
    values: Mapping[str, Value],
    pivots: Mapping[str, Pivot],
) -> FilledStep:
    """One step with the alert's values (see the module docstring for when it is unfilled)."""
    texts: dict[str, str] = {}
    for name in step.slots():
        if name not in values or name not in parameters:
            return FilledStep(step, "", step.text, f"the alert has no {name}")
        texts[name] = value_text(values[name])
        refusal = _refusal(parameters[name], texts[name])
        if refusal:
            return FilledStep(step, "", step.text, refusal)
    text = _fill(step.text, texts)
    if step.shell == "kql":
        pivot = pivots.get(step.pivot)
        if pivot is None:
            return FilledStep(step, "", text, f"no pivot '{step.pivot}'")
        bound = bind(pivot, parameters, values)
        return FilledStep(step, bound.text, text, bound.skipped)
    if step.shell == "manual" or not step.command:
        return FilledStep(step, "", text)
    words = [_fill(w, texts) for w in step.command]
    literal = [not PLACEHOLDER.search(w) for w in step.command]
    try:
        return FilledStep(step, command_line(words, step.shell, literal), text)
    except Unquotable as exc:
        return FilledStep(step, "", text, f"a value cannot be quoted for {step.shell}: {exc}")


def fill_playbook(
    guide: Guide, values: Mapping[str, Value], pivots: Mapping[str, Pivot]
) -> list[FilledStep]:
    """The guide's steps that apply to the alert, in phase order, each filled or not."""
    order = {p: i for i, p in enumerate(PHASES)}
    steps = sorted(
        (s for s in guide.steps if applies(s, values)), key=lambda s: order.get(s.phase, 99)
    )
    return [fill_step(s, guide.parameters, values, pivots) for s in steps]
