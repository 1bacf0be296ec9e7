"""Commands registered lazily: listed without importing, complete and correct once imported."""

from __future__ import annotations

from importlib import import_module

import click
import pytest
from click.testing import CliRunner

from trustwatch.cli.main import LAZY_COMMANDS, cli


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_help_line_is_the_commands_own(name: str) -> None:
    module, attribute, summary = LAZY_COMMANDS[name]
    command = getattr(import_module(module), attribute)
    assert isinstance(command, click.Command)
    stand_in = click.Command(name, help=summary)
    for limit in (30, 45, 74, 200):  # what `trustwatch --help` shows at any terminal width
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_command_runs_by_its_name(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {name}" in result.output


def test_help_lists_every_command_once() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = [
        line.split()[0]
        for line in result.output.split("Commands:")[1].splitlines()
        if line.startswith("  ")
    ]
    assert listed == sorted({"query", "kql", *LAZY_COMMANDS})


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["hnut"])
    assert result.exit_code == 2
    assert "No such command 'hnut'" in result.output
