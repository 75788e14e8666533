"""Every error the kernel and its plugins raise, in one tree.

::

    BuildKitControllerError            base of everything below
    ├── ConfigError                    settings or a spec the kernel cannot use (permanent)
    │   ├── SpecError                  a CR body failed validation; ``.path`` names the field
    │   └── PluginLoadError            an enabled plugin is missing or does not import
    ├── PluginError                    a plugin failed while running; ``.plugin`` names it
    ├── PermanentError                 retrying will not help (bad input, impossible request)
    │   ├── PKIError                   a certificate, key or CSR is unusable
    │   │   └── CertificateVerificationError   a chain, validity or usage check failed
    │   └── NotFoundError              the named pool, worker or allocation does not exist
    ├── RetryableError                 try again after ``.delay`` seconds
    │   └── CapacityError              the pool is at ``max``; ``.delay`` is the Retry-After
    ├── AuthenticationError            the credential is missing, forged, expired or rejected
    └── AuthorizationError             the identity may not do this to this resource

Adapters map this tree exactly once: the Kopf adapter turns ``PermanentError``/``ConfigError``
into ``kopf.PermanentError`` and ``RetryableError`` into ``kopf.TemporaryError(delay=...)``; the
HTTP API maps it to status codes (400/401/403/404/503). Messages never contain secrets: callers
pass names and reasons, never tokens, keys or certificates.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BuildKitControllerError",
    "CapacityError",
    "CertificateVerificationError",
    "ConfigError",
    "NotFoundError",
    "PKIError",
    "PermanentError",
    "PluginError",
    "PluginLoadError",
    "RetryableError",
    "SpecError",
]


class BuildKitControllerError(Exception):
    """Base class of every error raised by buildkit-controller code."""


class ConfigError(BuildKitControllerError):
    """Configuration the kernel cannot use; permanent until someone changes it."""


class SpecError(ConfigError):
    """A CR body failed validation.

    ``path`` is the dotted field path (``spec.scaling.max``) so users see where to look.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class PluginLoadError(ConfigError):
    """An enabled plugin could not be loaded; names the group, plugin and distribution."""

    def __init__(self, group: str, name: str, reason: str, distribution: str | None = None) -> None:
        self.group = group
        self.name = name
        self.distribution = distribution
        where = f" (distribution {distribution})" if distribution else ""
        super().__init__(f"plugin {name!r} in group {group}{where} {reason}")


class PluginError(BuildKitControllerError):
    """A loaded plugin raised while running a hook."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin}: {message}")


class PermanentError(BuildKitControllerError):
    """Retrying the same operation will not help."""


class PKIError(PermanentError):
    """A certificate, key or certificate signing request is unusable."""


class CertificateVerificationError(PKIError):
    """A certificate failed chain, validity or usage verification.

    ``reason`` is a short stable label (``expired``, ``not-yet-valid``, ``wrong-usage``,
    ``unknown-issuer``, ``bad-identity``, ``rejected``) for metrics and logs.
    """

    def __init__(self, message: str, *, reason: str = "rejected") -> None:
        self.reason = reason
        super().__init__(message)


class NotFoundError(PermanentError):
    """The named object does not exist."""


class RetryableError(BuildKitControllerError):
    """A transient condition; try again after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        self.delay = delay
        super().__init__(message)


class CapacityError(RetryableError):
    """The pool has no worker to give and may not create one; ``delay`` is the Retry-After."""


class AuthenticationError(BuildKitControllerError):
    """The credential is missing, malformed, forged, expired or for another audience."""

    def __init__(self, message: str, *, method: str | None = None, reason: str = "invalid") -> None:
        self.method = method
        self.reason = reason
        super().__init__(message)


class AuthorizationError(BuildKitControllerError):
    """The authenticated identity may not perform this action on this resource."""
