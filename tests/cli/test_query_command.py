"""The `trustwatch query` and `trustwatch kql` commands: output formats, exit codes, errors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from trustwatch.cli.main import cli

SAMPLE = str(resources.files("trustwatch.content.samples").joinpath("DeviceRegistryEvents.jsonl"))
QUERY = (
    'DeviceRegistryEvents | where RegistryKey has_any (@"SystemCertificates\\CA\\Certificates")'
    " | project Timestamp, DeviceName | sort by Timestamp asc"
)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_json_output_is_one_array_with_utc_datetimes() -> None:
    code, out, _ = run(
        "query", QUERY, "--table", f"DeviceRegistryEvents={SAMPLE}", "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    assert rows == [
        {"Timestamp": "2024-05-02T09:40:00Z", "DeviceName": "srv-web-03"},
        {"Timestamp": "2024-05-02T10:00:00Z", "DeviceName": "srv-web-03"},
    ]


def test_jsonl_and_csv_formats() -> None:
    code, out, _ = run(
        "query", QUERY, "--table", f"DeviceRegistryEvents={SAMPLE}", "--format", "jsonl"
    )
    assert code == 0
    assert [json.loads(line)["DeviceName"] for line in out.splitlines()] == ["srv-web-03"] * 2
    code, out, _ = run(
        "query", QUERY, "--table", f"DeviceRegistryEvents={SAMPLE}", "--format", "csv"
    )
    assert code == 0
    assert out.splitlines()[0] == "Timestamp,DeviceName"
    assert out.splitlines()[1] == "2024-05-02T09:40:00Z,srv-web-03"


def test_table_format_prints_rows_and_a_count() -> None:
    code, out, _ = run("query", QUERY, "--table", f"DeviceRegistryEvents={SAMPLE}")
    assert code == 0
    assert "srv-web-03" in out and "2 rows" in out


def test_now_pins_ago() -> None:
    kql = "DeviceRegistryEvents | where Timestamp > ago(1h) | count"
    args = ("query", kql, "--table", f"DeviceRegistryEvents={SAMPLE}", "--format", "json")
    _, out, _ = run(*args, "--now", "2024-05-02T12:00:00Z")
    assert json.loads(out) == [{"Count": 5}]
    _, out, _ = run(*args, "--now", "2030-01-01T00:00:00Z")
    assert json.loads(out) == [{"Count": 0}]


def test_query_from_file_and_stdin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "q.kql"
    path.write_text("print x = 1 + 1", encoding="utf-8")
    assert json.loads(run("query", "-f", str(path), "--format", "json")[1]) == [{"x": 2}]
    assert json.loads(run("query", "-f", "-", "--format", "json", stdin="print y = 3")[1]) == [
        {"y": 3}
    ]


def test_error_is_one_located_diagnostic_and_exit_2() -> None:
    code, out, err = run("query", "DeviceProcessEvents | where ProcessComandLine has 'x'")
    assert code == 2
    assert out == ""
    assert "error[KQL202]" in err
    assert "<query>:1:29" in err
    assert "did you mean 'ProcessCommandLine'?" in err
    assert "Traceback" not in err


def test_bad_table_binding_and_missing_file() -> None:
    code, _, err = run("query", "print 1", "--table", "nonsense")
    assert code == 2 and "NAME=PATH" in err
    code, _, err = run("query", "print 1", "--table", "T=/no/such/file.jsonl")
    assert code == 2 and "not found" in err


def test_unsupported_options_say_so() -> None:
    code, _, err = run("query", "print 1", "--data", "no-such.evtx")
    assert code == 2 and "no such file" in err
    code, _, err = run("query", "print 1", "--workspace", "no-such.duckdb")
    assert code == 2 and "workspace not found" in err
    # checked before any Spark starts: a workspace is DuckDB's file, Spark reads Parquet
    code, _, err = run("query", "print 1", "--engine", "spark", "--workspace", "w.duckdb")
    assert code == 2 and "--parquet DIR" in err
    code, _, err = run("query", "print 1", "--spark-master", "local[1]")
    assert code == 2 and "--engine spark" in err


def test_explain_prints_sql_without_running() -> None:
    code, out, _ = run("query", "DeviceEvents | take 3", "--explain")
    assert code == 0
    assert out.strip().startswith("SELECT") and "LIMIT" in out


def test_render_is_accepted_with_a_notice() -> None:
    code, out, err = run("query", "print a = 1 | render timechart", "--format", "json")
    assert code == 0
    assert json.loads(out) == [{"a": 1}]
    assert "notice: render timechart" in err


def test_kql_stages() -> None:
    code, out, _ = run("kql", "tokens", "T | where x == 1")
    assert code == 0 and "PIPE" in out and "EQ" in out
    code, out, _ = run("kql", "ast", "T | take 1")
    assert code == 0 and "Pipeline(" in out and "Take(" in out
    code, out, _ = run("kql", "sql", "DeviceEvents | take 1")
    assert code == 0 and "LIMIT" in out
    code, out, _ = run("kql", "fmt", "T|where x==1|take 5")
    assert code == 0 and out == "T\n| where x == 1\n| take 5\n"
    code, _, err = run("kql", "ast", "T | where (")
    assert code == 2 and "error[KQL101]" in err


def test_unreadable_values_are_reported_not_dropped_silently(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "procs.jsonl"
    path.write_text(
        '{"Timestamp": "2024-05-02T10:00:00Z", "ProcessId": "12"}\n'
        '{"Timestamp": "not a date", "ProcessId": "abc"}\n'
        '{"Timestamp": "", "ProcessId": null}\n',
        encoding="utf-8",
    )
    kql = "DeviceProcessEvents | project Timestamp, ProcessId"
    code, out, err = run("query", kql, "--table", f"DeviceProcessEvents={path}", "--format", "json")
    assert code == 0
    assert json.loads(out)[0] == {"Timestamp": "2024-05-02T10:00:00Z", "ProcessId": 12}
    assert "1 value(s) of Timestamp could not be read as datetime" in err
    assert "1 value(s) of ProcessId could not be read as long" in err


def test_query_data_with_nothing_readable_is_an_input_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not telemetry\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["query", "DeviceProcessEvents | count", "--data", str(notes)])
    assert result.exit_code == 2
    assert "nothing could be read" in result.stderr and "skipped:" in result.stderr


def test_query_over_data_with_skipped_input_says_so_and_exits_0(tmp_path: Path) -> None:
    from tests.cli.test_hunt_command import telemetry

    telemetry(tmp_path)
    (tmp_path / "empty.evtx").write_bytes(b"")
    code, out, err = run("query", "--data", str(tmp_path), "DeviceRegistryEvents | count")
    assert code == 0, err
    assert "empty.evtx: the file is empty" in err
    assert err.rstrip().splitlines()[-1].startswith("input skipped: 1 file(s) not read - ")
    assert "3" in out
