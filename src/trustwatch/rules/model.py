"""Rules: Microsoft Sentinel scheduled analytic rules (Azure-Sentinel repository YAML) + tests.

A rule file is exactly what the Azure-Sentinel repository holds; trustwatch reads it without
adding keys. Its tests, and any documented deviation needed to run it, live beside it in
``<stem>.tests.yaml`` (see docs/rules.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trustwatch import yamlio
from trustwatch.errors import RuleFileError, Source

TESTS_SUFFIX = ".tests.yaml"
PACKS = ("default", "reference")  # shipped packs; "all" is both


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


@dataclass(frozen=True, slots=True)
class Rule:
    """One scheduled analytic rule, as read from its YAML, with its tests."""

    path: Path
    pack: str
    doc: Mapping[str, Any]  # the YAML as read (lint checks it)
    query_line: int  # 0-based line of the query's first line in the file
    tests: RuleTests

    @property
    def id(self) -> str:
        return str(self.doc.get("id", ""))

    @property
    def name(self) -> str:
        return str(self.doc.get("name", self.path.stem))

    @property
    def severity(self) -> str:
        return str(self.doc.get("severity", "Medium"))

    @property
    def query(self) -> str:
        return str(self.doc.get("query", ""))

    @property
    def runnable_query(self) -> str:
        """The query trustwatch runs: the rule's text, after any documented ``run_with``."""
        if not self.tests.run_with:
            return self.query
        return self.tests.run_with.rstrip() + "\n" + self.query

    @property
    def query_source(self) -> Source:
        return Source(self.query, str(self.path), line_offset=self.query_line)

    @property
    def tactics(self) -> list[str]:
        return [str(t) for t in self.doc.get("tactics") or []]

    @property
    def techniques(self) -> list[str]:
        return [str(t) for t in self.doc.get("relevantTechniques") or []]

    @property
    def query_frequency(self) -> timedelta:
        return parse_duration(self.doc.get("queryFrequency", "1h"))

    @property
    def query_period(self) -> timedelta:
        return parse_duration(self.doc.get("queryPeriod", "1h"))

    @property
    def trigger_operator(self) -> str:
        return str(self.doc.get("triggerOperator", "gt"))

    @property
    def trigger_threshold(self) -> int:
        return int(self.doc.get("triggerThreshold", 0))

    @property
    def entity_mappings(self) -> list[dict[str, Any]]:
        return list(self.doc.get("entityMappings") or [])

    @property
    def custom_details(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.doc.get("customDetails") or {}).items()}

    @property
    def details_override(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.doc.get("alertDetailsOverride") or {}).items()}

    @property
    def grouping(self) -> str:
        settings = self.doc.get("eventGroupingSettings") or {}
        return str(settings.get("aggregationKind", "SingleAlert"))

    def triggered(self, count: int) -> bool:
        """Does a run returning ``count`` rows raise an alert (triggerOperator/Threshold)?"""
        op = TRIGGER_OPERATORS.get(self.trigger_operator.lower())
        if op is None:
            raise RuleFileError(
                f"{self.path}: triggerOperator '{self.trigger_operator}' is not one of "
                "gt, lt, eq, ne"
            )
        return bool(op(count, self.trigger_threshold))


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


def _load_yaml(path: Path) -> tuple[Any, int]:
    """The document in a YAML file and the 0-based line its ``query`` starts on (0: none).

    Parsed once per content: the result is kept across runs (:func:`yamlio.cached_parse`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RuleFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    try:
        doc, line = yamlio.cached_parse(text, "rule-yaml", _parse)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(f"{path}{where}: not valid YAML: {problem}") from exc
    return doc, int(line)


def _parse(text: str) -> tuple[Any, int]:
    doc, node = yamlio.load_with_node(text)
    return doc, _query_line(node)


def _query_line(node: yaml.Node | None) -> int:
    if not isinstance(node, yaml.MappingNode):
        return 0
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "query":
            block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
            return int(value.start_mark.line) + (1 if block else 0)
    return 0


def load_rule(path: str | Path, pack: str = "custom") -> Rule:
    """Read one rule file and its ``.tests.yaml`` (if any)."""
    p = Path(path)
    doc, query_line = _load_yaml(p)
    if not isinstance(doc, dict):
        raise RuleFileError(f"{p}: a rule file must be a YAML mapping (id, name, query, ...)")
    return rule_from_doc(doc, p, pack, query_line, load_tests(tests_path(p)))


def rule_from_doc(
    doc: Mapping[str, Any],
    path: Path,
    pack: str = "custom",
    query_line: int = 0,
    tests: RuleTests | None = None,
) -> Rule:
    """A rule from its Sentinel document (as a rule file holds it), validated.

    ``path`` names where it came from (a file, or the Sigma rule it was converted from);
    ``query_line`` is the 0-based line of its query there.

    Raises:
        RuleFileError: a value of the document is not valid, located in ``path``.
    """
    return Rule(path, pack, doc, query_line, tests or RuleTests(None))


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
        if p.suffix in (".yaml", ".yml") and not p.name.endswith((TESTS_SUFFIX, ".tests.yml"))
    )


def load_rules(selectors: Iterable[str] = ("default",)) -> list[Rule]:
    """Rules named by pack (``default``, ``reference``, ``all``) or by file/folder path.

    Raises:
        RuleFileError: a path that does not exist, a folder with no rules, a malformed file,
            or two rules with one id.
    """
    rules: list[Rule] = []
    for selector in selectors or ("default",):
        if selector in (*PACKS, "all"):
            for pack in PACKS if selector == "all" else (selector,):
                rules.extend(load_rule(p, pack) for p in _rule_files(shipped_rules_dir() / pack))
            continue
        path = Path(selector)
        if not path.exists():
            raise RuleFileError(
                f"no rules at '{selector}'",
                hint="give a rule file, a folder of rules, or a pack: default, reference, all",
            )
        files = _rule_files(path) if path.is_dir() else [path]
        if not files:
            raise RuleFileError(f"no rule files (*.yaml) in {path}")
        rules.extend(load_rule(p) for p in files)
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
