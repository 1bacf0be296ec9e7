"""Printing result tables on the terminal (rich) or as JSON / JSONL / CSV on stdout.

Every value shown in a rich table or line is a ``rich.text.Text`` made by :func:`cell` or
:func:`plain`: its control and invisible characters are shown as escapes (``\\x1b``, ``\\n``,
``\\u202e``) and rich reads no markup (``[red]``, ``[link=...]``) or emoji codes in it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click
import pyarrow as pa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trustwatch.inert import visible
from trustwatch.output import json_rows, records_text, text_cell, to_csv, to_json, to_jsonl

F = TypeVar("F", bound=Callable[..., Any])


def cell(value: object, style: str = "") -> Text:
    """One table cell or printed value, inert: on one line, escapes visible, no markup."""
    return Text(visible("" if value is None else value), style=style)


def plain(value: object, style: str = "") -> Text:
    """Several lines of text, inert but for its line feeds: for ``Console.print``."""
    return Text(visible(value, "\n"), style=style)


def write_exact(text: str) -> None:
    """Machine output (JSON, JSONL, CSV) on stdout as it is.

    ``click.echo`` strips what looks like an ANSI sequence (``\x1b[2J``) when stdout is not a
    terminal, which would change a CSV value; ``color=True`` turns that off. JSON text is inert
    already (``trustwatch.inert.json_text``); CSV is byte-exact by contract.
    """
    click.echo(text, nl=False, color=True)


FORMATS = ("table", "json", "jsonl", "csv")


def format_option(
    default: str = "table",
    help_text: str = "table: the terminal view; json, jsonl, csv: the records on stdout.",
) -> Callable[[F], F]:
    """``--format``: the terminal view, or records as JSON, JSON Lines or CSV (every command
    prints its results through :func:`emit` or :func:`print_result`)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help=help_text,
    )


def emit(
    fmt: str,
    records: Callable[[], Sequence[Mapping[str, Any]]],
    view: Callable[[], None],
    *,
    indent: int | None = 2,
    csv: Callable[[], str] | None = None,
) -> None:
    """One command's results on stdout: ``view()`` draws the terminal view (``table``);
    otherwise ``records()`` - the same results as row objects - are written as JSON (an array,
    ``indent``), JSON Lines or CSV (see :func:`trustwatch.output.records_text`; ``csv()``
    instead, for a command whose CSV has columns of its own)."""
    if fmt == "table":
        view()
    elif fmt == "csv" and csv is not None:
        write_exact(csv())
    else:
        write_exact(records_text(records(), fmt, indent=indent))


def print_result(table: pa.Table, fmt: str) -> None:
    """Write one result table to stdout in the chosen format."""
    if fmt == "json":
        write_exact(to_json(table) + "\n")
    elif fmt == "jsonl":
        write_exact(to_jsonl(table))
    elif fmt == "csv":
        write_exact(to_csv(table))
    else:
        print_table(table)


def stdout_console(pipe_width: int) -> Console:
    """On a terminal, fit the screen; into a pipe or file, lines up to ``pipe_width``."""
    tty = sys.stdout.isatty()
    return Console(
        file=sys.stdout, soft_wrap=not tty, width=None if tty else pipe_width, emoji=False
    )


def print_table(table: pa.Table) -> None:
    tty = sys.stdout.isatty()
    console = stdout_console(100_000)  # into a pipe or file, never wrap a cell
    grid = Table(show_lines=False, header_style="bold")
    for name in table.column_names:
        grid.add_column(cell(name), overflow="fold", no_wrap=not tty)
    for row in json_rows(table):
        grid.add_row(*[cell(text_cell(v)) for v in row.values()])
    console.print(grid)
    console.print(f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}", style="dim")
