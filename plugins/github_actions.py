"""``github-actions`` credentials (bkctl side): a GitHub Actions OIDC ID token for the API.

Inside a job with ``permissions: id-token: write`` the runner sets ``ACTIONS_ID_TOKEN_REQUEST_URL``
and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``; a GET on that URL with ``audience=<aud>`` and
``Authorization: bearer <request token>`` answers ``{"value": "<id token>"}``. Without the variables
this source abstains; when they are set but the request fails it raises ``AuthenticationError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from urllib.parse import urlencode, urlsplit

import httpx

from buildkit_controller.core import hookimpl
from buildkit_controller.core.errors import AuthenticationError
from buildkit_controller.core.models import Credential, CredentialContext

__all__ = ["REQUEST_TOKEN_VAR", "REQUEST_URL_VAR", "GitHubActionsCredential", "token_url"]

REQUEST_URL_VAR = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_VAR = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a variable name
SOURCE = "github-actions"


def token_url(url: str, audience: str) -> str:
    """The request URL with ``audience`` appended (``&`` when the URL already has a query)."""
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({'audience': audience})}"


def _value(response: httpx.Response, where: str) -> str:
    if response.status_code != httpx.codes.OK:
        raise AuthenticationError(f"GitHub Actions ID token request to {where} answered HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise AuthenticationError(f"GitHub Actions ID token answer from {where} is not JSON") from None
    value = answer.get("value") if isinstance(answer, Mapping) else None
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"GitHub Actions ID token answer from {where} has no 'value'")
    return value


async def _request(url: str, request_token: str, context: CredentialContext) -> Credential:
    where = urlsplit(url).netloc or url.split("?", maxsplit=1)[0]
    headers = {"Authorization": f"bearer {request_token}", "Accept": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=context.timeout) as client:
            response = await client.get(token_url(url, context.audience), headers=headers)
    except httpx.HTTPError as exc:
        raise AuthenticationError(
            f"GitHub Actions ID token request to {where} failed: {type(exc).__name__}") from None
    return Credential(token=_value(response, where), source=SOURCE)


class GitHubActionsCredential:
    """The built-in ``github-actions`` credential source."""

    @hookimpl
    def bkc_credential(self, context: CredentialContext) -> Awaitable[Credential] | None:
        url = context.environ.get(REQUEST_URL_VAR)
        request_token = context.environ.get(REQUEST_TOKEN_VAR)
        if not url or not request_token:
            return None
        return _request(url, request_token, context)
