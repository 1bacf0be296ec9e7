"""Which files a folder argument stands for: hidden ones below it skipped, links followed inside
it, anything else (links elsewhere, broken links, FIFOs) reported as skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustwatch.ingest.pipeline import expand, plan


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


def test_links_inside_are_followed_once_and_others_reported(tmp_path: Path) -> None:
    case = tmp_path / "case"
    (case / "host1").mkdir(parents=True)
    (case / "host1" / "a.xml").write_text("<Events/>", encoding="utf-8")
    (case / "z.xml").write_text("<Events/>", encoding="utf-8")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.xml").write_text("<Events/>", encoding="utf-8")
    (case / "alias").symlink_to(case / "host1")  # a folder inside: walked (host1 once only)
    (case / "host1" / "loop").symlink_to(case)  # a cycle: ended, said
    (case / "out").symlink_to(outside)  # outside the folder named: not followed, said
    (case / "out.xml").symlink_to(outside / "secret.xml")
    (case / "gone.xml").symlink_to(tmp_path / "missing.xml")
    (case / "zz.xml").symlink_to(case / "z.xml")  # the same file: read once
    skipped: list[tuple[Path, str]] = []
    got = [p.relative_to(case).as_posix() for p in expand([case], skipped)]
    assert got == ["alias/a.xml", "z.xml"]
    reasons = {p.relative_to(case).as_posix(): why for p, why in skipped}
    assert set(reasons) == {"alias/loop", "gone.xml", "out", "out.xml", "zz.xml"}
    assert reasons["out"] == (
        f"{case / 'out'}: symbolic link to {outside}, outside the paths named: not followed"
    )
    assert "broken symbolic link" in reasons["gone.xml"]
    assert "cycle ended" in reasons["alias/loop"]
    assert "the same file as" in reasons["zz.xml"]
    # named as well, the folder outside is read (once: through the link, which comes first)
    got = [p.relative_to(tmp_path).as_posix() for p in expand([case, outside], [])]
    assert got == ["case/alias/a.xml", "case/out/secret.xml", "case/z.xml"]


def test_fifos_are_never_opened(tmp_path: Path) -> None:
    (tmp_path / "events.xml").write_text("<Events/>", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.xml")
    skipped: list[tuple[Path, str]] = []
    assert [p.name for p in expand([tmp_path], skipped)] == ["events.xml"]
    assert skipped == [
        (tmp_path / "pipe.xml", f"{tmp_path / 'pipe.xml'}: not a regular file (a FIFO): not read")
    ]
    skipped.clear()
    assert list(expand([tmp_path / "pipe.xml"], skipped)) == []  # named, too
    assert len(skipped) == 1
    planned, listed = plan([tmp_path], skip_unknown=True)  # plan reports them like the others
    assert all(p.name != "pipe.xml" for p, _, _ in planned)
    assert any(p.name == "pipe.xml" for p, _ in listed)
