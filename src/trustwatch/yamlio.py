"""YAML reading with libyaml's C parser when PyYAML has it (about 10x faster), else pure Python."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import yaml

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# a JSON object {_DATE: text} or {_DATETIME: text} stands for a YAML timestamp (JSON has none);
# a key no YAML file uses, and ``encode`` checks that what it wrote reads back equal anyway
_DATE = "\x00date"
_DATETIME = "\x00datetime"


def load(text: str) -> Any:
    """``yaml.safe_load`` semantics."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def compose(text: str) -> yaml.Node | None:
    """The node tree (with line marks) under the safe loader."""
    return yaml.compose(text, Loader=Loader)


def load_with_node(text: str) -> tuple[Any, yaml.Node | None]:
    """``load`` and ``compose`` of one text, parsed once: its value and its node tree."""
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
