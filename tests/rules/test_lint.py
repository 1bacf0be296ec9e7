"""``trustwatch rules lint``: a valid rule passes; each mutated variant is caught with its code."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwatch.api import Session
from trustwatch.rules.lint import CODES, Finding, has_errors, lint_rules
from trustwatch.rules.model import Rule, load_rule

VALID_RULE = """\
id: 5b0f3c3e-8a51-4d6e-9c4f-2a7d1e6b9c10
name: Certutil adds a certificate to a root store
description: |
  certutil.exe was run with -addstore; an attacker can install a root CA this way.
severity: Medium
requiredDataConnectors:
  - connectorId: MicrosoftThreatProtection
    dataTypes:
      - DeviceProcessEvents
queryFrequency: 1h
queryPeriod: 1h
triggerOperator: gt
triggerThreshold: 0
tactics:
  - DefenseEvasion
relevantTechniques:
  - T1553.004
query: |
  DeviceProcessEvents
  | where FileName =~ "certutil.exe" and ProcessCommandLine has "-addstore"
  | extend AlertSeverity = "Medium"
  | project TimeGenerated, DeviceName, AccountName, AccountDomain, ProcessId,
            ProcessCommandLine, AlertSeverity
entityMappings:
  - entityType: Host
    fieldMappings:
      - identifier: FullName
        columnName: DeviceName
  - entityType: Account
    fieldMappings:
      - identifier: Name
        columnName: AccountName
      - identifier: NTDomain
        columnName: AccountDomain
  - entityType: Process
    fieldMappings:
      - identifier: ProcessId
        columnName: ProcessId
      - identifier: CommandLine
        columnName: ProcessCommandLine
customDetails:
  CommandLine: ProcessCommandLine
alertDetailsOverride:
  alertDisplayNameFormat: certutil added a certificate on {{DeviceName}}
  alertDescriptionFormat: '{{AccountName}} ran {{ProcessCommandLine}}'
  alertSeverityColumnName: AlertSeverity
eventGroupingSettings:
  aggregationKind: AlertPerResult
version: 1.0.0
kind: Scheduled
"""


def _case(name: str, expect: str, command: str) -> str:
    return f"""\
  - name: {name}
    expect: {expect}
    tables:
      DeviceProcessEvents:
        - TimeGenerated: 2024-05-01T10:00:00Z
          DeviceName: ws01.contoso.com
          FileName: certutil.exe
          ProcessCommandLine: '{command}'
"""


VALID_TESTS = "cases:\n" + "".join(
    [
        _case("adds to Root", "alert", "certutil -addstore -f root c.cer"),
        _case("adds to CA", "alert", "certutil -addstore ca c.cer"),
        _case("dumps a store", "no-alert", "certutil -store root"),
        _case("verifies a chain", "no-alert", "certutil -verify c.cer"),
    ]
)


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()  # one for the module: a Session takes most of a second to make


# a guide and playbook from the shipped library (tests/guides/test_lint.py checks guides)
VALID_GUIDE = """\
meaning: certutil put a certificate into a trust store.
triage: [Which certificate?]
pivots: [process-tree, trust-store-changes]
playbook: [isolate-device, delete-cert-certutil-machine]
"""


def write(
    folder: Path,
    text: str,
    tests: str | None = VALID_TESTS,
    stem: str = "rule",
    guide: str | None = VALID_GUIDE,
) -> Rule:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    if tests is not None:
        (folder / f"{stem}.tests.yaml").write_text(tests, encoding="utf-8")
    if guide is not None:
        (folder / f"{stem}.guide.yaml").write_text(guide, encoding="utf-8")
    return load_rule(path, strict=False)  # lint reports what load would refuse


def lint(session: Session, *rules: Rule) -> list[Finding]:
    return lint_rules(rules, session_factory=lambda: session)


def mutated(old: str, new: str) -> str:
    assert old in VALID_RULE, old
    return VALID_RULE.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.split("\n"), 1) if needle in line)


def first_changed_line(text: str) -> int:
    """The 1-based number of the first line where ``text`` differs from VALID_RULE."""
    pairs = zip(text.split("\n"), VALID_RULE.split("\n"), strict=False)
    return next(i for i, (a, b) in enumerate(pairs, 1) if a != b)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def test_valid_rule_has_no_findings(tmp_path: Path, session: Session) -> None:
    assert lint(session, write(tmp_path, VALID_RULE)) == []


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("id: 5b0f3c3e-8a51-4d6e-9c4f-2a7d1e6b9c10", "id: not-a-guid", "RULE102"),
        ("severity: Medium", "severity: Critical", "RULE106"),
        ("kind: Scheduled", "kind: Fusion", "RULE107"),
        ("connectorId: MicrosoftThreatProtection", "connectorId: MicrosoftThreat", "RULE109"),
        ("queryFrequency: 1h", "queryFrequency: 1x", "RULE110"),
        ("queryFrequency: 1h", "queryFrequency: 1:00:00", "RULE110"),  # YAML: base-60 number
        ("queryFrequency: 1h", "queryFrequency: 1m", "RULE111"),
        ("queryPeriod: 1h", "queryPeriod: 15d", "RULE111"),
        ("triggerOperator: gt", "triggerOperator: above", "RULE114"),
        ("triggerThreshold: 0", "triggerThreshold: 10001", "RULE115"),
        ("  - DefenseEvasion", "  - DefenceEvasion", "RULE116"),
        ("  - T1553.004", "  - T1553.4", "RULE117"),
        ("identifier: FullName", "identifier: Hostname", "RULE124"),
        ("identifier: NTDomain", "identifier: Name", "RULE125"),
        ("columnName: DeviceName", "columnName: Device-Name", "RULE127"),
        (
            "CommandLine: ProcessCommandLine",
            "Command_Line_Of_The_Process: ProcessCommandLine",
            "RULE129",
        ),
        ("aggregationKind: AlertPerResult", "aggregationKind: PerRow", "RULE133"),
        ("version: 1.0.0", "version: '1.0'", "RULE134"),
    ],
)
def test_structural_mutation_is_caught(
    tmp_path: Path, session: Session, old: str, new: str, code: str
) -> None:
    text = mutated(old, new)
    findings = lint(session, write(tmp_path, text))
    hit = [f for f in findings if f.code == code]
    assert hit, [f.render() for f in findings]
    assert hit[0].severity == "error"
    assert hit[0].line == first_changed_line(text)
    assert has_errors(findings)


def test_missing_required_key(tmp_path: Path, session: Session) -> None:
    findings = lint(session, write(tmp_path, mutated("version: 1.0.0\n", "")))
    assert [(f.code, f.line) for f in findings] == [("RULE101", None)]
    assert "'version'" in findings[0].message


def test_duplicate_id_across_rules(tmp_path: Path, session: Session) -> None:
    first = write(tmp_path / "a", VALID_RULE)
    second = write(tmp_path / "b", VALID_RULE)
    findings = lint(session, first, second)
    assert [(f.rule.path, f.code, f.line) for f in findings] == [
        (first.path, "RULE103", 1),
        (second.path, "RULE103", 1),
    ]
    assert str(second.path) in findings[0].message


def test_period_shorter_than_frequency(tmp_path: Path, session: Session) -> None:
    text = mutated("queryFrequency: 1h", "queryFrequency: 2h")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [("RULE112", line_of(text, "queryPeriod"))]


def test_long_period_needs_hourly_frequency(tmp_path: Path, session: Session) -> None:
    text = mutated("queryFrequency: 1h\nqueryPeriod: 1h", "queryFrequency: 30m\nqueryPeriod: 2d")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [("RULE113", line_of(text, "queryFrequency"))]


def test_technique_without_its_tactic(tmp_path: Path, session: Session) -> None:
    text = mutated("  - DefenseEvasion", "  - Execution")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [("RULE118", line_of(text, "T1553.004"))]
    assert "DefenseEvasion" in findings[0].message


def test_multi_tactic_technique_needs_one_of_its_tactics(tmp_path: Path, session: Session) -> None:
    text = mutated("  - DefenseEvasion", "  - DefenseEvasion\n  - Collection")
    text = text.replace("  - T1553.004", "  - T1553.004\n  - T1557")
    assert lint(session, write(tmp_path, text)) == []


def test_unknown_technique_is_a_warning(tmp_path: Path, session: Session) -> None:
    text = mutated("  - T1553.004", "  - T1553.004\n  - T1001")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.severity) for f in findings] == [("RULE119", "warning")]
    assert "tactic check skipped" in findings[0].message
    assert not has_errors(findings)


def test_entity_without_required_identifier(tmp_path: Path, session: Session) -> None:
    text = mutated("identifier: FullName", "identifier: DnsDomain")
    findings = lint(session, write(tmp_path, text))
    assert codes(findings) == {"RULE126"}
    assert "FullName" in findings[0].message


def test_too_many_placeholders(tmp_path: Path, session: Session) -> None:
    text = mutated(
        "certutil added a certificate on {{DeviceName}}",
        "'{{AccountName}} {{AccountDomain}} {{ProcessId}} on {{DeviceName}}'",
    )
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [
        ("RULE132", line_of(text, "alertDisplayNameFormat"))
    ]


def test_non_ascii_character(tmp_path: Path, session: Session) -> None:
    text = mutated("an attacker can", "an attacker can\u2019t not")
    findings = lint(session, write(tmp_path, text))
    line = line_of(text, "\u2019")
    column = text.split("\n")[line - 1].index("\u2019") + 1
    assert [(f.code, f.line, f.column) for f in findings] == [("RULE401", line, column)]
    assert "U+2019" in findings[0].message


def test_duplicate_yaml_key(tmp_path: Path, session: Session) -> None:
    text = mutated("severity: Medium\n", "severity: Medium\nseverity: High\n")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line, f.column) for f in findings] == [
        ("RULE402", line_of(text, "severity: High"), 1)
    ]


def test_duplicate_key_in_tests_file(tmp_path: Path, session: Session) -> None:
    tests = VALID_TESTS.replace("expect: no-alert", "expect: alert\n    expect: no-alert", 1)
    rule = write(tmp_path, VALID_RULE, tests=tests)
    findings = lint(session, rule)
    assert [(f.code, f.path, f.line) for f in findings] == [
        ("RULE402", rule.tests.path, line_of(tests, "expect: no-alert"))
    ]


def test_unknown_column_in_query_is_located_in_the_file(tmp_path: Path, session: Session) -> None:
    text = mutated('ProcessCommandLine has "-addstore"', 'ProcessCmdLine has "-addstore"')
    findings = lint(session, write(tmp_path, text))
    line = line_of(text, "ProcessCmdLine")
    column = text.split("\n")[line - 1].index("ProcessCmdLine") + 1
    assert [(f.code, f.line, f.column) for f in findings] == [("KQL202", line, column)]
    where = f"{tmp_path / 'rule.yaml'}:{line}:{column}"
    assert findings[0].render().startswith(f"{where}: error KQL202: unknown column")


def test_custom_detail_column_not_in_output(tmp_path: Path, session: Session) -> None:
    text = mutated("CommandLine: ProcessCommandLine", "CommandLine: InitiatingProcessCommandLine")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [
        ("RULE201", line_of(text, "CommandLine: Initiating"))
    ]


def test_placeholder_and_entity_columns_not_in_output(tmp_path: Path, session: Session) -> None:
    text = mutated("{{DeviceName}}", "{{Computer}}").replace(
        "columnName: AccountDomain", "columnName: Domain"
    )
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.line) for f in findings] == [
        ("RULE201", line_of(text, "columnName: Domain")),
        ("RULE201", line_of(text, "{{Computer}}")),
    ]


def test_severity_column_must_be_a_string(tmp_path: Path, session: Session) -> None:
    text = mutated('AlertSeverity = "Medium"', "AlertSeverity = 2")
    findings = lint(session, write(tmp_path, text))
    assert codes(findings) == {"RULE202"}


def test_table_not_in_data_types_is_a_warning(tmp_path: Path, session: Session) -> None:
    text = mutated("      - DeviceProcessEvents", "      - DeviceFileEvents")
    findings = lint(session, write(tmp_path, text))
    assert [(f.code, f.severity) for f in findings] == [("RULE205", "warning")]


KNOWN_DEFECT_TESTS = (
    VALID_TESTS
    + """\
known_defects:
  - code: KQL202
    reason: Actor is not a DeviceProcessEvents column
run_with: |
  let DeviceProcessEvents = DeviceProcessEvents | extend Actor = AccountName;
"""
)


def test_known_defect_is_downgraded(tmp_path: Path, session: Session) -> None:
    text = mutated(
        "project TimeGenerated, DeviceName, AccountName,",
        "project TimeGenerated, DeviceName, AccountName = Actor,",
    )
    findings = lint(session, write(tmp_path, text, tests=KNOWN_DEFECT_TESTS))
    assert [(f.code, f.severity, f.line) for f in findings] == [
        ("KQL202", "known", line_of(text, "Actor"))
    ]
    assert "Actor is not a DeviceProcessEvents column" in findings[0].message
    assert findings[0].render().split(": ")[1] == "known KQL202"
    assert not has_errors(findings)


def test_known_defect_needs_a_working_run_with(tmp_path: Path, session: Session) -> None:
    text = mutated("AccountName, AccountDomain,", "AccountName = Actor, AccountDomain = Realm,")
    findings = lint(session, write(tmp_path, text, tests=KNOWN_DEFECT_TESTS))
    assert [(f.code, f.severity) for f in findings] == [("KQL202", "known"), ("RULE203", "error")]
    assert "Realm" in findings[1].message


def test_known_defect_the_query_does_not_have(tmp_path: Path, session: Session) -> None:
    findings = lint(session, write(tmp_path, VALID_RULE, tests=KNOWN_DEFECT_TESTS))
    assert codes(findings) == {"RULE204"}


def test_missing_tests_file(tmp_path: Path, session: Session) -> None:
    findings = lint(session, write(tmp_path, VALID_RULE, tests=None))
    assert [f.code for f in findings] == ["RULE301"]
    assert "rule.tests.yaml" in findings[0].message


def test_too_few_cases(tmp_path: Path, session: Session) -> None:
    tests = "cases:\n" + _case("only one", "alert", "certutil -addstore root c.cer")
    rule = write(tmp_path, VALID_RULE, tests=tests)
    findings = lint(session, rule)
    assert [(f.code, f.path) for f in findings] == [
        ("RULE302", rule.tests.path),
        ("RULE303", rule.tests.path),
    ]


def test_every_rule_code_is_documented(tmp_path: Path, session: Session) -> None:
    broken = (
        "id: x\nname: ''\nseverity: Bad\nrequiredDataConnectors: {}\nqueryFrequency: 1\n"
        "tactics: Execution\nrelevantTechniques: [T1]\nquery: ''\nentityMappings: []\n"
        "customDetails: {1: 2}\nalertDetailsOverride: {alertDisplayNameFormat: ''}\n"
        "eventGroupingSettings: {}\nversion: 1\nkind: Scheduled\n"
    )
    findings = lint(session, write(tmp_path, broken, tests=None))
    rule_codes = {f.code for f in findings if f.code.startswith("RULE")}
    assert rule_codes <= set(CODES)
    assert {
        "RULE101",
        "RULE102",
        "RULE104",
        "RULE106",
        "RULE108",
        "RULE110",
        "RULE116",
        "RULE117",
        "RULE120",
        "RULE121",
        "RULE129",
        "RULE130",
        "RULE131",
        "RULE133",
        "RULE134",
        "RULE301",
    } <= rule_codes
