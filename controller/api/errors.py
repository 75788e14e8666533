"""The error tree mapped once to HTTP: ``{"error": code, "message": ...}``, never a traceback."""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException
from quart import Response, jsonify

from buildkit_controller.core.errors import (
    AuthenticationError,
    AuthorizationError,
    CapacityError,
    ConfigError,
    NotFoundError,
    PermanentError,
    PKIError,
    SpecError,
)

__all__ = ["error_response", "map_error"]

log = logging.getLogger(__name__)

#: (exception class, status, code); the first match wins, so subclasses come first.
TABLE: list[tuple[type[Exception], int, str]] = [
    (SpecError, 400, "bad_request"),
    (PKIError, 400, "bad_request"),
    (AuthenticationError, 401, "unauthorized"),
    (AuthorizationError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (CapacityError, 503, "no_capacity"),
    (ConfigError, 503, "misconfigured"),
    (PermanentError, 409, "conflict"),
]


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response


def map_error(exc: Exception) -> Response:
    for kind, status, code in TABLE:
        if isinstance(exc, kind):
            response = error_response(status, code, str(exc))
            if isinstance(exc, CapacityError):
                response.headers["Retry-After"] = str(max(1, round(exc.delay)))
            if isinstance(exc, AuthenticationError):
                response.headers["WWW-Authenticate"] = 'Bearer realm="buildkit-controller"'
            return response
    if isinstance(exc, ApiException) and exc.status == 409:
        return error_response(409, "conflict", "the allocation changed meanwhile; retry")
    log.exception("unexpected error serving a request")
    return error_response(500, "internal", "internal error; see the server log")
