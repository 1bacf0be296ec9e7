"""Fixtures of the deploy tests: the test rule, a small watchlist, clients over recordings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.deploy.replay import (
    GROUP,
    RULES,
    SUBSCRIPTION,
    WORKSPACE,
    FakeCredential,
    ReplayTransport,
    recording,
)
from trustwatch.deploy.rest import RestClient, Service
from trustwatch.deploy.sentinel import Workspace, sentinel_service
from trustwatch.export.sentinel import WatchlistData
from trustwatch.rules.model import Rule, load_rules

WORKSPACE_REF = Workspace(SUBSCRIPTION, GROUP, WORKSPACE)


@pytest.fixture(scope="session")
def rule() -> Rule:
    (only,) = load_rules([str(RULES / "root_store_write.yaml")])
    return only


@pytest.fixture
def watchlist() -> WatchlistData:
    return WatchlistData(
        "TestList",
        "deploy test list",
        "Thumbprint",
        ("Thumbprint", "Verdict"),
        (
            {"Thumbprint": "AA11", "Verdict": "known-bad"},
            {"Thumbprint": "BB22", "Verdict": "public-root"},
        ),
    )


ClientFactory = Callable[..., tuple[RestClient, ReplayTransport, FakeCredential]]


@pytest.fixture
def replayed() -> Iterator[ClientFactory]:
    """``replayed(name, service=...)``: a client whose requests replay ``recordings/<name>``."""
    made: list[ReplayTransport] = []

    def make(
        name: str, service: Service | None = None, *, fail_auth: bool = False
    ) -> tuple[RestClient, ReplayTransport, FakeCredential]:
        transport = recording(name)
        credential = FakeCredential(fail=fail_auth)
        client = RestClient(
            service or sentinel_service(WORKSPACE_REF), credential, transport=transport
        )
        made.append(transport)
        return client, transport, credential

    yield make
    for transport in made:
        left = transport.replay.interactions
        assert not left, f"{len(left)} recorded response(s) never asked for"
