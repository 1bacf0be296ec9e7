"""``trustwatch limits``: the limits on what trustwatch reads, defaults and values in force."""

from __future__ import annotations

from dataclasses import asdict

import click

from trustwatch.cli.common import echo, limit_option, reports_errors
from trustwatch.cli.render import emit, format_option


def shown(name: str, value: int) -> str:
    """A limit's value as ``--limit`` takes it: sizes in the largest whole unit (``4MB``)."""
    if name.endswith("bytes"):
        for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
            if value % size == 0:
                return f"{value // size}{unit}"
    return str(value)


@click.command()
@format_option()
@limit_option
@reports_errors
def limits(fmt: str) -> None:
    """List the limits on what trustwatch reads: name, default and value in force.

    Every command that reads input takes --limit NAME=VALUE (repeatable) to change one for
    that run; sizes take a unit (512KB, 16MB, 2GB). Past a record or file limit the record or
    file is quarantined and the run goes on; past a query or YAML limit the query or file is
    refused with an error naming the limit. docs/limits.md describes each.
    """
    from trustwatch import limits as limits_module

    defaults = asdict(limits_module.DEFAULT)
    bounds = limits_module.bounds()
    now = asdict(limits_module.current())
    names = list(zip(defaults, limits_module.names(), strict=True))

    def records() -> list[dict[str, object]]:
        return [
            {"name": name, "default": defaults[key], "value": now[key], "bounds": bounds[name]}
            for key, name in names
        ]

    def view() -> None:
        width = max(len(n) for n in limits_module.names())
        echo(f"{'limit':<{width}}  {'default':>10}  {'in force':>10}  bounds")
        for key, name in names:
            default, value = shown(key, defaults[key]), shown(key, now[key])
            mark = "" if value == default else " (--limit)"
            echo(f"{name:<{width}}  {default:>10}  {value:>10}  {bounds[name]}{mark}")

    emit(fmt, records, view)
