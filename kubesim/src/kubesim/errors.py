"""Kubernetes ``Status`` errors.

Every failure the server reports is an :class:`ApiError`; the HTTP layer turns it into a ``Status``
body with the ``reason`` and ``code`` a real API server would send, because clients branch on them
(Kopf retries on 409/422, the official client raises ``ApiException(status=...)``)::

    ApiError
     ├── NotFound (404)          ├── Invalid (422)
     ├── AlreadyExists (409)     ├── Gone (410, reason Expired)
     ├── Conflict (409)          ├── BadRequest (400)
     └── Forbidden (403)         └── MethodNotAllowed (405), UnsupportedMediaType (415)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "UnsupportedMediaType",
    "status_body",
]


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``meta/v1 Status`` failure object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    """A request the API server refuses; carries what goes into the ``Status`` body."""

    code = 500
    reason = "InternalError"

    def __init__(
        self, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def _details(kind: str, name: str, group: str) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": kind}


def _label(plural: str, group: str) -> str:
    """How the API server names a resource in messages: ``widgets.example.com`` or ``pods``."""
    return f"{plural}.{group}" if group else plural


class NotFound(ApiError):
    code, reason = 404, "NotFound"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> NotFound:
        label = _label(plural, group)
        return cls(f'{label} "{name}" not found', _details(plural, name, group))


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> AlreadyExists:
        label = _label(plural, group)
        return cls(f'{label} "{name}" already exists', _details(plural, name, group))


class Conflict(ApiError):
    code, reason = 409, "Conflict"

    @classmethod
    def stale(cls, plural: str, name: str, group: str = "") -> Conflict:
        label = _label(plural, group)
        return cls(
            f'Operation cannot be fulfilled on {label} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            _details(plural, name, group),
        )


class Invalid(ApiError):
    code, reason = 422, "Invalid"

    @classmethod
    def fields(cls, kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> Invalid:
        """``causes`` are ``(field path, message)`` pairs, rendered as a real server does."""
        label = f"{kind}.{group}" if group else kind
        text = "; ".join(f"{field}: {msg}" for field, msg in causes)
        if len(causes) > 1:
            text = f"[{', '.join(f'{field}: {msg}' for field, msg in causes)}]"
        details = _details(kind, name, group)
        details["causes"] = [
            {"reason": "FieldValueInvalid", "message": msg, "field": field} for field, msg in causes
        ]
        return cls(f'{label} "{name}" is invalid: {text}', details)


class Gone(ApiError):
    code, reason = 410, "Expired"


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"
