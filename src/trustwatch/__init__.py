"""trustwatch: detect certificate trust abuse on Windows with Sentinel / Defender KQL."""

from __future__ import annotations

from trustwatch.api import QueryResult, Session, query, run
from trustwatch.errors import TrustwatchError

__all__ = ["QueryResult", "Session", "TrustwatchError", "query", "run"]
__version__ = "0.1.0"
