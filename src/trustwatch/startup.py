"""Start-up costs a command does not need to pay."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoPandas:
    """A finder that makes ``import pandas`` fail, for pyarrow's one question (see below)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("not asked for by trustwatch")
        return None


def skip_pandas_probe(argv: Sequence[str]) -> None:
    """Answer pyarrow's "is pandas installed?" with no, without importing pandas.

    The first time pyarrow turns Python values into an array (``pa.array``, ``pa.table``), it
    imports pandas if it can, to tell pandas objects apart: 0.2-0.45 s measured here, on every
    command, for nothing (trustwatch hands pyarrow no pandas object). After this, pyarrow
    treats no object as a pandas one; an explicit ``import pandas`` still works, and so do
    pyarrow's pandas conversions (``to_pandas``, ``Table.from_pandas`` import it when called).
    For a command that runs (not for ``--help``; ``argv``: its arguments) and the ingest's
    stager process; not with the Spark engine (its pandas UDFs and conversions go through
    pyarrow's pandas support), and never on importing trustwatch as a library.
    """
    if "pandas" in sys.modules or "--help" in argv:
        return
    if any("spark" in arg.lower() for arg in argv):
        return
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:  # pyarrow asks again for some kinds of values the first time it meets them
        for values in _KINDS:
            pa.array(values)
    finally:
        sys.meta_path.remove(finder)


_KINDS: tuple[list[object], ...] = (
    [0, None],
    [0.5],
    ["text", None],
    [True],
    [b"bytes"],
    [[1, 2]],
    [{"k": "v"}],
)
