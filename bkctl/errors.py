"""bkctl's one error type and its exit codes (documented in ``bkctl --help`` and docs/bkctl.md)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "EXIT_API",
    "EXIT_CHECKS_FAILED",
    "EXIT_CODES_HELP",
    "EXIT_CONNECT",
    "EXIT_CREDENTIALS",
    "EXIT_DOCKER",
    "EXIT_FORBIDDEN",
    "EXIT_NOT_FOUND",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "EXIT_WRONG_ENDPOINT",
    "BkctlError",
]

EXIT_API: Final = 1             # any other HTTP error (400, 409, 413, 500, ...)
EXIT_USAGE: Final = 2           # bad flags or arguments (click)
EXIT_CREDENTIALS: Final = 3     # no credential found, a credential source failed, bad local files
EXIT_CONNECT: Final = 4         # connection refused, DNS failure, timeout, TLS handshake failure
EXIT_WRONG_ENDPOINT: Final = 5  # the URL is invalid or the server there is not the allocation API
EXIT_UNAUTHORIZED: Final = 6    # HTTP 401
EXIT_FORBIDDEN: Final = 7       # HTTP 403
EXIT_NOT_FOUND: Final = 8       # HTTP 404 (also a released or unknown allocation)
EXIT_UNAVAILABLE: Final = 9     # HTTP 503 (no capacity; see Retry-After)
EXIT_DOCKER: Final = 10         # build: docker not found, or the buildx builder could not be created
EXIT_CHECKS_FAILED: Final = 11  # doctor: at least one check failed

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 ok; 1 other API error; 2 usage; 3 credentials/local files; 4 cannot connect "
    "(refused, DNS, timeout, TLS); 5 not the allocation API (wrong endpoint); 6 unauthorized (401); "
    "7 forbidden (403); 8 not found (404); 9 unavailable (503, shows Retry-After); 10 docker missing or "
    "builder not created; 11 a doctor check failed; 130/143 interrupted by SIGINT/SIGTERM. Once its build "
    "has run, build exits with docker buildx build's own code, or 128+N when signal N killed the build "
    "(137: SIGKILL, e.g. the OOM killer)."
)


class BkctlError(Exception):
    """A failure reported as one line on stderr, exiting with ``exit_code``."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
