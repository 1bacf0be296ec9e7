"""Tests for the KQL pretty-printer: round trips, idempotence and exact canonical text."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustwatch.errors import KqlSyntaxError
from trustwatch.kql import ast
from trustwatch.kql.parser import TabularAsExpr, parse_expression, parse_query
from trustwatch.kql.printer import Printer, print_expression, print_query

CONFORMANCE_DIR = Path(__file__).parent / "conformance"
SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPUS_DIR = SHARED / "kql-corpus"
SPEC_FILE = SHARED / "spec" / "T1588.004-detection-spec.txt"


def assert_round_trip(text: str) -> None:
    tree = parse_query(text)
    printed = print_query(tree)
    assert parse_query(printed) == tree, f"re-parsing changed the tree; printed:\n{printed}"


def assert_idempotent(text: str) -> None:
    printed = print_query(parse_query(text))
    assert print_query(parse_query(printed)) == printed


# --- conformance suite ---------------------------------------------------------------------------


def conformance_params() -> list[Any]:
    params = []
    for path in sorted(CONFORMANCE_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            if (case.get("expect") or {}).get("error") == "KQL101":
                continue  # a syntax error: nothing to print
            params.append(pytest.param(case["kql"], id=f"{path.stem}/{case['id']}"))
    return params


CONFORMANCE = conformance_params()


@pytest.mark.parametrize("kql", CONFORMANCE)
def test_conformance_round_trip(kql: str) -> None:
    assert_round_trip(kql)


@pytest.mark.parametrize("kql", CONFORMANCE)
def test_conformance_print_is_idempotent(kql: str) -> None:
    assert_idempotent(kql)


# --- real-world corpus ---------------------------------------------------------------------------


def corpus_params() -> list[Any]:
    if not CORPUS_DIR.is_dir():
        reason = f"the KQL corpus is not at {CORPUS_DIR}"
        return [pytest.param(None, id="corpus-absent", marks=pytest.mark.skip(reason=reason))]
    return [
        pytest.param(path, id=f"{path.parent.name}/{path.stem}")
        for path in sorted(CORPUS_DIR.glob("*/*.kql"))
    ]


CORPUS = corpus_params()


def corpus_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        parse_query(text)
    except KqlSyntaxError:
        pytest.skip("the parser does not accept this query")
    return text


@pytest.mark.parametrize("path", CORPUS)
def test_corpus_round_trip(path: Path) -> None:
    assert_round_trip(corpus_text(path))


@pytest.mark.parametrize("path", CORPUS)
def test_corpus_print_is_idempotent(path: Path) -> None:
    assert_idempotent(corpus_text(path))


# --- exact canonical text ------------------------------------------------------------------------

SPEC_GOLDEN = r"""DeviceRegistryEvents
| where Timestamp > ago(1d)
| where RegistryKey has_any (
    @"SOFTWARE\Microsoft\SystemCertificates\Root\Certificates",
    @"SOFTWARE\Microsoft\SystemCertificates\CA\Certificates",
    @"SOFTWARE\Policies\Microsoft\SystemCertificates\Root\Certificates",
    @"SOFTWARE\Policies\Microsoft\SystemCertificates\CA"
)
| where ActionType in ("RegistryValueSet", "RegistryKeyCreated")
| where InitiatingProcessFileName !in~ (
    "svchost.exe",
    "lsass.exe",
    "wuauclt.exe",
    "TrustedInstaller.exe",
    "MicrosoftEdgeUpdate.exe",
    "MsMpEng.exe",
    "SgrmBroker.exe"
)
| extend CertStoreType = case(
    RegistryKey has "Root\\",
    "Trusted Root CA",
    RegistryKey has "CA\\",
    "Intermediate CA",
    "Other"
)
| extend CertThumbprint = tostring(split(RegistryKey, "\\")[-1])
| project
    Timestamp,
    DeviceName,
    AccountName,
    ActionType,
    CertStoreType,
    CertThumbprint,
    RegistryKey,
    InitiatingProcessFileName,
    InitiatingProcessCommandLine,
    InitiatingProcessParentFileName
| sort by Timestamp desc"""


@pytest.mark.skipif(not SPEC_FILE.is_file(), reason=f"the specification is not at {SPEC_FILE}")
def test_spec_detection_query_golden() -> None:
    text = SPEC_FILE.read_text(encoding="utf-8")
    end_marker = "| sort by Timestamp desc"
    query = text[text.index("// Detection:") : text.index(end_marker) + len(end_marker)]
    assert print_query(parse_query(query)) == SPEC_GOLDEN
    assert_round_trip(query)


GOLDEN = [
    pytest.param(
        "T | where a > 1 | project a, b",
        "T\n| where a > 1\n| project a, b",
        id="one-operator-per-line",
    ),
    pytest.param(
        "let n = 5; let Recent = T | where t > ago(1h) | take n; Recent; T",
        """\
let n = 5;
let Recent = T
    | where t > ago(1h)
    | take n;
Recent;
T""",
        id="let-and-statements",
    ),
    pytest.param(
        'let f = (x:string, y:long = 5) { let z = strcat(x, "!"); T | where a == z | take y };'
        " let g = (t:(*)) { t | count }; let inc = (v:long) { v + 1 };"
        ' f("a") | invoke g() | extend b = inc(a)',
        """\
let f = (x:string, y:long = 5) {
    let z = strcat(x, "!");
    T
    | where a == z
    | take y
};
let g = (t:(*)) {
    t
    | count
};
let inc = (v:long) { v + 1 };
f("a")
| invoke g()
| extend b = inc(a)""",
        id="functions",
    ),
    pytest.param(
        "T | join kind=inner hint.strategy=shuffle (U | where a > 1) on a, $left.b == $right.c"
        " | lookup kind=inner V on k | join (W) on $left.x == $right.x",
        """\
T
| join kind=inner hint.strategy=shuffle (
    U
    | where a > 1
) on a, $left.b == $right.c
| lookup kind=inner V on k
| join W on x""",
        id="join-lookup",
    ),
    pytest.param(
        "union kind=inner withsource=Src isfuzzy=true T, Dev*Events, (U | take 1) | union V",
        """\
union kind=inner withsource=Src isfuzzy=true T, Dev*Events, (
    U
    | take 1
)
| union V""",
        id="union",
    ),
    pytest.param(
        'datatable(Name:string, ["Event Count"]:long) ["a", 1, "b", -2]'
        ' | where ["Event Count"] > 0',
        """\
datatable(Name:string, ["Event Count"]:long) [
    "a", 1,
    "b", -2
]
| where ["Event Count"] > 0""",
        id="datatable",
    ),
    pytest.param(
        "T | mv-expand bagexpansion=array with_itemindex=Idx a = b to typeof(long), c limit 5"
        " | mv-apply x = arr to typeof(long) on (where x > 1 | take 1)",
        """\
T
| mv-expand bagexpansion=array with_itemindex=Idx a = b to typeof(long), c limit 5
| mv-apply x = arr to typeof(long) on (
    where x > 1
    | take 1
)""",
        id="mv-expand-mv-apply",
    ),
    pytest.param(
        'T | parse kind=regex flags=Ui Msg with "user=" User ", id=" Id:long "(" *'
        ' | parse Path with * "\\\\" File:string',
        """\
T
| parse kind=regex flags=Ui Msg with "user=" User ", id=" Id:long "(" *
| parse Path with * "\\\\" File""",
        id="parse",
    ),
    pytest.param(
        "T | summarize Count = count(), Devices = dcount(DeviceId) by bin(Timestamp, 1h), User"
        " | summarize by User"
        " | make-series n = count() on Timestamp from ago(7d) to now() step 1d by User",
        """\
T
| summarize Count = count(), Devices = dcount(DeviceId) by bin(Timestamp, 1h), User
| summarize by User
| make-series n = count() on Timestamp from ago(7d) to now() step 1d by User""",
        id="summarize-make-series",
    ),
    pytest.param(
        "T | order by a asc nulls first, b | top 10 by c nulls last"
        " | project-reorder b desc, a* asc, c | project-away x*, y | project-keep z"
        ' | project-rename New = Old, ["a b"] = c',
        """\
T
| sort by a asc nulls first, b desc
| top 10 by c desc nulls last
| project-reorder b desc, a* asc, c
| project-away x*, y
| project-keep z
| project-rename New = Old, ["a b"] = c""",
        id="sort-top-project",
    ),
    pytest.param(
        "T | sample 10 | distinct a, b | distinct * | count as N | limit 5"
        " | serialize r = row_number() | as Step | render timechart | getschema",
        """\
T
| sample 10
| distinct a, b
| distinct *
| count as N
| take 5
| serialize r = row_number()
| as Step
| render timechart
| getschema""",
        id="small-operators",
    ),
    pytest.param(
        'range x from 1 to 3 step 1; print a = 1, b = "x"; search "evil" | take 1;'
        ' table("T") | evaluate hint.remote=auto bag_unpack(d) | search in (A, B*) "x"',
        """\
range x from 1 to 3 step 1;
print a = 1, b = "x";
search "evil"
| take 1;
table("T")
| evaluate hint.remote=auto bag_unpack(d)
| search in (A, B*) "x\"""",
        id="sources",
    ),
    pytest.param(
        "T | evaluate bag_unpack(d):(*,['a b']:long, c:string) | evaluate pivot(s) : (x:int)",
        'T\n| evaluate bag_unpack(d) : (*, ["a b"]:long, c:string)\n| evaluate pivot(s) : (x:int)',
        id="evaluate-output-schema",
    ),
    pytest.param(
        'T | top-nested 3 of a by count() | where a != ""',
        'T\n| top-nested 3 of a by count()\n| where a != ""',
        id="top-nested",
    ),
    pytest.param(
        "T | top-nested of x=a with others = 'o' by n=max(1) desc,top-nested 2 of b by min(c) asc",
        'T\n| top-nested of x = a with others = "o" by n = max(1), top-nested 2 of b by min(c) asc',
        id="top-nested-levels",
    ),
    pytest.param(
        "T | partition hint.strategy=native by k (summarize n=count() by x | top 1 by n)"
        " | partition by k { U | take 1 }",
        "T\n| partition hint.strategy=native by k (\n    summarize n = count() by x\n"
        "    | top 1 by n desc\n)\n| partition by k {\n    U\n    | take 1\n}",
        id="partition",
    ),
    pytest.param(
        'T | facet by a | where a != ""',
        'T\n| facet by a\n| where a != ""',
        id="loosely-parsed-operator",
    ),
    pytest.param(
        "T | where x in ((U | project x)) and y !in (U | project y)"
        " | where z == toscalar(V | count)",
        """\
T
| where x in ((
        U
        | project x
    ))
    and y !in (
        U
        | project y
    )
| where z == toscalar(
    V
    | count
)""",
        id="nested-queries",
    ),
    pytest.param(
        "T | where a == 1 and b == 2 or c == 3"
        ' | where InitiatingProcessFileName in~ ("a.exe") and FileName !in~ ("b.exe")'
        " and SHA1 has_any (Hashes)",
        """\
T
| where a == 1 and b == 2 or c == 3
| where InitiatingProcessFileName in~ ("a.exe")
    and FileName !in~ ("b.exe")
    and SHA1 has_any (Hashes)""",
        id="long-condition-breaks-before-and",
    ),
    pytest.param(
        'let ext = dynamic([".docm", ".xlsm", ".pptm", ".docx", ".xlsx", ".pptx", ".rtf",'
        ' ".hta", ".lnk", ".js"]); T | where FileName has_any (ext)',
        """\
let ext = dynamic([
    ".docm",
    ".xlsm",
    ".pptm",
    ".docx",
    ".xlsx",
    ".pptx",
    ".rtf",
    ".hta",
    ".lnk",
    ".js"
]);
T
| where FileName has_any (ext)""",
        id="long-dynamic-array",
    ),
]


@pytest.mark.parametrize(("kql", "expected"), GOLDEN)
def test_print_query_golden(kql: str, expected: str) -> None:
    assert print_query(parse_query(kql)) == expected
    assert parse_query(expected) == parse_query(kql)


EXPRESSION_GOLDEN = [
    # literals
    ("1d", "1d"),
    ("24h", "1d"),
    ("90m", "90m"),
    ("2h", "2h"),
    ("1800s", "30m"),
    ("10s", "10s"),
    ("0.1s", "100ms"),
    ("10microseconds", "10microsecond"),
    ("-1h", "-1h"),
    ("timespan(1.02:03:04)", "93784s"),
    ("datetime(2024-01-01 10:00:00.123456)", "datetime(2024-01-01T10:00:00.123456Z)"),
    ("datetime(2024-01-01T12:00:00+02:00)", "datetime(2024-01-01T10:00:00Z)"),
    ("datetime(null)", "datetime(null)"),
    ("timespan(null)", "timespan(null)"),
    ("long(null)", "long(null)"),
    ("int(null)", "int(null)"),
    ("real(null)", "real(null)"),
    ("string(null)", "string(null)"),
    ("bool(null)", "bool(null)"),
    ("guid(null)", "guid(null)"),
    ("dynamic(null)", "dynamic(null)"),
    ("int(5)", "int(5)"),
    ("int(-5)", "int(-5)"),
    ("double(1)", "real(1)"),
    ("1.0", "real(1)"),
    ("2.50", "2.5"),
    ("-2.5", "-2.5"),
    ("1e300", "1e+300"),
    ("real(-inf)", "real(-inf)"),
    ("-7", "-7"),
    ("0x1F", "31"),
    ("true", "true"),
    ("guid(74BE27DE-1E4E-49D9-B579-FE0B331D3642)", "guid(74be27de-1e4e-49d9-b579-fe0b331d3642)"),
    ("dynamic({'a': [1, -2.5, true, null, 'x']})", 'dynamic({"a": [1, -2.5, true, null, "x"]})'),
    ("'single'", '"single"'),
    ('"tab\\there\\nnew \\"quoted\\""', '"tab\\there\\nnew \\"quoted\\""'),
    ('"C:\\\\Windows\\\\System32"', '@"C:\\Windows\\System32"'),
    ('"Root\\\\"', '"Root\\\\"'),
    ('@"say ""hi"" \\ bye"', '@"say ""hi"" \\ bye"'),
    ('"a" "b"', '"ab"'),
    # precedence: only the parentheses the tree needs
    ("(a + b) * c", "(a + b) * c"),
    ("a + (b * c)", "a + b * c"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a - b) - c", "a - b - c"),
    ("a and (b or c)", "a and (b or c)"),
    ("(a and b) or c", "a and b or c"),
    ("-(a + b)", "-(a + b)"),
    ("- a * -3", "-a * -3"),
    ("(a + b).c[0]", "(a + b).c[0]"),
    ("(x == 1) == (y == 2)", "x == 1 == (y == 2)"),
    ("a == (b in (1, 2))", "a == (b in (1, 2))"),
    ("x !between (1 .. 10 + 1)", "x !between (1 .. 10 + 1)"),
    ("x in~ (y)", "x in~ (y)"),
    ("x has_any (list)", "x has_any (list)"),
    ("x has_all ('a', 'b')", 'x has_all ("a", "b")'),
    ("x !in ('a')", 'x !in ("a")'),
    ("x !has_cs 'a' and x matches regex 'b'", 'x !has_cs "a" and x matches regex "b"'),
    ("a <> b", "a != b"),
    # names, members, calls
    ("['my col'] == x.['a b']", '["my col"] == x["a b"]'),
    ("x['plain']", "x.plain"),
    ("['true']", '["true"]'),
    ("count(*)", "count(*)"),
    ("bag_pack(a = 1)", "bag_pack(a = 1)"),
]


@pytest.mark.parametrize(
    ("kql", "expected"), EXPRESSION_GOLDEN, ids=[k for k, _ in EXPRESSION_GOLDEN]
)
def test_print_expression_golden(kql: str, expected: str) -> None:
    tree = parse_expression(kql)
    assert print_expression(tree) == expected
    assert parse_expression(expected) == tree


# --- trees built by hand -------------------------------------------------------------------------

LITERALS = [
    pytest.param(ast.Literal(value=timedelta(days=1), type="timespan"), "1d", id="1d"),
    pytest.param(ast.Literal(value=timedelta(hours=2), type="timespan"), "2h", id="2h"),
    pytest.param(ast.Literal(value=timedelta(minutes=30), type="timespan"), "30m", id="30m"),
    pytest.param(ast.Literal(value=timedelta(seconds=10), type="timespan"), "10s", id="10s"),
    pytest.param(
        ast.Literal(value=timedelta(milliseconds=100), type="timespan"), "100ms", id="100ms"
    ),
    pytest.param(
        ast.Literal(value=timedelta(microseconds=10), type="timespan"), "10microsecond", id="10us"
    ),
    pytest.param(
        ast.Literal(value=timedelta(days=1, microseconds=1), type="timespan"),
        "86400000001microsecond",
        id="1d-and-1us",
    ),
    pytest.param(
        ast.Literal(value=timedelta.max, type="timespan"),
        "timespan(999999999.23:59:59.9999990)",
        id="too-precise-for-a-float",
    ),
    pytest.param(ast.Literal(value=-timedelta(minutes=5), type="timespan"), "-5m", id="-5m"),
    pytest.param(
        ast.Literal(value=datetime(2024, 1, 1, 10, tzinfo=UTC), type="datetime"),
        "datetime(2024-01-01T10:00:00Z)",
        id="datetime",
    ),
    pytest.param(
        ast.Literal(value=datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC), type="datetime"),
        "datetime(2024-01-01T10:00:00.5Z)",
        id="datetime-fraction",
    ),
    pytest.param(
        ast.Literal(value={"a": [1, "x\n"], "b": None, "c": True}, type="dynamic"),
        'dynamic({"a": [1, "x\\n"], "b": null, "c": true})',
        id="dynamic",
    ),
    pytest.param(ast.Literal(value=5, type="int"), "int(5)", id="int"),
    pytest.param(ast.Literal(value=1.0, type="real"), "real(1)", id="whole-real"),
    pytest.param(ast.Literal(value=-3, type="long"), "-3", id="negative-long"),
    pytest.param(ast.Literal(value=None, type="long"), "long(null)", id="long-null"),
    pytest.param(ast.Literal(value="\x01", type="string"), '"\\u0001"', id="control-char"),
    pytest.param(ast.Name(name="my col"), '["my col"]', id="bracketed-name"),
    pytest.param(ast.Name(name="$left"), "$left", id="dollar-name"),
    pytest.param(
        ast.Member(target=ast.Name(name="x"), name="a b"), 'x["a b"]', id="bracketed-member"
    ),
    pytest.param(
        ast.Member(target=ast.Literal(value=-5, type="long"), name="a"), "(-5).a", id="neg-target"
    ),
]


@pytest.mark.parametrize(("node", "expected"), LITERALS)
def test_print_built_expression(node: ast.Expr, expected: str) -> None:
    assert print_expression(node) == expected
    assert parse_expression(expected) == node


ABSTRACT_NODES = {ast.Node, ast.Expr, ast.TabularExpr, ast.PipeOp}
NODE_CLASSES = sorted(
    {
        cls
        for cls in vars(ast).values()
        if isinstance(cls, type) and issubclass(cls, ast.Node) and cls not in ABSTRACT_NODES
    }
    | {TabularAsExpr},
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=[cls.__name__ for cls in NODE_CLASSES])
def test_every_node_class_has_a_rule(cls: type[ast.Node]) -> None:
    assert callable(getattr(Printer, f"visit_{cls.__name__}", None))


def test_unknown_node_is_refused() -> None:
    with pytest.raises(TypeError, match="no rule for Node"):
        Printer().text(ast.Node())


def test_other_operator_text_is_kept_verbatim() -> None:
    text = "T\n| fork (\n  take 1\n)\n| count"
    tree = parse_query(text)
    assert print_query(tree) == text
    assert_round_trip(text)


# --- random expressions: precedence and parentheses ----------------------------------------------

_LOGIC_AND_COMPARISON = ("or", "and", "==", "!=", "<", ">=", "=~", "has", "!contains")
_OPERATORS = (*_LOGIC_AND_COMPARISON, "matches regex", "+", "-", "*", "/", "%")


def random_leaf(rng: random.Random) -> ast.Expr:
    choices: list[ast.Expr] = [
        ast.Name(name=rng.choice("abc")),
        ast.Literal(value=rng.randint(-3, 3), type="long"),
        ast.Literal(value=rng.choice([-1.5, 2.5]), type="real"),
        ast.Literal(value=rng.choice(["x", "C:\\y"]), type="string"),
        ast.Literal(value=timedelta(hours=rng.randint(-2, 2)), type="timespan"),
    ]
    return rng.choice(choices)


def random_expr(rng: random.Random, depth: int) -> ast.Expr:
    if depth == 0 or rng.random() < 0.15:
        return random_leaf(rng)
    sub = depth - 1
    kind = rng.choice(
        ["binary", "binary", "binary", "unary", "member", "index", "call", "in", "between"]
    )
    if kind == "unary":
        operand = random_expr(rng, sub)
        if isinstance(operand, ast.Literal):  # the parser folds "-5" into a literal
            return ast.UnaryOp(op="+", operand=operand)
        return ast.UnaryOp(op=rng.choice("+-"), operand=operand)
    if kind == "member":
        return ast.Member(target=random_expr(rng, sub), name=rng.choice(["p", "q r"]))
    if kind == "index":
        return ast.Index(target=random_expr(rng, sub), index=ast.Literal(value=0, type="long"))
    if kind == "call":
        args = tuple(random_expr(rng, sub) for _ in range(rng.randint(0, 2)))
        return ast.Call(name="f", args=args)
    if kind == "in":
        items = tuple(random_expr(rng, sub) for _ in range(rng.randint(1, 2)))
        op = rng.choice(["in", "!in", "in~", "!in~", "has_any", "has_all"])
        return ast.InList(op=op, target=random_expr(rng, sub), items=items)
    if kind == "between":
        return ast.Between(
            target=random_expr(rng, sub),
            low=random_expr(rng, sub),
            high=random_expr(rng, sub),
            negated=rng.random() < 0.5,
        )
    op = rng.choice(_OPERATORS)
    left, right = random_expr(rng, sub), random_expr(rng, sub)
    if op in ast.LOGIC_OPERATORS:
        # the parser's canonical shape of a chain: balanced, same-operator operands spliced in
        return ast.logic_chain(op, [left, right])
    return ast.BinaryOp(op=op, left=left, right=right)


@pytest.mark.parametrize("seed", range(25), ids=[f"seed-{n}" for n in range(25)])
def test_random_expressions_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        tree = random_expr(rng, 4)
        printed = print_expression(tree)
        assert parse_expression(printed) == tree, printed
        assert print_expression(parse_expression(printed)) == printed


# --- parser fixes found by the printer -----------------------------------------------------------


def test_search_source_with_tables_round_trips() -> None:
    assert_round_trip('search kind=case_insensitive in (A, B) "x"')
