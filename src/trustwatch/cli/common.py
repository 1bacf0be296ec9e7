"""What every ``trustwatch`` command shares: exit codes, the error boundary, common options.

Everything a command prints on the terminal goes through :func:`echo` (plain lines) or
``trustwatch.cli.render`` (rich tables): values are made inert there (:mod:`trustwatch.inert`),
because file names, log values and rule text may have been written by an attacker.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from trustwatch.errors import TrustwatchError
from trustwatch.inert import visible

F = TypeVar("F", bound=Callable[..., Any])

# 3: the command ran and found nothing in what it could read, but some input was skipped
# (files unreadable or unrecognised, records quarantined); alerts still exit 1.
EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3

# What to do about an OSError, by errno: the hint shown under its message.
OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, or write the workspace / output on another disk",
    errno.EDQUOT: "the disk quota is used up: free space, or write on another disk",
    errno.EACCES: "permission denied: check the file's and its folder's permissions",
    errno.EPERM: "operation not permitted: check the file's and its folder's permissions",
    errno.EROFS: "the file system is read-only: write the workspace / output elsewhere",
    errno.ENOENT: "check the path",
    errno.EISDIR: "a folder was given where a file is expected",
    errno.ENOTDIR: "a file was given where a folder is expected",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or give fewer files",
    errno.EIO: "the device reported an I/O error: copy the file to a sound disk and retry",
}


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def echo(text: object = "", *, err: bool = False, nl: bool = True, keep: str = "\n") -> None:
    """``click.echo`` of text made inert: unsafe characters shown as escapes (``\\x1b``).

    ``keep`` names the C0 characters printed as they are (line feeds by default: several
    lines of our own making); a value that must stay on one line passes ``keep=""``.
    """
    click.echo(visible(text, keep), err=err, nl=nl)


def os_error(exc: OSError) -> TrustwatchError:
    """An OSError as what it is (``no space left on device (ENOSPC)``) with its path and a fix."""
    code = exc.errno if isinstance(exc.errno, int) else None
    name = errno.errorcode.get(code, "") if code is not None else ""
    what = exc.strerror or (os.strerror(code) if code is not None else str(exc))
    message = what[:1].lower() + what[1:] + (f" ({name})" if name else "")
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if paths:
        message += ": " + " -> ".join(os.fsdecode(p) for p in paths)
    return TrustwatchError(message, hint=OS_HINTS.get(code or 0), code="IO001")


def boundary_error(exc: BaseException) -> TrustwatchError | None:
    """What an exception that is not a TrustwatchError means to the user, if it is known."""
    if isinstance(exc, OSError):
        return os_error(exc)
    if isinstance(exc, MemoryError):
        return TrustwatchError(
            "out of memory",
            hint="lower --memory-limit, or the record limits (--limit event-bytes=..., "
            "zip-member-bytes=...; `trustwatch limits` lists them), or read fewer files at once",
            code="TW910",
        )
    if isinstance(exc, RecursionError):
        return TrustwatchError(
            "input nested too deeply for Python's stack",
            hint="lower --limit depth=... (records) or --limit query-depth=... (queries); "
            "`trustwatch limits` lists the limits",
            code="TW911",
        )
    return None


def reports_errors(fn: F) -> F:
    """Turn TrustwatchError into one rendered diagnostic on stderr and exit code 2.

    At this boundary OSError (disk full, permission, read-only), MemoryError and RecursionError
    are reported as what they are, also exit 2; anything else is an internal error.
    """

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
            known = boundary_error(exc)
            if known is not None:
                click.echo(known.render(color=_stderr_is_tty()), err=True)
            else:
                echo(
                    f"internal error: {type(exc).__name__}: {exc}\n"
                    "this is a trustwatch bug; run again with --debug for the traceback and "
                    "report it",
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
        "the rules (default 512MB).",
    )
    return option(fn)


def _configure_limits(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """Set the process's limits before the command runs (unset ones take their defaults)."""
    from trustwatch import limits

    try:
        limits.configure(values)
    except TrustwatchError as exc:
        hint = f"; {exc.diagnostic.hint}" if exc.diagnostic.hint else ""
        raise click.BadParameter(visible(f"{exc.diagnostic.message}{hint}"), ctx, param) from None


def _duckdb_only(ctx: click.Context, param: click.Parameter, value: str) -> None:
    if value != "duckdb":
        raise click.BadParameter(
            f"not supported on the spark engine yet: `{ctx.info_name}` runs on DuckDB only "
            "(`trustwatch query --engine spark` runs KQL on Spark; see docs/spark.md)",
            ctx,
            param,
        )


def duckdb_only_engine_option(fn: F) -> F:
    """``--engine duckdb`` (the default); ``spark`` refused by name until the command runs there."""
    option = click.option(
        "--engine",
        type=click.Choice(["duckdb", "spark"]),
        default="duckdb",
        show_default=True,
        expose_value=False,
        callback=_duckdb_only,
        help="The SQL engine. This command runs on DuckDB only; spark is refused for now.",
    )
    return option(fn)


def engine_options(fn: F) -> F:
    """``--engine duckdb|spark`` with ``--spark-master URL`` and ``--spark-conf KEY=VALUE``
    (values ``engine``, ``spark_master``, ``spark_conf``; :func:`spark_engine` opens Spark)."""
    for option in reversed(
        [
            click.option(
                "--engine",
                type=click.Choice(["duckdb", "spark"]),
                default="duckdb",
                show_default=True,
                help="The SQL engine the rules run on (spark: docs/spark.md).",
            ),
            click.option(
                "--spark-master",
                metavar="URL",
                help="Spark master for --engine spark (default: $TRUSTWATCH_SPARK_MASTER or "
                "local[*]).",
            ),
            click.option(
                "--spark-conf",
                "spark_conf",
                multiple=True,
                metavar="KEY=VALUE",
                help="A Spark setting for --engine spark (spark.executor.memory=4g...). "
                "Repeatable.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def spark_engine(engine: str, master: str | None, conf: tuple[str, ...]) -> Any:
    """The Spark engine of :func:`engine_options`' values (None for ``--engine duckdb``).

    Raises:
        InputError: Spark settings without ``--engine spark``, or a setting not KEY=VALUE.
    """
    from trustwatch.errors import InputError

    if engine != "spark":
        if master or conf:
            raise InputError("--spark-master and --spark-conf go with --engine spark")
        return None
    settings: dict[str, str] = {}
    for item in conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(
                f"--spark-conf expects KEY=VALUE, got '{item}'",
                hint="for example --spark-conf spark.executor.memory=4g",
            )
        settings[key] = value
    from trustwatch.engines.select import SparkOptions, open_engine

    return open_engine("spark", SparkOptions(master=master, conf=settings))


def limit_option(fn: F) -> F:
    """``--limit NAME=VALUE`` (repeatable): the limits on what the command reads."""
    option = click.option(
        "--limit",
        "limits",
        multiple=True,
        metavar="NAME=VALUE",
        expose_value=False,
        callback=_configure_limits,
        help="Change one limit on the input, e.g. --limit event-bytes=16MB --limit depth=128. "
        "Repeatable; `trustwatch limits` lists them with their defaults.",
    )
    return option(fn)
