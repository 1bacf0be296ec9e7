"""A workspace's tables as Parquet folders: ``DIR/<Table>/day=YYYY-MM-DD/*.parquet``.

What ``ingest --parquet DIR`` writes, and what ``hunt --engine spark`` hands to Spark (which
finds the ``day=`` partitions: a filter on ``day`` reads only those folders).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlglot import exp

from trustwatch.errors import IngestError
from trustwatch.schema.model import builtin_schemas


def export_parquet(con: Any, relations: Mapping[str, str], directory: Path) -> dict[str, int]:
    """Write each table's rows (KQL table name -> the relation holding them, on DuckDB
    connection ``con``) with its documented columns, partitioned by day; tables without rows
    are not written.

    Returns:
        Table name -> rows written.
    """
    out: dict[str, int] = {}
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IngestError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    schemas = builtin_schemas()
    for table, relation in relations.items():
        schema = schemas.get(table)
        if schema is None:
            continue
        source = exp.to_table(relation, quoted=True)
        count = exp.select(exp.Count(this=exp.Star())).from_(source)
        n = int(con.execute(count.sql("duckdb")).fetchall()[0][0])
        if not n:
            continue
        time_col = "Timestamp" if schema.column("Timestamp") else "TimeGenerated"
        day = exp.Anonymous(
            this="strftime",
            expressions=[exp.column(time_col, quoted=True), exp.Literal.string("%Y-%m-%d")],
        )
        select = exp.Select(
            expressions=[*[exp.column(c.name, quoted=True) for c in schema.columns], day.as_("day")]
        ).from_(source.copy())
        copy = exp.Copy(
            this=select.subquery(),
            kind=False,
            files=[exp.Literal.string(str(directory / table))],
            params=[
                exp.CopyParameter(this=exp.var("FORMAT"), expression=exp.var("parquet")),
                exp.CopyParameter(
                    this=exp.var("PARTITION_BY"), expression=exp.paren(exp.column("day"))
                ),
                exp.CopyParameter(this=exp.var("OVERWRITE_OR_IGNORE")),
            ],
        )
        con.execute(copy.sql("duckdb"))
        out[table] = n
    return out
