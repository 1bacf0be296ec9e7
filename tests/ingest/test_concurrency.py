"""A workspace being written: readers get its last committed file, a second writer is refused.

A child process ingests two files and stops in the middle of the second (its reader waits for
a file this test writes). Meanwhile this process queries the workspace (it sees the first
file, whole, and nothing of the second) and tries to write it (refused after a short wait,
with the child's process id in the message).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT
from trustwatch.errors import IngestError
from trustwatch.ingest import pipeline, sharing
from trustwatch.ingest.workspace import Workspace

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.ingest.test_workspace import SYSMON_1, batch, doc
    from trustwatch.ingest.workspace import Workspace

    path, paused, go = map(Path, sys.argv[1:4])

    def events(first, count, host):
        return batch(*[
            doc(i, 1, {**SYSMON_1, "ProcessGuid": "{%08d-2222-3333-4444-555555555555}" % i},
                computer=host)
            for i in range(first, first + count)
        ])

    def first(_):
        yield events(1, 5, "one")

    def second(_):
        yield events(1, 3, "two")
        paused.write_text("paused")
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield events(4, 4, "two")

    ws = Workspace(path)
    # paths that are not files: each is stored alone, in a transaction of its own
    stats = ws.ingest([(Path("no-file-1"), "t", first), (Path("no-file-2"), "t", second)])
    ws.close()
    print(",".join(str(s.stored) for s in stats))
    """
)


def _count(engine: object, sql: str) -> int:
    con = engine.con  # type: ignore[attr-defined]
    return int(con.execute(sql).fetchall()[0][0])


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_reader_sees_the_last_committed_file_and_a_second_writer_is_refused(
    tmp_path: Path,
) -> None:
    path, paused, go = tmp_path / "ws.duckdb", tmp_path / "paused", tmp_path / "go"
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, str(path), str(paused), str(go)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not paused.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached its second file"
            time.sleep(0.05)
        # the workspace is held: DuckDB itself refuses to open it
        with pytest.raises(duckdb.IOException):
            duckdb.connect(str(path), read_only=True)
        engine, views = pipeline.open_workspace_for_query(path)
        try:
            assert _count(engine, "SELECT count(*) FROM _raw_events") == 5
            assert _count(engine, "SELECT count(*) FROM _files") == 1
            table = views["DeviceProcessEvents"]
            assert _count(engine, f'SELECT count(*) FROM "{table}"') == 5
        finally:
            engine.close()
        with pytest.raises(IngestError) as refused:
            Workspace(path, wait=0.5)
        message = str(refused.value)
        assert refused.value.code == "ING020"
        assert message.startswith(f"workspace {path} is being written by process {child.pid} (")
        assert message.endswith("waited 0.5 s")
    finally:
        go.write_text("go")
        out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "5,7"
    assert not sharing.lock_path(path).exists()  # the writer removed it
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM _raw_events").fetchall() == [(12,)]
    con.close()


def test_a_writer_that_is_not_an_ingest_is_named(tmp_path: Path) -> None:
    """No ``W.lock`` (a DuckDB shell holds the file): no snapshot, the process is named."""
    path = tmp_path / "ws.duckdb"
    Workspace(path).close()
    holder = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True)"
            "; time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(IngestError) as caught:
            pipeline.open_workspace_for_query(path)
        assert str(caught.value) == (
            f"workspace {path} is open for writing in process {holder.pid}"
        )
    finally:
        holder.kill()
        holder.wait()
