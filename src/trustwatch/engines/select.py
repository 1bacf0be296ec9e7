"""Choosing an engine by name: the one place ``duckdb`` or ``spark`` becomes an Engine object.

Each engine's module is imported only when it is chosen: PySpark (the ``[spark]`` extra) is
never imported by a DuckDB run, and a missing extra is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trustwatch.engines.base import Engine
from trustwatch.errors import InputError

ENGINE_NAMES = ("duckdb", "spark")


@dataclass(frozen=True, slots=True)
class SparkOptions:
    """Where a Spark engine runs: an existing session, or a master URL and configuration.

    ``session`` (a ``pyspark.sql.SparkSession``, e.g. a notebook's ``spark``) wins; otherwise
    a session is built on ``master`` (default: ``TRUSTWATCH_SPARK_MASTER`` or ``local[*]``)
    with ``conf`` added.
    """

    master: str | None = None
    conf: Mapping[str, str] = field(default_factory=dict)
    session: Any = None


def open_engine(name: str, spark: SparkOptions | None = None) -> Engine:
    """A new engine of the given name.

    Raises:
        InputError: an unknown name, or the ``[spark]`` extra (or Java) is missing.
    """
    if name == "duckdb":
        from trustwatch.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    if name == "spark":
        from trustwatch.engines.spark import SparkEngine

        options = spark or SparkOptions()
        return SparkEngine(options.session, master=options.master, conf=options.conf)
    raise InputError(f"unknown engine {name!r}", hint="choose one of: " + ", ".join(ENGINE_NAMES))
