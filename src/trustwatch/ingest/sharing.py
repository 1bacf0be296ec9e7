"""One writer per workspace file, and readers on its last committed file while it writes.

DuckDB lets one process open a database file for writing and then refuses every other open,
even a read-only one. So:

* the writer (an ingest) writes ``W.lock`` beside the workspace: its process id, command and
  start time. A second writer waits for the first (``LOCK_WAIT`` seconds, polling), then is
  refused with a message naming that process;
* the writer checkpoints after each committed file (automatic checkpoints are off while it
  holds the file), each time under an exclusive ``flock`` of ``W.lock``. Between checkpoints the
  database file itself holds exactly the last checkpoint (new rows go to the write-ahead log,
  or to blocks that checkpoint does not use);
* a reader that finds the workspace held takes a shared ``flock`` of ``W.lock``, copies the
  database file (not its log; a reflink where the file system has them) and opens the copy
  read-only: a snapshot of the last committed file, whatever the writer does meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from trustwatch.errors import IngestError

LOCK_WAIT = 30.0  # seconds a second writer waits for the first before it is refused
POLL = 0.25  # seconds between two attempts to open a workspace another process writes
_FICLONE = 0x40049409  # Linux ioctl: share a file's blocks (btrfs, XFS) instead of copying
_PID = re.compile(r"\(PID (\d+)\)")
T = TypeVar("T")


def lock_path(workspace: Path) -> Path:
    """``W.lock``, beside the workspace ``W``."""
    return workspace.with_name(workspace.name + ".lock")


def is_locked(exc: BaseException) -> bool:
    """Whether DuckDB refused to open a database file because another process holds it."""
    return isinstance(exc, duckdb.Error) and "Could not set lock on file" in str(exc)


def holder(workspace: Path, exc: BaseException | None = None) -> str:
    """Who writes ``workspace``: from ``W.lock``, else from DuckDB's message (its PID)."""
    try:
        info = json.loads(lock_path(workspace).read_text(encoding="utf-8"))
        command = str(info.get("command", ""))[:200]
        return f"process {int(info['pid'])} ({command}, since {info.get('started', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _PID.search(str(exc)) if exc is not None else None
    return f"process {found.group(1)}" if found else "another process"


def open_writer(workspace: Path, connect: Callable[[], T], wait: float) -> T:
    """``connect()``, retried ``POLL`` apart for up to ``wait`` seconds while another process
    holds ``workspace``.

    Raises:
        IngestError: the other process still held it after ``wait`` seconds (named).
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return connect()
        except duckdb.Error as exc:
            if not is_locked(exc):
                raise
            if time.monotonic() >= deadline:
                raise refused(workspace, exc, wait) from exc
        time.sleep(POLL)


def refused(workspace: Path, exc: BaseException, wait: float) -> IngestError:
    """The error for a second writer that waited ``wait`` seconds in vain."""
    return IngestError(
        f"workspace {workspace} is being written by {holder(workspace, exc)}; waited {wait:g} s",
        hint="run this again when that ingest has finished, or ingest into another workspace",
        code="ING020",
    )


class WriterLock:
    """The writer's ``W.lock``: who writes, and the flock its checkpoints hold."""

    def __init__(self, workspace: Path) -> None:
        self.path = lock_path(workspace)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        info = {
            "pid": os.getpid(),
            "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:500],
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(self.fd, 0)
        os.write(self.fd, json.dumps(info).encode())

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off readers' copies (a checkpoint rewrites the database file)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)


def snapshot(workspace: Path, exc: BaseException) -> Path:
    """A copy of the database file as of the writer's last checkpoint, in a new temp folder.

    Raises:
        IngestError: the process holding the workspace is not a trustwatch ingest (no
            ``W.lock``), or the copy cannot be made (no room in the temp folder).
    """
    try:
        fd = os.open(lock_path(workspace), os.O_RDONLY)
    except OSError as missing:
        raise IngestError(
            f"workspace {workspace} is open for writing in {holder(workspace, exc)}",
            hint="query it when that process has finished",
            code="ING021",
        ) from missing
    folder = Path(tempfile.mkdtemp(prefix="trustwatch-snapshot-"))
    copy = folder / workspace.name
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            _copy(workspace, copy)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as failed:
        shutil.rmtree(folder, ignore_errors=True)
        raise IngestError(
            f"cannot copy workspace {workspace} to read it while it is written: "
            f"{(failed.strerror or str(failed)).lower()}",
            hint="free space in the temp folder (TMPDIR), or query when the ingest has finished",
            code="ING022",
        ) from failed
    finally:
        os.close(fd)
    return copy


def _copy(source: Path, target: Path) -> None:
    """``target`` as a copy of ``source``: a reflink when the file system can, else bytes."""
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
        shutil.copyfileobj(src, dst, 1 << 20)


def discard(copy: Path) -> None:
    """Remove a snapshot (an open DuckDB connection keeps reading it until it closes)."""
    shutil.rmtree(copy.parent, ignore_errors=True)
