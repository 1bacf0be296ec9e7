"""hunt and validate take --engine; validate refuses spark by name until it runs there (hunt runs
on Spark: tests/engines/test_spark.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from trustwatch.cli.main import cli


@pytest.mark.parametrize("command", [["validate"]])
def test_spark_engine_is_refused_with_the_reason(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--engine", "spark"])
    assert result.exit_code == 2
    assert "not supported on the spark engine yet" in result.stderr
    assert f"`{command[0]}` runs on DuckDB only" in result.stderr


def test_duckdb_engine_is_accepted_and_documented() -> None:
    result = CliRunner().invoke(cli, ["hunt", "--help"])
    assert result.exit_code == 0 and "--engine [duckdb|spark]" in result.output
    # the default engine goes on to the command itself (here: a path that does not exist)
    result = CliRunner().invoke(cli, ["hunt", "no-such-path", "--engine", "duckdb"])
    assert "--engine" not in result.stderr


def test_spark_settings_need_the_spark_engine() -> None:
    result = CliRunner().invoke(cli, ["hunt", "no-such-path", "--spark-conf", "a=b"])
    assert result.exit_code == 2
    assert "--spark-master and --spark-conf go with --engine spark" in result.stderr
