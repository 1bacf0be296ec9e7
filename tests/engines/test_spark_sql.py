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
    "pattern", [r"[[:alpha:]]", r"(?m)^a$", r"(?U)a+", r"\Z", r"(a)\1", r"[\S]", r"(?P<a_b>x)"]
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
