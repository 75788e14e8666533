"""Finding the bearer credential: ``--token``/``BKCTL_TOKEN`` first, then the credential plugins."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from buildkit_controller.bkctl.errors import EXIT_CREDENTIALS, BkctlError
from buildkit_controller.core._aio import first_answer
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.errors import AuthenticationError, ConfigError
from buildkit_controller.core.models import Credential, CredentialContext, Runtime
from buildkit_controller.core.settings import DEFAULT_ENABLED, PluginSettings

__all__ = ["DEFAULT_SOURCES", "SETTING", "enabled_sources", "find_credential"]

#: Credential plugins bkctl enables when ``BKC_PLUGINS_CREDENTIALS`` is not set (the kernel's default).
DEFAULT_SOURCES = DEFAULT_ENABLED["credentials"]
SETTING = "BKC_PLUGINS_CREDENTIALS"
TOKEN_SOURCE = "--token/BKCTL_TOKEN"  # noqa: S105 - a label


def enabled_sources(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The credential plugins to try, in order (``BKC_PLUGINS_CREDENTIALS``; empty enables none)."""
    if SETTING not in environ:
        return DEFAULT_SOURCES
    try:
        return PluginSettings.from_env({SETTING: environ[SETTING]}).names("credentials")
    except ConfigError as exc:
        raise BkctlError(EXIT_CREDENTIALS, f"{SETTING}: {exc}") from None


async def _from_plugins(sources: tuple[str, ...], environ: Mapping[str, str], audience: str
                        ) -> tuple[str, Credential] | None:
    host = load_plugins(PluginSettings(enabled={"credentials": sources}))
    host.configure(Runtime(process="bkctl", environ=environ, audience=audience))
    context = CredentialContext(environ=environ, audience=audience)
    found: tuple[str, Credential] | None = await first_answer(host, "credentials", "bkc_credential",
                                                              context=context)
    return found


def find_credential(token: str | None, environ: Mapping[str, str], audience: str) -> Credential:
    """The first credential found; a :class:`BkctlError` naming every source tried otherwise."""
    if token:
        return Credential(token=token, source=TOKEN_SOURCE)
    sources = enabled_sources(environ)
    try:
        found = asyncio.run(_from_plugins(sources, environ, audience)) if sources else None
    except (AuthenticationError, ConfigError) as exc:
        raise BkctlError(EXIT_CREDENTIALS, f"credentials: {exc}") from None
    if found is None:
        tried = ", ".join((TOKEN_SOURCE, *(f"plugin {name}" for name in sources)))
        raise BkctlError(EXIT_CREDENTIALS, f"no credential found (tried {tried}); set BKCTL_TOKEN, or enable "
                                           f"a credential plugin with {SETTING}{_github_hint(sources, environ)}")
    return found[1]


def _github_hint(sources: tuple[str, ...], environ: Mapping[str, str]) -> str:
    """Why the github-actions source had nothing inside a GitHub Actions job (its usual cause)."""
    if "github-actions" not in sources or environ.get("GITHUB_ACTIONS") != "true":
        return ""
    missing = [v for v in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN") if not environ.get(v)]
    return (f"; this is a GitHub Actions job without {' and '.join(missing)}: give the job "
            "`permissions: id-token: write`") if missing else ""
