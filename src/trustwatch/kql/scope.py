"""Relations (a compiled tabular stage and its columns) and the name scope expressions see."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from trustwatch.errors import UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.semantics import Typed


@dataclass(frozen=True, slots=True)
class Relation:
    """A compiled tabular expression.

    ``columns`` are the visible columns in order with their KQL types. ``order`` names a hidden
    column holding the row order after ``sort``/``top``/``serialize``: SQL does not promise that a
    subquery's ORDER BY survives, so the order is carried as data and re-applied at the end.
    """

    sql: exp.Query
    columns: tuple[tuple[str, str], ...]
    order: str | None = None

    def __post_init__(self) -> None:
        # DuckDB resolves identifiers case-insensitively, even quoted ones: two columns whose
        # names differ only in case would silently read the same values.
        seen: dict[str, str] = {}
        for name, _ in self.columns:
            other = seen.setdefault(name.lower(), name)
            if other != name:
                raise UnsupportedKql(
                    f"columns '{other}' and '{name}' differ only in letter case; trustwatch "
                    "cannot hold both in one result (its SQL engine ignores identifier case)",
                    hint="rename one of them",
                )

    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def type_of(self, name: str) -> str | None:
        for col, ktype in self.columns:
            if col == name:
                return ktype
        return None


@dataclass(frozen=True, slots=True)
class LambdaBinding:
    """A ``let`` name bound to a user function."""

    fn: ast.Lambda
    scope: Scope


@dataclass(frozen=True, slots=True)
class RelationBinding:
    """A name bound to a compiled relation (tabular ``let``, ``as``, tabular parameters)."""

    relation: Relation


Binding = Typed | LambdaBinding | RelationBinding


@dataclass(slots=True)
class Scope:
    """What names mean while compiling one expression: let bindings, then row columns."""

    bindings: dict[str, Binding] = field(default_factory=dict)

    def child(self, **extra: Binding) -> Scope:
        merged = dict(self.bindings)
        merged.update(extra)
        return Scope(merged)

    def lookup(self, name: str) -> Binding | None:
        return self.bindings.get(name)
