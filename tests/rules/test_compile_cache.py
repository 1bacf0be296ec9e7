"""Hunter.compile keeps a shipped rule's compiled form across runs (trustwatch.compiled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.rules.test_runner import CERTUTIL, session_of, write_rule
from trustwatch import compiled
from trustwatch.api import Session
from trustwatch.rules import runner
from trustwatch.rules.model import load_rule, load_rules
from trustwatch.rules.runner import Hunter


def no_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("compiled although the cache holds the rule")

    monkeypatch.setattr(runner, "parse_query", refuse)
    monkeypatch.setattr(runner, "compile_query", refuse)


def test_a_shipped_rule_is_compiled_once_across_runs(
    compile_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = load_rules(["all"])
    first = [Hunter(Session()).compile(rule) for rule in rules]
    assert len(list((compiled.version_folder(compile_cache) / "hunt-rule").iterdir())) == len(rules)
    compiled.clear_memo()  # as a new process would: only the files remain
    no_compiler(monkeypatch)
    again = [Hunter(Session()).compile(rule) for rule in rules]
    for a, b in zip(first, again, strict=True):
        assert (a.sql, a.columns, a.locality, a.once_sql, a.once_columns, a.reason) == (
            b.sql,
            b.columns,
            b.locality,
            b.once_sql,
            b.once_columns,
            b.reason,
        )
        assert [t.sql_name for t in a.tables] == [t.sql_name for t in b.tables]


def test_other_tables_are_another_entry(compile_cache: Path) -> None:
    rule = next(r for r in load_rules(["default"]) if r.path.stem == "certutil_download")
    Hunter(Session()).compile(rule)
    Hunter(session_of(DeviceProcessEvents=[{"DeviceName": "a"}])).compile(rule)
    assert len(list((compiled.version_folder(compile_cache) / "hunt-rule").iterdir())) == 2


def test_a_users_rule_is_not_kept(compile_cache: Path, tmp_path: Path) -> None:
    Hunter(Session()).compile(load_rule(write_rule(tmp_path, CERTUTIL)))
    assert not (compiled.version_folder(compile_cache) / "hunt-rule").exists()


def test_a_broken_cache_costs_a_compile(compile_cache: Path) -> None:
    compile_cache.write_text("not a folder", encoding="utf-8")
    rule = load_rules(["default"])[0]
    assert Hunter(Session()).compile(rule).sql


def test_a_damaged_entry_costs_a_compile(compile_cache: Path) -> None:
    rule = load_rules(["default"])[0]
    want = Hunter(Session()).compile(rule).sql
    for entry in (compiled.version_folder(compile_cache) / "hunt-rule").iterdir():
        entry.write_text('{"fixed": true}', encoding="utf-8")
    compiled.clear_memo()
    assert Hunter(Session()).compile(rule).sql == want
