"""The scalar function table: each KQL function compiles in one small function.

Importing this package registers every function module into :data:`FUNCTIONS`.
"""

from __future__ import annotations

from trustwatch.kql.functions import (  # noqa: F401 - imported to register their functions
    dynamic,
    ipv4,
    logic,
    numbers,
    rows,
    strings,
    time,
)
from trustwatch.kql.functions.conversions import convert, to_string
from trustwatch.kql.functions.registry import (
    DEFENDER_CLOUD_FUNCTIONS,
    FUNCTIONS,
    KNOWN_UNSUPPORTED,
    TUPLE_FUNCTIONS,
    UNSUPPORTED_REASONS,
    Handler,
)

__all__ = [
    "DEFENDER_CLOUD_FUNCTIONS",
    "FUNCTIONS",
    "KNOWN_UNSUPPORTED",
    "TUPLE_FUNCTIONS",
    "UNSUPPORTED_REASONS",
    "Handler",
    "convert",
    "to_string",
]
