"""Queries of any realistic size: long and/or chains and in-lists, deep parentheses, long pipes
and wide unions parse, print, compile and run, or are refused with a located error naming the
limit they break. Never a RecursionError (issue 13, item 3)."""

from __future__ import annotations

import re
from dataclasses import replace

import pyarrow as pa
import pytest
from click.testing import CliRunner

import trustwatch
from trustwatch import limits
from trustwatch.api import Session
from trustwatch.cli.main import cli
from trustwatch.errors import KqlSyntaxError
from trustwatch.kql import ast, deep
from trustwatch.kql.lexer import tokenize
from trustwatch.kql.parser import parse_expression, parse_query
from trustwatch.kql.printer import print_query

ROWS = pa.table({"FileName": ["f3.exe", "x.exe", "f9999.exe"], "ProcessId": [3, 4, 5]})


def or_chain(n: int) -> str:
    return "T | where " + " or ".join(f'FileName == "f{i}.exe"' for i in range(n))


def and_chain(n: int) -> str:
    return "T | where " + " and ".join(f'FileName != "f{i}.exe"' for i in range(n))


def in_list(n: int) -> str:
    return "T | where FileName in (" + ", ".join(f'"f{i}.exe"' for i in range(n)) + ")"


def nested_logic(depth: int) -> str:
    """``(a or (b and (c or ...)))``: every level a real node of the tree."""
    text = 'FileName == "f3.exe"'
    for i in range(depth):
        text = f"(ProcessId == {i} {'or' if i % 2 else 'and'} {text})"
    return "T | where " + text


def pipes(n: int) -> str:
    return "T" + "".join(f" | extend c{i} = ProcessId + {i}" for i in range(n)) + " | count"


def assert_round_trip(text: str) -> ast.Query:
    tree = parse_query(text)
    printed = print_query(tree)
    assert parse_query(printed) == tree
    return tree


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(or_chain(10_000), 2, id="or-10000"),
        pytest.param(and_chain(10_000), 1, id="and-10000"),
        pytest.param(in_list(10_000), 2, id="in-10000"),
    ],
)
def test_ten_thousand_terms_parse_print_compile_and_run(text: str, expected: int) -> None:
    tree = assert_round_trip(text)
    predicate = tree.body[0]
    assert isinstance(predicate, ast.Pipeline) and isinstance(predicate.ops[0], ast.Where)
    statements, _ = Session({"T": ROWS}).compile(text)
    assert "FileName" in statements[0].to_sql()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(or_chain(10_000), 2, id="or-10000"),
        # DuckDB's optimizer is superlinear on long AND chains (4.5 s for 1,000 terms here):
        # the front end takes 10,000 (above); the engine is run on a shorter chain
        pytest.param(and_chain(300), 2, id="and-300"),
        pytest.param(in_list(10_000), 2, id="in-10000"),
    ],
)
def test_long_chains_run(text: str, expected: int) -> None:
    result = trustwatch.query(text + " | count", {"T": ROWS})
    assert result.column("Count").to_pylist() == [expected]


def test_a_long_chain_is_a_shallow_balanced_tree() -> None:
    expr = parse_expression(" or ".join(f"a == {i}" for i in range(10_000)))
    depth = 0
    stack: list[tuple[ast.Node, int]] = [(expr, 1)]
    while stack:
        node, d = stack.pop()
        depth = max(depth, d)
        stack.extend((child, d + 1) for child in node.children())
    assert depth <= 20
    assert len(ast.logic_operands(expr, "or")) == 10_000


def test_grouping_of_a_chain_is_not_kept_and_prints_flat() -> None:
    tree = parse_expression("a or (b or c) or d")
    assert tree == parse_expression("a or b or c or d")
    assert print_query(parse_query("T | where (a and b) and (c and d)")).endswith(
        "a and b and c and d"
    )


def test_thousand_deep_parentheses() -> None:
    text = "T | where " + "(" * 1000 + 'FileName == "f3.exe"' + ")" * 1000
    assert_round_trip(text)
    assert trustwatch.query(text + " | count", {"T": ROWS}).column("Count").to_pylist() == [1]


def test_thousand_nested_operators_parse_print_and_compile() -> None:
    text = nested_logic(1000)
    tree = assert_round_trip(text)
    statements, _ = Session({"T": ROWS}).compile(text)
    sql = statements[0].to_sql()
    assert sql.count("(") >= 1000
    assert "ProcessId" in repr(tree)
    # the tree itself is deep: equality and repr work without the recursion limit
    assert parse_query(text) == tree


def test_five_hundred_stage_pipe_runs() -> None:
    text = pipes(500)
    assert_round_trip(text)
    statements, _ = Session({"T": ROWS}).compile(text)
    # cut into shared stages: the SQL nests no deeper than a short pipe's
    assert statements[0].to_sql().count("WITH") == 1
    assert trustwatch.query(text, {"T": ROWS}).column("Count").to_pylist() == [3]


def test_union_of_the_same_table_many_times_reads_it_once() -> None:
    text = "union " + ", ".join(["T"] * 1000) + " | count"
    statements, _ = Session({"T": ROWS}).compile(text)
    assert len(statements[0].to_sql()) < 20_000  # one SELECT of T, not a thousand
    assert trustwatch.query(text, {"T": ROWS}).column("Count").to_pylist() == [3000]


def test_union_keeps_copies_distinct_from_other_inputs() -> None:
    text = "union withsource=S T, T, (T | as T), U | summarize count() by S | sort by S asc"
    result = trustwatch.query(text, {"T": ROWS, "U": ROWS})
    assert result.column("S").to_pylist() == ["T", "U"]
    assert result.column("count_").to_pylist() == [9, 3]


# --- refused past a limit, with a location and the limit's name --------------------------------


def refused(text: str, limit: str, **override: int) -> KqlSyntaxError:
    with (
        limits.using(replace(limits.current(), **override)),
        pytest.raises(KqlSyntaxError) as info,
    ):
        Session({"T": ROWS}).compile(text)
    exc = info.value
    assert isinstance(exc, limits.LimitExceeded)
    assert limit in str(exc)
    assert exc.diagnostic.span is not None
    assert exc.source is not None
    assert "-->" in exc.render()
    return exc


def test_too_many_terms_is_refused_where_the_chain_crosses_the_limit() -> None:
    text = or_chain(50)
    exc = refused(text, "query-terms", query_terms=20)
    span = exc.diagnostic.span
    assert span is not None and text[span.start : span.end] == "or"
    assert text[: span.start].count(" or ") == 19
    refused(in_list(50), "query-terms", query_terms=20)


def test_too_deep_is_refused() -> None:
    refused("T | where " + "(" * 3000 + "true" + ")" * 3000, "query-depth")
    refused("print x = " + " + ".join(["1"] * 3000), "query-depth")
    refused("print x = " + "not(" * 3000 + "true" + ")" * 3000, "query-depth")
    refused("print x = a" + ".b" * 3000, "query-depth")
    refused("print x = dynamic(" + "[" * 3000 + "]" * 3000 + ")", "query-depth")


def test_too_many_stages_is_refused() -> None:
    exc = refused(pipes(30), "query-stages", query_stages=10)
    assert exc.diagnostic.span is not None


def test_too_long_a_query_is_refused() -> None:
    refused(or_chain(100), "query-bytes", query_bytes=1000)
    with (
        limits.using(replace(limits.current(), query_bytes=10)),
        pytest.raises(KqlSyntaxError, match="query-bytes"),
    ):
        tokenize("T | take 100000")


def test_too_wide_a_union_is_refused() -> None:
    exc = refused("union " + ", ".join(["T"] * 10_000), "union-tables")
    assert "1,000" in str(exc)
    refused("union *", "union-tables", union_tables=5)


def test_deep_runner_turns_recursion_into_a_limit_error() -> None:
    def recurse(n: int) -> int:
        return recurse(n + 1)

    with pytest.raises(limits.LimitExceeded, match="query-depth"):
        deep.call(recurse, 0)


# --- the kql commands -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["tokens", "ast", "sql", "fmt"])
@pytest.mark.parametrize(
    "text",
    [
        pytest.param(or_chain(2000).replace("T |", "DeviceProcessEvents |"), id="or-2000"),
        pytest.param(pipes(300).replace("T |", "DeviceProcessEvents |"), id="pipes-300"),
        pytest.param(
            "DeviceProcessEvents | where " + "(" * 1000 + "true" + ")" * 1000, id="parens-1000"
        ),
    ],
)
def test_kql_commands_take_large_queries(stage: str, text: str) -> None:
    # on stdin: a long query as an argument is taken for a path (ENAMETOOLONG), a CLI matter
    result = CliRunner().invoke(cli, ["kql", stage, "-"], input=text)
    assert result.exit_code == 0, result.output[-500:]
    assert "internal error" not in result.output
    assert "RecursionError" not in result.output


def test_kql_command_refuses_past_a_limit_with_its_name() -> None:
    text = "print x = " + " + ".join(["1"] * 3000)
    result = CliRunner().invoke(cli, ["kql", "fmt", "-"], input=text)
    assert result.exit_code != 0
    assert "query-depth" in result.output
    assert "internal error" not in result.output
    assert re.search(r"<stdin>:1:\d+", result.output)


def test_a_small_address_space_gives_a_smaller_stack_not_a_runtime_error() -> None:
    """Under ``ulimit -v`` a pass's 240 MB stack may not fit ("can't start new thread", found by
    bench/fuzz.py under its address-space limit): it runs on a smaller stack, and a query too
    deep for that one is refused with the located query-depth error."""
    import subprocess
    import sys

    script = """
import resource, sys
from trustwatch.kql.parser import parse_query
from trustwatch.errors import TrustwatchError
with open("/proc/self/status") as f:
    size = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + (96 << 20), size + (96 << 20)))
parse_query("print x = " + "(" * 50 + "1" + ")" * 50)
try:
    parse_query("print x = " + "(" * 1000 + "1" + ")" * 1000)
    print("deep: parsed")
except TrustwatchError as exc:
    print("deep:", exc.code)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
    assert done.stdout.splitlines()[0] in {"deep: parsed", "deep: KQL190"}


def test_a_deep_chain_of_dynamic_indexes_runs() -> None:
    """The SQL of a run was generated off the deep stack (RecursionError in the engine: found
    by bench/fuzz.py kql-run)."""
    text = "print d = dynamic({}) | extend x = d" + '["a"]' * 300 + " | project x"
    assert trustwatch.query(text).to_pylist() == [{"x": None}]


def test_an_engine_failure_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query DuckDB refuses (a compiler gap, e.g. set_has_element(dynamic(null), 'a') found
    by bench/fuzz.py kql-run) is a located EngineError pointing at the query, never raw."""
    from trustwatch.engines.duckdb import DuckDBEngine
    from trustwatch.errors import EngineError

    def refuse(self: DuckDBEngine, sql: str, params: object = None) -> None:
        raise EngineError("DuckDB failed to run the compiled query: Binder Error", hint="bug")

    monkeypatch.setattr(DuckDBEngine, "execute_sql", refuse)
    text = "print a = 1"
    with pytest.raises(EngineError) as info:
        Session().run(text)
    assert info.value.diagnostic.span is not None
    assert "<query>:1:1" in info.value.render()


def let_chain(n: int) -> str:
    return (
        "let v0 = 1;\n"
        + "".join(f"let v{i} = v{i - 1} + 1;\n" for i in range(1, n))
        + f"print x = v{n - 1}"
    )


def test_a_chain_of_lets_within_let_depth_runs() -> None:
    assert trustwatch.query(let_chain(200)).to_pylist() == [{"x": 200}]


def test_a_longer_chain_of_lets_is_refused_at_the_let_past_the_limit() -> None:
    """10,000 lets each using the last (bench/fuzz.py: minutes to compile one 10,000-deep
    expression, then refused by DuckDB past 1,000 levels) are refused at let 201."""
    text = let_chain(10_000)
    with pytest.raises(KqlSyntaxError) as info:
        trustwatch.query(text)
    assert info.value.code == "KQL190"
    assert "let-depth limit (200)" in info.value.diagnostic.message
    span = info.value.diagnostic.span
    assert span is not None and text[span.start :].startswith("let v200 = v199 + 1")
