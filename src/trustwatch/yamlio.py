"""YAML reading with libyaml's C parser when PyYAML has it (about 10x faster), else pure Python."""

from __future__ import annotations

from typing import Any

import yaml

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """``yaml.safe_load`` semantics."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def compose(text: str) -> yaml.Node | None:
    """The node tree (with line marks) under the safe loader."""
    return yaml.compose(text, Loader=Loader)
