"""YAML reading with libyaml's C parser when PyYAML has it (about 10x faster), else pure Python."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from importlib import resources
from typing import Any, cast

import yaml

from trustwatch import limits
from trustwatch.errors import InputError, RuleFileError

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# a JSON object {_DATE: text} or {_DATETIME: text} stands for a YAML timestamp (JSON has none);
# a key no YAML file uses, and ``encode`` checks that what it wrote reads back equal anyway
_DATE = "\x00date"
_DATETIME = "\x00datetime"


class YamlLimitExceeded(RuleFileError, limits.LimitExceeded, yaml.YAMLError):
    """A YAML document past the ``yaml-bytes`` or ``yaml-aliases`` limit.

    Also a ``yaml.YAMLError`` with ``problem`` and ``problem_mark``, so each reader reports it
    like any invalid YAML: with its file, line and column.
    """

    default_code = "RULE900"

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message, hint=f"a YAML file within the limit, or --limit {_NAME}=N")
        self.problem = message
        self.problem_mark = mark


_NAME = "yaml-aliases"


def check(text: str) -> None:
    """Refuse a document over ``yaml-bytes``, or whose aliases expand past ``yaml-aliases``.

    An alias used inside an anchored part counts each time that part is used: a "billion
    laughs" (ten aliases of ten aliases of...) is refused at the alias that crosses the limit,
    in milliseconds, before anything is built. A text without both ``&`` and ``*`` has no
    aliases and costs one scan.

    Raises:
        YamlLimitExceeded: located at the alias (line and column in ``problem_mark``).
    """
    bound = limits.current()
    if len(text) > bound.yaml_bytes:
        raise YamlLimitExceeded(
            limits.exceeded("yaml_bytes", bound.yaml_bytes, f"the document ({len(text):,} bytes)"),
            None,
        )
    if "&" not in text or "*" not in text:
        return
    _count_aliases(text, bound.yaml_aliases)


def _count_aliases(text: str, limit: int) -> None:
    uses: dict[str, int] = {}  # anchor -> alias uses one use of it expands to (itself included)
    open_parts: list[tuple[str | None, int]] = []  # anchored collections being read: uses so far
    total = 0
    loader = Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                anchor = event.anchor or ""
                count = uses.get(anchor, 0) + 1
                total += count
                open_parts = [(a, n + count) for a, n in open_parts]
                if total > limit:
                    raise YamlLimitExceeded(
                        limits.exceeded("yaml_aliases", limit, "the uses of aliases (*ref)"),
                        cast("yaml.Mark", event.start_mark),
                    )
            elif isinstance(event, yaml.CollectionStartEvent):
                open_parts.append((event.anchor, 0))
            elif isinstance(event, yaml.CollectionEndEvent) and open_parts:
                opened, count = open_parts.pop()
                if opened is not None:
                    uses[opened] = count
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """``yaml.safe_load`` semantics, within the YAML limits (:func:`check`)."""
    check(text)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def load_shipped(folder: str, file_name: str) -> Any:
    """A YAML file shipped in ``trustwatch/content/<folder>/``, parsed.

    Raises:
        InputError: the file is not valid YAML (named as ``trustwatch/content/...``).
    """
    where = f"trustwatch/content/{folder}/{file_name}"
    text = resources.files("trustwatch.content").joinpath(folder, file_name).read_text("utf-8")
    try:
        return load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from exc


def compose(text: str) -> yaml.Node | None:
    """The node tree (with line marks) under the safe loader, within the YAML limits."""
    check(text)
    return yaml.compose(text, Loader=Loader)


def load_with_node(text: str) -> tuple[Any, yaml.Node | None]:
    """``load`` and ``compose`` of one text, parsed once: its value and its node tree."""
    check(text)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def load_cached(text: str, kind: str = "yaml") -> Any:
    """``load``, kept across runs by :mod:`trustwatch.compiled` as JSON (parsed far faster).

    Errors are never cached: invalid YAML raises ``yaml.YAMLError`` on every call.
    """
    check(text)  # the limits hold for a cached text too (they may have been lowered since)
    value, _ = cached_parse(text, kind, lambda t: (load(t), None))
    return value


def cached_parse(text: str, kind: str, parse: Callable[[str], tuple[Any, Any]]) -> tuple[Any, Any]:
    """``parse(text)`` (a YAML value and a JSON-able detail), from the cache when it has it.

    A value JSON cannot carry back equal (non-text keys, binary, NaN) is parsed on every call.
    """
    from trustwatch import compiled

    built: list[tuple[Any, Any]] = []

    def build() -> str:
        built.append(parse(text))
        return encode(list(built[0]))

    entry = compiled.cached_text(kind, (text,), build)
    if built:  # parsed just now: hand out those objects
        return built[0]
    if entry:
        value, detail = decode(entry)
        return value, detail
    return parse(text)  # not representable as JSON: the cache holds "" for it


def encode(value: Any) -> str:
    """JSON text that :func:`decode` turns back into an equal value, or "" when there is none."""
    try:
        text = json.dumps(value, default=_tag, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return ""
    return text if decode(text) == value else ""


def decode(text: str) -> Any:
    """The value :func:`encode` wrote."""
    return json.loads(text, object_hook=_untag)


def _tag(value: object) -> dict[str, str]:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    raise TypeError(type(value).__name__)


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _DATETIME in obj:
            return datetime.fromisoformat(obj[_DATETIME])
        if _DATE in obj:
            return date.fromisoformat(obj[_DATE])
    return obj
