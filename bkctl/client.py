"""Talking to the allocation API: one request, one JSON answer, or one :class:`BkctlError`."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from buildkit_controller.bkctl.errors import (
    EXIT_API,
    EXIT_CONNECT,
    EXIT_CREDENTIALS,
    EXIT_FORBIDDEN,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORIZED,
    EXIT_UNAVAILABLE,
    EXIT_WRONG_ENDPOINT,
    BkctlError,
)

__all__ = ["ALLOCATE_TIMEOUT", "DEFAULT_TIMEOUT", "ApiClient", "Connection", "http_error", "json_object"]

#: Allocation may wait in the pool's queue (30 s) and for a worker to become ready.
ALLOCATE_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0

_BY_STATUS: Mapping[int, tuple[int, str]] = {
    401: (EXIT_UNAUTHORIZED, "unauthorized (401)"),
    403: (EXIT_FORBIDDEN, "forbidden (403)"),
    404: (EXIT_NOT_FOUND, "not found (404)"),
    503: (EXIT_UNAVAILABLE, "unavailable (503)"),
}


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where the API is and how to trust it."""

    endpoint: str
    tls_ca: str | None = None
    insecure_skip_verify: bool = False

    def verify(self) -> ssl.SSLContext | bool:
        if self.insecure_skip_verify:
            return False
        if not self.tls_ca:
            return True
        try:
            return ssl.create_default_context(cafile=self.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise BkctlError(EXIT_CREDENTIALS, f"--tls-ca {self.tls_ca}: cannot load CA: {exc}") from None


def _error_body(response: httpx.Response) -> Mapping[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, Mapping) and "error" in body else None


def http_error(response: httpx.Response, endpoint: str) -> BkctlError:
    body = _error_body(response)
    if body is None:
        return BkctlError(EXIT_WRONG_ENDPOINT, f"{endpoint} answered HTTP {response.status_code} without an "
                                               "API error body; is --endpoint/BKCTL_ENDPOINT the allocation API?")
    code, what = _BY_STATUS.get(response.status_code, (EXIT_API, f"HTTP {response.status_code}"))
    detail = f"{what}: {body.get('error')}: {body.get('message', '')}"
    retry = response.headers.get("Retry-After")
    if response.status_code == httpx.codes.SERVICE_UNAVAILABLE and retry:
        detail += f" (retry after {retry} s)"
    return BkctlError(code, detail)


def _transport_error(exc: httpx.HTTPError, endpoint: str) -> BkctlError:
    if isinstance(exc, httpx.TimeoutException):
        return BkctlError(EXIT_CONNECT, f"timed out talking to {endpoint} ({type(exc).__name__})")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BkctlError(EXIT_WRONG_ENDPOINT, f"invalid endpoint {endpoint!r}: {exc}")
    if isinstance(exc, httpx.ConnectError | httpx.NetworkError | httpx.RemoteProtocolError):
        return BkctlError(EXIT_CONNECT, f"cannot connect to {endpoint}: {exc or type(exc).__name__}")
    return BkctlError(EXIT_CONNECT, f"request to {endpoint} failed: {type(exc).__name__}: {exc}")


class ApiClient:
    """A bearer-authenticated JSON client of ``/api/v1``."""

    def __init__(self, connection: Connection, token: Callable[[], str], timeout: float | None = None) -> None:
        self.connection = connection
        self._token = token
        self._timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                timeout: float = DEFAULT_TIMEOUT, auth: bool = True,
                on_response: Callable[[], None] | None = None) -> httpx.Response:
        """One request, any status; a :class:`BkctlError` only when no answer came.

        ``on_response`` is called once the answer's status line and headers are in, before its body is read.
        """
        endpoint = self.connection.endpoint.rstrip("/")
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {self._token()}"} if auth else {})}
        hooks: dict[str, list[Callable[[httpx.Response], None]]] = {}
        if on_response is not None:
            answered = on_response
            hooks["response"] = [lambda _: answered()]
        try:
            with httpx.Client(verify=self.connection.verify(), timeout=self._timeout or timeout,
                              event_hooks=hooks) as http:
                return http.request(method, f"{endpoint}{path}", json=body, headers=headers)
        except httpx.InvalidURL as exc:
            raise BkctlError(EXIT_WRONG_ENDPOINT, f"invalid endpoint {endpoint!r}: {exc}") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc, endpoint) from None

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             timeout: float = DEFAULT_TIMEOUT, on_response: Callable[[], None] | None = None) -> dict[str, Any]:
        """One request; its JSON object answer, or a :class:`BkctlError` for anything but 200."""
        response = self.request(method, path, body, timeout=timeout, on_response=on_response)
        if response.status_code != httpx.codes.OK:
            raise http_error(response, self.connection.endpoint.rstrip("/"))
        return json_object(response, self.connection.endpoint.rstrip("/"))


def json_object(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise BkctlError(EXIT_WRONG_ENDPOINT, f"{endpoint} answered with something other than a JSON object")
    return answer
