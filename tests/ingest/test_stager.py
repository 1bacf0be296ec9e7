"""Large files read and staged by the stager process: exactly what an in-process ingest gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SHARED, needs_shared
from trustwatch import limits
from trustwatch.errors import IngestError
from trustwatch.ingest import chunks, stager
from trustwatch.ingest.records import EventBatch, Rejected
from trustwatch.ingest.workspace import Workspace

DATA = SHARED / "data"
FILES = (
    DATA / "evtx_attack_samples" / "panache_sysmon_vs_EDRTestingScript.evtx",
    DATA / "evtx_attack_samples" / "Sysmon_UACME_64.evtx",
    DATA / "evtx_to_mitre_attack" / "ID4688-Certutil download.evtx",
    DATA / "hayabusa_sample_evtx" / "many-events-application.evtx",
)
CORPUS_EVENTS = 13_000  # several reader batches (4,096 records) and chunks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Sysmon EVTX of 13,000 events, made by bench/evtx_corpus.py from ../shared/data."""
    if not SHARED.is_dir():
        pytest.skip("needs ../shared (the corpus is built from its Sysmon EVTX)")
    out = tmp_path_factory.mktemp("corpus")
    command = [sys.executable, str(ROOT / "bench" / "evtx_corpus.py"), "--out", str(out)]
    command += ["--events", str(CORPUS_EVENTS), "--file-events", str(CORPUS_EVENTS)]
    subprocess.run(command, check=True, capture_output=True)
    (made,) = out.glob("*.evtx")
    return made


STATS = ("read", "stored", "quarantined", "duplicates", "unmapped", "tables", "failed", "bad_times")


def _ingest(paths: list[Path], *, apart: bool, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    from trustwatch.ingest.readers import by_name

    # every file through the stager (apart), or none of them; small chunks, so that files of a
    # few thousand events are several
    monkeypatch.setattr(stager, "WORKER_BYTES", 0 if apart else 1 << 62)
    monkeypatch.setattr(chunks, "CHUNK", 8192)  # two reader batches a chunk ...
    monkeypatch.setattr(stager, "PIECE", 1024)  # ... merged from the worker's pieces
    ws = Workspace(None, stage_apart=apart)
    read = by_name("evtx").read
    ws.stats = ws.ingest([(p, "evtx", read) for p in paths])  # type: ignore[attr-defined]
    return ws


def _content(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    tables = [
        r[0]
        for r in ws.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name NOT IN ('_ingests', '_files')"
        ).fetchall()
    ]
    return {t: ws.con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}


def _stats(ws: Workspace) -> list[dict[str, Any]]:
    return [{k: getattr(s, k) for k in STATS} for s in ws.stats]  # type: ignore[attr-defined]


def _damaged(tmp_path: Path) -> list[Path]:
    source = (DATA / "evtx_attack_samples" / "PanacheSysmon_vs_AtomicRedTeam01.evtx").read_bytes()
    truncated = tmp_path / "truncated.evtx"
    truncated.write_bytes(source[: len(source) // 2])
    flipped = bytearray(source)
    at = 4096 + 65536 + 600
    flipped[at : at + 100] = bytes(b ^ 0xFF for b in flipped[at : at + 100])
    bitflip = tmp_path / "bitflip.evtx"
    bitflip.write_bytes(bytes(flipped))
    return [truncated, bitflip]


@needs_shared
def test_staged_apart_stores_exactly_what_an_in_process_ingest_stores(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = tmp_path / "again.evtx"  # a copy: its events are all duplicates
    again.write_bytes(FILES[0].read_bytes())
    paths = [*FILES, *_damaged(tmp_path), again, corpus]
    here = _ingest(paths, apart=False, monkeypatch=monkeypatch)
    apart = _ingest(paths, apart=True, monkeypatch=monkeypatch)
    # DuckDB ran on one thread beside the stager, and is as it was after
    threads = "SELECT current_setting('threads')"
    assert apart.con.execute(threads).fetchall() == here.con.execute(threads).fetchall()
    assert _stats(apart) == _stats(here)
    assert sum(s["stored"] for s in _stats(here)) > 3_000 + CORPUS_EVENTS
    assert any(s["quarantined"] for s in _stats(here))  # the damaged files lose records
    assert any(s["duplicates"] for s in _stats(here))
    mine, theirs = _content(apart), _content(here)
    assert mine.keys() == theirs.keys()
    for table in theirs:
        assert mine[table] == theirs[table], table


@needs_shared
def test_the_stager_reads_under_the_limits_in_force() -> None:
    worker = stager.Stager()
    try:
        with limits.using(limits.Limits(records=100)):
            items = list(worker.read(FILES[0], "evtx", 0, 1))
        events = sum(i.staged.num_rows for i in items if isinstance(i, EventBatch))
        assert events == 100
        assert any(isinstance(i, Rejected) and "records" in i.reason for i in items)
        # and it serves the next file, whole
        again = list(worker.read(FILES[2], "evtx", 1, 1))
        assert sum(i.staged.num_rows for i in again if isinstance(i, EventBatch)) > 0
    finally:
        worker.close()


@needs_shared
def test_a_stager_that_dies_ends_its_file_with_a_located_error(corpus: Path) -> None:
    worker = stager.Stager(chunk=4096)
    try:
        items = worker.read(corpus, "evtx", 0, 1)
        assert isinstance(next(items), EventBatch)
        assert worker._process is not None
        worker._process.kill()
        with pytest.raises(IngestError, match="staging process ended"):
            list(items)
        # the next file starts a new worker
        assert any(isinstance(i, EventBatch) for i in worker.read(FILES[2], "evtx", 1, 1))
    finally:
        worker.close()


@needs_shared
def test_a_file_left_part_way_ends_the_worker(corpus: Path) -> None:
    worker = stager.Stager(chunk=4096)
    try:
        items = worker.read(corpus, "evtx", 0, 1)
        next(items)
        process = worker._process
        items.close()  # the consumer stops: the worker, mid-file, is ended
        assert worker._process is None
        assert process is not None and process.poll() is not None
    finally:
        worker.close()


def test_a_reader_failure_in_the_worker_reaches_the_caller(tmp_path: Path) -> None:
    missing = tmp_path / "gone.evtx"
    worker = stager.Stager()
    try:
        with pytest.raises(Exception, match="gone.evtx|No such file"):
            list(worker.read(missing, "evtx", 0, 1))
    finally:
        worker.close()


@needs_shared
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "pass"],  # starts, ends before it is ready
        ["/nonexistent/python"],  # cannot start at all
    ],
)
def test_without_a_stager_the_ingest_reads_every_file_itself(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stager.Stager, "_command", lambda self, fd: command)
    apart = _ingest(list(FILES[:2]), apart=True, monkeypatch=monkeypatch)
    here = _ingest(list(FILES[:2]), apart=False, monkeypatch=monkeypatch)
    assert _stats(apart) == _stats(here)
    assert all(s["failed"] is None and s["stored"] for s in _stats(apart))
    assert _content(apart) == _content(here)
