"""The properties the fuzzers check, as plain functions shared by the tests and ``bench/fuzz.py``.

Each check returns ``"ok"`` or what the input was refused with (an error code) and raises
:class:`PropertyFailed` when a property is broken: an exception that is not a
``TrustwatchError``, an error without a location, a printed query that parses differently, a
reader item of the wrong kind, or a file whose counts do not add up.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from trustwatch.errors import TrustwatchError

NOW = datetime(2024, 5, 2, tzinfo=UTC)


class PropertyFailed(AssertionError):
    """A fuzz property is broken; ``detail`` is the exception or the difference found."""

    def __init__(self, prop: str, detail: str) -> None:
        super().__init__(f"{prop}: {detail}")
        self.prop = prop
        self.detail = detail


def _crash(prop: str, exc: BaseException) -> PropertyFailed:
    tail = "".join(traceback.format_exception(exc)[-6:])
    return PropertyFailed(prop, f"{type(exc).__name__} escaped: {str(exc)[:300]}\n{tail}")


def _check_located(prop: str, exc: TrustwatchError, text: str) -> str:
    """The error has a span inside ``text`` and renders; returns its code."""
    span = exc.diagnostic.span
    if span is None:
        raise PropertyFailed(prop, f"{exc.code} without a location: {str(exc)[:300]}")
    if not 0 <= span.start <= span.end <= len(text):
        raise PropertyFailed(prop, f"{exc.code} span {span} outside the text ({len(text)} chars)")
    try:
        exc.render()
    except Exception as render_exc:  # any failure to render is a finding
        raise _crash(f"{prop} (rendering the error)", render_exc) from render_exc
    return exc.code


# --- KQL -----------------------------------------------------------------------------------------


def check_parse(text: str) -> str:
    """Parsing returns a tree or raises a located ``TrustwatchError``; nothing else."""
    from trustwatch.kql.parser import parse_query

    try:
        parse_query(text)
    except TrustwatchError as exc:
        return _check_located("parse", exc, text)
    except Exception as exc:  # any other exception is what the property forbids
        raise _crash("parse", exc) from exc
    return "ok"


def check_round_trip(text: str) -> str:
    """A query that parses prints (``kql fmt``) to text that parses to the same tree."""
    from trustwatch.kql.parser import parse_query
    from trustwatch.kql.printer import print_query

    try:
        tree = parse_query(text)
    except TrustwatchError as exc:
        return exc.code
    except Exception as exc:
        raise _crash("round trip (parse)", exc) from exc
    try:
        printed = print_query(tree)
    except TrustwatchError as exc:  # a refusal (a limit) is an answer, if located
        return _check_located("round trip (print)", exc, text)
    except Exception as exc:
        raise _crash("round trip (print)", exc) from exc
    try:
        again = parse_query(printed)
    except TrustwatchError as exc:
        raise PropertyFailed(
            "round trip", f"the printed query does not parse: {exc}\nprinted:\n{printed[:2000]}"
        ) from exc
    except Exception as exc:
        raise _crash("round trip (re-parse)", exc) from exc
    if not same_tree(again, tree):
        raise PropertyFailed("round trip", f"re-parsing changed the tree; printed:\n{printed}")
    return "ok"


def same_tree(a: object, b: object) -> bool:
    """Syntax trees equal but for spans, NaN equal to NaN; iterative (trees may be deep)."""
    stack: list[tuple[Any, Any]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if is_dataclass(x) and not isinstance(x, type):
            stack += [(getattr(x, f.name), getattr(y, f.name)) for f in fields(x) if f.compare]
        elif isinstance(x, list | tuple):
            if len(x) != len(y):
                return False
            stack += zip(x, y, strict=True)
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack += [(x[k], y[k]) for k in x]
        elif isinstance(x, float) and math.isnan(x):
            if not math.isnan(y):
                return False
        elif x != y:
            return False
    return True


@cache
def session() -> Any:
    """One session for every query: the shipped tables, three of them with a few odd rows."""
    from trustwatch.api import Session

    odd = "certutil -addstore -f root c.cer \x1b[2J\u202e \0 é"
    process = [
        {
            "Timestamp": "2024-05-01T10:00:00Z",
            "DeviceName": "ws1",
            "DeviceId": "d1",
            "FileName": "certutil.exe",
            "ProcessCommandLine": odd,
            "ProcessId": 42,
            "AdditionalFields": '{"a": [1, {"b": 2}], "k": "v"}',
        },
        {"Timestamp": "1601-01-01T00:00:00Z", "DeviceName": None, "ProcessId": -1},
        {},
    ]
    registry = [
        {
            "Timestamp": "2024-05-01T10:00:01Z",
            "DeviceId": "d1",
            "RegistryKey": r"HKLM\SOFTWARE\Microsoft\SystemCertificates\Root\Certificates\AB",
            "RegistryValueName": "Blob",
        },
        {},
    ]
    network = [{"Timestamp": "2024-05-01T10:00:02Z", "RemoteIP": "10.0.0.1", "RemotePort": 443}]
    return Session(
        {
            "DeviceProcessEvents": process,
            "DeviceRegistryEvents": registry,
            "DeviceNetworkEvents": network,
        }
    )


def check_pipeline(text: str, run: bool = True) -> str:
    """Compiling (and running, on the shared session) gives a result or a located error."""
    try:
        if run:
            session().run(text, NOW)
        else:
            session().compile(text, NOW)
    except TrustwatchError as exc:
        return _check_located("compile and run" if run else "compile", exc, text)
    except Exception as exc:
        raise _crash("compile and run" if run else "compile", exc) from exc
    return "ok"


# --- readers -------------------------------------------------------------------------------------


def check_reader(path: Path) -> str:
    """``readers.detect`` and the format's reader yield only batches and rejections.

    Only a ``TrustwatchError`` may escape; every batch has one ref per document or row, and
    every event document is a JSON object.
    """
    from trustwatch.ingest import readers

    try:
        fmt = readers.detect(path)
    except TrustwatchError as exc:
        return f"undetected {exc.code}"
    except Exception as exc:
        raise _crash("detect", exc) from exc
    try:
        _read_all(fmt.name, fmt.read(path))
    except TrustwatchError as exc:
        return f"{fmt.name}: {exc.code}"
    except PropertyFailed:
        raise
    except Exception as exc:
        raise _crash(f"read ({fmt.name})", exc) from exc
    return "ok"


def _read_all(fmt: str, items: Iterable[object]) -> int:
    """Check every item a reader yields; returns the records read."""
    from trustwatch.ingest.records import EventBatch, Rejected, RowBatch

    records = 0
    for item in items:
        if isinstance(item, EventBatch):
            _check_batch(item.refs, item.docs, fmt)
            for doc in item.docs:
                _check_document(doc, fmt)
            records += len(item.docs)
        elif isinstance(item, RowBatch):
            _check_batch(item.refs, item.rows, fmt)
            records += len(item.rows)
        elif isinstance(item, Rejected):
            if item.count < 0:
                raise PropertyFailed(f"read ({fmt})", f"a rejection counts {item.count} records")
        else:
            raise PropertyFailed(f"read ({fmt})", f"yielded a {type(item).__name__}")
    return records


def _check_batch(refs: list[int], records: list[Any], fmt: str) -> None:
    if len(refs) != len(records):
        raise PropertyFailed(f"read ({fmt})", f"{len(refs)} refs for {len(records)} records")


def _check_document(doc: str, fmt: str) -> None:
    try:
        value = json.loads(doc)
    except ValueError as exc:
        raise PropertyFailed(f"read ({fmt})", f"an event document is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PropertyFailed(f"read ({fmt})", f"an event document is a {type(value).__name__}")
    if "root:x:0:0" in doc:
        raise PropertyFailed(f"read ({fmt})", "an event holds /etc/passwd: an entity was resolved")


def check_workspace(paths: Iterable[Path], intact: dict[str, int] | None = None) -> str:
    """Ingesting ``paths`` into a fresh in-memory workspace accounts for every record.

    Per file ``read == stored + quarantined + duplicates``; a file in ``intact`` (path ->
    records it stores on its own) keeps all its records whatever the files beside it hold.
    """
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace

    try:
        planned, _skipped = pipeline.plan(list(paths), skip_unknown=True)
        workspace = Workspace(None)
        results = workspace.ingest(planned)
    except Exception as exc:  # a TrustwatchError too: one bad file
        raise _crash("workspace ingest", exc) from exc  # must never stop the others
    for stats in results:
        if stats.read != stats.stored + stats.quarantined + stats.duplicates:
            raise PropertyFailed(
                "workspace ingest",
                f"{Path(stats.path).name} ({stats.format}): read {stats.read} != stored "
                f"{stats.stored} + quarantined {stats.quarantined} + duplicates {stats.duplicates}",
            )
        expected = (intact or {}).get(stats.path)
        if expected is not None and stats.stored != expected:
            raise PropertyFailed(
                "workspace ingest",
                f"{Path(stats.path).name} stored {stats.stored} of its {expected} records "
                "beside the mutated file",
            )
    return "ok"
