"""The quarantine account: bounded per file, queryable, and still adding up.

A file that gives a rejected record per line (a zip of garbage lines gave 300k) must not cost a
statement per record nor store every one: up to the quarantine-rows limit each record has its
own row (reason, excerpt), the rest of the file's one summary row with their count; the reasons
the terminal shows are the first five and the last (a limit that stopped the file is last).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from trustwatch import limits
from trustwatch.api import Session
from trustwatch.cli.main import cli
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace

HEAD = '{"Event": {"System": {"EventID": 1, "Computer": "x"}, "EventData": {"CommandLine": "'
GOOD = (
    '{"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, '
    '"EventID": 1, "EventRecordID": 1, "Computer": "good", "TimeCreated": {"#attributes": '
    '{"SystemTime": "2024-05-01T10:00:00Z"}}}, "EventData": {"Image": "C:\\\\x.exe"}}}'
)


def garbage(path: Path, lines: int) -> Path:
    """A JSON-lines event file: one good event, then ``lines`` lines that are not JSON."""
    path.write_text(GOOD + "\n" + "".join(f"{HEAD}{i} not json\n" for i in range(lines)))
    return path


def rows_of(session: Session, kql: str) -> list[dict]:
    return session.run(kql).tables[-1].to_pylist()


def ingest(paths: list[Path], workspace: Path | None = None) -> tuple[Workspace, list]:
    planned, _ = pipeline.plan(paths)
    ws = Workspace(workspace)
    return ws, ws.ingest(planned)


def test_past_the_limit_records_are_counted_in_one_row(tmp_path: Path) -> None:
    with limits.using(limits.Limits(quarantine_rows=10)):
        ws, [stats] = ingest([garbage(tmp_path / "bad.jsonl", 25)])
    assert (stats.read, stats.stored, stats.quarantined) == (26, 1, 25)
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    rows = rows_of(session, "_quarantine | order by ref asc")
    assert len(rows) == 11
    assert sum(r["records"] for r in rows) == 25  # read = stored + quarantined, row by row
    assert [r["ref"] for r in rows[:10]] == list(range(2, 12))  # lines 2-11, one row each
    assert all(r["excerpt"] for r in rows[:10])
    summary = rows[10]
    assert (summary["ref"], summary["records"], summary["excerpt"]) == (12, 15, "")
    assert "15 more record(s)" in summary["reason"]
    assert "quarantine-rows limit (10 rows per file)" in summary["reason"]
    assert "line 12" in summary["reason"]
    # the terminal's reasons: the first five, and the last
    assert len(stats.problems) == 5 and stats.problems[0].startswith("line 2: ")
    assert stats.last_problem.startswith("line 26: ")


def test_reasons_name_their_place_once(tmp_path: Path) -> None:
    _, [stats] = ingest([garbage(tmp_path / "bad.jsonl", 1)])
    assert len(stats.problems) == 1
    assert stats.problems[0].count("line 2") == 1, stats.problems


def test_the_account_is_queryable_but_not_searched(tmp_path: Path) -> None:
    ws, _ = ingest([garbage(tmp_path / "bad.jsonl", 3)])
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    files = rows_of(session, "_files | project path, read, stored, quarantined")
    assert files == [
        {"path": str(tmp_path / "bad.jsonl"), "read": 4, "stored": 1, "quarantined": 3}
    ]
    # the excerpts hold "not json": search looks through telemetry, not the quarantine (over
    # a few tables: columns of all of them collide in case, LogonId and LogonID)
    views = pipeline.query_views(ws.engine)
    few = ("_quarantine", "_files", "DeviceProcessEvents", "Event")
    session = Session(engine=ws.engine, views={n: views[n] for n in few})
    assert rows_of(session, 'search "not json" | count') == [{"Count": 0}]
    assert rows_of(session, 'search in (_quarantine) "not json" | count') == [{"Count": 3}]


def test_many_rejected_lines_are_quick(tmp_path: Path) -> None:
    """200,000 rejected lines (before: a statement and a thread hand-off each)."""
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + "{}\n" * 200_000)
    _, [stats] = ingest([path], tmp_path / "w.duckdb")
    assert (stats.read, stats.quarantined) == (200_001, 200_000)
    assert stats.kept_rows == limits.current().quarantine_rows


def test_hunt_prints_the_first_and_the_last_reason(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    garbage(folder / "bad.jsonl", 8)
    result = CliRunner().invoke(cli, ["hunt", str(folder), "--limit", "quarantine-rows=3"])
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("quarantined:")]
    assert len(lines) == 2, result.stderr
    assert "8 record(s) could not be read - line 2: " in lines[0]
    assert "the last - line 9: " in lines[1]
    assert "input skipped: 8 record(s) quarantined in 1 file(s)" in result.stderr


def test_hunt_over_a_workspace_reports_what_its_ingests_skipped(tmp_path: Path) -> None:
    """A file that failed and was read again counts once (its latest row)."""
    w = tmp_path / "w.duckdb"
    garbage(tmp_path / "bad.jsonl", 4)
    runner = CliRunner()
    for _ in range(2):  # the second ingest reads nothing new
        assert runner.invoke(cli, ["ingest", str(tmp_path / "bad.jsonl"), "--workspace", str(w)])
    result = runner.invoke(cli, ["hunt", "--workspace", str(w)])
    assert result.exit_code == 3, result.stderr  # no alert, but input was skipped
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("input skipped when the workspace was ingested: 4 record(s)")
    assert "tables _files and _quarantine" in last
    clean = tmp_path / "clean.duckdb"
    (tmp_path / "good.jsonl").write_text(GOOD + "\n")
    runner.invoke(cli, ["ingest", str(tmp_path / "good.jsonl"), "--workspace", str(clean)])
    result = runner.invoke(cli, ["hunt", "--workspace", str(clean)])
    assert result.exit_code == 0 and "input skipped" not in result.stderr


def test_a_workspace_from_before_failed_and_bad_times_still_hunts(tmp_path: Path) -> None:
    import duckdb

    w = tmp_path / "old.duckdb"
    garbage(tmp_path / "bad.jsonl", 2)
    CliRunner().invoke(cli, ["ingest", str(tmp_path / "bad.jsonl"), "--workspace", str(w)])
    con = duckdb.connect(str(w))
    con.execute("ALTER TABLE _files DROP COLUMN bad_times")
    con.execute("ALTER TABLE _files DROP COLUMN failed")
    con.close()
    result = CliRunner().invoke(cli, ["hunt", "--workspace", str(w)])
    assert result.exit_code == 3, result.stderr
    assert "2 record(s) quarantined in 1 file(s)" in result.stderr
