"""The reader's event batches as the chunks an ingest stages: Arrow tables of a file's documents.

Used by the workspace (in-process reading) and by the stager process alike, so both stage the
same chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from queue import Empty, Queue
from typing import cast

import pyarrow as pa

from trustwatch.ingest.records import EventBatch, Item, RefKind, RowBatch

BATCH = "_tw_batch"  # the name a chunk has in the staging statement
CHUNK = 65_536  # documents staged, checked and mapped together (the readers batch fewer)
HANDOFF = 1_024  # light items (rejected records) the read-ahead thread hands over together
_DONE = object()


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


def chunks(items: Iterable[Item], file_id: int, size: int | None = None) -> Iterator[Item]:
    """The reader's event batches as Arrow, merged into chunks of up to ``size`` documents
    (default ``CHUNK``); or, in the same way, pieces already staged (``EventBatch.staged``, from
    the stager process) into staged chunks.

    A chunk ends at ``size`` documents, at an item that is not events, or where the kind of
    reference changes. Each small batch is copied into Arrow as it comes and its Python strings
    let go, so a chunk's documents are held once, in Arrow; other items pass through in their
    place. If ``items`` fails, the batches it gave before are handed on first.
    """
    size = size or CHUNK
    pending: list[pa.Table] = []
    rows, position = 0, None
    kind: RefKind = "record"
    staged = False  # the pending tables are staged pieces

    def merged() -> EventBatch:
        nonlocal rows
        table = pa.concat_tables(pending)
        batch = EventBatch(kind, position=position)
        if staged:
            batch.staged = table
        else:
            batch.arrow = table
        pending.clear()
        rows = 0
        return batch

    try:
        for item in items:
            if not isinstance(item, EventBatch):
                if pending:
                    yield merged()
                yield item
                continue
            piece = item.staged is not None
            if pending and (item.ref_kind != kind or piece != staged):
                yield merged()
            if piece:
                table = item.staged
            else:
                table = item.arrow if item.arrow is not None else to_arrow(item, file_id)
            item.refs, item.docs, item.arrow, item.staged = [], [], None, None
            pending.append(table)
            rows, kind, position = rows + table.num_rows, item.ref_kind, item.position
            staged = piece
            if rows >= size:
                yield merged()
    except Exception:
        if pending:
            yield merged()
        raise
    if pending:
        yield merged()


def to_arrow(batch: EventBatch, file_id: int) -> pa.Table:
    """A batch's references and documents as an Arrow table (``ref``, ``file``, ``doc``).

    A lone surrogate (from a reader that decoded invalid UTF-16) becomes U+FFFD, as invalid
    bytes do: Arrow strings are UTF-8.
    """
    try:
        docs = pa.array(batch.docs, pa.string())
    except UnicodeEncodeError:
        docs = pa.array(
            [d.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for d in batch.docs],
            pa.string(),
        )
    return pa.table(
        {
            "ref": pa.array(batch.refs, pa.int64()),
            "file": pa.array([file_id] * len(batch.refs), pa.int32()),
            "doc": docs,
        }
    )


def prefetch(items: Iterable[Item], depth: int = 1) -> Generator[Item, None, None]:
    """Read ahead in a thread: the parser (Rust, GIL released) works while DuckDB does.

    At most ``depth`` items wait; an error in the reader is raised here, where it is used.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        # items travel in lists: a list ends with a batch, or after HANDOFF light items (a
        # reader may reject a record per line: one hand-off each cost more than the reading)
        held: list[Item] = []
        try:
            for item in items:
                if stop.is_set():
                    return
                held.append(item)
                if len(held) >= HANDOFF or isinstance(item, EventBatch | RowBatch):
                    queue.put(held)
                    held = []
            if held:
                queue.put(held)
        except BaseException as exc:  # handed to the consumer, raised there
            if held:
                queue.put(held)
            queue.put(_Failure(exc))
        queue.put(_DONE)

    thread = threading.Thread(target=produce, name="trustwatch-reader", daemon=True)
    thread.start()
    try:
        while True:
            got = queue.get()
            if got is _DONE:
                return
            if isinstance(got, _Failure):
                raise got.error
            yield from cast(list[Item], got)
    finally:
        stop.set()
        while thread.is_alive():  # let a blocked producer finish
            try:
                queue.get_nowait()
            except Empty:
                thread.join(0.05)
