"""The ``trustwatch`` command: thin click commands over the library (see DESIGN.md's contract)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trustwatch.cli.common import echo, engine_options, limit_option, reports_errors, spark_engine
from trustwatch.cli.lazy import LazyGroup
from trustwatch.errors import InputError, TrustwatchError

if TYPE_CHECKING:
    from trustwatch.cli.ingest_cmd import SkippedInput

# Commands defined in their own modules: name -> (module, attribute, first line of its help),
# imported only when run (see cli/lazy.py); tests/cli/test_lazy_commands.py checks the lines.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "ingest": (
        "trustwatch.cli.ingest_cmd",
        "ingest",
        "Read telemetry (EVTX, event XML/JSON, Defender and Sentinel exports) into a workspace.",
    ),
    "hunt": (
        "trustwatch.cli.hunt_cmd",
        "hunt",
        "Run the certificate-abuse rule pack over telemetry and print its alerts.",
    ),
    "rules": (
        "trustwatch.cli.rules_cmd",
        "rules",
        "List, show, lint and test the analytic rules.",
    ),
    "investigate": (
        "trustwatch.cli.investigate_cmd",
        "investigate",
        "Run an alert's (or incident's) investigation guide and fill in its playbook.",
    ),
    "validate": (
        "trustwatch.cli.validate_cmd",
        "validate",
        "Emulate the scenarios on Windows hosts and network sensors; show what fires.",
    ),
    "simulate": (
        "trustwatch.cli.validate_cmd",
        "simulate",
        "Write scenarios' telemetry files, per scenario and telemetry source.",
    ),
    "atomics": (
        "trustwatch.cli.validate_cmd",
        "atomics",
        "Atomic Red Team tests for the specification's four validation tests.",
    ),
    "certs": (
        "trustwatch.cli.certs_cmd",
        "certs",
        "Certificate intelligence: classify certificates, audit trust stores, manage the lists.",
    ),
    "ct": (
        "trustwatch.cli.ct_cmd",
        "ct",
        "Certificate transparency: certificates issued for look-alikes of your domains.",
    ),
    "deploy": (
        "trustwatch.cli.deploy_cmd",
        "deploy",
        "Create or update the rules in Sentinel or Defender XDR, printing the plan first.",
    ),
    "limits": (
        "trustwatch.cli.limits_cmd",
        "limits",
        "List the limits on what trustwatch reads: name, default and value in force.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.version_option(package_name="trustwatch")
def cli(debug: bool) -> None:
    """Detect certificate trust abuse with Sentinel / Defender KQL, run anywhere."""


def _read_query(kql: str | None, file: str | None) -> tuple[str, str]:
    if file and kql:
        raise InputError("give the query as an argument or with -f FILE, not both")
    if file:
        if file == "-":
            return sys.stdin.read(), "<stdin>"
        path = Path(file)
        if not path.exists():
            raise InputError(f"query file not found: {path}")
        return path.read_text(encoding="utf-8"), str(path)
    if not kql:
        raise InputError(
            "no query given",
            hint="trustwatch query 'DeviceProcessEvents | take 10' or -f query.kql",
        )
    return kql, "<query>"


def _parse_tables(bindings: tuple[str, ...]) -> dict[str, str]:
    tables: dict[str, str] = {}
    for binding in bindings:
        name, sep, path = binding.partition("=")
        if not sep or not name or not path:
            raise InputError(
                f"--table expects NAME=PATH, got '{binding}'",
                hint="for example --table DeviceRegistryEvents=events.jsonl",
            )
        tables[name] = path
    return tables


@cli.command()
@click.argument("kql", required=False)
@click.option(
    "-f", "--file", "file", metavar="FILE", help="Read the query from FILE ('-' for stdin)."
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="NAME=PATH",
    help="Bind a JSONL, JSON array, CSV or Parquet file to a table name. Repeatable.",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="PATH",
    help="Telemetry files or folders (any format 'ingest' reads) to ingest into memory first.",
)
@click.option(
    "--workspace",
    metavar="W",
    help="Query a workspace made by 'trustwatch ingest'.",
)
@click.option(
    "--now",
    metavar="ISO8601",
    help="Pin now() (and ago()) to this UTC time; default: the current time.",
)
@engine_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--explain", is_flag=True, help="Print the compiled SQL instead of running the query."
)
@limit_option
@reports_errors
def query(
    kql: str | None,
    file: str | None,
    tables: tuple[str, ...],
    data: tuple[str, ...],
    workspace: str | None,
    now: str | None,
    engine: str,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
    fmt: str,
    explain: bool,
) -> None:
    """Run a KQL query over local tables; tables not given exist empty with their full schema.

    With --engine spark, --data takes Parquet folders (`ingest --parquet DIR` exports).
    """
    from trustwatch.api import Session
    from trustwatch.cli.render import print_result

    text, source_name = _read_query(kql, file)
    if data and workspace:
        raise InputError("give --data or --workspace, not both")
    if engine == "spark" and workspace:
        raise InputError(
            "--workspace is a DuckDB file, which the spark engine does not read",
            hint="export it with `trustwatch ingest PATH --workspace W --parquet DIR` "
            "and give --data DIR",
        )
    spark = spark_engine(engine, spark_master, spark_conf)
    bound = {**_builtin_watchlists(text), **_parse_tables(tables)}
    if spark is not None:
        telemetry, skipped = _spark_telemetry(data, spark), None
    else:
        telemetry, skipped = _telemetry(data, workspace)
    session = Session(bound, **telemetry)
    if explain:
        statements, notices = session.compile(text, now, source_name)
        for notice in notices:
            echo(f"notice: {notice}", err=True)
        for statement in statements:
            echo(session.engine.to_sql(statement.sql) + ";")
        return
    result = session.run(text, now, source_name)
    for notice in result.notices:
        echo(f"notice: {notice}", err=True)
    for table in result.tables:
        print_result(table, fmt)
    if skipped is not None:
        skipped.report()


def _builtin_watchlists(text: str) -> dict[str, Any]:
    """The built-in watchlists a query may read: none unless it calls ``_GetWatchlist``.

    The certificate lists (certifi's bundle, cryptography) are loaded only for queries that
    name them, and their module is imported only for queries that read a watchlist at all.
    """
    if "_GetWatchlist" not in text:
        return {}
    from trustwatch.certs.brands import BUILTIN_WATCHLISTS, builtin_watchlist_tables

    named = any(name.lower() in text.lower() for name in BUILTIN_WATCHLISTS)
    return dict(builtin_watchlist_tables()) if named else {}


def _spark_telemetry(data: tuple[str, ...], engine: Any) -> dict[str, Any]:
    """The Spark engine and the views of ``--data``'s Parquet folders."""
    if not data:
        return {"engine": engine}
    from trustwatch.engines.spark import parquet_views

    return {"engine": engine, "views": parquet_views(engine, data)}


def _telemetry(
    data: tuple[str, ...], workspace: str | None
) -> tuple[dict[str, Any], SkippedInput | None]:
    """The engine and table views of ``--workspace`` or of ``--data`` ingested in memory, and
    what of ``--data`` could not be read."""
    from trustwatch.ingest import pipeline

    if workspace:
        engine, views = pipeline.open_workspace_for_query(workspace)
        return {"engine": engine, "views": views}, None
    if data:
        from trustwatch.cli.ingest_cmd import SkippedInput, ingest_paths

        ws, results, skipped = ingest_paths(data, None)
        telemetry = {"engine": ws.engine, "views": pipeline.query_views(ws.engine)}
        return telemetry, SkippedInput.of(results, skipped)
    return {}, None


@cli.group()
def kql() -> None:
    """Dump each stage of the KQL front end: tokens, syntax tree, SQL, formatted KQL."""


def _kql_source(source: str) -> tuple[str, str]:
    if source == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(source)
    if path.exists():
        return path.read_text(encoding="utf-8"), str(path)
    return source, "<query>"


@kql.command("tokens")
@click.argument("source")
@limit_option
@reports_errors
def kql_tokens(source: str) -> None:
    """Print the tokens of a query (SOURCE: a file, '-' or the query text)."""
    from trustwatch.errors import Source
    from trustwatch.kql.lexer import tokenize

    text, name = _kql_source(source)
    try:
        tokens = tokenize(text)
    except TrustwatchError as exc:
        raise exc.with_source(Source(text, name)) from None
    src = Source(text, name)
    for tok in tokens:
        line, col = src.line_col(tok.span.start)
        value = "" if tok.value is None else f" {tok.value!r}"
        echo(f"{line}:{col}\t{tok.type.name}\t{tok.text!r}{value}", keep="\t")


@kql.command("ast")
@click.argument("source")
@limit_option
@reports_errors
def kql_ast(source: str) -> None:
    """Print the syntax tree of a query."""
    from trustwatch.kql.parser import parse_query

    text, name = _kql_source(source)
    echo(repr(parse_query(text, name)))


@kql.command("sql")
@click.argument("source")
@click.option(
    "--dialect", default="duckdb", show_default=True, help="sqlglot dialect of the output."
)
@click.option("--now", metavar="ISO8601", help="Pin now() in the generated SQL.")
@limit_option
@reports_errors
def kql_sql(source: str, dialect: str, now: str | None) -> None:
    """Print the SQL a query compiles to."""
    from trustwatch.api import Session

    text, name = _kql_source(source)
    statements, _ = Session().compile(text, now, name)
    for statement in statements:
        echo(statement.sql.sql(dialect=dialect, pretty=True) + ";", keep="\t\n")


@kql.command("fmt")
@click.argument("source")
@limit_option
@reports_errors
def kql_fmt(source: str) -> None:
    """Print a query in canonical KQL formatting."""
    from trustwatch.kql.parser import parse_query
    from trustwatch.kql.printer import print_query

    text, name = _kql_source(source)
    echo(print_query(parse_query(text, name)), keep="\t\n")


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="trustwatch")
    finally:
        # Leaving, Python garbage-collects every object still alive: after pyarrow, DuckDB and
        # sqlglot are loaded that is ~0.3 s at the end of every command. Frozen objects are
        # skipped (the OS takes the memory back); the command's engine and files are closed
        # already, freed when it returned.
        gc.freeze()


if __name__ == "__main__":
    main()
