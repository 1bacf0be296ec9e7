"""What every command shares: --limit, `trustwatch limits`, and the error boundary."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from trustwatch import limits
from trustwatch.cli.common import reports_errors
from trustwatch.cli.main import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


READERS = [
    ("query", "print x = 1"),
    ("ingest", "x.evtx", "--workspace", "w.duckdb"),
    ("hunt", "x.evtx"),
    ("validate", "nope"),
    ("simulate", "nope", "--out", "o"),
    ("kql", "tokens", "x"),
    ("kql", "ast", "x"),
    ("kql", "sql", "x"),
    ("kql", "fmt", "x"),
    ("rules", "list"),
    ("rules", "lint"),
    ("certs", "check", "x"),
    ("limits",),
]


@pytest.mark.parametrize("args", READERS, ids=[" ".join(a[:2]) for a in READERS])
def test_a_bad_limit_is_a_usage_error_listing_the_names(args: tuple[str, ...]) -> None:
    code, _, stderr = run(*args, "--limit", "colour=3")
    assert code == 2
    assert "unknown limit 'colour'" in stderr
    assert ", ".join(limits.names()) in " ".join(stderr.split())
    code, _, stderr = run(*args, "--limit", "depth=lots")
    assert code == 2 and "'lots' is not a positive number" in stderr


@pytest.mark.parametrize(
    "args",
    [("kql", "tokens", "x"), ("kql", "fmt", "x"), ("query", "print x = 1"), ("limits",)],
    ids=["kql tokens", "kql fmt", "query", "limits"],
)
def test_limits_are_set_before_the_command_runs(args: tuple[str, ...]) -> None:
    code, _, stderr = run(*args, "--limit", "depth=7", "--limit", "event-bytes=1MB")
    assert code == 0, stderr
    assert limits.current().depth == 7 and limits.current().event_bytes == 1 << 20
    assert run(*args)[0] == 0  # a command without --limit runs with the defaults
    assert limits.current() == limits.DEFAULT


def test_limits_command_lists_every_limit_with_its_default_and_value() -> None:
    code, stdout, _ = run("limits", "--limit", "event-bytes=16MB", "--limit", "depth=128")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in stdout.splitlines()[1:]}
    assert list(lines) == limits.names()
    bounds = limits.bounds()
    assert lines["event-bytes"][1:3] == ["4MB", "16MB"]
    assert " ".join(lines["event-bytes"][3:]) == bounds["event-bytes"] + " (--limit)"
    assert lines["depth"][1:3] == ["64", "128"] and lines["depth"][-1] == "(--limit)"
    assert lines["records"][1:3] == ["50000000", "50000000"]
    assert " ".join(lines["records"][3:]) == bounds["records"]
    code, stdout, _ = run("limits", "--format", "json")
    assert code == 0
    rows = json.loads(stdout)
    assert {r["name"] for r in rows} == set(limits.names())
    assert all(r["default"] == r["value"] for r in rows)
    assert all(r["bounds"] == bounds[r["name"]] for r in rows)
    code, stdout, _ = run("limits", "--format", "jsonl")
    assert code == 0 and [json.loads(line) for line in stdout.splitlines()] == rows
    code, stdout, _ = run("limits", "--format", "csv")
    assert code == 0
    assert stdout.splitlines()[0] == "name,default,value,bounds"
    assert len(stdout.splitlines()) == len(rows) + 1


def boundary(exc: BaseException) -> tuple[int, str]:
    """Exit code and stderr of a command that raises ``exc``, behind ``reports_errors``."""

    @click.command()
    @reports_errors
    def failing() -> None:
        raise exc

    result = CliRunner().invoke(failing, [])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/cases/ws.duckdb"),
            "error[IO001]: no space left on device (ENOSPC): /cases/ws.duckdb",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/cases/out.jsonl"),
            "error[IO001]: permission denied (EACCES): /cases/out.jsonl",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/ro/ws.duckdb"),
            "error[IO001]: read-only file system (EROFS): /mnt/ro/ws.duckdb",
        ),
        (MemoryError(), "error[TW910]: out of memory"),
        (RecursionError("maximum recursion depth exceeded"), "error[TW911]: input nested too"),
    ],
    ids=["ENOSPC", "EACCES", "EROFS", "MemoryError", "RecursionError"],
)
def test_the_boundary_reports_system_errors_as_what_they_are(
    exc: BaseException, expected: str
) -> None:
    code, stderr = boundary(exc)
    assert code == 2
    assert stderr.startswith(expected)
    assert "hint:" in stderr
    assert "bug" not in stderr


def test_an_os_error_names_a_hostile_path_inert() -> None:
    code, stderr = boundary(OSError(errno.ENOSPC, "No space left on device", "/x/\x1b[2J.db"))
    assert code == 2 and "/x/\\x1b[2J.db" in stderr and "\x1b" not in stderr


def test_an_unknown_exception_is_still_an_internal_error() -> None:
    code, stderr = boundary(ValueError("odd \x1b[2J"))
    assert code == 2
    assert stderr.startswith("internal error: ValueError: odd \\x1b[2J")


def test_a_folder_given_as_a_query_file_is_reported_with_its_path(tmp_path: Path) -> None:
    code, _, stderr = run("query", "-f", str(tmp_path))
    assert code == 2
    assert stderr.startswith(f"error[IO001]: is a directory (EISDIR): {tmp_path}")
