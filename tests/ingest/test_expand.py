"""Which files a folder argument stands for: hidden ones below it are skipped, nothing above."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustwatch.ingest.pipeline import expand


def test_hidden_only_below_the_folder_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = tmp_path / ".cases" / "case1"
    (case / ".git").mkdir(parents=True)
    (case / "logs").mkdir()
    (case / "logs" / "sysmon.xml").write_text("<Events/>", encoding="utf-8")
    (case / ".git" / "config").write_text("x", encoding="utf-8")
    (case / ".notes.txt").write_text("x", encoding="utf-8")
    assert [p.name for p in expand([case])] == ["sysmon.xml"]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    relative = Path("..") / ".cases" / "case1"
    assert [p.name for p in expand([relative])] == ["sysmon.xml"]
    assert os.path.samefile(next(expand([relative])), case / "logs" / "sysmon.xml")
