"""Runs every bad query of tests/kql/diagnostics/bad_queries.yaml and checks its located diagnostic.

Each query must raise a :class:`trustwatch.errors.TrustwatchError` (never another exception) whose
first diagnostic has the expected code, position, span text, message and hint, and whose
``render()`` shows ``<query>:LINE:COL``, the source line and a caret under the span.

Cases marked ``known_bug`` describe what the engine *should* do; they run as strict xfails so that
a fix makes them fail loudly until the marker is removed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import trustwatch
from trustwatch.errors import (
    EngineError,
    KqlSemanticError,
    KqlSyntaxError,
    TrustwatchError,
    UnsupportedKql,
)

CASES_FILE = Path(__file__).parent / "diagnostics" / "bad_queries.yaml"
NOW = "2024-01-10T00:00:00Z"

REQUIRED = ("code", "line", "column", "message")
KNOWN_KEYS = {"code", "line", "column", "span", "message", "message_excludes", "hint"}

# A code's family decides the exception class users can catch.
FAMILY = {"KQL1": KqlSyntaxError, "KQL2": KqlSemanticError, "KQL3": UnsupportedKql}

# Text that must never reach a user: Python tracebacks, internal exception types, the backend.
INTERNAL = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"
    r"|\b(?:ValueError|KeyError|TypeError|IndexError|AttributeError|AssertionError|RuntimeError"
    r"|ZeroDivisionError|OverflowError|RecursionError|NotImplementedError)\b"
    r"|\b(?:duckdb|sqlglot|pyarrow)\b|(?:Binder|Conversion|Parser|Invalid Input|Catalog) Error",
    re.IGNORECASE,
)


def load_cases() -> list[Any]:
    cases = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    params = []
    for case in cases:
        marks = []
        if case.get("known_bug"):
            marks.append(
                pytest.mark.xfail(strict=True, reason=f"known engine bug: {case['known_bug']}")
            )
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


CASES = load_cases()


def offset_of(text: str, line: int, column: int) -> int:
    """The character offset of a 1-based line and column."""
    lines = text.split("\n")
    assert 1 <= line <= len(lines), f"line {line} is outside the query ({len(lines)} lines)"
    assert 1 <= column <= len(lines[line - 1]) + 1, f"column {column} is outside line {line}"
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def raise_error(case: dict[str, Any]) -> TrustwatchError:
    """Run the case's query and return the TrustwatchError it raises; fail on anything else."""
    kql = case["kql"]
    try:
        trustwatch.query(kql, tables=case.get("tables"), now=NOW)
    except TrustwatchError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point is to catch every leak
        pytest.fail(
            f"internal exception leaked instead of a TrustwatchError: {type(exc).__name__}: {exc}"
        )
    pytest.fail(f"no error for a bad query:\n{kql}")


# --- the case file itself ---------------------------------------------------------------------


def test_case_file_is_well_formed() -> None:
    cases = [p.values[0] for p in CASES]
    assert len(cases) >= 40
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in cases:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", case["id"]), case["id"]
        assert set(case) <= {"id", "kql", "tables", "expected", "known_bug"}, case["id"]
        expected = case["expected"]
        assert set(expected) <= KNOWN_KEYS, (case["id"], set(expected) - KNOWN_KEYS)
        for key in REQUIRED:
            assert key in expected, (case["id"], key)
        assert expected["code"][:4] in FAMILY, case["id"]


@pytest.mark.parametrize("case", [pytest.param(p.values[0], id=p.id) for p in CASES])
def test_expected_span_is_at_expected_position(case: dict[str, Any]) -> None:
    """The YAML's own line/column and span text agree (guards the expectations, not the engine)."""
    expected = case["expected"]
    start = offset_of(case["kql"], expected["line"], expected["column"])
    if "span" in expected:
        span = str(expected["span"])
        assert case["kql"][start : start + len(span)] == span


# --- the engine -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_bad_query_diagnostic(case: dict[str, Any]) -> None:
    kql: str = case["kql"]
    expected: dict[str, Any] = case["expected"]
    err = raise_error(case)

    # No internal failure dressed as a user error, nor an internal exception chained to it.
    assert not isinstance(err, EngineError), f"engine failure instead of a diagnostic: {err}"
    assert err.__cause__ is None, f"chained internal exception: {err.__cause__!r}"
    assert err.__context__ is None or err.__suppress_context__, (
        f"internal context: {err.__context__!r}"
    )

    diag = err.diagnostic
    assert err.code == diag.code
    assert diag.code == expected["code"], (
        f"code {diag.code}, expected {expected['code']}\n{err.render()}"
    )
    assert isinstance(err, FAMILY[diag.code[:4]]), f"{type(err).__name__} raised for {diag.code}"

    # Location.
    assert err.source is not None, "no source attached"
    assert err.source.text == kql
    assert diag.span is not None, f"diagnostic without a span: {diag.message}"
    assert 0 <= diag.span.start <= diag.span.end <= len(kql), diag.span
    line, col = err.source.line_col(diag.span.start)
    span_text = kql[diag.span.start : diag.span.end]
    want = (expected["line"], expected["column"])
    assert (line, col) == want, f"at {line}:{col} ({span_text!r}), expected {want}\n{err.render()}"
    if "span" in expected:
        assert span_text == str(expected["span"]), f"span {span_text!r}\n{err.render()}"

    # Wording.
    assert expected["message"] in diag.message, f"message {diag.message!r}"
    if "message_excludes" in expected:
        assert expected["message_excludes"] not in diag.message, f"message {diag.message!r}"
    if "hint" in expected:
        assert diag.hint is not None and expected["hint"] in diag.hint, f"hint {diag.hint!r}"

    # Rendering: location header, the source line, a caret under the span.
    rendered = err.render()
    check_render(rendered, kql, line, col, diag.span.start, diag.span.end)
    assert rendered.startswith(f"error[{diag.code}]: {diag.message}")

    for text in (str(err), rendered, diag.hint or ""):
        leak = INTERNAL.search(text)
        assert leak is None, f"internal detail {leak.group(0)!r} in:\n{text}"


def check_render(rendered: str, kql: str, line: int, col: int, start: int, end: int) -> None:
    assert f"--> <query>:{line}:{col}" in rendered, rendered
    out = rendered.split("\n")
    source_line = kql.split("\n")[line - 1]
    prefix = f"{line} | "
    matches = [i for i, text in enumerate(out) if text == prefix + source_line]
    assert matches, f"source line {line} not shown:\n{rendered}"
    i = matches[0]
    assert i + 1 < len(out), f"no caret line:\n{rendered}"
    caret_line = out[i + 1]
    gutter = " " * len(str(line)) + " | "
    assert caret_line.startswith(gutter), f"caret line {caret_line!r}"
    m = re.match(r"( *)(\^+)", caret_line[len(gutter) :])
    assert m is not None, f"no caret in {caret_line!r}"
    eol = kql.find("\n", start)
    eol = len(kql) if eol < 0 else eol
    assert len(m.group(2)) == max(1, min(end, eol) - start), f"caret width in {caret_line!r}"
    # The caret must sit under the span as a terminal shows it (tabs expanded).
    shown_source = (prefix + source_line).expandtabs()
    shown_caret = caret_line.expandtabs()
    span_at = len((prefix + source_line[: col - 1]).expandtabs())
    caret_at = len(shown_caret) - len(shown_caret[len(gutter) :].lstrip(" "))
    assert caret_at == span_at, (
        f"caret at display column {caret_at}, span at {span_at}:\n{shown_source}\n{shown_caret}"
    )
