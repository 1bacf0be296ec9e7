"""Honest edges: a workspace that cannot be written, and events with impossible times.

The full disk is a real one for DuckDB: a child process lowers its file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored, so writes fail with ``EFBIG``) after a first
file is stored; no root, mount or tmpfs needed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from tests.ingest.test_workspace import SYSMON_1, batch, doc
    from trustwatch.errors import IngestError
    from trustwatch.ingest.workspace import Workspace

    def reader(count, host):
        def read(_):
            yield batch(*[
                doc(i, 1, {**SYSMON_1, "ProcessGuid": "{%08d-2222-3333-4444-555555555555}" % i,
                           "CommandLine": "x" * 2000}, computer=host)
                for i in range(1, count + 1)
            ])
        return read

    path = Path(sys.argv[1])
    ws = Workspace(path)
    ws.ingest([(Path("first"), "t", reader(10, "first"))])
    ws.con.execute("CHECKPOINT")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = path.stat().st_size + 200_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        ws.ingest([(Path("big"), "t", reader(2000, "big")), (Path("then"), "t", reader(3, "t"))])
    except IngestError as exc:
        print(exc.code, exc)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_workspace_that_cannot_grow_is_reported_and_keeps_its_last_file(
    tmp_path: Path,
) -> None:
    import duckdb

    path = tmp_path / "ws.duckdb"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ING010 file too large while writing workspace {path}"
    con = duckdb.connect(str(path), read_only=True)
    files = con.execute("SELECT path, stored FROM _files ORDER BY id").fetchall()
    assert files == [("first", 10)]
    assert con.execute("SELECT count(*) FROM _raw_events").fetchall() == [(10,)]
    con.close()
