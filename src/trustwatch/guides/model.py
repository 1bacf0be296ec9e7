"""Guides as data: a rule's ``<stem>.guide.yaml`` and the shared library it draws from.

A guide file sits beside its rule and says what the alert means, the triage questions in
order, the pivot queries to run and the playbook steps to take. A pivot or step is either
written in the file or named from the library (``content/guides/library.yaml``), which also
declares the *parameters*: the alert's values a pivot query or command may use (``AlertDevice``,
``AlertThumbprint``...), each read from the alert's evidence columns. Queries name parameters as
plain KQL names; they are bound by ``let`` statements (:mod:`trustwatch.guides.bind`), never
spliced into the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.errors import RuleFileError

GUIDE_SUFFIX = ".guide.yaml"
PHASES = ("containment", "eradication", "scoping", "recovery")
SHELLS = ("cmd", "powershell", "liveresponse", "sh", "kql", "manual")
PARAMETER_TYPES = ("string", "long", "datetime")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

#: code -> what it means (all errors); trustwatch.rules.lint reports them (all errors)
GUIDE_CODES = {
    "RULE501": "the rule has no guide file (<stem>.guide.yaml)",
    "RULE502": "the guide file cannot be read, or names another rule",
    "RULE503": "the guide lacks what the alert means or its triage questions",
    "RULE504": "the guide has no pivot queries or no playbook steps",
    "RULE505": "the guide names a pivot or step the library does not have",
    "RULE506": "a pivot query does not compile",
    "RULE507": "a playbook step names an unknown phase, shell, parameter or pivot",
}


@dataclass(frozen=True, slots=True)
class Parameter:
    """An alert value pivots and commands may use, read from the first evidence column found."""

    name: str
    type: str  # string | long | datetime
    columns: tuple[str, ...]
    about: str = ""
    pattern: re.Pattern[str] | None = None  # commands: a value must match to be used
    values: tuple[str, ...] = ()  # commands: a value must be one of these (case-insensitive)
    # the value is this expression's first group in the column's text; a column it does not
    # match gives no value (the next column is tried)
    extract: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Pivot:
    """A KQL query over the alert's neighbourhood; it names parameters as plain KQL names."""

    id: str
    title: str
    query: str
    about: str = ""
    optional: tuple[str, ...] = ()  # parameters the query copes without (bound to empty/null)
    line: int = 0  # 1-based line of the pivot in its file (0: unknown)
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One playbook step: a command for a shell, with ``{Parameter}`` slots in its words."""

    id: str
    phase: str
    title: str
    shell: str
    command: tuple[str, ...] = ()  # words, each quoted for ``shell`` once filled
    text: str = ""  # instructions (manual steps), shown with parameters filled in
    pivot: str = ""  # shell kql: the pivot whose filled query is the command
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # parameter -> values
    line: int = 0
    file: Path | None = None

    def slots(self) -> list[str]:
        """The parameters named in the command's words and text, in order of appearance."""
        found = [m.group(1) for w in (*self.command, self.text) for m in PLACEHOLDER.finditer(w)]
        return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class Library:
    """The shared parameters, pivots and steps guides name."""

    path: Path
    parameters: Mapping[str, Parameter]
    pivots: Mapping[str, Pivot]
    steps: Mapping[str, Step]


@dataclass(frozen=True, slots=True)
class Guide:
    """A rule's investigation guide and response playbook, library references resolved."""

    path: Path
    rule_id: str
    meaning: str
    triage: tuple[str, ...]
    pivots: tuple[Pivot, ...]
    steps: tuple[Step, ...]
    parameters: Mapping[str, Parameter]  # the library's, with the guide's column overrides
    unresolved: tuple[tuple[str, int], ...] = ()  # (name, line) of references not in library


def guide_path(rule_path: Path) -> Path:
    """Where a rule's guide lives: ``<stem>.guide.yaml`` beside the rule file."""
    return rule_path.with_name(rule_path.stem + GUIDE_SUFFIX)


def library_path() -> Path:
    return Path(str(resources.files("trustwatch.content"))) / "guides" / "library.yaml"


# --- reading ----------------------------------------------------------------------------------


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document of a YAML file and its node tree (for line numbers).

    Raises:
        RuleFileError: the file cannot be read or is not valid YAML (located).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"cannot read {path}: {exc}") from exc
    try:
        doc, node = yamlio.load_with_node(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise RuleFileError(f"{path}{where}: not valid YAML: {exc}") from exc
    return doc, node


def _line(node: yaml.Node | None, *path: str | int) -> int:
    """1-based line of the node at ``path`` (keys, indexes) below ``node``; 0 if not found."""
    for step in path:
        if isinstance(node, yaml.MappingNode):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step] if 0 <= step < len(node.value) else None
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else 0


def _words(raw: object) -> tuple[str, ...]:
    return tuple(str(w) for w in raw) if isinstance(raw, list) else ()


def _parameter(name: str, raw: Mapping[str, Any]) -> Parameter:
    kind = str(raw.get("type", "string"))
    if kind not in PARAMETER_TYPES:
        raise RuleFileError(f"parameter {name}: type '{kind}' is not one of {PARAMETER_TYPES}")
    pattern = raw.get("pattern")
    extract = raw.get("extract")
    try:
        found = re.compile(str(extract)) if extract else None
    except re.error as exc:
        message = f"parameter {name}: extract is not a regular expression: {exc}"
        raise RuleFileError(message) from exc
    if found is not None and found.groups < 1:
        raise RuleFileError(f"parameter {name}: extract needs a group (the value it takes)")
    return Parameter(
        name=name,
        type=kind,
        columns=_words(raw.get("columns")),
        about=str(raw.get("about", "")),
        pattern=re.compile(str(pattern)) if pattern else None,
        values=_words(raw.get("values")),
        extract=found,
    )


def _pivot(key: str, raw: Mapping[str, Any], line: int, file: Path) -> Pivot:
    return Pivot(
        id=str(raw.get("id", key)),
        title=str(raw.get("title", "")),
        query=str(raw.get("query", "")),
        about=str(raw.get("about", "")).strip(),
        optional=_words(raw.get("optional")),
        line=line,
        file=file,
    )


def _step(key: str, raw: Mapping[str, Any], line: int, file: Path) -> Step:
    raw_when = raw.get("when")
    when: Mapping[str, Any] = raw_when if isinstance(raw_when, dict) else {}
    return Step(
        id=str(raw.get("id", key)),
        phase=str(raw.get("phase", "")),
        title=str(raw.get("title", "")),
        shell=str(raw.get("shell", "manual")),
        command=_words(raw.get("command")),
        text=str(raw.get("text", "")).strip(),
        pivot=str(raw.get("pivot", "")),
        when={str(k): _words(v if isinstance(v, list) else [v]) for k, v in when.items()},
        line=line,
        file=file,
    )


def load_library(path: Path | None = None) -> Library:
    """The shared library (the shipped one by default).

    Raises:
        RuleFileError: the file is unreadable or malformed.
    """
    where = path or library_path()
    doc, node = read_yaml(where)
    if not isinstance(doc, dict):
        raise RuleFileError(f"{where}: the library is a mapping (parameters, pivots, steps)")
    sections = {k: doc.get(k) or {} for k in ("parameters", "pivots", "steps")}
    if not all(isinstance(v, dict) for v in sections.values()):
        raise RuleFileError(f"{where}: parameters, pivots and steps are mappings by name")
    return Library(
        path=where,
        parameters={str(k): _parameter(str(k), v) for k, v in sections["parameters"].items()},
        pivots={
            str(k): _pivot(str(k), v, _line(node, "pivots", str(k)), where)
            for k, v in sections["pivots"].items()
        },
        steps={
            str(k): _step(str(k), v, _line(node, "steps", str(k)), where)
            for k, v in sections["steps"].items()
        },
    )


def _resolve(
    raw: object, section: str, node: yaml.Node | None, path: Path, known: Mapping[str, Any]
) -> tuple[list[Any], list[tuple[str, int]]]:
    """The guide's list of pivots or steps: library names looked up, inline ones built."""
    found: list[Any] = []
    missing: list[tuple[str, int]] = []
    build = _pivot if section == "pivots" else _step
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        line = _line(node, section, i)
        if isinstance(item, str):
            if item in known:
                found.append(known[item])
            else:
                missing.append((item, line))
        elif isinstance(item, dict):
            found.append(build(str(item.get("id", f"{section}-{i + 1}")), item, line, path))
    return found, missing


def load_guide(path: Path, library: Library) -> Guide:
    """One guide file, its library references resolved (unknown ones kept for lint).

    Raises:
        RuleFileError: the file is unreadable, not YAML, or not a mapping.
    """
    doc, node = read_yaml(path)
    if not isinstance(doc, dict):
        raise RuleFileError(f"{path}: a guide is a mapping (rule, meaning, triage, ...)")
    pivots, missing_pivots = _resolve(doc.get("pivots"), "pivots", node, path, library.pivots)
    steps, missing_steps = _resolve(doc.get("playbook"), "playbook", node, path, library.steps)
    parameters = dict(library.parameters)
    raw_overrides = doc.get("parameters")
    overrides: Mapping[str, Any] = raw_overrides if isinstance(raw_overrides, dict) else {}
    for name, columns in overrides.items():
        if name in parameters and isinstance(columns, list):
            parameters[name] = replace(parameters[name], columns=_words(columns))
    triage = doc.get("triage")
    return Guide(
        path=path,
        rule_id=str(doc.get("rule", "")),
        meaning=str(doc.get("meaning", "")).strip(),
        triage=tuple(str(t).strip() for t in triage) if isinstance(triage, list) else (),
        pivots=tuple(pivots),
        steps=tuple(steps),
        parameters=parameters,
        unresolved=tuple(missing_pivots + missing_steps),
    )


def guide_for(rule_path: Path, library: Library | None = None) -> Guide | None:
    """The guide beside a rule file, or None when it has none."""
    path = guide_path(rule_path)
    if not path.exists():
        return None
    return load_guide(path, library or load_library())
