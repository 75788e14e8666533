"""``serviceaccount`` credentials (bkctl side): a mounted Kubernetes ServiceAccount token file.

``BKCTL_SA_TOKEN_FILE`` names the file; unset, the first existing of
``/var/run/secrets/buildkit-controller/token`` (a projected token for the API's audience) and
``/var/run/secrets/kubernetes.io/serviceaccount/token`` is used. No file: this source abstains. A file
named by ``BKCTL_SA_TOKEN_FILE`` that cannot be read, or an empty token, raises ``AuthenticationError``.
"""

from __future__ import annotations

from pathlib import Path

from buildkit_controller.core import hookimpl
from buildkit_controller.core.errors import AuthenticationError
from buildkit_controller.core.models import Credential, CredentialContext

__all__ = ["DEFAULT_FILES", "TOKEN_FILE_VAR", "ServiceAccountTokenCredential"]

TOKEN_FILE_VAR = "BKCTL_SA_TOKEN_FILE"  # noqa: S105 - a variable name
DEFAULT_FILES = (
    "/var/run/secrets/buildkit-controller/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
)
SOURCE = "serviceaccount"


def _read(path: Path) -> Credential:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise AuthenticationError(f"cannot read ServiceAccount token file {path}: {exc.strerror}") from None
    if not token:
        raise AuthenticationError(f"ServiceAccount token file {path} is empty")
    return Credential(token=token, source=f"{SOURCE}:{path}")


class ServiceAccountTokenCredential:
    """The built-in ``serviceaccount`` credential source."""

    @hookimpl
    def bkc_credential(self, context: CredentialContext) -> Credential | None:
        named = context.environ.get(TOKEN_FILE_VAR)
        if named:
            return _read(Path(named))
        for candidate in map(Path, DEFAULT_FILES):
            if candidate.is_file():
                return _read(candidate)
        return None
