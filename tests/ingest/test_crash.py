"""An ingest killed with SIGKILL at random points leaves a workspace that is whole and resumes.

Each trial starts ``trustwatch ingest`` on several small files in a child process, kills it
(``kill -9``: no clean-up runs) at a random moment, then checks that the workspace opens, that
every file it holds is whole (its raw events and table rows all there, none of a file it does
not list), that queries agree with that, and that running the same command again completes it
with exactly the counts of an ingest that was never interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.ingest.test_workspace import doc
from trustwatch.api import Session
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import SMALL_FILE, Workspace

TRIALS = 20
ROOT_STORE = r"HKLM\SOFTWARE\Microsoft\SystemCertificates\ROOT\Certificates"
FILES = 4
EVENTS = 150  # per file: a process creation, a registry write and a 4104 part for each record
PADDING = SMALL_FILE // (EVENTS // 3) + 1


def _event(record: int, event_id: int, data: dict[str, Any], host: str, **system: str) -> str:
    """A record of ``host``, its time a minute a record apart (test_workspace's document)."""
    time = f"2024-05-01T10:{record % 60:02d}:00Z"
    return doc(record, event_id, data, computer=host, time=time, **system)


def _write_files(folder: Path) -> list[Path]:
    paths = []
    for f in range(FILES):
        host = f"ws{f}.corp.local"
        lines = []
        for i in range(EVENTS // 3):
            guid = f"{{11111111-2222-3333-{f:04d}-{i:012d}}}"
            lines.append(
                _event(
                    3 * i + 1,
                    1,
                    {
                        "UtcTime": "2024-05-01 10:00:00.000",
                        "ProcessGuid": guid,
                        "ProcessId": 100 + i,
                        "Image": r"C:\Windows\System32\certutil.exe",
                        "CommandLine": f"certutil -addstore root c{i}.cer",
                        "ParentProcessGuid": "{99999999-2222-3333-4444-555555555555}",
                        # the first files are big enough to be stored one at a time, the
                        # others small enough to be stored together (workspace.SMALL_FILE)
                        "Padding": "x" * (PADDING if f < 2 else 0),
                    },
                    host,
                )
            )
            lines.append(
                _event(
                    3 * i + 2,
                    13,
                    {
                        "EventType": "SetValue",
                        "UtcTime": "2024-05-01 10:00:01.000",
                        "ProcessGuid": guid,
                        "ProcessId": 100 + i,
                        "Image": r"C:\Windows\System32\certutil.exe",
                        "TargetObject": rf"{ROOT_STORE}\{i:040X}\Blob",
                        "Details": "Binary Data",
                    },
                    host,
                )
            )
            lines.append(
                _event(
                    3 * i + 3,
                    4104,
                    {
                        "MessageNumber": 1 + i % 2,
                        "MessageTotal": 2,
                        "ScriptBlockText": f"part{i % 2}",
                        "ScriptBlockId": f"block-{i // 2}",
                        "Path": "",
                    },
                    host,
                    provider="Microsoft-Windows-PowerShell",
                    channel="Microsoft-Windows-PowerShell/Operational",
                )
            )
        path = folder / f"events-{f}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _ingest_command(files: list[Path], workspace: Path) -> list[str]:
    script = "from trustwatch.cli.main import main; main()"
    return [sys.executable, "-c", script, "ingest", *map(str, files), "--workspace", str(workspace)]


def _counts(path: Path) -> dict[str, int]:
    """Rows per table, and the files the workspace lists (read-only, as a query would)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        if "_files" not in tables:  # killed while creating it: no table at all
            assert not tables, tables
            return {}
        out = {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]) for t in tables}
        out["_files.stored"] = int(
            con.execute("SELECT COALESCE(sum(stored), 0) FROM _files").fetchall()[0][0]
        )
        listed = {r[0] for r in con.execute("SELECT id FROM _files").fetchall()}
        for table in tables:
            if table.startswith("_") and table != "_raw_events":
                continue
            ids = {r[0] for r in con.execute(f'SELECT DISTINCT _file FROM "{table}"').fetchall()}
            assert ids <= listed, f"{table} holds rows of files the workspace does not list"
        per_file = con.execute(
            "SELECT f.id, f.stored, (SELECT count(*) FROM _raw_events r WHERE r._file = f.id) "
            "FROM _files f"
        ).fetchall()
        for file_id, stored, present in per_file:
            assert stored == present, f"file {file_id}: {present} raw events of {stored}"
    finally:
        con.close()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, int]]:
    folder = tmp_path_factory.mktemp("crash-files")
    files = _write_files(folder)
    ws = folder / "clean.duckdb"
    subprocess.run(_ingest_command(files, ws), check=True, capture_output=True)
    return files, _counts(ws)


def test_a_clean_ingest_holds_every_event(reference: tuple[list[Path], dict[str, int]]) -> None:
    files, counts = reference
    sizes = [p.stat().st_size for p in files]
    assert sizes[0] > SMALL_FILE and sizes[1] > SMALL_FILE, sizes  # a transaction each
    assert sizes[2] <= SMALL_FILE and sizes[3] <= SMALL_FILE, sizes  # one for both
    assert counts["_raw_events"] == FILES * (EVENTS // 3) * 3
    assert counts["DeviceProcessEvents"] == FILES * (EVENTS // 3)
    assert counts["DeviceRegistryEvents"] == FILES * (EVENTS // 3)
    # two 4104 parts per block: one DeviceEvents row per block and computer
    assert counts["DeviceEvents"] == FILES * ((EVENTS // 3 + 1) // 2)


def test_kill_9_at_random_points_then_resume(
    reference: tuple[list[Path], dict[str, int]], tmp_path: Path
) -> None:
    files, expected = reference
    rng = random.Random(1588004)  # noqa: S311 - reproducible kill points, not security
    # timed warm: the first ingest of a test session also fills the compiled-content cache,
    # and kill points drawn over that longer time would mostly land after the end
    for attempt in ("cold", "warm"):
        started = time.perf_counter()
        subprocess.run(
            _ingest_command(files, tmp_path / f"timing-{attempt}.duckdb"),
            check=True,
            capture_output=True,
        )
        full = time.perf_counter() - started
    outcomes = {"killed": 0, "finished before the kill": 0}
    for trial in range(TRIALS):
        ws = tmp_path / f"trial-{trial}.duckdb"
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            _ingest_command(files, ws), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.0, full))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            outcomes["killed"] += 1
        else:
            outcomes["finished before the kill"] += 1
        child.wait()
        partial = _counts(ws) if ws.exists() else {}  # opens; every file it lists is whole
        if partial:
            assert partial["_raw_events"] == partial["_files.stored"]
            assert partial["_raw_events"] <= expected["_raw_events"]
            engine_ws = Workspace(ws)
            session = Session(engine=engine_ws.engine, views=pipeline.query_views(engine_ws.engine))
            got = session.run("DeviceProcessEvents | count", "2030-01-01T00:00:00Z")
            assert got.tables[-1].to_pylist() == [{"Count": partial["DeviceProcessEvents"]}]
            engine_ws.close()
        before = partial.get("_files", 0)
        resumed = Workspace(ws)  # the same command again, in this process
        stats = resumed.ingest(pipeline.plan(files)[0])
        resumed.close()
        assert sum(s.skipped_ingest is not None for s in stats) == before, f"trial {trial}"
        assert _counts(ws) | {"_ingests": 0} == expected | {"_ingests": 0}, f"trial {trial}"
    # the random points must have hit both a running ingest and (rarely) a finished one
    assert outcomes["killed"] >= TRIALS // 2, outcomes
