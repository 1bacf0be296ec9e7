"""engines.spark_sql without Spark: RE2 patterns read as java.util.regex, date formats, refusals."""

from __future__ import annotations

import re

import pytest

from trustwatch.engines.spark_regex import java_regex
from trustwatch.engines.spark_sql import _spark_datetime_pattern
from trustwatch.errors import UnsupportedKql


@pytest.mark.parametrize(
    ("re2", "java"),
    [
        # $ is the end of the text (Java's also matches before a final newline)
        (r"^\d+$", r"(?d)^\d+\z"),
        # \s without \x0B; \b on ASCII word characters (Java 17's is Unicode-aware)
        (r"a\sb", "(?d)a[\\t\\n\\f\\r ]b"),
        (r"[\s,]", "(?d)[\\t\\n\\f\\r ,]"),
        # inside a class, & and [ are themselves (Java: intersection, union)
        (r"[a&&b]", r"(?d)[a\&\&b]"),
        (r"[a[b]", r"(?d)[a\[b]"),
        (r"[]a]", r"(?d)[\]a]"),
        # a { that starts no repetition is itself; repetitions stay
        (r"{}", r"(?d)\{}"),
        (r"a{2,3}", r"(?d)a{2,3}"),
        # case folding of Unicode as RE2; named groups in Java's syntax; \Q...\E untouched
        (r"(?i)straße", r"(?d)(?iu)straße"),
        (r"(?P<name>x)", r"(?d)(?<name>x)"),
        (r"\Q$.\E$", r"(?d)\Q$.\E\z"),
        # \S in a class: a nested class of what is not RE2's space (Java's \S takes \x0B)
        (r"[\s\S]", r"(?d)[\t\n\f\r [^\t\n\f\r ]]"),
    ],
)
def test_re2_patterns_are_written_for_java(re2: str, java: str) -> None:
    assert java_regex(re2) == java


@pytest.mark.parametrize(
    ("text", "matches"),
    [("12", True), ("12\n", False), ("x12", False)],
)
def test_translated_end_anchor_matches_as_re2_does(text: str, matches: bool) -> None:
    # Python's \Z is RE2's and Java's \z; the translated pattern must not match "12\n"
    python = java_regex(r"^\d+$").removeprefix("(?d)").replace(r"\z", r"\Z")
    assert bool(re.search(python, text)) is matches


@pytest.mark.parametrize(
    "pattern", [r"[[:alpha:]]", r"(?m)^a$", r"(?U)a+", r"\Z", r"(a)\1", r"[^\S]", r"(?P<a_b>x)"]
)
def test_patterns_java_reads_differently_are_refused(pattern: str) -> None:
    with pytest.raises(UnsupportedKql, match="not supported on the spark engine"):
        java_regex(pattern)


def test_strftime_formats_become_spark_patterns_with_quoted_text() -> None:
    assert (
        _spark_datetime_pattern("%Y-%m-%dT%H:%M:%S.%f0Z")
        == "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'SSSSSS'0Z'"
    )
    assert _spark_datetime_pattern("%-d/%-m %I%p 'x' 100%%") == "d'/'M' 'hha' ''x'' 100%'"
    with pytest.raises(UnsupportedKql, match="%j"):
        _spark_datetime_pattern("%j")


# --- what the rule pack's SQL needs on Spark ------------------------------------------------

BASE64 = ["aGVsbG8=", "aGVsbG8", "aGVs bG8=", "aGVsbG8==", "a", "", "-_-_", "/w==", "4pyT", "AA=="]
URLS = ["a%2", "a+b%20c", "%zz", "%E2%9C%93", "%FF", "a%", "%%41", "%E2%9C"]


@pytest.mark.parametrize(
    ("python", "duckdb_sql", "values"),
    [
        ("base64_text", "try(decode(from_base64(?)))", BASE64),
        ("url_text", "try(url_decode(?))", URLS),
    ],
)
def test_the_spark_decoders_answer_as_duckdb(
    python: str, duckdb_sql: str, values: list[str]
) -> None:
    """Spark runs DuckDB's try(decode(...)) as trustwatch's Python function (engines.udfs):
    both give the same text, or None, for valid and invalid input alike."""
    import duckdb

    from trustwatch.engines import udfs

    decode = getattr(udfs, python)
    con = duckdb.connect()
    for value in [*values, None]:
        (want,) = con.execute(f"SELECT {duckdb_sql}", [value]).fetchall()[0]
        assert decode(value) == want, value


def _spark(sql: str) -> str:
    from sqlglot import parse_one

    from trustwatch.engines.spark_sql import spark_sql

    return spark_sql(parse_one(sql, read="duckdb"))


def _spark_call(name: str, *args: str) -> str:
    """A DuckDB function call as the compiler builds it (exp.Anonymous), written for Spark."""
    from sqlglot import exp, parse_one

    from trustwatch.engines.spark_sql import spark_sql
    from trustwatch.kql.semantics import func

    call = func(name, *[parse_one(a, read="duckdb") for a in args])
    return spark_sql(exp.select(call).from_("t"))


def test_duckdb_functions_the_pack_uses_are_written_for_spark() -> None:
    from sqlglot import exp

    from trustwatch.engines.spark_sql import spark_sql
    from trustwatch.kql.semantics import func

    assert "INSTR(s, 'x')" in _spark_call("strpos", "s", "'x'")
    assert "SHA1(s)" in _spark_call("sha1", "s")
    keep = exp.Lambda(
        this=exp.GT(this=exp.column("x"), expression=exp.Literal.number(1)),
        expressions=[exp.to_identifier("x")],
    )
    filtered = spark_sql(exp.select(func("list_filter", exp.column("l"), keep)).from_("t"))
    assert "FILTER(l, x -> x > 1)" in filtered
    assert "ARRAY_JOIN(CAST(l AS ARRAY<STRING>), ',')" in _spark_call("array_to_string", "l", "','")

    def tried(*names: str) -> str:
        inner: exp.Expr = exp.column("s")
        for name in reversed(names):
            inner = func(name, inner)
        return spark_sql(exp.select(func("try", inner)).from_("t"))

    assert "TW_BASE64_TEXT(s)" in tried("decode", "from_base64")
    assert "TW_URL_TEXT(s)" in tried("url_decode")
    with pytest.raises(UnsupportedKql, match="try"):
        tried("decode")


def test_the_replays_runs_are_zipped_lists() -> None:
    """Window.bind_runs's SELECT of UNNESTs (DuckDB zips them) as one inline(arrays_zip)."""
    from sqlglot import exp

    from trustwatch.engines.spark_sql import spark_sql

    runs = exp.select(
        exp.alias_(exp.Unnest(expressions=[exp.Placeholder(this="a")]), "r"),
        exp.alias_(exp.Unnest(expressions=[exp.Placeholder(this="b")]), "s"),
    )
    sql = spark_sql(exp.select("*").from_(runs.subquery("x")))
    assert "INLINE(ARRAYS_ZIP(:a, :b)) AS (r, s)" in sql


def test_a_let_read_in_several_subqueries_is_defined_once() -> None:
    twice = "(WITH a AS (SELECT 1 AS x) SELECT * FROM a)"
    sql = _spark(f"SELECT * FROM {twice} AS t, {twice} AS u")
    assert sql.count("a AS (") == 1
    with pytest.raises(UnsupportedKql, match="two definitions of a"):
        _spark(f"SELECT * FROM {twice} AS t, (WITH a AS (SELECT 2 AS x) SELECT * FROM a) AS u")
