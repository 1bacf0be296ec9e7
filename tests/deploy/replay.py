"""Recorded HTTP for the deploy tests: a fake azure-core transport and a fake credential.

A recording (``recordings/*.yaml``) is the list of requests a scenario makes, in order, each
with the response to give: shapes from the REST API references' examples
(``azure-rest-api-specs`` ``securityinsights/stable/2024-09-01/examples``, Microsoft Graph
``security-detectionrule`` pages). ``{ws}``, ``{rule}`` and ``{graph}`` in paths and bodies
stand for the workspace's provider path, the test rule's id and the detection rules' path.

The transport is azure-core's own RequestsTransport over a ``requests`` session whose adapter
replays the recording, so the whole pipeline (retry policy, bearer token policy, the
response classes) runs as it does against Azure; only ``sleep`` is replaced, to record waits.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3
import yaml
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter

RECORDINGS = Path(__file__).parent / "recordings"
RULES = Path(__file__).parent / "rules"
RULE_ID = "0b6c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"
SUBSCRIPTION, GROUP, WORKSPACE = "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0", "myRg", "myWorkspace"
WS_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/"
    f"Microsoft.OperationalInsights/workspaces/{WORKSPACE}/providers/Microsoft.SecurityInsights"
)
PLACEHOLDERS = {
    "{ws}": WS_PATH,
    "{rule}": RULE_ID,
    "{graph}": "/beta/security/rules/detectionRules",
}
TOKEN = "fake-token-never-printed"


def _fill(value: Any) -> Any:
    if isinstance(value, str):
        for key, text in PLACEHOLDERS.items():
            value = value.replace(key, text)
        return value
    if isinstance(value, list):
        return [_fill(v) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    return value


@dataclass
class Sent:
    """A request as the server would have received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Replay(BaseAdapter):
    """Answers each request with the next recorded response, checking method and path."""

    interactions: list[dict[str, Any]]
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        body = json.loads(request.body) if isinstance(request.body, str | bytes) else None
        sent = Sent(
            str(request.method),
            url.path,
            dict(parse_qsl(url.query)),
            {str(k): str(v) for k, v in request.headers.items()},
            body,
        )
        self.sent.append(sent)
        assert self.interactions, f"unexpected request {sent.method} {sent.path}"
        step = self.interactions.pop(0)
        want = step["request"]
        assert (sent.method, sent.path) == (want["method"], want["path"]), (
            f"expected {want['method']} {want['path']}, got {sent.method} {sent.path}"
        )
        for key, value in (want.get("query") or {}).items():
            assert sent.query.get(key) == value, (key, sent.query)
        answer = step["response"]
        data = b"" if answer.get("body") is None else json.dumps(answer["body"]).encode()
        headers = {"Content-Type": "application/json", **(answer.get("headers") or {})}
        response = requests.Response()
        response.status_code = int(answer["status"])
        response.headers.update(headers)
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            headers=headers,
            status=response.status_code,
            preload_content=False,
        )
        response.url = request.url or ""
        response.request = request
        response.reason = "recorded"
        return response

    def close(self) -> None:
        pass


class ReplayTransport(RequestsTransport):  # type: ignore[misc]
    """azure-core's requests transport over :class:`Replay`; sleeps are recorded, not slept."""

    def __init__(self, replay: Replay) -> None:
        session = requests.Session()
        session.mount("https://", replay)
        super().__init__(session=session, session_owner=False)
        self.replay = replay
        self.slept: list[float] = []

    def sleep(self, duration: float) -> None:
        self.slept.append(duration)


def recording(name: str) -> ReplayTransport:
    """The transport replaying ``recordings/<name>.yaml``."""
    doc = yaml.safe_load((RECORDINGS / f"{name}.yaml").read_text(encoding="utf-8"))
    return ReplayTransport(Replay(_fill(doc["interactions"])))


class FakeCredential:
    """Hands out one token and remembers the scopes asked; or fails like azure-identity."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.fail:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included "
                "credentials.\nAttempted credentials:\n\tEnvironmentCredential: incomplete"
            )
        return AccessToken(TOKEN, int(time.time()) + 3600)
