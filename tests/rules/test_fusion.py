"""Filter rules over one table evaluated together (rules.fusion) against each on its own.

``Hunter(..., fuse=False)`` evaluates every row-local rule with its own query; the default
evaluates the filter rules (``T | where ...``) over one table in one query. Alerts, statistics,
suppression counts and daily counts must be the same; which shapes fuse, and that a rule whose
fused query fails is evaluated on its own, are tested here too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from tests.rules.test_runner import session_of, write_rule, write_tuning
from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.parser import parse_query
from trustwatch.kql.semantics import fold_column_sql, folded, func, lit_string, unfold
from trustwatch.rules import fusion
from trustwatch.rules.model import Rule, load_rule
from trustwatch.rules.runner import Hunter, HuntResult
from trustwatch.rules.tuning import Tuning

# --- which queries are filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "table"),
    [
        ('DeviceProcessEvents | where FileName =~ "certutil.exe"', "DeviceProcessEvents"),
        ("DeviceProcessEvents\n| where A == 1\n| where B has 'x'", "DeviceProcessEvents"),
        ("DeviceRegistryEvents | where (A or B) and not(C)", "DeviceRegistryEvents"),
        ("DeviceProcessEvents", None),  # no where: nothing to fuse
        ("DeviceProcessEvents | where A == 1 | project A", None),
        ("DeviceProcessEvents | where A == 1 | extend B = 2", None),
        ("DeviceProcessEvents | take 5", None),
        ("let x = 1; DeviceProcessEvents | where A == x", None),
        ("union DeviceProcessEvents, DeviceEvents | where A == 1", None),
        ("DeviceProcessEvents | where A == 1; DeviceEvents | where B == 1", None),
        ("DeviceProcessEvents | where __tw_r0 == 1", None),  # names a hidden column
        ("DeviceProcessEvents | where __TW_time > 0", None),
        # columns computed for the predicates and dropped again (converted Sigma registry rules)
        ("T | extend C = strcat(A, B) | where C == 'x' | project-away C", "T"),
        ("T | extend C = 1 | extend D = C | where D == 1 | project-away D, C", "T"),
        ("T | extend C = strcat(A, B) | where C == 'x'", None),  # C stays in the rows
        ("T | extend C = 1, D = 2 | where C == 1 | project-away C", None),
        ("T | extend C = 1 | where C == 1 | project-away C*", None),
        ("T | extend C = 1 | where C in ((U | project C)) | project-away C", None),
        ("T | extend C = 1 | project-away C", None),  # no where
    ],
    ids=str,
)
def test_filter_queries_are_recognised(query: str, table: str | None) -> None:
    assert fusion.filter_table(parse_query(query)) == table


def test_the_predicate_is_the_and_of_the_wheres() -> None:
    tree = parse_query("T | where A == 1 | where B == 2 | where C == 3")
    (where,) = parse_query("T | where A == 1 and B == 2 and C == 3").body[0].ops  # type: ignore[attr-defined]
    assert fusion.predicate(tree) == where.predicate


def test_computed_columns_are_put_in_their_place() -> None:
    tree = parse_query(
        "T | extend C = strcat(A, 'x'), D = toupper(C) | where D == 'AX' | where C != B"
        " | project-away C, D"
    )
    (where,) = (
        parse_query(  # type: ignore[attr-defined]
            "T | where toupper(strcat(A, 'x')) == 'AX' and strcat(A, 'x') != B"
        )
        .body[0]
        .ops
    )
    assert fusion.predicate(tree) == where.predicate


def test_columns_computed_alike_are_computed_once() -> None:
    a = parse_query("T | extend C = strcat(A, 'x') | where C == 'ax' | project-away C")
    b = parse_query("T | extend C = strcat(A, 'x'), D = 1 | where D == C | project-away C, D")
    plain = parse_query("T | where A == 'a'")
    shared = fusion.shared_columns([a, b, plain], taken={"A", "B"})
    assert [c.name for c in shared or []] == ["C", "D"]
    assert (
        fusion.predicate(a, inline=False)
        == parse_query("T | where C == 'ax'").body[0].ops[0].predicate
    )  # type: ignore[attr-defined]
    other = parse_query("T | extend C = strcat(A, 'y') | where C == 'ay' | project-away C")
    assert fusion.shared_columns([a, other], taken=set()) is None  # C defined two ways
    assert fusion.shared_columns([a], taken={"C"}) is None  # C is a column a rule returns
    chained = parse_query("T | extend C = 1, D = C | where D == 1 | project-away C, D")
    assert fusion.shared_columns([chained], taken=set()) is None  # D reads C


# --- the shared case fold ---------------------------------------------------------------------

VALUES = ["CertUtil.EXE", "certutil.exe", "\u212aERBEROS", "\u0130STANBUL", "", None, "x"]


def _contains(text: exp.Expr, needle: str) -> exp.Expr:
    return func("contains", text, lit_string(needle))


@pytest.mark.parametrize(
    "build",
    [
        lambda t: _contains(t, "util"),
        lambda t: _contains(t, "kerb"),
        lambda t: _contains(t, "istanbul"),
        lambda t: exp.Coalesce(this=t, expressions=[lit_string("")]).eq(lit_string("")),
        lambda t: exp.Is(this=t, expression=exp.null()),  # TRUE on NULL: the guard matters
    ],
    ids=["contains", "kelvin", "dotted-i", "coalesce", "is-null"],
)
def test_a_shared_fold_gives_the_value_of_the_inline_one(build: Any) -> None:
    column = exp.column("v", quoted=True)
    inline = folded(column, build, ascii_needles=True)
    found = unfold(inline)
    assert found is not None
    col, fast = found
    assert col == column
    lowered = func("lower", column.copy())
    shared = fast.transform(lambda n: exp.column("f", quoted=True) if n == lowered else n)
    guard = exp.or_(exp.Not(this=exp.Is(this=column.copy(), expression=exp.null())), exp.null())
    rewritten = exp.and_(exp.paren(shared), exp.paren(guard))
    inner = exp.select("*", exp.alias_(fold_column_sql(column), "f", quoted=True)).from_("t")
    query = exp.select(
        exp.alias_(inline, "a", quoted=True), exp.alias_(rewritten, "b", quoted=True)
    ).from_(inner.subquery("s"))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in VALUES])
    rows = con.execute(query.sql(dialect="duckdb")).fetchall()
    assert len(rows) == len(VALUES)
    for a, b in rows:
        assert a is b or a == b


def test_other_expressions_are_not_unfolded() -> None:
    column = exp.column("v", quoted=True)
    assert unfold(_contains(func("lower", column), "x")) is None
    # build reads lower(v) elsewhere too: the branches differ by more than the fold
    other = _contains(func("lower", column), "b")
    both = folded(column, lambda t: exp.and_(_contains(t, "a"), other.copy()), ascii_needles=True)
    assert unfold(both) is None


def test_a_flagged_query_of_another_shape_is_refused() -> None:
    query = exp.select("a").from_("t")
    with pytest.raises(fusion.NotFusable):
        fusion.filter_flags(query, fusion.flags(2))


def test_the_flags_filter_names_each_predicate_once() -> None:
    # the flags' SELECT over a subquery, as the compiler writes a flagged query
    flagged = exp.select(
        "*",
        exp.alias_(exp.condition("a = 'needle-one'"), "__tw_r0", quoted=True),
        exp.alias_(exp.condition("b = 'needle-two'"), "__tw_r1", quoted=True),
    ).from_(exp.select("*").from_("t").subquery("_t1"))
    query = exp.select("a", "b", "__tw_r0", "__tw_r1").from_(flagged.subquery("_t2"))
    sql = fusion.filter_flags(query, fusion.flags(2)).sql(dialect="duckdb")
    # each predicate once (DuckDB parses, binds and plans the text), the filter on the flags
    assert sql.count("needle-one") == sql.count("needle-two") == 1
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES ('needle-one', 'x'), ('y', 'needle-two'), "
        "('y', 'x'), (NULL, NULL), ('needle-one', 'needle-two')) AS v(a, b)"
    )
    rows = con.execute(sql).fetchall()
    assert rows == [
        ("needle-one", "x", True, False),
        ("y", "needle-two", False, True),
        ("needle-one", "needle-two", True, True),
    ]


# --- hunts: fused and each rule on its own ----------------------------------------------------

ROWS = [
    ("2024-05-01T10:15:00Z", "ws01", "certutil.exe", "certutil -addstore root c.cer"),
    ("2024-05-01T10:20:00Z", "ws01", "CERTUTIL.EXE", "CertUtil -URLCache -f http://x/a.exe"),
    ("2024-05-01T11:00:00Z", "ws02", "cmd.exe", "cmd /c whoami"),
    ("2024-05-01T11:00:00Z", "ws02", "cmd.exe", "cmd /c whoami"),  # the same row twice
    ("2024-05-02T09:00:00Z", "\u212aiosk", "powershell.exe", "powershell -enc SQBFAFgA"),
    ("2024-05-02T23:59:59Z", "\u0130stanbul", "certutil.exe", "certutil -encode a b"),
    ("2024-05-03T00:00:00Z", "ws03", "notepad.exe", ""),
    ("2024-05-10T08:00:00Z", "ws01.corp.example", "certutil.exe", "certutil -addstore ca d.cer"),
]
FILTERS = {
    "certutil": 'DeviceProcessEvents | where FileName =~ "certutil.exe"',
    "urlcache": "DeviceProcessEvents | where ProcessCommandLine contains 'urlcache'"
    " | where ProcessCommandLine has 'http'",
    "kelvin": 'DeviceProcessEvents | where DeviceName startswith "kio"',
    "dotted": 'DeviceProcessEvents | where DeviceName =~ "istanbul" or FileName endswith "ad.exe"',
    "whoami": 'DeviceProcessEvents | where ProcessCommandLine has_any ("whoami", "nltest")',
    "empty": 'DeviceProcessEvents | where isempty(ProcessCommandLine) or FileName == "none"',
    "never": 'DeviceProcessEvents | where FileName == "no such file"',
    "enc": 'DeviceProcessEvents | where ProcessCommandLine matches regex @"-enc\\s+\\S+"',
    "computed": "DeviceProcessEvents | extend Line = strcat(FileName, ' ', ProcessCommandLine)"
    " | where Line startswith 'certutil.exe certutil' | project-away Line",
}
OTHERS = {  # not filters: each evaluated on its own whatever happens
    "projected": 'DeviceProcessEvents | where FileName =~ "cmd.exe" | project DeviceName',
    "clock": 'DeviceProcessEvents | where TimeGenerated > ago(3650d) and FileName == "cmd.exe"',
}
SETTINGS: list[dict[str, Any]] = [
    {},
    {"queryFrequency": "5h", "queryPeriod": "1d"},
    {"eventGroupingSettings": {"aggregationKind": "SingleAlert"}},
    {"triggerOperator": "gt", "triggerThreshold": 1, "queryFrequency": "1d", "queryPeriod": "2d"},
]
TUNING = r"""
exclusions:
  - id: corp-certutil
    rules: [rule certutil, rule certutil-1]
    when:
      device: "*.corp.example"
"""


def rules_in(tmp_path: Path, queries: dict[str, str], settings_list: int = 1) -> list[Rule]:
    """Each query as a rule with each of the first ``settings_list`` SETTINGS."""
    rules = []
    for n, (name, query) in enumerate(queries.items()):
        for s, settings in enumerate(SETTINGS[:settings_list]):
            label = name if s == 0 else f"{name}-{s}"
            rule_id = f"00000000-0000-4000-8000-{n:06d}{s:06d}"
            path = write_rule(tmp_path, query, name=label, id=rule_id, **settings)
            rules.append(load_rule(path))
    return rules


def session() -> Any:
    rows = [
        {"TimeGenerated": t, "DeviceName": d, "FileName": f, "ProcessCommandLine": c}
        for t, d, f, c in ROWS
    ]
    return session_of(DeviceProcessEvents=rows)


def canonical(result: HuntResult) -> list[str]:
    return sorted(json.dumps(a, sort_keys=True, default=str) for a in result.alerts)


def assert_same(fused: HuntResult, alone: HuntResult) -> None:
    assert [
        (s.rule.id, s.runs, s.evaluations, s.locality, s.results, s.alerts, s.suppressed)
        for s in fused.stats
    ] == [
        (s.rule.id, s.runs, s.evaluations, s.locality, s.results, s.alerts, s.suppressed)
        for s in alone.stats
    ]
    assert fused.alerts == alone.alerts  # sorted the same way: identical lists
    assert canonical(fused) == canonical(alone)
    assert fused.suppressed == alone.suppressed
    assert fused.daily == alone.daily


def spy_fused(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """Record the positions of the rules each hunt evaluated together."""
    calls: list[set[int]] = []
    original = Hunter._fused

    def spy(self: Hunter, items: Any, chunks: Any) -> Any:
        out = original(self, items, chunks)
        calls.append(set(out))
        return out

    monkeypatch.setattr(Hunter, "_fused", spy)
    return calls


def test_fused_filter_rules_alert_as_each_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rules_in(tmp_path, {**FILTERS, **OTHERS}, len(SETTINGS))
    tuning = write_tuning(tmp_path, TUNING)
    calls = spy_fused(monkeypatch)
    fused = Hunter(session(), tuning).run(rules)
    alone = Hunter(session(), tuning, fuse=False).run(rules)
    assert_same(fused, alone)
    filters = len(FILTERS) * len(SETTINGS)
    assert calls == [set(range(filters))]  # the filters, in one query; the others never
    assert fused.alerts, "the hunt should alert"
    assert sum(s.suppressed for s in fused.stats) > 0, "the tuning should suppress"
    # and both are the run-by-run replay's (checked on the first settings: it is slow)
    first = rules[:: len(SETTINGS)]
    slow = Hunter(session(), tuning, fast=False).run(first)
    assert canonical(slow) == canonical(Hunter(session(), tuning).run(first))


def test_a_rule_whose_fused_query_does_not_compile_runs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rules_in(tmp_path, FILTERS)
    original = Hunter._fused_sql

    def refuse(self: Hunter, table: str, predicates: list[ast.Expr], *rest: Any) -> dict[str, Any]:
        # the "never" rules' predicate stands for one the fused query cannot compile
        if any(
            isinstance(node, ast.Literal) and node.value == "no such file"
            for pred in predicates
            for node in pred.walk()
        ):
            raise KqlSemanticError("cannot fuse this one")
        return original(self, table, predicates, *rest)

    monkeypatch.setattr(Hunter, "_fused_sql", refuse)
    calls = spy_fused(monkeypatch)
    fused = Hunter(session(), Tuning()).run(rules)
    alone = Hunter(session(), Tuning(), fuse=False).run(rules)
    assert_same(fused, alone)
    assert calls == [set(range(len(rules))) - {list(FILTERS).index("never")}]


def test_a_fused_query_that_fails_to_run_leaves_its_rules_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rules_in(tmp_path, FILTERS)

    def fail(query: exp.Query, names: Any) -> exp.Query:
        return exp.select(exp.Anonymous(this="error", expressions=[lit_string("boom")]))

    monkeypatch.setattr(fusion, "filter_flags", fail)
    calls = spy_fused(monkeypatch)
    fused = Hunter(session(), Tuning()).run(rules)
    alone = Hunter(session(), Tuning(), fuse=False).run(rules)
    assert_same(fused, alone)
    assert calls == [set()]


def test_fast_false_and_now_do_not_fuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = rules_in(tmp_path, FILTERS)
    calls = spy_fused(monkeypatch)
    Hunter(session(), Tuning(), fast=False).run(rules)
    Hunter(session(), Tuning()).run(rules, now=datetime(2024, 5, 2, tzinfo=UTC))
    assert calls == []
