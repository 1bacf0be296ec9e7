"""The per-record limits every reader applies: a record's size, nesting and fields, and the
number of records of one file (``trustwatch.limits``).

Checks are cheap first: ``str.count`` of brackets, colons and commas bounds the nesting and the
fields of a JSON text, so an ordinary record costs a few C-speed scans; only a record whose
bound passes a limit is measured exactly, and the walk stops as soon as the limit is passed.
Nesting is measured before ``json.loads`` sees the text, so a deep record never reaches the
recursion limit.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trustwatch.ingest.records import EventBatch, Item, Reader, Rejected, RowBatch
from trustwatch.limits import Limits, current, exceeded

# brackets, and whole strings (so brackets inside strings are skipped), unrolled for speed
_JSON_NEST = re.compile(r'[\[\]{}]|"[^"\\]*(?:\\.[^"\\]*)*"')
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_bytes(text: str) -> int:
    """The UTF-8 size of ``text`` (lone surrogates count as the 3 bytes they would take)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def size_problem(text: str, limits: Limits) -> str | None:
    """Why a record's text is over the event-bytes limit, or None."""
    if len(text) * 4 <= limits.event_bytes:  # at most 4 bytes a character: cannot be over
        return None
    size = text_bytes(text)
    if size <= limits.event_bytes:
        return None
    return exceeded("event_bytes", limits.event_bytes, f"a record of {size:,} bytes")


def json_depth_problem(
    text: str, limits: Limits, start: int = 0, end: int | None = None
) -> str | None:
    """Why the JSON in ``text[start:end]`` nests deeper than the depth limit, or None."""
    end = len(text) if end is None else end
    if text.count("[", start, end) + text.count("{", start, end) <= limits.depth:
        return None
    depth = 0
    for match in _JSON_NEST.finditer(text, start, end):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limits.depth:
                return exceeded("depth", limits.depth, "nesting of a record")
        elif char in "]}":
            depth -= 1
    return None


def json_problem(text: str, limits: Limits, start: int = 0, end: int | None = None) -> str | None:
    """Why a JSON record text breaks the event-bytes or depth limit, or None."""
    if start or end is not None:
        stop = len(text) if end is None else end
        if (stop - start) * 4 > limits.event_bytes:
            problem = size_problem(text[start:stop], limits)
            if problem:
                return problem
        return json_depth_problem(text, limits, start, stop)
    return size_problem(text, limits) or json_depth_problem(text, limits)


def fields_bound(text: str, limits: Limits) -> int:
    """An upper bound of the fields of the JSON in ``text``: each needs a ``:`` or a ``,`` and
    at least two characters, so short texts are not even counted."""
    if len(text) // 2 + 1 <= limits.fields:
        return len(text) // 2 + 1
    return text.count(":") + text.count(",") + 1


def count_fields(value: Any, limit: int) -> int:
    """Members of objects plus items of arrays in ``value`` (all levels), counted up to just
    past ``limit`` (iterative: the depth was checked before parsing, but never rely on it)."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        node = stack.pop()
        if isinstance(node, dict):
            count += len(node)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            count += len(node)
            stack.extend(v for v in node if isinstance(v, dict | list))
    return count


def fields_problem(value: Any, limits: Limits, bound: int | None = None) -> str | None:
    """Why a parsed JSON record has more fields than the fields limit, or None.

    ``bound`` (the ``:`` and ``,`` in the record's text, plus one: every field needs one of
    them) skips the count when it cannot be over.
    """
    if bound is not None and bound <= limits.fields:
        return None
    count = count_fields(value, limits.fields)
    if count <= limits.fields:
        return None
    return exceeded("fields", limits.fields, "fields of a record")


def xml_problem(elem: ET.Element, limits: Limits) -> str | None:
    """Why a parsed XML event nests deeper or has more elements and attributes than allowed."""
    count = 0
    stack = [(elem, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.depth:
            return exceeded("depth", limits.depth, "nesting of a record")
        count += 1 + len(node.attrib)
        if count > limits.fields:
            return exceeded("fields", limits.fields, "elements and attributes of a record")
        stack.extend((child, depth + 1) for child in node)
    return None


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (``"\\ud800"`` in JSON) as U+FFFD, so it encodes as UTF-8."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def limited(read: Reader) -> Reader:
    """``read`` held to the records limit in force when a file is read."""

    def reader(path: Path) -> Iterator[Item]:
        return limit_records(read(path))

    reader.__doc__ = read.__doc__
    return reader


def limit_records(items: Iterator[Item], limits: Limits | None = None) -> Iterator[Item]:
    """A reader's items, stopped once the file has given more records than the records limit.

    The batch that passes the limit is cut at it; one Rejected says where reading stopped
    (what follows is not read, so its count is unknown: the Rejected counts the records of the
    cut batch that were not kept).
    """
    limit = (limits or current()).records
    seen = 0
    try:
        for item in items:
            size = item.count if isinstance(item, Rejected) else _size(item)
            if seen + size <= limit or isinstance(item, Rejected):
                seen += size
                yield item
                continue
            keep = max(0, limit - seen)
            over = size - keep
            first_ref = _cut(item, keep)
            if keep:
                yield item
            reason = exceeded("records", limit, "records of the file") + "; reading stopped here"
            yield Rejected(item.ref_kind, first_ref, reason, count=over)
            return
    finally:
        close: Callable[[], None] | None = getattr(items, "close", None)
        if close is not None:
            close()


def _size(item: EventBatch | RowBatch) -> int:
    return len(item.refs)


def _cut(item: EventBatch | RowBatch, keep: int) -> int:
    """Keep the first ``keep`` records of a batch; returns the ref of the first one dropped."""
    first_dropped = item.refs[keep]
    del item.refs[keep:]
    if isinstance(item, EventBatch):
        del item.docs[keep:]
    else:
        del item.rows[keep:]
    return first_dropped
