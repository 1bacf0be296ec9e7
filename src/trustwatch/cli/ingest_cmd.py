"""``trustwatch ingest``: telemetry files into a workspace, with a per-file account.

File names and quarantine reasons are attacker-chosen text: they are printed inert
(``trustwatch.cli.common.echo``, ``trustwatch.cli.render.cell``). Input that could not be read
ends the output with one summary line (:class:`SkippedInput`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trustwatch.cli.common import (
    EXIT_USAGE,
    echo,
    limit_option,
    memory_limit_option,
    reports_errors,
)
from trustwatch.cli.render import cell
from trustwatch.engines.base import Engine
from trustwatch.errors import InputError
from trustwatch.inert import visible
from trustwatch.ingest import pipeline, readers
from trustwatch.ingest.workspace import FileStats, Workspace


def ingest_with_progress(
    ws: Workspace,
    planned: list[pipeline.Planned],
    skipped: list[tuple[Path, str]],
    *,
    quiet_summary: bool = False,
) -> list[FileStats]:
    """Ingest the planned files into ``ws`` with a progress bar on stderr (on a terminal)."""
    err = Console(stderr=True, emoji=False)
    total = sum(p.stat().st_size for p, _, _ in planned) or 1
    done_bytes = 0
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[records]:>10,} records"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("ingest", total=total, records=0)

        def on_progress(stats: FileStats, position: int | None) -> None:
            done = done_bytes + (position or 0)
            progress.update(
                task,
                completed=done,
                records=stats.read,
                description=visible(Path(stats.path).name)[:40],
            )

        def on_file(stats: FileStats) -> None:
            nonlocal done_bytes
            done_bytes += Path(stats.path).stat().st_size
            progress.update(task, completed=done_bytes)

        results = ws.ingest(planned, on_file=on_file, on_progress=on_progress)
    print_resumed(ws, results)
    if not quiet_summary:
        print_summary(results, skipped)
        for table, n in sorted(ws.assembled.items()):
            if n:
                echo(
                    f"{table}: {n} row(s) rebuilt from all stored events "
                    "(PowerShell script blocks joined across files)"
                )
    else:
        for stats in results:
            if stats.quarantined:
                first = f" - {stats.problems[0]}" if stats.problems else ""
                echo(
                    f"quarantined: {stats.path}: {stats.quarantined:,} record(s) could not be read"
                    + first,
                    err=True,
                    keep="",
                )
                if stats.last_problem:
                    echo(
                        f"quarantined: {stats.path}: the last - {stats.last_problem}",
                        err=True,
                        keep="",
                    )
        print_failed(results)
        print_untimed(results)
    return results


def print_resumed(ws: Workspace, results: list[FileStats]) -> None:
    """On stderr: interrupted ingests finished now, and files already in the workspace."""
    for ingest in ws.resumed:
        echo(
            f"resumed: ingest {ingest} had been interrupted; its stored files are now linked "
            "(processes created in a later file)",
            err=True,
        )
    done = [s for s in results if s.skipped_ingest is not None]
    if done:
        by = sorted({s.skipped_ingest for s in done if s.skipped_ingest is not None})
        echo(
            f"resumed: {len(done)} file(s) already in the workspace (stored by ingest "
            f"{', '.join(map(str, by))}) were not read again",
            err=True,
        )


def readable(results: list[FileStats]) -> bool:
    """Whether the files gave any record, or are already in the workspace."""
    return any(s.stored + s.duplicates or s.skipped_ingest is not None for s in results)


def ingest_paths(
    paths: tuple[str, ...], workspace: str | None, memory_limit: str | None = None
) -> tuple[Workspace, list[FileStats], list[tuple[Path, str]]]:
    """Ingest telemetry PATHs (files the readers do not know are skipped) into ``workspace``
    (None: in memory), with the progress bar; the workspace is closed if the ingest fails.

    Raises:
        InputError: not one record in the PATHs could be read (the skipped files are listed).
    """
    planned, skipped = pipeline.plan(paths, skip_unknown=True)
    ws = Workspace(workspace, memory_limit=memory_limit)
    try:
        results = ingest_with_progress(ws, planned, skipped, quiet_summary=True)
    except BaseException:
        ws.close()
        raise
    for _, why in skipped:
        echo(f"skipped: {why}", err=True, keep="")
    if not readable(results):
        ws.close()
        raise InputError(
            "nothing could be read from the given files",
            hint="trustwatch ingest --list-formats shows what trustwatch reads",
        )
    return ws, results, skipped


def print_summary(results: list[FileStats], skipped: list[tuple[Path, str]]) -> None:
    """The per-file account on stdout: read = stored + quarantined + duplicates."""
    out = Console(soft_wrap=False, width=max(160, Console().width), emoji=False)
    table = Table(title="ingest", show_lines=False)
    for name in (
        "file",
        "format",
        "read",
        "stored",
        "quarantined",
        "duplicates",
        "unmapped",
        "rows by table",
    ):
        table.add_column(
            name,
            justify="right"
            if name in {"read", "stored", "quarantined", "duplicates", "unmapped"}
            else "left",
        )
    for s in results:
        rows = ", ".join(f"{t} {n}" for t, n in sorted(s.tables.items())) or "-"
        if s.skipped_ingest is not None:
            rows = f"already stored by ingest {s.skipped_ingest}: not read again"
        elif s.failed:
            rows += " (file not read to its end)"
        table.add_row(
            *map(
                cell,
                (
                    Path(s.path).name,
                    s.format,
                    s.read,
                    s.stored,
                    s.quarantined,
                    s.duplicates,
                    s.unmapped,
                    rows,
                ),
            )
        )
    out.print(table)
    for s in results:
        for problem in s.problems:
            echo(f"quarantined: {s.path}: {problem}", err=True, keep="")
        if s.last_problem:
            more = f"{s.quarantined - len(s.problems):,} more record(s)"
            echo(
                f"quarantined: {s.path}: ... {more}; the last: {s.last_problem}", err=True, keep=""
            )
    print_failed(results)
    print_untimed(results)
    for _, why in skipped:
        echo(f"skipped: {why}", err=True, keep="")


def print_failed(results: list[FileStats]) -> None:
    """On stderr, each file that could not be read (to its end) and why."""
    for s in results:
        failed = s.failed
        if failed:
            kept = f" ({s.stored} record(s) before it stored)" if s.stored else ""
            echo(f"unreadable: {s.path}: {failed}{kept}", err=True, keep="")


def print_untimed(results: list[FileStats]) -> None:
    """On stderr, each file with events stored without a time (an impossible timestamp)."""
    for s in results:
        if s.bad_times:
            echo(
                f"untimed: {s.path}: {s.bad_times} event(s) with an impossible time (Windows "
                "zero time, before 1970 or over a year ahead) stored with an empty Timestamp: "
                "kept for queries, but no scheduled rule's window holds them",
                err=True,
                keep="",
            )


@dataclass(frozen=True, slots=True)
class SkippedInput:
    """What a run could not read: files unrecognised or unreadable, records quarantined."""

    unrecognised: int = 0  # files no reader knows (``skipped:`` lines)
    unreadable: int = 0  # files that failed, whole or after some records (``unreadable:``)
    quarantined: int = 0  # records quarantined (``quarantined:`` lines)
    quarantined_files: int = 0  # files with quarantined records
    untimed: int = 0  # events stored with an impossible time: no rule window holds them
    workspace: str | None = None  # where the quarantine table is kept (None: in memory)
    earlier: bool = False  # the account of the workspace's earlier ingests (no lines above)

    @classmethod
    def of(
        cls,
        results: list[FileStats],
        skipped: list[tuple[Path, str]],
        workspace: str | None = None,
    ) -> SkippedInput:
        """The account of one ingest's results and the files it did not recognise."""
        return cls(
            unrecognised=len(skipped),
            unreadable=sum(bool(s.failed) for s in results),
            quarantined=sum(s.quarantined for s in results),
            quarantined_files=sum(bool(s.quarantined) for s in results),
            untimed=sum(s.bad_times for s in results),
            workspace=workspace,
        )

    @classmethod
    def of_workspace(cls, engine: Engine, workspace: str) -> SkippedInput:
        """The account of every ingest into a workspace (its files' latest rows)."""
        return cls(**pipeline.file_account(engine), workspace=workspace, earlier=True)

    def __bool__(self) -> bool:
        return bool(self.unrecognised or self.unreadable or self.quarantined or self.untimed)

    def line(self) -> str:
        """The one-line summary (each file's reason is on a line printed before it)."""
        parts = []
        if self.unrecognised:
            parts.append(f"{self.unrecognised} file(s) not read")
        if self.unreadable:
            parts.append(f"{self.unreadable} file(s) unreadable (whole or in part)")
        if self.quarantined:
            parts.append(
                f"{self.quarantined:,} record(s) quarantined in {self.quarantined_files} file(s)"
            )
        if self.untimed:
            parts.append(f"{self.untimed:,} event(s) stored without a time")
        where = ""
        if self.quarantined and self.workspace:
            where = (
                f"; every quarantined record and its reason: {self.workspace}, table _quarantine"
            )
        elif self.quarantined:
            where = "; ingest with --workspace W to keep every quarantined record and its reason"
        if self.earlier:
            return (
                "input skipped when the workspace was ingested: " + ", ".join(parts) + " - the "
                f"results cover only the rest (every file's account: {self.workspace}, tables "
                "_files and _quarantine)"
            )
        return (
            "input skipped: " + ", ".join(parts) + " - the results cover only the rest "
            f"(reasons: the skipped:, unreadable:, quarantined: and untimed: lines above{where})"
        )

    def report(self) -> None:
        """Print the summary line on stderr, if anything was skipped."""
        if self:
            echo(self.line(), err=True, keep="")


@click.command()
@click.argument("paths", nargs=-1, required=False)
@click.option("--workspace", metavar="W", help="DuckDB workspace file to add to (created if new).")
@click.option(
    "--parquet",
    metavar="DIR",
    help="Also write every table as Parquet under DIR/<Table>/day=YYYY-MM-DD/.",
)
@click.option(
    "--input-format",
    metavar="NAME",
    help="Read every file as this format instead of detecting it (see --list-formats).",
)
@click.option(
    "--input-table",
    metavar="TABLE",
    help="The table of exported rows that do not name it (e.g. DeviceRegistryEvents).",
)
@click.option("--list-formats", is_flag=True, help="List the input formats and exit.")
@memory_limit_option
@limit_option
@reports_errors
def ingest(
    paths: tuple[str, ...],
    workspace: str | None,
    parquet: str | None,
    input_format: str | None,
    input_table: str | None,
    list_formats: bool,
    memory_limit: str | None,
) -> None:
    """Read telemetry (EVTX, event XML/JSON, Defender and Sentinel exports) into a workspace.

    Each file is stored whole or not at all: an interrupted ingest keeps the files it
    finished, and running the same command again reads only the rest (files already in the
    workspace are not read again; re-read records are counted as duplicates, never stored
    twice). Records that cannot be read go to the workspace's quarantine. Exit 0 if anything
    was read, 2 if nothing could be.
    """
    if list_formats:
        for fmt in readers.formats():
            echo(f"{fmt.name:<16} {fmt.description}")
        return
    if not paths:
        raise InputError(
            "no files given", hint="trustwatch ingest logs/*.evtx --workspace ws.duckdb"
        )
    if not workspace and not parquet:
        raise InputError(
            "say where to store the tables: --workspace W (DuckDB file) and/or --parquet DIR"
        )
    # every path and option is checked before the workspace is opened or created
    planned, skipped = pipeline.plan(
        paths, input_format, input_table=input_table, skip_unknown=True
    )
    ws = Workspace(workspace, memory_limit=memory_limit)
    try:
        results = ingest_with_progress(ws, planned, skipped)
        if parquet:
            written = ws.export_parquet(Path(parquet))
            echo(
                f"parquet: {sum(written.values())} rows in {len(written)} tables under {parquet}",
                err=True,
                keep="",
            )
    finally:
        ws.close()
    if not readable(results):
        echo("error: nothing could be read from the given files", err=True)
        sys.exit(EXIT_USAGE)
    SkippedInput.of(results, skipped, workspace).report()
