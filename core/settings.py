"""Which plugins are enabled, per entry-point group.

Settings come from environment variables (Helm values become these) and may be overridden by
command-line flags. ``BKC_PLUGINS_<GROUP>`` holds a comma-separated, ordered list of names, e.g.
``BKC_PLUGINS_AUTH=token,serviceaccount``; an empty value enables none of that group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from buildkit_controller.core.errors import ConfigError

__all__ = ["DEFAULT_ENABLED", "GROUPS", "PluginSettings", "group_name"]

#: Short group name → entry-point group.
GROUPS: Mapping[str, str] = {
    "auth": "buildkit_controller.auth",
    "credentials": "buildkit_controller.credentials",
    "cache": "buildkit_controller.cache",
    "sizing": "buildkit_controller.sizing",
    "scaling": "buildkit_controller.scaling",
}

#: Built-in plugins enabled when the environment says nothing about a group.
DEFAULT_ENABLED: Mapping[str, tuple[str, ...]] = {
    "auth": ("token", "serviceaccount", "mtls"),
    "credentials": ("github-actions", "serviceaccount"),
    "cache": ("local",),
    "sizing": ("tshirt",),
    "scaling": ("minidle", "schedule"),
}


def group_name(short: str) -> str:
    """``scaling`` → ``buildkit_controller.scaling``; a full group name is returned unchanged."""
    if short in GROUPS.values():
        return short
    try:
        return GROUPS[short]
    except KeyError:
        raise ConfigError(f"unknown plugin group {short!r} (known: {', '.join(GROUPS)})") from None


def _split(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if len(set(names)) != len(names):
        raise ConfigError(f"plugin list {value!r} names a plugin twice")
    return names


@dataclass(frozen=True, kw_only=True)
class PluginSettings:
    """The ordered names of enabled plugins for each short group name."""

    enabled: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ENABLED))

    @classmethod
    def from_env(cls, environ: Mapping[str, str],
                 overrides: Sequence[str] = ()) -> PluginSettings:
        """Read ``BKC_PLUGINS_*``; then apply ``GROUP=name,name`` overrides (from CLI flags)."""
        enabled = dict(DEFAULT_ENABLED)
        for short in GROUPS:
            value = environ.get(f"BKC_PLUGINS_{short.upper()}")
            if value is not None:
                enabled[short] = _split(value)
        for item in overrides:
            short, sep, names = item.partition("=")
            if not sep:
                raise ConfigError(f"--plugins takes GROUP=NAME[,NAME...], got {item!r}")
            group_name(short.strip())
            enabled[short.strip()] = _split(names)
        return cls(enabled=enabled)

    def names(self, short: str) -> tuple[str, ...]:
        return self.enabled.get(short, ())
