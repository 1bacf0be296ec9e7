"""HTTP to Azure Resource Manager and Microsoft Graph through azure-core, errors as DeployError.

One :class:`RestClient` per service: a PipelineClient with azure-core's RetryPolicy (429, 408
and 5xx retried with exponential backoff, a ``Retry-After`` header obeyed) and a
BearerTokenCredentialPolicy for the service's scope. Credentials come from azure-identity's
DefaultAzureCredential (environment, workload or managed identity, Azure CLI, ...).

Nothing a server sends reaches a message raw: errors quote only the JSON error's ``code`` and
``message``, shortened (the CLI makes them inert); headers, and so tokens, are never quoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest

from trustwatch.deploy.model import DeployError

MANAGEMENT_URL = "https://management.azure.com"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
GRAPH_URL = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

RETRIES = 4  # after the first attempt; backoff 0.8 s doubling, or what Retry-After says
MAX_PAGES = 1000
MAX_QUOTED = 300  # characters of a server's error message quoted in ours
USER_AGENT = "trustwatch-deploy"

SIGN_IN_HINT = (
    "sign in with `az login` (add --tenant T for another tenant), or set AZURE_TENANT_ID, "
    "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal; "
    "`--dry-run --offline` lists what would be deployed without signing in"
)


@dataclass(frozen=True, slots=True)
class Service:
    """Where a client sends requests and what it tells the user when access is refused."""

    name: str  # "Azure Resource Manager", "Microsoft Graph"
    base_url: str
    scope: str
    forbidden_hint: str  # the role or permission a 403 lacks
    next_link: str  # the paging key: "nextLink" (ARM), "@odata.nextLink" (Graph)


@dataclass(frozen=True, slots=True)
class Reply:
    """A response: status and parsed JSON body (None when empty)."""

    status: int
    body: Any


class Conflict(DeployError):
    """409: the resource changed on the server since it was read (etag mismatch)."""

    default_code = "DEP409"


class _Attempts(SansIOHTTPPolicy[Any, Any]):
    """Counts the attempts of the request being sent (it sits inside the retry loop)."""

    def __init__(self) -> None:
        self.count = 0

    def on_request(self, request: PipelineRequest[Any]) -> None:
        self.count += 1


class TenantCredential:
    """A credential that asks every token of one tenant (``--tenant``)."""

    def __init__(self, inner: TokenCredential, tenant_id: str) -> None:
        self._inner = inner
        self._tenant_id = tenant_id

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return self._inner.get_token(
            *scopes,
            claims=claims,
            tenant_id=tenant_id or self._tenant_id,
            enable_cae=enable_cae,
            **kwargs,
        )


def default_credential(tenant: str | None = None) -> TokenCredential:
    """azure-identity's DefaultAzureCredential (never interactive), for ``tenant`` if given."""
    from azure.identity import DefaultAzureCredential

    if tenant is None:
        return DefaultAzureCredential()
    inner = DefaultAzureCredential(additionally_allowed_tenants=[tenant])
    return TenantCredential(inner, tenant)


class RestClient:
    """JSON requests to one service, each retried and authorised by the azure-core pipeline."""

    def __init__(
        self,
        service: Service,
        credential: TokenCredential,
        *,
        transport: HttpTransport[Any, Any] | None = None,
        retries: int = RETRIES,
    ) -> None:
        self.service = service
        self._attempts = _Attempts()
        retry = RetryPolicy(
            retry_total=retries, retry_connect=retries, retry_read=retries, retry_status=retries
        )
        policies = [
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(USER_AGENT),
            retry,
            self._attempts,
            BearerTokenCredentialPolicy(credential, service.scope),
        ]
        self._client: PipelineClient[HttpRequest, Any] = PipelineClient(
            service.base_url, policies=policies, transport=transport
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> Reply:
        """Send one request; a 404 is returned (status 404, body None) when ``missing_ok``.

        Raises:
            DeployError: sign-in failed, access refused, throttled or failing past the retries,
                the host unreachable, or any other error status (:class:`Conflict` for 409).
        """
        url = path if path.startswith("https://") else self.service.base_url + path
        request = HttpRequest(method, url, params=dict(params or {}), json=body)
        what = f"{method} {_shown_path(url)}"
        self._attempts.count = 0
        try:
            response = self._client.send_request(request)
        except ClientAuthenticationError as exc:
            raise DeployError(
                f"could not sign in to {self.service.name}: {_auth_reason(exc)}",
                hint=SIGN_IN_HINT,
                code="DEP101",
            ) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise DeployError(
                f"{what}: no answer from {self.service.base_url} ({self._tries()})",
                hint="check the network, proxy (HTTPS_PROXY) and DNS, then run again",
                code="DEP160",
            ) from exc
        except AzureError as exc:
            raise DeployError(
                f"{what} failed: {type(exc).__name__}", code="DEP199", hint="run with --debug"
            ) from exc
        status = response.status_code
        body_out = _json(response.text(), what, strict=status < 400) if response.content else None
        if status == 404 and missing_ok:
            return Reply(status, None)
        if status >= 400:
            raise self._error(status, body_out, what)
        return Reply(status, body_out)

    def pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[Any]:
        """The items of a paged list (``value``), following next links on the same host only
        (the bearer token goes with every request)."""
        url: str | None = path
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return
            reply = self.request("GET", url, params=query)
            body = reply.body if isinstance(reply.body, Mapping) else {}
            yield from body.get("value") or ()
            url = body.get(self.service.next_link) or None
            query = None  # a next link carries its own query string
            if url is not None and not str(url).startswith(self.service.base_url + "/"):
                raise DeployError(
                    f"{self.service.name} sent a next page on another host: not followed",
                    code="DEP170",
                )
        raise DeployError(f"more than {MAX_PAGES} pages of {_shown_path(path)}", code="DEP170")

    def _tries(self) -> str:
        count = self._attempts.count
        return "1 attempt: not retried" if count <= 1 else f"{count} attempts"

    def _error(self, status: int, body: Any, what: str) -> DeployError:
        said = _server_says(body)
        if status == 401:
            return DeployError(
                f"{what}: {self.service.name} refused the token (401){said}",
                hint=SIGN_IN_HINT,
                code="DEP101",
            )
        if status == 403:
            return DeployError(
                f"{what}: access denied (403){said}",
                hint=self.service.forbidden_hint,
                code="DEP103",
            )
        if status == 409:
            return Conflict(f"{what}: conflict (409){said}")
        if status == 429:
            return DeployError(
                f"{what}: throttled (429; {self._tries()}){said}",
                hint="the service limits request rates: wait a few minutes and run again "
                "(what was done is kept; the plan skips it)",
                code="DEP129",
            )
        if status >= 500:
            return DeployError(
                f"{what}: server error {status} ({self._tries()}){said}",
                hint="a fault on the service's side: run again later; what was done is kept",
                code="DEP150",
            )
        return DeployError(
            f"{what}: refused ({status}){said}",
            hint="the request was not accepted as sent: read the server's reason above",
            code="DEP140",
        )


def _json(text: str, what: str, *, strict: bool) -> Any:
    """The body as JSON; an error page that is not JSON (a gateway's HTML) is None, not an
    error of its own: its status says what happened."""
    try:
        return json.loads(text)
    except ValueError as exc:
        if not strict:
            return None
        raise DeployError(f"{what}: the answer is not JSON", code="DEP170") from exc


def _server_says(body: Any) -> str:
    """``: <code>: <message>`` from an ARM or Graph error body, shortened."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return ""
    parts = [str(error[k]) for k in ("code", "message") if error.get(k)]
    text = ": ".join(parts)
    if len(text) > MAX_QUOTED:
        text = text[:MAX_QUOTED] + "..."
    return f": {text}" if text else ""


def _auth_reason(exc: ClientAuthenticationError) -> str:
    # azure-identity's messages list each credential it tried and why it was unavailable;
    # they never hold a token. The first line is enough on the terminal.
    first = (str(exc.message or exc) or type(exc).__name__).strip().splitlines()
    text = first[0] if first else type(exc).__name__
    return text[:MAX_QUOTED] + ("..." if len(text) > MAX_QUOTED else "")


def _shown_path(url: str) -> str:
    """The URL's path without the query string (and without the host)."""
    for base in (MANAGEMENT_URL, GRAPH_URL):
        if url.startswith(base):
            url = url[len(base) :]
    return url.split("?", 1)[0]
