"""An alert's values as guide parameters, and pivot queries bound to them by ``let`` statements.

Values come from the alert's evidence rows, that is from logs an attacker may have written. A
pivot query never has a value spliced into its text: each parameter it names becomes a ``let``
statement whose value is a typed :class:`~trustwatch.kql.ast.Literal`, printed by the KQL
printer (the quoting the compiler reads back), before the query's own text. The same query with
the same ``let`` names runs unchanged in Sentinel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trustwatch.errors import TrustwatchError
from trustwatch.guides.model import Parameter, Pivot
from trustwatch.kql import ast
from trustwatch.kql.literals import parse_datetime_text
from trustwatch.kql.parser import parse_query
from trustwatch.kql.printer import Printer

Value = str | int | datetime


@dataclass(frozen=True, slots=True)
class Bound:
    """A pivot ready to run: its full text, or why it cannot run for this alert."""

    pivot: Pivot
    text: str  # the let statements then the query ("" when skipped)
    skipped: str = ""  # reason it is not run (a parameter the alert does not have)


def _typed(parameter: Parameter, raw: object) -> Value | None:
    """A cell as the parameter's type (its ``extract`` group first, if it has one); None when
    empty, not matched or not of that type."""
    if raw is None or raw == "" or isinstance(raw, bool | dict | list):
        return None
    if parameter.extract is not None:
        match = parameter.extract.search(str(raw)[:4096])
        raw = match.group(1) if match else None
        if not raw:
            return None
    if parameter.type == "long":
        try:
            return int(str(raw), 10)
        except ValueError:
            return None
    if parameter.type == "datetime":
        if isinstance(raw, datetime):
            return raw
        try:
            return parse_datetime_text(str(raw))
        except TrustwatchError:
            return None
    return str(raw)


def alert_values(alert: Mapping[str, Any], parameters: Mapping[str, Parameter]) -> dict[str, Value]:
    """Each parameter's value in the alert: the first evidence row and column that has one."""
    rows: Sequence[Mapping[str, Any]] = alert.get("Evidence") or []
    values: dict[str, Value] = {}
    for name, parameter in parameters.items():
        for row in rows:
            found = next(
                (v for c in parameter.columns if (v := _typed(parameter, row.get(c))) is not None),
                None,
            )
            if found is not None:
                values[name] = found
                break
    return values


def referenced(query: str, parameters: Mapping[str, Parameter]) -> list[str]:
    """The parameters a query names, in the library's order (none when it does not parse)."""
    try:
        tree = parse_query(query, "<pivot>")
    except TrustwatchError:
        return []
    names = {n.name for n in tree.walk() if isinstance(n, ast.Name)}
    return [p for p in parameters if p in names]


def let_statement(parameter: Parameter, value: Value | None) -> str:
    """``let AlertDevice = "ws1";`` with the value as a typed KQL literal (null when None)."""
    literal = ast.Literal(value=value, type=parameter.type)
    if value is None and parameter.type == "string":
        literal = ast.Literal(value="", type="string")
    return Printer().text(ast.Let(name=parameter.name, value=literal)) + ";"


def bind(pivot: Pivot, parameters: Mapping[str, Parameter], values: Mapping[str, Value]) -> Bound:
    """The pivot's query with ``let`` statements for the parameters it names.

    A parameter the alert has no value for is bound empty (null for long and datetime) when
    the pivot lists it as optional; otherwise the pivot is skipped, with the reason.
    """
    names = referenced(pivot.query, parameters)
    missing = [n for n in names if n not in values and n not in pivot.optional]
    if missing:
        return Bound(pivot, "", f"the alert has no {', '.join(missing)}")
    lets = [let_statement(parameters[n], values.get(n)) for n in names]
    return Bound(pivot, "\n".join([*lets, pivot.query.strip()]) + "\n")


def template(pivot: Pivot, parameters: Mapping[str, Parameter]) -> str:
    """The pivot for a person to fill in (Sentinel): ``let`` statements with empty values."""
    names = referenced(pivot.query, parameters)
    lets = [
        let_statement(parameters[n], None)
        + f"  // {parameters[n].about or 'from the alert'}: {', '.join(parameters[n].columns)}"
        for n in names
    ]
    return "\n".join([*lets, pivot.query.strip()]) + "\n"
