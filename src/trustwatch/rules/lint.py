"""``trustwatch rules lint``: the Azure-Sentinel repository CI checks, and a compile of every query.

Each check is a small function that yields :class:`Problem` records; :func:`lint_rules` runs them
and turns each into a :class:`Finding` located in the rule file (or its tests file). Codes are
stable and listed in :data:`CODES`; the compiler's own codes (``KQL1xx``/``KQL2xx``/``KQL3xx``)
are passed through for errors in a rule's query.

Code ranges: ``RULE1xx`` the keys of the rule file, ``RULE2xx`` the query against the rest of the
rule, ``RULE3xx`` the tests file, ``RULE4xx`` the file as text.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from trustwatch import yamlio
from trustwatch.api import Session
from trustwatch.errors import Diagnostic, TrustwatchError
from trustwatch.guides.lint import check_guide
from trustwatch.kql import ast
from trustwatch.kql.parser import parse_query
from trustwatch.rules.model import TRIGGER_OPERATORS, Rule, parse_duration, tests_path
from trustwatch.rules.sentinel_schema import (
    AGGREGATION_KINDS,
    ATTACK_TACTICS,
    CODES,
    COLUMN_NAME,
    CONNECTOR_IDS,
    DETAIL_KEY,
    ENTITY_TYPES,
    ENUM_KEYS,
    ERROR,
    GUID,
    KNOWN,
    LONG_PERIOD,
    LONG_PERIOD_MIN_FREQUENCY,
    MAX_COLUMN_NAME,
    MAX_CUSTOM_DETAILS,
    MAX_DETAIL_KEY,
    MAX_ENTITIES,
    MAX_FIELD_MAPPINGS,
    MAX_PLACEHOLDERS,
    MAX_SCHEDULE,
    MAX_THRESHOLD,
    MAX_VERSION,
    MIN_CASES,
    MIN_SCHEDULE,
    NRT_KEYS,
    OVERRIDE_COLUMNS,
    OVERRIDE_FORMATS,
    PLACEHOLDER,
    SCHEDULE_KEYS,
    SCHEDULED_KEYS,
    TECHNIQUE,
    TECHNIQUE_TACTICS,
    TEXT_LIMITS,
    VERSION,
    EntitySpec,
)
from trustwatch.schema.model import suggest

# --- results ----------------------------------------------------------------------------------

Where = tuple[str | int, ...]  # a path of keys and list indexes into the rule's YAML


class Problem(NamedTuple):
    """What a check found: a code and message, located by a YAML path or a file line/column."""

    code: str
    message: str
    where: Where = ()
    line: int | None = None  # 1-based; when given, ``where`` is not used
    column: int | None = None
    severity: str | None = None  # None: the code's severity in CODES (errors for KQL codes)
    file: Path | None = None  # None: the rule file


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint result, located in the rule file (or, when ``file`` is set, its tests file)."""

    rule: Rule
    code: str  # RULEnnn (see CODES) or a compiler code (KQLnnn)
    message: str
    line: int | None  # 1-based, when known
    column: int | None
    severity: str  # "error" | "warning" | "known" (a documented known defect: not failing)
    file: Path | None = None

    @property
    def path(self) -> Path:
        """The file the line and column are in."""
        return self.file or self.rule.path

    def render(self) -> str:
        """``path:line:col: error RULE101: message`` (line and column left out when unknown)."""
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.severity} {self.code}: {self.message}"


def has_errors(findings: Sequence[Finding]) -> bool:
    """Does lint fail: is any finding an error (warnings and known defects do not fail)?"""
    return any(f.severity == ERROR for f in findings)


# --- small helpers ----------------------------------------------------------------------------


def _dicts(value: object) -> list[Mapping[str, Any]]:
    """The mappings in a YAML list (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    hint = suggest(name, tuple(choices))
    return f" ({hint})" if hint else ""


# --- checks of the rule's keys (each: doc -> problems) ----------------------------------------


def check_required_keys(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE101: every key Sentinel requires for the rule's kind is present and not empty."""
    required = NRT_KEYS if doc.get("kind") == "NRT" else SCHEDULED_KEYS
    for key in required:
        if doc.get(key) is None:
            yield Problem("RULE101", f"required key '{key}' is missing")


def check_id(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE102: id is a GUID."""
    value = doc.get("id")
    if value is not None and not (isinstance(value, str) and GUID.match(value)):
        yield Problem("RULE102", f"id '{value}' is not a GUID (xxxxxxxx-xxxx-...)", ("id",))


def check_text_lengths(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE104/105/120: name, description and query are non-empty text within their limits."""
    for key, (code, limit) in TEXT_LIMITS.items():
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            yield Problem(code, f"{key} must be non-empty text", (key,))
        elif len(value) > limit:
            yield Problem(code, f"{key} has {len(value)} characters; at most {limit}", (key,))


def check_enums(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE106/107: severity and kind take one of their values."""
    for key, (code, allowed) in ENUM_KEYS.items():
        value = doc.get(key)
        if value is not None and value not in allowed:
            choices = ", ".join(allowed)
            yield Problem(code, f"{key} '{value}' is not one of {choices}", (key,))


def check_connectors(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE108/109: requiredDataConnectors lists {connectorId, dataTypes} with known ids."""
    value = doc.get("requiredDataConnectors")
    if value is None:
        return
    if not isinstance(value, list):
        yield Problem(
            "RULE108", "requiredDataConnectors must be a list", ("requiredDataConnectors",)
        )
        return
    for i, item in enumerate(value):
        where: Where = ("requiredDataConnectors", i)
        if not (
            isinstance(item, dict)
            and isinstance(item.get("connectorId"), str)
            and _is_str_list(item.get("dataTypes"))
        ):
            yield Problem(
                "RULE108", "a data connector needs connectorId and dataTypes (tables)", where
            )
        elif item["connectorId"] not in CONNECTOR_IDS:
            connector = item["connectorId"]
            yield Problem(
                "RULE109",
                f"connectorId '{connector}' is not a known connector id"
                + _did_you_mean(connector, sorted(CONNECTOR_IDS)),
                (*where, "connectorId"),
            )


def _duration_problem(key: str, value: object) -> tuple[timedelta | None, Problem | None]:
    """A schedule value as a timedelta, or the problem with it (RULE110/111)."""
    try:
        span = parse_duration(value) if isinstance(value, str) else None
    except TrustwatchError:
        span = None
    if span is None:
        hint = " (YAML read it as a number: quote it)" if isinstance(value, int | float) else ""
        message = f"{key} '{value}' is not a duration{hint}; use 5m, 1h, 14d or d.hh:mm:ss"
        return None, Problem("RULE110", message, (key,))
    if not MIN_SCHEDULE <= span <= MAX_SCHEDULE:
        return None, Problem("RULE111", f"{key} {value} is outside 5m..14d", (key,))
    return span, None


def check_schedule(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE110..113: frequency and period parse, lie in 5m..14d, and fit each other."""
    spans: dict[str, timedelta] = {}
    for key in SCHEDULE_KEYS:
        if doc.get(key) is None:
            continue
        span, problem = _duration_problem(key, doc[key])
        if problem is not None:
            yield problem
        elif span is not None:
            spans[key] = span
    frequency, period = spans.get("queryFrequency"), spans.get("queryPeriod")
    if frequency is None or period is None:
        return
    if period < frequency:
        yield Problem(
            "RULE112",
            f"queryPeriod {doc['queryPeriod']} is shorter than queryFrequency "
            f"{doc['queryFrequency']}: some events would never be queried",
            ("queryPeriod",),
        )
    if period >= LONG_PERIOD and frequency < LONG_PERIOD_MIN_FREQUENCY:
        yield Problem(
            "RULE113",
            f"queryPeriod {doc['queryPeriod']} is 2d or more, so queryFrequency must be 1h or "
            f"more, not {doc['queryFrequency']}",
            ("queryFrequency",),
        )


def check_trigger(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE114/115: triggerOperator is gt/lt/eq/ne (or a long form); threshold in 0..10000."""
    operator = doc.get("triggerOperator")
    if operator is not None and not (
        isinstance(operator, str) and operator.lower() in TRIGGER_OPERATORS
    ):
        yield Problem(
            "RULE114",
            f"triggerOperator '{operator}' is not gt, lt, eq or ne",
            ("triggerOperator",),
        )
    threshold = doc.get("triggerThreshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not 0 <= threshold <= MAX_THRESHOLD
    ):
        yield Problem(
            "RULE115",
            f"triggerThreshold '{threshold}' is not an integer in 0..{MAX_THRESHOLD}",
            ("triggerThreshold",),
        )


def check_tactics(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE116: tactics is a list of AttackTactic values."""
    tactics = doc.get("tactics")
    if tactics is None:
        return
    if not isinstance(tactics, list):
        yield Problem("RULE116", "tactics must be a list", ("tactics",))
        return
    for i, tactic in enumerate(tactics):
        if tactic not in ATTACK_TACTICS:
            yield Problem(
                "RULE116",
                f"'{tactic}' is not an ATT&CK tactic" + _did_you_mean(str(tactic), ATTACK_TACTICS),
                ("tactics", i),
            )


def technique_tactics(technique: str) -> tuple[str, ...] | None:
    """The ATT&CK tactics of a technique (a sub-technique falls back to its parent), or None."""
    found = TECHNIQUE_TACTICS.get(technique)
    return found if found is not None else TECHNIQUE_TACTICS.get(technique.split(".")[0])


def check_techniques(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE117..119: techniques are well formed and one of each one's tactics is listed."""
    techniques = doc.get("relevantTechniques")
    if techniques is None:
        return
    if not isinstance(techniques, list):
        yield Problem("RULE117", "relevantTechniques must be a list", ("relevantTechniques",))
        return
    tactics_value = doc.get("tactics")
    listed = (
        {t for t in tactics_value if isinstance(t, str)}
        if isinstance(tactics_value, list)
        else set()
    )
    for i, technique in enumerate(techniques):
        where: Where = ("relevantTechniques", i)
        if not (isinstance(technique, str) and TECHNIQUE.match(technique)):
            yield Problem("RULE117", f"'{technique}' is not written T1234 or T1234.567", where)
            continue
        tactics = technique_tactics(technique)
        if tactics is None:
            yield Problem(
                "RULE119",
                f"technique {technique} is not in trustwatch's technique table: "
                "tactic check skipped",
                where,
            )
        elif not listed.intersection(tactics):
            yield Problem(
                "RULE118",
                f"technique {technique} belongs to {' / '.join(tactics)}; add it to tactics",
                where,
            )


def _check_field_mappings(
    fields: list[Any], spec: EntitySpec | None, where: Where
) -> Iterator[Problem]:
    """RULE123..127 for one entity's fieldMappings."""
    mapped: set[str] = set()
    for j, field_map in enumerate(fields):
        at: Where = (*where, "fieldMappings", j)
        if not isinstance(field_map, dict):
            yield Problem("RULE123", "a field mapping is {identifier, columnName}", at)
            continue
        identifier, column = field_map.get("identifier"), field_map.get("columnName")
        if not isinstance(identifier, str):
            yield Problem("RULE123", "a field mapping needs an identifier", at)
        elif spec is not None and identifier not in spec.identifiers:
            valid = ", ".join(sorted(spec.identifiers))
            yield Problem(
                "RULE124",
                f"'{identifier}' is not an identifier of this entity (valid: {valid})",
                (*at, "identifier"),
            )
        elif identifier in mapped:
            yield Problem("RULE125", f"identifier '{identifier}' is mapped twice", at)
        else:
            mapped.add(identifier)
        if not (
            isinstance(column, str) and COLUMN_NAME.match(column) and len(column) <= MAX_COLUMN_NAME
        ):
            yield Problem(
                "RULE127", f"columnName '{column}' is not a column name", (*at, "columnName")
            )
    if spec is not None and not any(set(combo) <= mapped for combo in spec.required):
        needed = ", ".join("+".join(combo) for combo in spec.required)
        yield Problem(
            "RULE126", f"the entity maps none of its required identifiers ({needed})", where
        )


def _check_entity(mapping: object, where: Where) -> Iterator[Problem]:
    """RULE121..127 for one entity mapping."""
    if not isinstance(mapping, dict):
        yield Problem("RULE121", "an entity mapping is {entityType, fieldMappings}", where)
        return
    entity_type = mapping.get("entityType")
    spec = ENTITY_TYPES.get(entity_type) if isinstance(entity_type, str) else None
    if entity_type is None:
        yield Problem("RULE122", "the entity mapping has no entityType", where)
    elif spec is None:
        yield Problem(
            "RULE122",
            f"entityType '{entity_type}' is not a known entity type"
            + _did_you_mean(str(entity_type), tuple(ENTITY_TYPES)),
            (*where, "entityType"),
        )
    fields = mapping.get("fieldMappings")
    if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELD_MAPPINGS:
        yield Problem(
            "RULE123",
            f"fieldMappings must list 1..{MAX_FIELD_MAPPINGS} {{identifier, columnName}}",
            (*where, "fieldMappings"),
        )
    if isinstance(fields, list):
        yield from _check_field_mappings(fields, spec, where)


def check_entity_mappings(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE121..127: 1..10 entity mappings, each with valid identifiers and column names."""
    mappings = doc.get("entityMappings")
    if mappings is None:
        return
    if not isinstance(mappings, list) or not 1 <= len(mappings) <= MAX_ENTITIES:
        yield Problem(
            "RULE121",
            f"entityMappings must list 1..{MAX_ENTITIES} entity mappings",
            ("entityMappings",),
        )
    if isinstance(mappings, list):
        for i, mapping in enumerate(mappings):
            yield from _check_entity(mapping, ("entityMappings", i))


def check_custom_details(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE128..130: at most 20 custom details, well-formed keys, column-name values."""
    details = doc.get("customDetails")
    if details is None:
        return
    if not isinstance(details, dict) or len(details) > MAX_CUSTOM_DETAILS:
        yield Problem(
            "RULE128",
            f"customDetails must map at most {MAX_CUSTOM_DETAILS} keys to columns",
            ("customDetails",),
        )
    if not isinstance(details, dict):
        return
    for key, column in details.items():
        where: Where = ("customDetails", str(key))
        if not (isinstance(key, str) and DETAIL_KEY.match(key) and len(key) <= MAX_DETAIL_KEY):
            yield Problem(
                "RULE129",
                f"customDetails key '{key}' must match ^[a-zA-Z]+\\w*$ and have at most "
                f"{MAX_DETAIL_KEY} characters",
                where,
            )
        if not (
            isinstance(column, str) and COLUMN_NAME.match(column) and len(column) <= MAX_COLUMN_NAME
        ):
            yield Problem("RULE130", f"customDetails value '{column}' is not a column name", where)


def check_details_override(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE131/132: override formats are non-empty, short enough, with <= 3 placeholders."""
    override = doc.get("alertDetailsOverride")
    if override is None:
        return
    if not isinstance(override, dict):
        yield Problem(
            "RULE131", "alertDetailsOverride must be a mapping", ("alertDetailsOverride",)
        )
        return
    for key, limit in OVERRIDE_FORMATS.items():
        if key not in override:
            continue
        value, where = override[key], ("alertDetailsOverride", key)
        if not isinstance(value, str) or not value.strip():
            yield Problem("RULE131", f"{key} must be non-empty text", where)
        elif len(value) > limit:
            yield Problem("RULE131", f"{key} has {len(value)} characters; at most {limit}", where)
        elif len(PLACEHOLDER.findall(value)) > MAX_PLACEHOLDERS:
            count = len(PLACEHOLDER.findall(value))
            yield Problem(
                "RULE132",
                f"{key} has {count} {{{{Column}}}} placeholders; at most {MAX_PLACEHOLDERS}",
                where,
            )


def check_grouping(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE133: eventGroupingSettings.aggregationKind is SingleAlert or AlertPerResult."""
    settings = doc.get("eventGroupingSettings")
    if settings is None:
        return
    kind = settings.get("aggregationKind") if isinstance(settings, dict) else None
    if kind not in AGGREGATION_KINDS:
        yield Problem(
            "RULE133",
            f"eventGroupingSettings.aggregationKind '{kind}' is not SingleAlert or AlertPerResult",
            ("eventGroupingSettings",),
        )


def check_version(doc: Mapping[str, Any]) -> Iterator[Problem]:
    """RULE134: version is X.Y.Z (at most 20 characters)."""
    value = doc.get("version")
    if value is not None and not (
        isinstance(value, str) and VERSION.match(value) and len(value) <= MAX_VERSION
    ):
        yield Problem("RULE134", f"version '{value}' is not X.Y.Z (e.g. 1.0.0)", ("version",))


DocCheck = Callable[[Mapping[str, Any]], Iterator[Problem]]

#: the checks that need only the rule's YAML mapping, in report order
DOC_CHECKS: tuple[DocCheck, ...] = (
    check_required_keys,
    check_id,
    check_text_lengths,
    check_enums,
    check_connectors,
    check_schedule,
    check_trigger,
    check_tactics,
    check_techniques,
    check_entity_mappings,
    check_custom_details,
    check_details_override,
    check_grouping,
    check_version,
)


def check_unique_id(rule: Rule, rules: Sequence[Rule]) -> Iterator[Problem]:
    """RULE103: no other rule (another file) has this rule's id."""
    others = [
        str(other.path)
        for other in rules
        if rule.id
        and other.id.lower() == rule.id.lower()
        and other.path.resolve() != rule.path.resolve()
    ]
    if others:
        yield Problem("RULE103", f"id {rule.id} is also used by {', '.join(others)}", ("id",))


# --- the query against the rest of the rule ---------------------------------------------------

Columns = tuple[tuple[str, str], ...]  # a statement's output: (name, KQL type)


def column_references(doc: Mapping[str, Any]) -> Iterator[tuple[str, Where, str]]:
    """Every column the rule names outside its query: (column, where, what names it)."""
    for i, mapping in enumerate(_dicts(doc.get("entityMappings"))):
        for j, field_map in enumerate(_dicts(mapping.get("fieldMappings"))):
            column = field_map.get("columnName")
            if isinstance(column, str):
                what = f"{mapping.get('entityType')} entity {field_map.get('identifier')}"
                yield column, ("entityMappings", i, "fieldMappings", j, "columnName"), what
    details = doc.get("customDetails")
    for key, column in details.items() if isinstance(details, dict) else ():
        if isinstance(column, str):
            yield column, ("customDetails", str(key)), f"custom detail {key}"
    override = doc.get("alertDetailsOverride")
    override = override if isinstance(override, dict) else {}
    for key in OVERRIDE_FORMATS:
        text = override.get(key)
        for name in PLACEHOLDER.findall(text) if isinstance(text, str) else ():
            yield name, ("alertDetailsOverride", key), f"{key} placeholder"
    for key in OVERRIDE_COLUMNS:
        if isinstance(override.get(key), str):
            yield override[key], ("alertDetailsOverride", key), key


def check_columns(doc: Mapping[str, Any], columns: Columns) -> Iterator[Problem]:
    """RULE201/202: every column the rule names is output by the query; the severity is text."""
    types = dict(columns)
    for name, where, what in column_references(doc):
        if name not in types:
            yield Problem(
                "RULE201",
                f"{what} names column '{name}', which the query does not output"
                + _did_you_mean(name, tuple(types)),
                where,
            )
    override = doc.get("alertDetailsOverride")
    column = override.get("alertSeverityColumnName") if isinstance(override, dict) else None
    if isinstance(column, str) and types.get(column, "string") != "string":
        yield Problem(
            "RULE202",
            f"alertSeverityColumnName column '{column}' is {types[column]}, not string",
            ("alertDetailsOverride", "alertSeverityColumnName"),
        )


def tables_read(query: ast.Query, catalog: Container[str]) -> set[str]:
    """The catalog tables a parsed query names (let-bound names and watchlists excluded)."""
    return {n.name for n in query.walk() if isinstance(n, ast.TableRef) and n.name in catalog}


def check_data_types(doc: Mapping[str, Any], tables: set[str]) -> Iterator[Problem]:
    """RULE205: every table the query reads is in some requiredDataConnectors dataTypes."""
    connectors = doc.get("requiredDataConnectors")
    if not isinstance(connectors, list):
        return  # missing or malformed: RULE101/108
    declared = {
        t for c in _dicts(connectors) if _is_str_list(c.get("dataTypes")) for t in c["dataTypes"]
    }
    for table in sorted(tables - declared):
        yield Problem(
            "RULE205",
            f"the query reads {table}, which no requiredDataConnectors entry lists in dataTypes",
            ("requiredDataConnectors",),
        )


def query_indent(rule: Rule, lines: Sequence[str]) -> int:
    """Columns before the query text on its first line in the file (a block's indentation)."""
    for i, text in enumerate(rule.query.split("\n")):
        if text.strip():
            index = rule.query_line + i
            found = lines[index] if 0 <= index < len(lines) else ""
            return max(found.find(text), 0)
    return 0


def _in_query(rule: Rule, offset: int | None, indent: int) -> tuple[int, int]:
    """The 1-based file line and column of an offset into the rule's query text."""
    if offset is None:
        return rule.query_line + 1, indent + 1
    line, column = rule.query_source.line_col(offset)
    return line, column + indent


def _diagnostic_problem(
    rule: Rule, diag: Diagnostic, known: Mapping[str, str], indent: int
) -> Problem:
    """A compiler diagnostic on the rule's query, downgraded when it is a known defect."""
    line, column = _in_query(rule, diag.span.start if diag.span else None, indent)
    message = diag.message + (f" ({diag.hint})" if diag.hint else "")
    if diag.code in known:
        message += f" [known defect: {known[diag.code]}]"
        return Problem(diag.code, message, line=line, column=column, severity=KNOWN)
    return Problem(diag.code, message, line=line, column=column)


def _compile_runnable(
    rule: Rule, session: Session, indent: int
) -> tuple[Columns | None, Problem | None]:
    """RULE203: the query as trustwatch runs it (``run_with`` first) must compile."""
    runnable = rule.runnable_query
    try:
        statements, _ = session.compile(runnable, source_name=str(rule.path))
    except TrustwatchError as exc:
        diag = exc.diagnostic
        prefix = len(runnable) - len(rule.query)
        start = diag.span.start if diag.span else None
        where = " in run_with" if start is not None and start < prefix else ""
        inside = start - prefix if start is not None and start >= prefix else None
        line, column = _in_query(rule, inside, indent)
        message = (
            f"the query does not compile with the tests file's run_with: "
            f"{diag.code}{where}: {diag.message}"
        )
        return None, Problem("RULE203", message, line=line, column=column)
    return (statements[-1].columns if statements else ()), None


def check_query(rule: Rule, session: Session, indent: int) -> tuple[list[Problem], Columns | None]:
    """Compile the query: its errors (known defects downgraded) and output columns, if any.

    A query with only known defects must compile once ``run_with`` is put before it; its
    columns are then those of that query. A known defect the compiler does not report is an
    error (RULE204), so the list stays honest.
    """
    known = {d.code: d.reason for d in rule.tests.known_defects}
    try:
        statements, _ = session.compile(rule.query, source_name=str(rule.path))
    except TrustwatchError as exc:
        problems = [_diagnostic_problem(rule, d, known, indent) for d in exc.diagnostics]
        if any(p.severity != KNOWN for p in problems):
            return problems, None
        columns, problem = _compile_runnable(rule, session, indent)
        return problems + ([problem] if problem else []), columns
    stale = [
        Problem(
            "RULE204",
            f"known defect {code} is listed in {tests_path(rule.path).name} but the query "
            "compiles without it: remove it",
            line=rule.query_line + 1,
        )
        for code in known
    ]
    return stale, (statements[-1].columns if statements else ())


def _has_query(doc: Mapping[str, Any]) -> bool:
    query = doc.get("query")
    return isinstance(query, str) and bool(query.strip())


def query_tables(rule: Rule, session: Session) -> set[str]:
    """The tables the rule's query reads (none when it does not parse: compile reports that)."""
    try:
        return tables_read(parse_query(rule.query, str(rule.path)), session.catalog)
    except TrustwatchError:
        return set()


# --- the tests file ---------------------------------------------------------------------------


def check_tests(rule: Rule) -> Iterator[Problem]:
    """RULE301..303: a tests file with at least 2 alert and 2 no-alert cases."""
    tests = rule.tests
    if tests.path is None:
        yield Problem(
            "RULE301", f"no tests file: write {tests_path(rule.path).name} beside the rule"
        )
        return
    alerts = sum(1 for case in tests.cases if case.expect_alert)
    quiet = len(tests.cases) - alerts
    for code, count, expect in (("RULE302", alerts, "alert"), ("RULE303", quiet, "no-alert")):
        if count < MIN_CASES:
            yield Problem(
                code,
                f"{count} 'expect: {expect}' case(s); at least {MIN_CASES} needed",
                file=tests.path,
            )


# --- the file as text -------------------------------------------------------------------------


def check_ascii(text: str) -> Iterator[Problem]:
    """RULE401: the first non-ASCII character of every line that has one."""
    for number, line in enumerate(text.split("\n"), 1):
        column = next((i for i, ch in enumerate(line) if ord(ch) > 127), None)
        if column is not None:
            char = line[column]
            yield Problem(
                "RULE401",
                f"non-ASCII character {char!r} (U+{ord(char):04X}); Sentinel's CI rejects it",
                line=number,
                column=column + 1,
            )


def _nodes(root: yaml.Node | None) -> Iterator[yaml.Node]:
    """Every node of a composed YAML document (each once, even when aliased)."""
    stack, seen = [root] if root is not None else [], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))


def check_duplicate_keys(root: yaml.Node | None, file: Path | None = None) -> Iterator[Problem]:
    """RULE402: a key given twice in one mapping (PyYAML would silently keep the last)."""
    for node in _nodes(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = key.start_mark.line + 1
            if key.value in first:
                yield Problem(
                    "RULE402",
                    f"key '{key.value}' is also on line {first[key.value]}; "
                    "YAML readers keep only the last",
                    line=line,
                    column=key.start_mark.column + 1,
                    file=file,
                )
            else:
                first[key.value] = line


def _compose(text: str) -> yaml.Node | None:
    try:
        return yamlio.compose(text)
    except yaml.YAMLError:
        return None  # load_rule already reported it


def _tests_file_problems(rule: Rule) -> Iterator[Problem]:
    path = rule.tests.path
    if path is not None and path.exists():
        yield from check_duplicate_keys(_compose(path.read_text(encoding="utf-8")), path)


# --- locating and running ---------------------------------------------------------------------


def _child(node: yaml.Node, step: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        matches = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step]
        return matches[-1] if matches else None  # the last, as the loaded mapping keeps
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        return node.value[step] if 0 <= step < len(node.value) else None
    return None


def locate(root: yaml.Node | None, where: Where) -> tuple[int | None, int | None]:
    """The 1-based line and column of the deepest node found along ``where`` (none for ())."""
    if root is None or not where:
        return None, None
    node = root
    for step in where:
        child = _child(node, step)
        if child is None:
            break
        node = child
    return node.start_mark.line + 1, node.start_mark.column + 1


def _finding(rule: Rule, problem: Problem, root: yaml.Node | None) -> Finding:
    line, column = (
        (problem.line, problem.column) if problem.line is not None else locate(root, problem.where)
    )
    severity = problem.severity or CODES.get(problem.code, (ERROR, ""))[0]
    return Finding(rule, problem.code, problem.message, line, column, severity, problem.file)


def _sort_key(finding: Finding) -> tuple[str, int, int, str]:
    return (str(finding.path), finding.line or 0, finding.column or 0, finding.code)


def lint_rule(rule: Rule, session: Session, rules: Sequence[Rule] = ()) -> list[Finding]:
    """Every finding for one rule (``rules``: all rules linted together, for unique ids)."""
    text = rule.path.read_text(encoding="utf-8")
    root = _compose(text)
    problems = [p for check in DOC_CHECKS for p in check(rule.doc)]
    problems += check_unique_id(rule, rules)
    problems += check_ascii(text)
    problems += check_duplicate_keys(root)
    if _has_query(rule.doc):  # else RULE101/RULE120 said why
        compiled, columns = check_query(rule, session, query_indent(rule, text.split("\n")))
        problems += compiled
        if columns is not None:
            problems += check_columns(rule.doc, columns)
        problems += check_data_types(rule.doc, query_tables(rule, session))
    problems += check_tests(rule)
    problems += _tests_file_problems(rule)
    problems += [  # the guide and playbook beside the rule (trustwatch.guides.lint)
        Problem(g.code, g.message, line=g.line, file=None if g.file == rule.path else g.file)
        for g in check_guide(rule.path, rule.id, session)
    ]
    return sorted((_finding(rule, p, root) for p in problems), key=_sort_key)


def lint_rules(
    rules: Sequence[Rule], session_factory: Callable[[], Session] = Session
) -> list[Finding]:
    """Lint rules as Azure-Sentinel's CI would, and compile each query with trustwatch.

    Args:
        rules: the rules, e.g. from :func:`trustwatch.rules.model.load_rules`.
        session_factory: makes the session the queries compile in (once per call); give one
            that knows the tuning file's watchlists so ``_GetWatchlist`` resolves.

    Returns:
        The findings, rule by rule, each rule's in file order. Lint fails when any has
        severity ``error`` (:func:`has_errors`).
    """
    if not rules:
        return []
    session = session_factory()
    return [finding for rule in rules for finding in lint_rule(rule, session, rules)]
