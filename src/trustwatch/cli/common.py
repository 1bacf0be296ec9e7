"""What every ``trustwatch`` command shares: exit codes, the error boundary, common options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from trustwatch.errors import TrustwatchError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def reports_errors(fn: F) -> F:
    """Turn TrustwatchError into one rendered diagnostic on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except TrustwatchError as exc:
            if debug:
                raise
            click.echo(exc.render(color=_stderr_is_tty()), err=True)
            sys.exit(EXIT_USAGE)
        except Exception as exc:  # the CLI boundary: never a bare traceback without --debug
            if debug:
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "this is a trustwatch bug; run again with --debug for the traceback and report it",
                err=True,
            )
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def memory_limit_option(fn: F) -> F:
    """``--memory-limit SIZE``: DuckDB's memory during an ingest, and a workspace's hunt."""
    option = click.option(
        "--memory-limit",
        metavar="SIZE",
        help="Memory DuckDB may use, e.g. 512MB or 2GB: while ingesting (default 384MB; "
        "beyond it, rows go to the workspace file) and, for hunt --workspace, while running "
        "the rules (default 1GB).",
    )
    return option(fn)
