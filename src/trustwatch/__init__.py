"""trustwatch: detect certificate trust abuse on Windows with Sentinel / Defender KQL."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use (PEP 562), not at import
    from trustwatch.api import QueryResult, Session, query, run
    from trustwatch.errors import TrustwatchError

__all__ = ["QueryResult", "Session", "TrustwatchError", "query", "run"]
__version__ = "0.1.0"

# public name -> the module that defines it; importing trustwatch must stay cheap (no pyarrow,
# duckdb or sqlglot) so that `trustwatch --help` and commands that need none of them start fast
_LAZY = {
    "QueryResult": "trustwatch.api",
    "Session": "trustwatch.api",
    "query": "trustwatch.api",
    "run": "trustwatch.api",
    "TrustwatchError": "trustwatch.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustwatch' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
