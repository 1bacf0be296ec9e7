"""Reading and staging a large file in a second process, while the workspace stores the last chunk.

An ingest does two kinds of work per chunk of events: reading (the EVTX parser, the reader's
checks of each record, the copy into Arrow) and staging (one JSON pass over each document for
the stored columns and the de-duplication key), then storing (de-duplication against the
workspace, the raw events, the field maps' INSERTs). In one process they share the interpreter
and, in practice, one core. Here a worker process reads and stages the next chunk while the
ingest stores the last one, so both cores work. It stages pieces of ``PIECE`` documents, which
the parent merges into the ingest's chunks with :func:`trustwatch.ingest.chunks.chunks`, the
function that merges a reader's batches.

The worker is a new interpreter (``python -m trustwatch.ingest.stager FD``: no copy of the
parent's DuckDB threads or locks, and unlike multiprocessing's ``spawn`` it does not run the
caller's main module again), started on the first large file; it serves every large file of the
ingest, one at a time, over a socket pair (POSIX; elsewhere everything is read in-process)::

    parent -> worker   ("file", path, format, limits, file id, ingest id, piece size)
    worker -> parent   ("events", ref kind, position), then the staged chunk as Arrow IPC
                       messages (record batches of IPC_ROWS rows, as DuckDB makes them), b""
                       ("item", Rejected | RowBatch)
                       ("error", the reader's exception)      the file ends there
                       ("end", None)                          the file ends there

The worker stages with :func:`trustwatch.ingest.staging.stage_sql` over an in-memory DuckDB, so
a staged chunk is the very table the ingest would have made itself (a test compares workspaces
made both ways). The reader runs under the parent's limits in force. A worker that dies, or a
file the parent stops reading part way, ends the worker; the next large file starts another.
If the parent is killed, the worker sees it within 0.2 s (its parent process changes) and exits.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

from trustwatch import limits
from trustwatch.errors import IngestError
from trustwatch.ingest import chunks as chunking
from trustwatch.ingest.chunks import BATCH
from trustwatch.ingest.records import EventBatch, Item

# files at least this large (bytes: ~65,000 Sysmon events, two chunks) are read and staged by
# the worker; a file of one chunk gains nothing from the overlap, and the worker's start (~0.5 s
# here) would be its cost
WORKER_BYTES = 96 << 20
# the worker's DuckDB memory, and the rows of each Arrow message it sends (the chunk is sent in
# parts, so no second copy of it is ever made)
WORKER_MEMORY = "128MB"
IPC_ROWS = 8_192
# documents the worker stages at a time (the parent merges them into the ingest's chunks): what
# it holds at once stays small, and a staging statement per piece costs little
PIECE = 16_384
# staged pieces held here ahead of the ingest (each ~18 MB of Sysmon events); four kept the
# ingest + stager over 1 GiB at 5M events (1,039 MiB)
AHEAD = 3
# seconds the worker has to start (an interpreter and its imports: ~0.5 s here)
READY_WAIT = 60.0
# the formats the worker reads (their reader is the format's own, not a per-run variant)
WORKER_FORMATS = frozenset({"evtx"})


class Stager:
    """The worker process of one ingest (started on first use; :meth:`close` ends it)."""

    def __init__(self, chunk: int | None = None) -> None:
        self._chunk = chunk  # documents per staged chunk (default: chunking.CHUNK)
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def read(self, path: Path, fmt: str, file_id: int, ingest: int) -> Generator[Item, None, None]:
        """The items of ``path`` as its reader gives them, event batches staged.

        A reader's exception is raised here, after the items it gave (as the reader itself
        would raise it); a worker that ends unexpectedly raises :class:`IngestError`.
        """
        try:
            conn = self.start()
        except OSError as exc:
            raise IngestError(str(exc)) from exc
        chunk = self._chunk or chunking.CHUNK
        piece = min(chunk, PIECE)
        try:
            conn.send(("file", str(path), fmt, limits.current(), file_id, ingest, piece))
        except OSError as exc:
            self.close()
            raise IngestError("the staging process ended unexpectedly") from exc
        received = self._received(conn)
        # a thread takes the worker's pieces as they come, AHEAD of them at most (with the one
        # in the socket and the one being made, about a chunk): the worker stages the next chunk
        # while this process stores the last one (if nothing took them, the worker would wait on
        # its first piece and the two would take turns)
        ahead = chunking.prefetch(received, depth=AHEAD)
        try:
            yield from chunking.chunks(ahead, file_id, chunk)  # the pieces, merged
        finally:
            ahead.close()  # waits for the thread, which leaves ``received`` suspended
            received.close()

    def _received(self, conn: Connection) -> Generator[Item, None, None]:
        """What the worker sends for one file, as it comes (staged pieces of PIECE rows)."""
        finished = False
        try:
            while True:
                try:
                    kind, payload = conn.recv()
                    if kind == "events":  # its record batches, a message each, then b""
                        batches = []
                        while data := conn.recv_bytes():
                            batches.append(_batch(data))
                        table = pa.Table.from_batches(batches, schema=batches[0].schema)
                except (EOFError, OSError) as exc:
                    finished = True
                    self.close()
                    raise IngestError("the staging process ended unexpectedly") from exc
                if kind == "events":
                    ref_kind, position = payload
                    yield EventBatch(ref_kind, position=position, staged=table)
                elif kind == "item":
                    yield payload
                elif kind == "error":
                    finished = True
                    raise payload
                else:
                    finished = True
                    return
        finally:
            if not finished:  # the file was left part way: the worker is still sending it
                self.close()

    def start(self) -> Connection:
        """Start the worker, unless it runs (it starts on first use otherwise), and wait until
        it says it is ready.

        Raises:
            OSError: the worker could not be started, or ended before it was ready.
        """
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self.close()
        conn = self._spawn()
        try:
            if not conn.poll(READY_WAIT) or conn.recv() != ("ready", None):
                raise OSError("the staging process did not start")  # noqa: TRY301
        except (EOFError, OSError) as exc:
            self.close()
            raise OSError(f"the staging process did not start: {exc}") from exc
        return conn

    def _command(self, fd: int) -> list[str]:
        return [sys.executable, "-m", __name__, str(fd)]

    def _spawn(self) -> Connection:
        mine, theirs = socket.socketpair()
        # its own interpreter (``python -m``), not multiprocessing's spawn, which would run the
        # caller's main module again in the worker; trustwatch found where this one was found
        top = str(Path(__file__).resolve().parents[2])
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in (top, os.environ.get("PYTHONPATH", "")) if p),
        )
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, this module, one fd
                self._command(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        self._process, self._conn = process, Connection(mine.detach())
        return self._conn

    def close(self) -> None:
        """End the worker (waits for it)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # a worker waiting for a file sees the end, one sending fails
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve(conn: Connection) -> None:
    """The worker: read and stage the files the parent names, until it closes the pipe."""
    import duckdb

    from trustwatch.ingest import readers, staging
    from trustwatch.ingest.readers import evtx as evtx_reader

    parent = os.getppid()

    def orphaned() -> None:  # a killed parent sends nothing more: don't finish its file
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=orphaned, name="trustwatch-stager-parent", daemon=True).start()
    evtx_reader.PARSER_THREADS = 1  # this process is one of the ingest's two busy cores
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute(f"SET memory_limit = '{WORKER_MEMORY}'")  # staging streams: it needs little
    stage = staging.stage_sql(BATCH)
    pool = pa.default_memory_pool()
    try:
        conn.send(("ready", None))
    except OSError:
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        _, path, fmt, in_force, file_id, ingest, size = message
        con.execute(f"SET VARIABLE {staging.INGEST_VARIABLE} = {int(ingest)}")
        try:
            with limits.using(in_force):
                read = readers.by_name(fmt).read
                for item in chunking.chunks(read(Path(path)), file_id, size):
                    if isinstance(item, EventBatch):
                        _send_staged(conn, con, item, stage)
                        pool.release_unused()  # the chunk's memory back, before the next one
                    else:
                        conn.send(("item", item))
        except (BrokenPipeError, EOFError, ConnectionResetError):
            return  # the parent is gone or stopped reading
        except Exception as exc:  # the reader's failure, handed to the parent to report
            conn.send(("error", _portable(exc)))
            continue
        conn.send(("end", None))


def _send_staged(conn: Connection, con: Any, item: EventBatch, stage: str) -> None:
    """Stage ``item`` and send it, a record batch at a time as DuckDB produces them (the staged
    chunk is never whole in this process), then an empty message."""
    relation = con.from_arrow(item.arrow).query(BATCH, stage)
    if relation is None:
        raise IngestError("internal: the staging statement returned nothing")
    conn.send(("events", (item.ref_kind, item.position)))
    reader = relation.to_arrow_reader(IPC_ROWS)
    sent = False
    for batch in reader:
        conn.send_bytes(_ipc(batch))
        sent = True
    if not sent:  # the parent takes the schema from the first batch
        conn.send_bytes(_ipc(pa.RecordBatch.from_pylist([], schema=reader.schema)))
    item.arrow = None
    conn.send_bytes(b"")


def _ipc(batch: pa.RecordBatch) -> Any:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def _batch(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(data) as reader:
        batch: pa.RecordBatch = reader.read_next_batch()
    return batch


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else a RuntimeError with its class name and text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, tried before sending
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


if __name__ == "__main__":
    import signal

    from trustwatch.startup import skip_pandas_probe

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the ingest's: it ends this process
    try:
        skip_pandas_probe([])  # this process hands pyarrow no pandas object either
        _serve(Connection(int(sys.argv[1])))
    except BaseException:  # noqa: BLE001 - the parent reports the end; no traceback of data here
        os._exit(1)
