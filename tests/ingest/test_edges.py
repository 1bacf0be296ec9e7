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


def _certutil(record: int, time: str, host: str) -> str:
    from tests.ingest.test_workspace import SYSMON_1, doc

    guid = f"{{11111111-2222-3333-4444-{record:012d}}}"
    data = {**SYSMON_1, "ProcessGuid": guid, "UtcTime": time.replace("T", " ").rstrip("Z")}
    return doc(record, 1, data, computer=host, time=time)


IMPOSSIBLE = {"zero.corp": "1601-01-01T00:00:00Z", "future.corp": "2999-01-01T00:00:00Z"}


def test_impossible_times_are_kept_flagged_and_date_nothing(tmp_path: Path) -> None:
    from tests.ingest.test_workspace import rows
    from trustwatch.ingest.readers import by_name
    from trustwatch.ingest.workspace import Workspace

    lines = [_certutil(1, "2024-05-01T10:00:00Z", "real.corp")]
    lines += [_certutil(i + 2, t, host) for i, (host, t) in enumerate(IMPOSSIBLE.items())]
    path = tmp_path / "times.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = Workspace(None)
    stats = ws.ingest([(path, "evtx-json", by_name("evtx-json").read)])[0]
    assert (stats.read, stats.stored, stats.bad_times) == (3, 3, 2)
    got = rows(ws, "DeviceProcessEvents | project DeviceName, Timestamp, TimeGenerated")
    times = {r["DeviceName"]: (r["Timestamp"], r["TimeGenerated"]) for r in got}
    assert times["zero.corp"] == (None, None) and times["future.corp"] == (None, None)
    assert times["real.corp"][0] is not None and times["real.corp"][0].year == 2024
    # the time as logged stays in the raw event (WindowsEvent.TimeCreated), not TimeGenerated
    raw = rows(ws, "WindowsEvent | project Computer, TimeCreated, TimeGenerated")
    logged = {r["Computer"]: r for r in raw}
    assert logged["zero.corp"]["TimeCreated"].year == 1601
    assert logged["zero.corp"]["TimeGenerated"] is None
    assert logged["future.corp"]["TimeCreated"].year == 2999
    assert logged["real.corp"]["TimeGenerated"].year == 2024
    ws.close()


def test_a_hunt_never_dates_an_alert_1601(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from trustwatch.cli.main import cli
    from trustwatch.rules import runner

    lines = [
        _certutil(i + 1, t, host)
        for i, (host, t) in enumerate([("real.corp", "2024-05-01T10:00:00Z"), *IMPOSSIBLE.items()])
    ]
    path = tmp_path / "times.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["hunt", str(path), "--format", "jsonl"])
    assert result.exit_code == 1, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert alerts and all("addstore" in json.dumps(a) for a in alerts)
    by_host = {a["CompromisedEntity"]: a for a in alerts}
    assert set(by_host) == {"real.corp", *IMPOSSIBLE}  # an impossible time hides nothing
    for host, alert in by_host.items():
        for key in ("TimeGenerated", "StartTime", "EndTime"):
            if alert.get(key):
                assert "2024" <= alert[key][:4] <= "2100", (key, alert[key])
        event_time = json.loads(alert["ExtendedProperties"]).get("Event Time")
        if host in IMPOSSIBLE:  # dated by the hunt: the run after the data's latest time
            assert event_time == runner.UNTIMED_NOTE
            assert alert["StartTime"] == "2024-05-01T10:00:00Z"
        else:
            assert event_time is None
