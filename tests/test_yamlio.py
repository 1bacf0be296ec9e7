"""YAML reading: one parse for value and nodes, and parsed YAML kept across runs as JSON."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustwatch import compiled, limits, yamlio
from trustwatch.errors import RuleFileError
from trustwatch.rules.model import load_rule, load_rules

TEXT = """\
id: 1
name: a rule
when: 2024-05-01
at: 2024-05-01T10:00:00Z
query: |
  DeviceProcessEvents
  | take 1
nested: {list: [1, 2.5, true, null, "x"]}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRUSTWATCH_CACHE_DIR", str(folder))
    compiled.clear_memo()
    return folder


def test_load_with_node_is_load_and_compose() -> None:
    value, node = yamlio.load_with_node(TEXT)
    assert value == yamlio.load(TEXT)
    assert isinstance(node, yaml.MappingNode)
    composed = yamlio.compose(TEXT)
    assert composed is not None
    assert [k.value for k, _ in node.value] == [k.value for k, _ in composed.value]
    assert yamlio.load_with_node("") == (None, None)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, True, None, "x"], "b": {"c": "d"}},
        {"day": date(2024, 5, 1), "at": datetime(2024, 5, 1, 10, tzinfo=UTC)},
        [datetime(2024, 5, 1, 10, 30)],
        "text with \r\n and \r",
    ],
    ids=["plain", "timestamps", "naive", "newlines"],
)
def test_encode_round_trips(value: Any) -> None:
    text = yamlio.encode(value)
    assert text
    assert yamlio.decode(text) == value


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {"b": b"bytes"}, {"n": float("nan")}, {"\x00date": "2024-01-01"}],
    ids=["int-key", "binary", "nan", "tag-lookalike"],
)
def test_encode_refuses_what_json_cannot_carry_back(value: Any) -> None:
    assert yamlio.encode(value) == ""


def test_load_cached_reads_back_what_it_parsed(cache: Path) -> None:
    first = yamlio.load_cached(TEXT, "test-yaml")
    assert first == yamlio.load(TEXT)
    assert list((compiled.version_folder(cache) / "test-yaml").iterdir())  # written
    compiled.clear_memo()
    assert yamlio.load_cached(TEXT, "test-yaml") == first  # read back from disk


def test_cached_values_are_not_shared_between_callers(cache: Path) -> None:
    yamlio.load_cached(TEXT, "test-yaml")
    one = yamlio.load_cached(TEXT, "test-yaml")
    one["name"] = "changed"
    assert yamlio.load_cached(TEXT, "test-yaml")["name"] == "a rule"


def test_values_json_cannot_carry_are_parsed_every_time(cache: Path) -> None:
    text = "1: one\n2: two\n"
    assert yamlio.load_cached(text, "test-yaml") == {1: "one", 2: "two"}
    compiled.clear_memo()
    assert yamlio.load_cached(text, "test-yaml") == {1: "one", 2: "two"}


def test_invalid_yaml_is_an_error_every_time(cache: Path) -> None:
    for _ in range(2):
        with pytest.raises(yaml.YAMLError):
            yamlio.load_cached("a: [1, 2", "test-yaml")
    assert not (compiled.version_folder(cache) / "test-yaml").exists()


def test_a_rule_reads_the_same_from_the_cache(cache: Path, tmp_path: Path) -> None:
    source = load_rules(("default",))[0].path
    copy = tmp_path / source.name
    copy.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    fresh = load_rule(copy)
    compiled.clear_memo()
    again = load_rule(copy)
    assert again.doc == fresh.doc
    assert again.query_line == fresh.query_line > 0
    lines = copy.read_text(encoding="utf-8").splitlines()
    assert lines[again.query_line].strip() == again.query.splitlines()[0].strip()


# --- limits: YAML bombs and huge documents (issue 13) -------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    previous = "a"
    for name in "bcdefghijklm"[: levels - 1]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


@pytest.mark.parametrize("read", [yamlio.load, yamlio.compose, yamlio.load_with_node])
def test_billion_laughs_is_refused_at_the_alias_naming_the_limit(read: Any) -> None:
    with pytest.raises(yamlio.YamlLimitExceeded, match="yaml-aliases") as info:
        read(billion_laughs())
    exc = info.value
    assert isinstance(exc, yaml.YAMLError) and isinstance(exc, limits.LimitExceeded)
    assert isinstance(exc, RuleFileError)
    mark = exc.problem_mark
    assert mark is not None
    # b: 9 uses, c: 9 x 10, d: 9 x 91 (918 so far); the first *d on line 5 is 820 more
    assert (mark.line + 1, mark.column + 1) == (5, 8)


def test_billion_laughs_fails_fast(cache: Path) -> None:
    started = time.process_time()
    with pytest.raises(yamlio.YamlLimitExceeded):
        yamlio.load_cached(billion_laughs(12), "tuning-yaml")
    assert time.process_time() - started < 1.0


def test_a_few_aliases_are_read() -> None:
    text = "base: &base {severity: high, tags: [a, b]}\none: *base\ntwo: [*base, *base]\n"
    value = yamlio.load(text)
    assert value["two"] == [value["base"], value["base"]]
    assert "*" in text and "&" in text


def test_alias_limit_is_the_configured_one() -> None:
    text = "a: &a [1]\nb: [*a, *a, *a]\n"
    with (
        limits.using(replace(limits.current(), yaml_aliases=2)),
        pytest.raises(yamlio.YamlLimitExceeded, match=r"yaml-aliases limit \(2\)"),
    ):
        yamlio.load(text)
    assert yamlio.load(text)["b"] == [[1], [1], [1]]


def test_document_size_limit() -> None:
    with (
        limits.using(replace(limits.current(), yaml_bytes=100)),
        pytest.raises(yamlio.YamlLimitExceeded, match="yaml-bytes"),
    ):
        yamlio.load("x: " + "y" * 200)


def test_a_rule_file_bomb_names_the_file_line_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"bomb\.yaml:5:8: .*yaml-aliases"):
        load_rule(path)
