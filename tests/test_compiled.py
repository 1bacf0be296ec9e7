"""The compiled-content cache: built once, read back across processes, keyed by every part."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trustwatch import compiled


class Builder:
    """Counts its calls; returns its text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.text


def test_returns_the_built_text_and_builds_once(compile_cache: Path) -> None:
    build = Builder("SELECT 1")
    assert compiled.cached_text("sql", ("a",), build) == "SELECT 1"
    assert compiled.cached_text("sql", ("a",), build) == "SELECT 1"
    assert build.calls == 1
    assert len(list((compiled.version_folder(compile_cache) / "sql").glob("*.txt"))) == 1


def test_read_back_from_disk_as_written(compile_cache: Path) -> None:
    text = "SELECT 'a\rb' AS x, 'c\r\nd' AS y -- é\n"
    compiled.cached_text("sql", ("a",), Builder(text))
    compiled.clear_memo()
    again = Builder("rebuilt")
    assert compiled.cached_text("sql", ("a",), again) == text
    assert again.calls == 0


def test_keyed_by_kind_and_each_part(compile_cache: Path) -> None:
    texts = {
        ("sql", ("a",)): "one",
        ("sql", ("b",)): "two",
        ("map", ("a",)): "three",
        ("sql", ("a", "")): "four",
        ("sql", ("", "a")): "five",
    }
    for (kind, parts), text in texts.items():
        assert compiled.cached_text(kind, parts, Builder(text)) == text
    compiled.clear_memo()
    for (kind, parts), text in texts.items():
        assert compiled.cached_text(kind, parts, Builder("rebuilt")) == text
    assert compiled.key("sql", ["ab"]) != compiled.key("sql", ["a", "b"])


def test_reused_by_another_process(compile_cache: Path) -> None:
    code = (
        "import sys\nfrom trustwatch import compiled\n"
        "def build():\n    print('built', file=sys.stderr)\n    return 'SELECT 42'\n"
        "print(compiled.cached_text('sql', ('shared',), build))\n"
    )
    env = {**os.environ, "TRUSTWATCH_CACHE_DIR": str(compile_cache)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["SELECT 42", "SELECT 42"]
    assert [r.stderr.count("built") for r in runs] == [1, 0]


def test_build_errors_propagate_and_nothing_is_kept(compile_cache: Path) -> None:
    def broken() -> str:
        raise ValueError("bad query")

    with pytest.raises(ValueError, match="bad query"):
        compiled.cached_text("sql", ("x",), broken)
    assert compiled.cached_text("sql", ("x",), Builder("fixed")) == "fixed"


def test_an_unwritable_cache_only_costs_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("TRUSTWATCH_CACHE_DIR", str(blocker / "cache"))
    compiled.clear_memo()
    build = Builder("SELECT 1")
    assert compiled.cached_text("sql", ("a",), build) == "SELECT 1"
    compiled.clear_memo()
    assert compiled.cached_text("sql", ("a",), build) == "SELECT 1"
    assert build.calls == 2
    compiled.clear_memo()


def test_a_failed_write_leaves_no_temporary_file(
    compile_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", refuse)
    assert compiled.cached_text("sql", ("a",), Builder("SELECT 1")) == "SELECT 1"
    assert list((compiled.version_folder(compile_cache) / "sql").iterdir()) == []


def test_off_turns_the_disk_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTWATCH_CACHE_DIR", "off")
    monkeypatch.chdir(tmp_path)
    compiled.clear_memo()
    assert compiled.cache_dir() is None
    assert compiled.cached_text("sql", ("a",), Builder("SELECT 1")) == "SELECT 1"
    assert list(tmp_path.iterdir()) == []
    compiled.clear_memo()


def test_default_location_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRUSTWATCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiled.cache_dir() == tmp_path / "trustwatch" / "compiled"


def test_other_versions_unused_for_a_day_are_removed(compile_cache: Path) -> None:
    """The cache does not grow with each upgrade: the first write of a version removes the
    folders of other versions (and of the old layout) unused for a day, and nothing else."""
    old = compile_cache / "v-0123456789abcdef"
    recent = compile_cache / "v-fedcba9876543210"
    legacy = compile_cache / "hunt-rule"
    mine = compile_cache / "notes"  # not the cache's: never touched
    for folder in (old, recent, legacy, mine):
        (folder / "kind").mkdir(parents=True)
        (folder / "kind" / "entry.txt").write_text("x", encoding="utf-8")
    day_ago = os.stat(old).st_mtime - compiled.RETAIN_SECONDS - 60
    for folder in (old, legacy, mine):
        os.utime(folder, (day_ago, day_ago))
    compiled.cached_text("sql", ("a",), Builder("SELECT 1"))
    left = sorted(p.name for p in compile_cache.iterdir())
    assert left == sorted(["notes", recent.name, compiled.version_folder(compile_cache).name])


def test_a_version_in_use_is_marked_so_and_kept(compile_cache: Path) -> None:
    compiled.cached_text("sql", ("a",), Builder("SELECT 1"))
    mine = compiled.version_folder(compile_cache)
    day_ago = os.stat(mine).st_mtime - compiled.RETAIN_SECONDS - 60
    os.utime(mine, (day_ago, day_ago))
    compiled.clear_memo()  # a new process: reading an entry marks the folder used
    assert compiled.cached_text("sql", ("a",), Builder("rebuilt")) == "SELECT 1"
    assert os.stat(mine).st_mtime > day_ago + 60
    assert compiled.prune(compile_cache, keep=compile_cache / "v-other") == []
