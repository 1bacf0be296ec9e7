"""Run the recursive passes of the KQL front end on a stack deep enough for any allowed query.

The parser, the compiler, the printer and sqlglot's SQL generator recurse once per level of
nesting (several Python frames for one parenthesis or one nested call). The query limits
(``query-depth``, ``query-terms``, ``query-stages``) bound that nesting; this module makes sure
a query within them never meets Python's default recursion limit (1,000 frames) or the main
thread's 8 MB stack: each pass runs in a worker thread with a large stack and a recursion limit
scaled to ``query-depth``. Long ``and``/``or`` chains and pipes do not nest (balanced trees,
shared stages), so this is about parentheses and nested calls.

A RecursionError or MemoryError that still escapes (a limit raised past what the machine can
take) becomes a :class:`~trustwatch.limits.LimitExceeded` naming the limit, never an internal
error.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlglot import exp

from trustwatch import limits
from trustwatch.errors import KqlSyntaxError, Span

_R = TypeVar("_R")

FRAMES_PER_LEVEL = 30  # Python frames one nesting level may take across the passes (measured ~12)
STACK_PER_FRAME = 4 * 1024  # bytes of C stack one frame may take (measured < 3.2 KB)
_MIN_FRAMES = 20_000
MIN_STACK = 8 << 20  # the smallest stack a pass is tried on when a larger one has no room

_state = threading.local()
_lock = threading.Lock()
_active = 0  # deep calls running now: the raised recursion limit is restored after the last
_saved_limit = 0


def _budget() -> int:
    return max(_MIN_FRAMES, limits.current().query_depth * FRAMES_PER_LEVEL)


def _raise_limit(frames: int) -> None:
    global _active, _saved_limit
    with _lock:
        if _active == 0:
            _saved_limit = sys.getrecursionlimit()
        _active += 1
        if sys.getrecursionlimit() < frames:
            sys.setrecursionlimit(frames)


def _restore_limit() -> None:
    global _active
    with _lock:
        _active -= 1
        if _active == 0:
            sys.setrecursionlimit(_saved_limit)


class QueryTooLarge(KqlSyntaxError, limits.LimitExceeded):
    """A query past one of the query limits: refused where it crosses the limit."""

    default_code = "KQL190"


def limit_error(name: str, value: int, what: str, span: Span | None) -> QueryTooLarge:
    """The located error for a query breaking limit ``name`` (see :mod:`trustwatch.limits`)."""
    return QueryTooLarge(
        limits.exceeded(name, value, what),
        span=span,
        hint=f"split the query, or raise the limit with --limit {name.replace('_', '-')}=N",
    )


def check_size(text: str) -> None:
    """Refuse a query text longer than the ``query-bytes`` limit, before reading it."""
    limit = limits.current().query_bytes
    if len(text) > limit:
        raise limit_error(
            "query_bytes", limit, f"the query ({len(text):,} characters)", Span(limit, limit + 1)
        )


def too_deep(span: Span | None = None) -> QueryTooLarge:
    """The error for a query nested past what the passes can take (a raised limit)."""
    depth = limits.current().query_depth
    return limit_error("query_depth", depth, "the nesting of the query", span or Span(0, 1))


def call(fn: Callable[..., _R], *args: object, span: Span | None = None) -> _R:
    """``fn(*args)`` on a deep stack (directly if this thread already is one).

    Raises:
        whatever ``fn`` raises; RecursionError and MemoryError as LimitExceeded.
    """
    if getattr(_state, "deep", False):
        return fn(*args)
    frames = _budget()
    result: list[_R] = []
    failure: list[BaseException] = []

    def work() -> None:
        _state.deep = True
        try:
            result.append(fn(*args))
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            failure.append(exc)

    worker = _start(work, frames)
    if worker is None:  # no room for even a small stack: the query is refused, located
        raise too_deep(span)
    try:
        worker.join()
    finally:
        _restore_limit()
    if failure:
        exc = failure[0]
        if isinstance(exc, RecursionError | MemoryError):
            raise too_deep(span) from None
        raise exc
    return result[0]


def _start(work: Callable[[], None], frames: int) -> threading.Thread | None:
    """Start ``work`` on a stack for ``frames`` frames, with the recursion limit raised to
    them; where the address space has no room for that stack (``ulimit -v``), on a stack
    half as deep, and so on down to ``MIN_STACK`` (None: not even that)."""
    while True:
        worker = threading.Thread(target=work, name="trustwatch-kql", daemon=True)
        _raise_limit(frames)
        try:
            with _lock:  # the stack size is read when the thread starts
                old = threading.stack_size()
                threading.stack_size(frames * STACK_PER_FRAME)
                try:
                    worker.start()
                finally:
                    threading.stack_size(old)
        except (RuntimeError, MemoryError):  # "can't start new thread": no room for the stack
            _restore_limit()
            if frames * STACK_PER_FRAME <= MIN_STACK:
                return None
            frames //= 2
            continue
        return worker


def sql_text(tree: exp.Expr, dialect: str = "duckdb", *, pretty: bool = False) -> str:
    """sqlglot's SQL text for ``tree``, generated on a deep stack.

    Engines and commands should call this (or :meth:`CompiledStatement.to_sql`) rather than
    ``tree.sql()``: a query nested to ``query-depth`` compiles to a tree deeper than sqlglot's
    generator can walk within Python's default recursion limit.
    """

    def generate() -> str:
        return tree.sql(dialect=dialect, pretty=pretty)

    return call(generate)
