"""Rules: Microsoft Sentinel scheduled analytic rules (Azure-Sentinel repository YAML) + tests.

A rule file is exactly what the Azure-Sentinel repository holds; trustwatch reads it without
adding keys. Its tests, and any documented deviation needed to run it, live beside it in
``<stem>.tests.yaml`` (see docs/rules.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.errors import Diagnostic, RuleFileError, Source

TESTS_SUFFIX = ".tests.yaml"
# files beside a rule that are not rules: its tests, its guide and playbook (trustwatch.guides)
# and, in an export, the guide's pivots as Sentinel hunting queries
COMPANION_SUFFIXES = (TESTS_SUFFIX, ".tests.yml", ".guide.yaml", ".hunting.yaml")
PACKS = ("default", "reference", "network")  # shipped packs
# "all": the endpoint packs. The network pack reads sensor tables (Corelight_v2_*_CL,
# Suricata_tls_CL) that only Sentinel has, so it is run by name (docs/network.md, "Rules").
ALL_PACKS = ("default", "reference")


@dataclass(frozen=True, slots=True)
class KnownDefect:
    """A documented error in a rule's query that lint reports but does not fail on."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class TestCase:
    """Rows for some tables, and whether the rule must raise an alert on them."""

    name: str
    expect_alert: bool
    tables: Mapping[str, list[dict[str, Any]]]
    alerts: int | None = None  # exact alert count, when given
    fields: Mapping[str, Any] = field(default_factory=dict)  # values in the first alert's row
    now: str | None = None  # run once as at this time, instead of over the data's span


@dataclass(frozen=True, slots=True)
class RuleTests:
    """The tests file of one rule."""

    path: Path | None
    cases: tuple[TestCase, ...] = ()
    known_defects: tuple[KnownDefect, ...] = ()
    run_with: str = ""  # KQL statements put before the query when trustwatch runs it


SEVERITIES = ("Informational", "Low", "Medium", "High")
GROUPINGS = ("SingleAlert", "AlertPerResult")


@dataclass(frozen=True, slots=True)
class Rule:
    """One scheduled analytic rule: its document as read, and its values parsed and checked
    once, when it is loaded (:func:`rule_from_doc`): nothing about it fails later, mid-hunt."""

    path: Path
    pack: str
    doc: Mapping[str, Any]  # the YAML as read (lint checks it; exports keep its other keys)
    query_line: int  # 0-based line of the query's first line in the file
    tests: RuleTests
    id: str = ""
    name: str = ""
    severity: str = "Medium"
    query: str = ""
    tactics: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    query_frequency: timedelta = timedelta(hours=1)
    query_period: timedelta = timedelta(hours=1)
    trigger_operator: str = "gt"
    trigger_threshold: int = 0
    entity_mappings: list[dict[str, Any]] = field(default_factory=list)
    custom_details: dict[str, str] = field(default_factory=dict)
    details_override: dict[str, str] = field(default_factory=dict)
    grouping: str = "SingleAlert"
    # what the document says beyond Sentinel's keys (a converted Sigma rule: its id, level, tags)
    origin: Mapping[str, Any] = field(default_factory=dict)

    @property
    def runnable_query(self) -> str:
        """The query trustwatch runs: the rule's text, after any documented ``run_with``."""
        if not self.tests.run_with:
            return self.query
        return self.tests.run_with.rstrip() + "\n" + self.query

    @property
    def query_source(self) -> Source:
        return Source(self.query, str(self.path), line_offset=self.query_line)

    def triggered(self, count: int) -> bool:
        """Does a run returning ``count`` rows raise an alert (triggerOperator/Threshold)?"""
        return bool(TRIGGER_OPERATORS[self.trigger_operator.lower()](count, self.trigger_threshold))


TRIGGER_OPERATORS = {
    "gt": lambda n, t: n > t,
    "greaterthan": lambda n, t: n > t,
    "lt": lambda n, t: n < t,
    "lessthan": lambda n, t: n < t,
    "eq": lambda n, t: n == t,
    "equal": lambda n, t: n == t,
    "ne": lambda n, t: n != t,
    "notequal": lambda n, t: n != t,
}

_SHORT = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_TIMESPAN = re.compile(r"^\s*(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})\s*$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(value: object) -> timedelta:
    """``5m``, ``1h``, ``14d``, .NET ``d.hh:mm:ss`` or ISO 8601 ``PT1H`` as a timedelta."""
    text = str(value)
    m = _SHORT.match(text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    m = _TIMESPAN.match(text)
    if m:
        days, h, mi, s = (int(g or 0) for g in m.groups())
        return timedelta(days=days, hours=h, minutes=mi, seconds=s)
    m = _ISO.match(text.strip())
    if m and any(m.groups()):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    raise RuleFileError(f"'{text}' is not a duration (use 5m, 1h, 14d or d.hh:mm:ss)")


def format_timespan(value: timedelta) -> str:
    """A timedelta in .NET TimeSpan form (``01:00:00``, ``1.00:00:00``), as SecurityAlert has."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}." if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


# --- reading files ----------------------------------------------------------------------------


def _load_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """The document in a YAML file and the 0-based line of each top-level key (``query``:
    the line its text starts on).

    Parsed once per content: the result is kept across runs (:func:`yamlio.cached_parse`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RuleFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    try:
        doc, lines = yamlio.cached_parse(text, "rule-yaml-lines", _parse)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(f"{path}{where}: not valid YAML: {problem}") from exc
    return doc, {str(k): int(v) for k, v in (lines or {}).items()}


def _parse(text: str) -> tuple[Any, dict[str, int]]:
    doc, node = yamlio.load_with_node(text)
    return doc, _key_lines(node)


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    """The 0-based line of each top-level key; for ``query``, of its text's first line."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            lines.setdefault(str(key.value), int(key.start_mark.line))
            if key.value == "query":
                block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
                lines["query"] = int(value.start_mark.line) + (1 if block else 0)
    return lines


def load_rule(path: str | Path, pack: str = "custom", *, strict: bool = True) -> Rule:
    """Read one rule file and its ``.tests.yaml`` (if any), its values checked
    (:func:`rule_from_doc`; ``strict=False``: kept at their defaults for lint to report)."""
    p = Path(path)
    doc, lines = _load_yaml(p)
    if not isinstance(doc, dict):
        raise RuleFileError(f"{p}: a rule file must be a YAML mapping (id, name, query, ...)")
    tests = load_tests(tests_path(p))
    return rule_from_doc(doc, p, pack, lines.get("query", 0), tests, key_lines=lines, strict=strict)


def rule_from_doc(
    doc: Mapping[str, Any],
    path: Path,
    pack: str = "custom",
    query_line: int = 0,
    tests: RuleTests | None = None,
    *,
    key_lines: Mapping[str, int] | None = None,
    strict: bool = True,
    origin: Mapping[str, Any] | None = None,
) -> Rule:
    """A rule from its Sentinel document (as a rule file holds it), its values parsed and
    checked.

    ``path`` names where it came from (a file, or the Sigma rule it was converted from);
    ``query_line`` is the 0-based line of its query there, ``key_lines`` the 0-based line of
    each top-level key (to locate errors). ``strict=False`` (for lint, which reports the same
    problems as findings) keeps a value it cannot use at its default instead of raising.

    Raises:
        RuleFileError: a value the rule cannot run with (query, schedule, trigger, severity,
            mappings), one located diagnostic per value.
    """
    problems: list[tuple[str, str, str]] = []  # (key, code, message)

    def value(key: str, default: Any, convert: Callable[[Any], Any], code: str, want: str) -> Any:
        raw = doc.get(key)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (RuleFileError, ValueError, TypeError):
            problems.append((key, code, f"{key} {_shown(raw)} is not {want}"))
            return default

    rule = Rule(
        path,
        pack,
        doc,
        query_line,
        tests or RuleTests(None),
        id=value("id", "", _text, "RULE102", "text"),
        name=value("name", path.stem, _text, "RULE101", "text"),
        severity=value("severity", "Medium", _one_of(SEVERITIES), "RULE106", _among(SEVERITIES)),
        query=value("query", "", _text, "RULE120", "text"),
        tactics=value("tactics", [], _texts, "RULE116", "a list of tactics"),
        techniques=value("relevantTechniques", [], _texts, "RULE117", "a list of techniques"),
        query_frequency=value("queryFrequency", timedelta(hours=1), _duration, "RULE110", _DUR),
        query_period=value("queryPeriod", timedelta(hours=1), _duration, "RULE110", _DUR),
        trigger_operator=value(
            "triggerOperator",
            "gt",
            _one_of(tuple(TRIGGER_OPERATORS)),
            "RULE114",
            "gt, lt, eq or ne",
        ),
        trigger_threshold=value("triggerThreshold", 0, _count, "RULE115", "a whole number >= 0"),
        entity_mappings=value(
            "entityMappings", [], _mappings, "RULE121", "a list of entity mappings"
        ),
        custom_details=value("customDetails", {}, _text_map, "RULE128", "a mapping"),
        details_override=value("alertDetailsOverride", {}, _text_map, "RULE131", "a mapping"),
        grouping=value(
            "eventGroupingSettings",
            "SingleAlert",
            _grouping,
            "RULE133",
            "aggregationKind " + _among(GROUPINGS),
        ),
        origin=dict(origin or {}),
    )
    if not rule.query.strip() and "query" not in {k for k, _, _ in problems}:
        problems.append(("query", "RULE120", "the rule has no query"))
    if problems and strict:
        lines = key_lines or {}
        raise RuleFileError(
            f"{path}: {problems[0][2]}",
            diagnostics=[
                Diagnostic(
                    code,
                    f"{path}{_at(lines.get(key))}: {message}",
                    None,
                    "run `trustwatch rules lint` on the file for every finding",
                )
                for key, code, message in problems
            ],
        )
    return rule


_DUR = "a duration (5m, 1h, 14d, d.hh:mm:ss or PT1H)"


def _at(line: int | None) -> str:
    return f":{line + 1}" if line is not None else ""


def _shown(raw: object) -> str:
    text = repr(raw) if not isinstance(raw, str) else f"'{raw}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _among(choices: Iterable[str]) -> str:
    return "one of " + ", ".join(choices)


def _text(raw: object) -> str:
    if isinstance(raw, dict | list):
        raise TypeError(raw)
    return str(raw)


def _texts(raw: object) -> list[str]:
    if not isinstance(raw, list) or any(isinstance(t, dict | list) for t in raw):
        raise TypeError(raw)
    return [str(t) for t in raw]


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    by_lower = {c.lower(): c for c in choices}

    def convert(raw: object) -> str:
        text = str(raw)
        if text.lower() not in by_lower:
            raise ValueError(text)
        return text if text in choices else by_lower[text.lower()]

    return convert


def _duration(raw: object) -> timedelta:
    if isinstance(raw, bool | int | float):  # YAML read 1:00:00 as a base-60 number
        raise TypeError(raw)
    return parse_duration(raw)


def _count(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise TypeError(raw)
    number = int(raw)
    if number < 0:
        raise ValueError(raw)
    return number


def _mappings(raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise TypeError(raw)
    return [dict(m) for m in raw]


def _text_map(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise TypeError(raw)
    return {str(k): str(v) for k, v in raw.items()}


def _grouping(raw: object) -> str:
    if not isinstance(raw, dict):
        raise TypeError(raw)
    return _one_of(GROUPINGS)(raw.get("aggregationKind", "SingleAlert"))


def tests_path(rule_path: Path) -> Path:
    return rule_path.with_name(rule_path.stem + TESTS_SUFFIX)


def load_tests(path: Path) -> RuleTests:
    """Read a tests file; a missing one gives no cases (lint reports that)."""
    if not path.exists():
        return RuleTests(None)
    doc, _ = _load_yaml(path)
    if not isinstance(doc, dict):
        raise RuleFileError(f"{path}: a tests file must be a YAML mapping with 'cases'")
    cases = []
    for i, raw in enumerate(doc.get("cases") or []):
        where = f"{path}: case {i + 1}"
        if not isinstance(raw, dict) or "name" not in raw or "expect" not in raw:
            raise RuleFileError(f"{where}: needs 'name', 'expect' (alert|no-alert) and 'tables'")
        expect = str(raw["expect"])
        if expect not in ("alert", "no-alert"):
            raise RuleFileError(f"{where}: expect must be 'alert' or 'no-alert', not '{expect}'")
        tables = raw.get("tables") or {}
        if not isinstance(tables, dict) or not all(
            isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
            for rows in tables.values()
        ):
            raise RuleFileError(f"{where}: 'tables' maps a table name to a list of rows")
        cases.append(
            TestCase(
                name=str(raw["name"]),
                expect_alert=expect == "alert",
                tables={str(k): [dict(r) for r in v] for k, v in tables.items()},
                alerts=int(raw["alerts"]) if "alerts" in raw else None,
                fields=dict(raw.get("fields") or {}),
                now=str(raw["now"]) if raw.get("now") else None,
            )
        )
    defects = tuple(
        KnownDefect(str(d.get("code", "")), str(d.get("reason", "")))
        for d in doc.get("known_defects") or []
        if isinstance(d, dict)
    )
    return RuleTests(path, tuple(cases), defects, str(doc.get("run_with") or ""))


def shipped_rules_dir() -> Path:
    return Path(str(resources.files("trustwatch.content"))) / "rules"


def _rule_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in (".yaml", ".yml") and not p.name.endswith(COMPANION_SUFFIXES)
    )


def load_rules(selectors: Iterable[str] = ("default",), *, strict: bool = True) -> list[Rule]:
    """Rules named by pack (``default``, ``reference``, ``network``, ``all``) or by file or folder.

    Raises:
        RuleFileError: a path that does not exist, a folder with no rules, a malformed file,
            or two rules with one id.
    """
    rules: list[Rule] = []
    for selector in selectors or ("default",):
        if selector in (*PACKS, "all"):
            for pack in ALL_PACKS if selector == "all" else (selector,):
                rules.extend(
                    load_rule(p, pack, strict=strict)
                    for p in _rule_files(shipped_rules_dir() / pack)
                )
            continue
        path = Path(selector)
        if not path.exists():
            raise RuleFileError(
                f"no rules at '{selector}'",
                hint=(
                    "give a rule file, a folder of rules, or a pack: "
                    "default, reference, network, all"
                ),
            )
        files = _rule_files(path) if path.is_dir() else [path]
        if not files:
            raise RuleFileError(f"no rule files (*.yaml) in {path}")
        rules.extend(load_rule(p, strict=strict) for p in files)
    seen: dict[str, Path] = {}
    for rule in rules:
        if rule.id and rule.id in seen and seen[rule.id] != rule.path:
            raise RuleFileError(f"rule id {rule.id} is used by {seen[rule.id]} and {rule.path}")
        seen.setdefault(rule.id, rule.path)
    unique = {r.path.resolve(): r for r in rules}
    return list(unique.values())


def find_rule(rules: Iterable[Rule], key: str) -> Rule:
    """A rule by id, id prefix (8+ characters), file stem or exact name."""
    rules = list(rules)
    lowered = key.lower()
    for rule in rules:
        if lowered in (rule.id.lower(), rule.path.stem.lower(), rule.name.lower()):
            return rule
    matches = [r for r in rules if len(key) >= 8 and r.id.lower().startswith(lowered)]
    if len(matches) == 1:
        return matches[0]
    raise RuleFileError(
        f"no rule '{key}'",
        hint="`trustwatch rules list --rules all` shows ids and file names",
    )
