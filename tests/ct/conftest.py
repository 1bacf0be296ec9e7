"""CT tests run the CLI in this process: limits a command set with --limit never outlive a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _default_limits() -> Iterator[None]:
    from trustwatch import limits

    yield
    limits.configure(())
