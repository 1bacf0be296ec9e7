"""One bad file never stops the others: a reader or the per-file work failing in any way.

A folder holds a real attack EVTX (``../shared/data``) beside hostile files whose readers fail
part way (RecursionError, MemoryError, ValueError), a big file stored alone and small files
stored in the attack's group, and one whose storing fails after it was read. The attack's
events are stored; each bad file is quarantined with its reason; for every file
read = stored + quarantined + duplicates; a second run reads only the files that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import SHARED, needs_shared
from tests.ingest.test_workspace import SYSMON_1, batch, doc, rows
from trustwatch.errors import IngestError
from trustwatch.ingest.readers.evtx import read_evtx
from trustwatch.ingest.records import EventBatch, Item, Rejected
from trustwatch.ingest.workspace import SMALL_FILE, FileStats, Workspace, failure, guarded

ATTACK = (
    SHARED
    / "data/sigma_regression/proc_creation_win_certutil_certificate_installation"
    / "d2125259-ddea-4c1c-9c22-977eb5b29cf0.evtx"
)
Reader = Callable[[Path], Iterator[Item]]


def process(record: int, host: str) -> str:
    """A Sysmon process creation of ``host`` (its own ProcessGuid)."""
    guid = f"{{11111111-2222-3333-4444-{record:012d}}}"
    return doc(record, 1, {**SYSMON_1, "ProcessGuid": guid}, computer=host)


def failing(good: int, error: BaseException, host: str) -> Reader:
    """A reader that gives ``good`` events, then raises ``error``."""

    def read(_: Path) -> Iterator[Item]:
        if good:
            yield batch(*(process(i, host) for i in range(1, good + 1)))
        raise error

    return read


def fine(count: int, host: str) -> Reader:
    def read(_: Path) -> Iterator[Item]:
        yield batch(*(process(i, host) for i in range(1, count + 1)))

    return read


def write(path: Path, size: int) -> Path:
    path.write_bytes(b"x" * size)
    return path


def balanced(stats: FileStats) -> bool:
    return stats.read == stats.stored + stats.quarantined + stats.duplicates


def quarantine(ws: Workspace) -> dict[str, list[tuple[str, int, int, str]]]:
    got: dict[str, list[tuple[str, int, int, str]]] = {}
    for file, kind, ref, records, reason in ws.con.execute(
        "SELECT file, ref_kind, ref, records, reason FROM _quarantine ORDER BY file, ref"
    ).fetchall():
        got.setdefault(Path(file).name, []).append((kind, ref, records, reason))
    return got


@pytest.fixture
def folder(tmp_path: Path) -> dict[str, tuple[Path, Reader]]:
    """The files, each with its reader; the big one is stored alone, the small ones together."""
    return {
        "attack.evtx": (ATTACK, read_evtx),
        "deep.json": (write(tmp_path / "deep.json", 100), failing(3, RecursionError(), "deep")),
        "oom.json": (write(tmp_path / "oom.json", 100), failing(0, MemoryError(), "oom")),
        "bug.json": (
            write(tmp_path / "bug.json", 100),
            failing(2, ValueError("bad value"), "bug"),
        ),
        "poison.json": (write(tmp_path / "poison.json", 100), fine(4, "poison")),
        "big.json": (
            write(tmp_path / "big.json", SMALL_FILE + 1),
            failing(5, RecursionError("maximum recursion depth exceeded"), "big"),
        ),
        "after.json": (write(tmp_path / "after.json", SMALL_FILE + 1), fine(6, "after")),
    }


def planned(files: dict[str, tuple[Path, Reader]]) -> list[tuple[Path, str, Any]]:
    return [(path, "test", reader) for path, reader in files.values()]


def poison_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storing poison.json fails after it was read: its group's transaction is rolled back."""
    finish_file = Workspace._finish_file

    def finish(self: Workspace, file_id: int, stats: FileStats) -> None:
        if stats.path.endswith("poison.json"):
            raise KeyError("a bug in trustwatch")
        finish_file(self, file_id, stats)

    monkeypatch.setattr(Workspace, "_finish_file", finish)


@needs_shared
def test_the_attack_is_stored_beside_failing_files(
    folder: dict[str, tuple[Path, Reader]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_finish(monkeypatch)
    ws = Workspace(tmp_path / "ws.duckdb")
    results = {Path(s.path).name: s for s in ws.ingest(planned(folder))}
    attack = results[ATTACK.name]
    assert attack.failed is None and attack.quarantined == 0 and attack.stored > 0
    commands = rows(ws, "DeviceProcessEvents | where ProcessCommandLine has 'addstore' | count")
    assert commands[0]["Count"] >= 1
    for name, stats in results.items():
        assert balanced(stats), (name, stats)
    # a reader failing part way: what it gave is kept, the rest is one quarantined record
    expected = {"deep.json": 3, "bug.json": 2, "big.json": 5, "oom.json": 0}
    for name, good in expected.items():
        stats = results[name]
        assert (stats.read, stats.stored, stats.quarantined) == (good + 1, good, 1), name
        assert stats.failed is not None and "the rest of the file" in stats.failed
    assert "RecursionError" in (results["deep.json"].failed or "")
    assert "after record 3" in (results["deep.json"].failed or "")
    assert "MemoryError" in (results["oom.json"].failed or "")
    assert "from its start" in (results["oom.json"].failed or "")
    assert "ValueError: bad value" in (results["bug.json"].failed or "")
    # storing failed after reading: the group is redone a file at a time, this one whole out
    poison = results["poison.json"]
    assert (poison.read, poison.stored, poison.quarantined) == (1, 0, 1)
    assert poison.failed == "KeyError: 'a bug in trustwatch'"
    assert results["after.json"].stored == 6 and results["after.json"].failed is None
    got = quarantine(ws)
    assert got["poison.json"] == [
        ("file", 0, 1, "the file could not be read: KeyError: 'a bug in trustwatch'")
    ]
    assert got["deep.json"][0][:3] == ("record", 3, 1)
    assert got["oom.json"][0][:3] == ("record", 0, 1)
    hosts = rows(
        ws, "DeviceProcessEvents | summarize n = count() by DeviceName | sort by DeviceName"
    )
    by_host = {r["DeviceName"]: r["n"] for r in hosts}
    assert {h: by_host.get(h, 0) for h in ("deep", "oom", "bug", "big", "after", "poison")} == {
        "deep": 3,
        "oom": 0,
        "bug": 2,
        "big": 5,
        "after": 6,
        "poison": 0,
    }
    ws.close()

    # again, without the bug: the files read to their end are not read again, the others are
    monkeypatch.undo()
    ws = Workspace(tmp_path / "ws.duckdb")
    again = {Path(s.path).name: s for s in ws.ingest(planned(folder))}
    done = {n for n, s in again.items() if s.skipped_ingest is not None}
    assert done == {ATTACK.name, "after.json"}
    assert again["poison.json"].stored == 4 and again["poison.json"].failed is None
    assert (again["deep.json"].stored, again["deep.json"].duplicates) == (0, 3)
    assert all(balanced(s) for s in again.values())
    ws.close()


def test_a_failure_in_the_database_work_quarantines_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB failing on a file (out of memory for one huge chunk) rolls back that file only."""
    events = Workspace._events

    def chunk(self: Workspace, data: EventBatch, files: dict[int, FileStats], ingest: int) -> None:
        if any(s.path.endswith("huge.json") for s in files.values()):
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate")
        events(self, data, files, ingest)

    monkeypatch.setattr(Workspace, "_events", chunk)
    files = {
        "huge.json": (write(tmp_path / "huge.json", SMALL_FILE + 1), fine(3, "huge")),
        "next.json": (write(tmp_path / "next.json", 10), fine(2, "next")),
    }
    ws = Workspace(None)
    results = {Path(s.path).name: s for s in ws.ingest(planned(files))}
    huge = results["huge.json"]
    assert (huge.read, huge.stored, huge.quarantined) == (1, 0, 1)
    assert huge.failed is not None and huge.failed.startswith("OutOfMemoryException: ")
    assert results["next.json"].stored == 2
    assert rows(ws, "DeviceProcessEvents | count")[0]["Count"] == 2


def test_ctrl_c_in_a_group_still_stops_the_ingest(tmp_path: Path) -> None:
    files = {
        "a.json": (write(tmp_path / "a.json", 10), fine(2, "a")),
        "b.json": (write(tmp_path / "b.json", 10), failing(1, KeyboardInterrupt(), "b")),
    }
    ws = Workspace(tmp_path / "ws.duckdb")
    with pytest.raises(KeyboardInterrupt):
        ws.ingest(planned(files))
    assert ws.con.execute("SELECT count(*) FROM _raw_events").fetchall() == [(0,)]
    ws.close()


def test_a_full_disk_is_reported_as_what_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace's own I/O error ends the ingest with its words and the workspace's name."""
    events = Workspace._events

    def chunk(self: Workspace, data: EventBatch, files: dict[int, FileStats], ingest: int) -> None:
        if any(s.path.endswith("second.json") for s in files.values()):
            raise duckdb.IOException(
                'Could not write file "ws.duckdb.wal": No space left on device'
            )
        events(self, data, files, ingest)

    monkeypatch.setattr(Workspace, "_events", chunk)
    files = {
        "first.json": (write(tmp_path / "first.json", SMALL_FILE + 1), fine(3, "first")),
        "second.json": (write(tmp_path / "second.json", SMALL_FILE + 1), fine(2, "second")),
    }
    path = tmp_path / "ws.duckdb"
    ws = Workspace(path)
    with pytest.raises(IngestError) as caught:
        ws.ingest(planned(files))
    assert str(caught.value) == f"no space left on device while writing workspace {path}"
    assert caught.value.code == "ING010"
    ws.close()
    monkeypatch.undo()
    ws = Workspace(path)  # the last good state: the first file
    assert rows(ws, "DeviceProcessEvents | count")[0]["Count"] == 3
    ws.close()


def test_failure_reasons_name_the_error_not_the_content() -> None:
    assert failure(RecursionError("maximum recursion depth exceeded")) == (
        "RecursionError: nested too deeply to read"
    )
    assert failure(MemoryError()) == "MemoryError: out of memory while reading it"
    assert failure(ValueError()) == "ValueError"
    long = failure(ValueError("x" * 10_000))
    assert long.startswith("ValueError: xxx") and long.endswith("...") and len(long) < 220


def test_guarded_passes_items_and_keeps_the_last_reference(tmp_path: Path) -> None:
    stats = FileStats("f", "t")

    def read(_: Path) -> Iterator[Item]:
        yield EventBatch("line", [4, 9], ["{}", "{}"])
        raise OSError(5, "Input/output error")

    items = list(guarded(read, tmp_path, stats))
    assert len(items) == 2
    rest = items[-1]
    assert isinstance(rest, Rejected)
    assert (rest.ref_kind, rest.ref) == ("line", 9)
    assert stats.failed == (
        "the rest of the file (after line 9) could not be read: OSError: [Errno 5] "
        "Input/output error"
    )
