"""The REST client: next links stay on the service's host; --tenant reaches the token."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken

from tests.deploy.conftest import WORKSPACE_REF, ClientFactory
from trustwatch.deploy.model import DeployError
from trustwatch.deploy.rest import TenantCredential
from trustwatch.deploy.sentinel import plan_sentinel
from trustwatch.export.sentinel import WatchlistData


def test_a_next_link_to_another_host_is_not_followed(
    replayed: ClientFactory, watchlist: WatchlistData
) -> None:
    client, transport, _ = replayed("sentinel_foreign_next_link")
    with pytest.raises(DeployError) as caught:
        plan_sentinel(client, WORKSPACE_REF, [], [watchlist])
    assert caught.value.code == "DEP170"
    assert all("example.net" not in s.path for s in transport.replay.sent)
    assert len(transport.replay.sent) == 3


class Inner:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.asked.append({"scopes": scopes, **kwargs})
        return AccessToken("t", 0)


def test_tenant_credential_asks_every_token_of_its_tenant() -> None:
    inner = Inner()
    TenantCredential(inner, "contoso-tenant").get_token("https://graph.microsoft.com/.default")
    assert inner.asked == [
        {
            "scopes": ("https://graph.microsoft.com/.default",),
            "claims": None,
            "tenant_id": "contoso-tenant",
            "enable_cae": False,
        }
    ]
