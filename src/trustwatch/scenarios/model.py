"""Scenario files: load ``content/scenarios/<id>.yaml`` and check them, with located errors.

A scenario is a short sequence of host activity (processes and what they do) plus the rules
expected to fire on it. The format is documented in docs/scenarios.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.certs.model import Verdict
from trustwatch.errors import InputError
from trustwatch.scenarios.parents import SYSTEM_PARENTS

KINDS = ("attack", "evasion", "benign")
SOURCES = ("sysmon", "defender", "security")
USERS = ("user", "system", "network_service", "local_service")
REGISTRY_ACTIONS = ("create_key", "set_value", "open_key", "delete_key")
VALUE_TYPES = ("binary", "string", "dword")
NETWORK_OUTCOMES = ("success", "failed")
STEP_KINDS = ("process", "registry", "file", "network", "script", "capi2")

# Fields of each step kind: name -> (required, type)
STEP_FIELDS: dict[str, dict[str, tuple[bool, type]]] = {
    "process": {
        "image": (True, str),
        "command_line": (True, str),
        "parent": (False, str),
        "user": (False, str),
        "original_file_name": (False, str),
    },
    "registry": {
        "by": (True, str),
        "action": (True, str),
        "key": (True, str),
        "value": (False, str),
        "data": (False, str),
        "type": (False, str),
    },
    "file": {"by": (True, str), "path": (True, str)},
    "network": {
        "by": (True, str),
        "ip": (True, str),
        "port": (True, int),
        "host": (False, str),
        "outcome": (False, str),
    },
    "script": {"by": (True, str), "text": (True, str), "parts": (False, int)},
    "capi2": {"by": (True, str), "subject": (True, str), "thumbprint": (False, str)},
}
# per-source overrides
SOURCE_FIELDS = ("expect", "known_misses", "fp_not_removed", "certificate_verdict")
VERDICTS = tuple(v.value for v in Verdict)  # certificate verdicts, worst first
TOP_FIELDS = (
    "id",
    "title",
    "kind",
    "source",
    "description",
    "expect",
    "known_misses",
    "sources",
    "known_false_positive",
    "certificate",
    "certificate_verdict",
    "steps",
)


class ScenarioError(InputError):
    """A scenario file that is not valid, with the file and the place in it."""


@dataclass(frozen=True, slots=True)
class Step:
    """One piece of host activity ``at`` seconds after the scenario starts."""

    kind: str  # one of STEP_KINDS
    at: float
    id: str  # the name later steps use for a process step ("" for other kinds)
    fields: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must fire on one telemetry source: rule stems that fire, and documented misses.

    ``fp_not_removed`` says why the scenario's known false positive is not removed by its
    exclusion on this source (the telemetry lacks what the exclusion matches); validate then
    does not require the exclusion to have removed anything here.
    """

    fire: frozenset[str]
    known_misses: Mapping[str, str]
    fp_not_removed: str = ""
    # the worst certificate verdict hunt's alerts on the scenario's device carry ("": unchecked)
    certificate_verdict: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario as read from its file."""

    id: str
    title: str
    kind: str
    source: str
    steps: tuple[Step, ...]
    expect: Mapping[str, Expectation]  # telemetry source -> expectation
    known_false_positive: Mapping[str, str] | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    certificate: str | None = None  # a certificates/<name>.pem the scenario installs


def certificate_der(name: str) -> bytes:
    """The DER of ``content/scenarios/certificates/<name>.pem`` (a scenario's certificate)."""
    from trustwatch.certs.files import load_certificate_file

    loaded = load_certificate_file(scenarios_dir() / "certificates" / f"{name}.pem")
    return loaded.certificates[0].der


def scenarios_dir() -> Path:
    """The folder of shipped scenarios."""
    return Path(str(resources.files("trustwatch.content"))) / "scenarios"


def load_scenarios(ids: list[str] | None = None) -> list[Scenario]:
    """The shipped scenarios (sorted by file name), or only those named in ``ids``."""
    files = sorted(scenarios_dir().glob("*.yaml"))
    found = [load_scenario(p) for p in files]
    if not ids:
        return found
    by_id = {s.id: s for s in found}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InputError(
            f"no scenario named {', '.join(missing)}",
            hint="known scenarios: " + ", ".join(sorted(by_id)),
        )
    return [by_id[i] for i in ids]


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file."""
    where = str(path)
    try:
        doc = yamlio.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{where}{line}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: a scenario is a mapping")
    _check_keys(doc, TOP_FIELDS, where)
    for name in ("id", "title", "kind", "source"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise ScenarioError(f"{where}: '{name}' is required (a string)")
    if doc["kind"] not in KINDS:
        raise ScenarioError(f"{where}: kind: '{doc['kind']}' is not one of {', '.join(KINDS)}")
    if doc["id"] != path.stem:
        raise ScenarioError(f"{where}: id '{doc['id']}' differs from the file name")
    steps = _steps(doc.get("steps"), f"{where}: steps")
    fp = doc.get("known_false_positive")
    if fp is not None and (not isinstance(fp, dict) or not isinstance(fp.get("exclusion"), str)):
        raise ScenarioError(f"{where}: known_false_positive needs 'exclusion' (a tuning id)")
    return Scenario(
        id=doc["id"],
        title=doc["title"],
        kind=doc["kind"],
        source=doc["source"],
        steps=steps,
        expect=_expectations(doc, where),
        known_false_positive={str(k): str(v) for k, v in fp.items()} if fp else None,
        description=str(doc.get("description", "")),
        path=path,
        certificate=_certificate(doc.get("certificate"), where),
    )


def _certificate(name: Any, where: str) -> str | None:
    if name is None:
        return None
    pem = scenarios_dir() / "certificates" / f"{name}.pem"
    if not isinstance(name, str) or not pem.is_file():
        raise ScenarioError(
            f"{where}: certificate: no file certificates/{name}.pem beside the scenarios"
        )
    return name


def _check_keys(doc: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field '{unknown[0]}'", hint="fields: " + ", ".join(allowed)
        )


def _rule_map(value: Any, where: str, kind: type) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, kind) for v in value.values()):
        raise ScenarioError(f"{where}: a mapping of rule file stem -> {kind.__name__}")
    return {str(k): v for k, v in value.items()}


def _expectations(doc: Mapping[str, Any], where: str) -> dict[str, Expectation]:
    base = _rule_map(doc.get("expect"), f"{where}: expect", bool)
    misses = _rule_map(doc.get("known_misses"), f"{where}: known_misses", str)
    per_source = doc.get("sources") or {}
    if not isinstance(per_source, dict) or set(per_source) - set(SOURCES):
        raise ScenarioError(f"{where}: sources: a mapping keyed by {', '.join(SOURCES)}")
    out: dict[str, Expectation] = {}
    for source in SOURCES:
        extra = per_source.get(source) or {}
        _check_keys(extra, SOURCE_FIELDS, f"{where}: sources.{source}")
        fire = {**base, **_rule_map(extra.get("expect"), f"{where}: sources.{source}", bool)}
        miss = {**misses, **_rule_map(extra.get("known_misses"), f"{where}: sources", str)}
        both = sorted(k for k, v in fire.items() if v and k in miss)
        if both:
            raise ScenarioError(f"{where}: {both[0]} is both expected and a known miss")
        kept = extra.get("fp_not_removed", "")
        if not isinstance(kept, str) or (kept and not doc.get("known_false_positive")):
            raise ScenarioError(
                f"{where}: sources.{source}.fp_not_removed: a reason (text), for a scenario "
                "with a known_false_positive"
            )
        verdict = extra.get("certificate_verdict", doc.get("certificate_verdict", ""))
        if verdict and verdict not in VERDICTS:
            raise ScenarioError(
                f"{where}: certificate_verdict: '{verdict}' is not one of {', '.join(VERDICTS)}"
            )
        fired = frozenset(k for k, v in fire.items() if v)
        out[source] = Expectation(fired, miss, kept, str(verdict or ""))
    return out


def _steps(raw: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{where}: a non-empty list of steps")
    steps: list[Step] = []
    processes: set[str] = set()
    last_at = 0.0
    for n, item in enumerate(raw):
        step = _step(item, f"{where}[{n}]")
        if step.at < last_at:
            raise ScenarioError(f"{where}[{n}]: 'at' goes back in time ({step.at} < {last_at})")
        last_at = step.at
        by = step.get("by")
        if by is not None and by not in processes:
            raise ScenarioError(f"{where}[{n}]: 'by: {by}' names no earlier process step")
        if step.kind == "process":
            _check_parent(step, processes, f"{where}[{n}]")
            if step.id in processes:
                raise ScenarioError(f"{where}[{n}]: process id '{step.id}' used twice")
            processes.add(step.id)
        steps.append(step)
    return tuple(steps)


def _check_parent(step: Step, processes: set[str], where: str) -> None:
    parent = step.get("parent", "explorer")
    if parent not in processes and parent not in SYSTEM_PARENTS:
        raise ScenarioError(
            f"{where}: parent '{parent}' is no earlier process step nor a system parent",
            hint="system parents: " + ", ".join(SYSTEM_PARENTS),
        )


def _step(item: Any, where: str) -> Step:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: a step is a mapping")
    kinds = [k for k in STEP_KINDS if k in item]
    if len(kinds) != 1:
        raise ScenarioError(f"{where}: a step has exactly one of {', '.join(STEP_KINDS)}")
    kind = kinds[0]
    _check_keys(item, (kind, "at", "id"), where)
    at = item.get("at", 0)
    if not isinstance(at, int | float) or at < 0:
        raise ScenarioError(f"{where}: 'at' is a number of seconds >= 0")
    body = item[kind]
    if not isinstance(body, dict):
        raise ScenarioError(f"{where}.{kind}: a mapping")
    _check_fields(kind, body, f"{where}.{kind}")
    step_id = item.get("id", "")
    if kind == "process" and not (isinstance(step_id, str) and step_id):
        raise ScenarioError(f"{where}: a process step needs an 'id'")
    return Step(kind, float(at), str(step_id), dict(body))


def _check_fields(kind: str, body: Mapping[str, Any], where: str) -> None:
    spec = STEP_FIELDS[kind]
    _check_keys(body, tuple(spec), where)
    for name, (required, typ) in spec.items():
        if name not in body:
            if required:
                raise ScenarioError(f"{where}: '{name}' is required")
            continue
        if not isinstance(body[name], typ) or isinstance(body[name], bool):
            raise ScenarioError(f"{where}.{name}: expected a {typ.__name__}")
    choices = {
        "user": USERS,
        "action": REGISTRY_ACTIONS,
        "type": VALUE_TYPES,
        "outcome": NETWORK_OUTCOMES,
    }
    for name, allowed in choices.items():
        if name in body and body[name] not in allowed:
            raise ScenarioError(
                f"{where}.{name}: '{body[name]}' is not one of {', '.join(allowed)}"
            )
