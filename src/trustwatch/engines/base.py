"""The Engine protocol: load typed tables, run a compiled query, return Arrow rows."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from trustwatch.schema.model import TableSchema


class Engine(Protocol):
    """An execution engine behind the KQL compiler."""

    dialect: str

    def load(self, schema: TableSchema, data: pa.Table) -> str:
        """Load rows for a table; returns the engine's name for it."""

    def lock(self) -> None:
        """Forbid file, network and configuration access from queries from now on."""

    def execute(self, query: exp.Query) -> pa.Table:
        """Run a compiled query."""
