"""CLI tests share one process: limits a command set with --limit never outlive its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _default_limits() -> Iterator[None]:
    from trustwatch import limits

    yield
    limits.configure(())
