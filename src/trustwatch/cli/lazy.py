"""A click group that imports a command's module only when that command runs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import import_module
from typing import Any

import click

from trustwatch.startup import skip_pandas_probe


class LazyGroup(click.Group):
    """A group with commands named by ``(module, attribute, help line)``, imported on use.

    ``--help`` lists them by their help line without importing anything: the command modules
    pull in pyarrow, DuckDB, sqlglot and rich, which listing needs none of.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, tuple[str, str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        if known is not None or cmd_name not in self.lazy_commands:
            if known is not None and not self._listing:  # `query` and the other eager ones
                skip_pandas_probe(sys.argv[1:])  # the command runs: spare it pandas' import
            return known
        module, attribute, summary = self.lazy_commands[cmd_name]
        if self._listing:  # the help's command list needs a name and a line, nothing more
            return click.Command(cmd_name, help=summary)
        command = getattr(import_module(module), attribute)
        skip_pandas_probe(sys.argv[1:])  # the command runs: spare it pyarrow's pandas import
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False
