"""The only module that discovers and loads plugins.

stevedore imports exactly the enabled names of each entry-point group (installed is not enabled)
and instantiates them; each instance is registered with one pluggy ``PluginManager`` under
``"<group>:<name>"`` so that its ``@hookimpl`` methods take part; ``check_pending()`` then fails
start-up on any hook name that is not in :mod:`hookspecs`. Anything enabled that is missing,
duplicated or broken stops start-up with a :class:`PluginLoadError` naming group, name and
distribution.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
from stevedore import named
from stevedore.exception import MultipleMatches

from buildkit_controller.core import hookspecs
from buildkit_controller.core.errors import ConfigError, PluginLoadError
from buildkit_controller.core.models.hooks import Runtime
from buildkit_controller.core.settings import GROUPS, PluginSettings

__all__ = ["InstalledPlugin", "PluginHost", "installed_plugins", "load_plugins"]


@dataclass(frozen=True, kw_only=True)
class InstalledPlugin:
    """One entry point in one of our groups, whether or not it is enabled."""

    group: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    enabled: bool


def _entry_points(group: str) -> Iterator[importlib.metadata.EntryPoint]:
    return iter(importlib.metadata.entry_points(group=group))


def _distribution(group: str, name: str) -> tuple[str | None, str | None]:
    for ep in _entry_points(group):
        if ep.name == name and ep.dist is not None:
            return ep.dist.name, ep.dist.version
    return None, None


def installed_plugins(settings: PluginSettings) -> list[InstalledPlugin]:
    """Every installed plugin of every group, sorted, marked enabled per ``settings``."""
    found = []
    for short, group in GROUPS.items():
        for ep in _entry_points(group):
            dist = ep.dist
            found.append(InstalledPlugin(
                group=short, name=ep.name, target=ep.value, enabled=ep.name in settings.names(short),
                distribution=dist.name if dist else None, version=dist.version if dist else None))
    return sorted(found, key=lambda p: (p.group, p.name))


class PluginHost:
    """The enabled plugin instances and the one ``PluginManager`` they are registered with."""

    def __init__(self, pm: pluggy.PluginManager, enabled: Mapping[str, tuple[str, ...]]) -> None:
        self.pm = pm
        self._enabled = dict(enabled)

    def configure(self, runtime: Runtime) -> None:
        """Hand every plugin (also ones registered later) the process's runtime services."""
        self.pm.hook.bkc_configure.call_historic(kwargs={"runtime": runtime})

    def names(self, group: str) -> tuple[str, ...]:
        """Enabled plugin names of a short group, in configured order."""
        return self._enabled.get(group, ())

    def plugin(self, group: str, name: str) -> object:
        """The instance of an enabled plugin; ``ConfigError`` if it is not enabled."""
        obj = self.pm.get_plugin(f"{group}:{name}")
        if obj is None:
            enabled = ", ".join(self.names(group)) or "none"
            raise ConfigError(f"{group} plugin {name!r} is not enabled (enabled: {enabled})")
        return obj

    def call(self, group: str, name: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one named plugin only; ``None`` if it does not implement the hook."""
        target = self.plugin(group, name)
        others = [p for p in self.pm.get_plugins() if p is not target]
        results = self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
        return results[0] if results else None

    def broadcast(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call ``hook`` on every enabled plugin that implements it, in registration order."""
        results: list[Any] = getattr(self.pm.hook, hook)(**kwargs)
        return results[::-1]  # pluggy calls last-registered first; report configured order


def _register_group(pm: pluggy.PluginManager, short: str, names: Sequence[str]) -> None:
    group = GROUPS[short]

    def missing(absent: Any) -> None:
        name = sorted(absent)[0]
        raise PluginLoadError(group, name, "is enabled but not installed")

    def broken(_manager: Any, ep: Any, exc: BaseException) -> None:
        raise PluginLoadError(group, ep.name, f"failed to load: {exc}", _distribution(group, ep.name)[0])

    def conflict(_ns: str, name: str, _eps: Any) -> Any:
        raise PluginLoadError(group, name, "is provided by more than one distribution")

    try:
        manager = named.NamedExtensionManager(
            group, list(names), invoke_on_load=True, name_order=True,
            on_load_failure_callback=broken, on_missing_entrypoints_callback=missing,
            conflict_resolver=conflict)
    except MultipleMatches as exc:  # pragma: no cover - our resolver raises first
        raise PluginLoadError(group, ",".join(names), str(exc)) from exc
    for ext in manager:
        pm.register(ext.obj, name=f"{short}:{ext.name}")


def new_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with our hookspecs and nothing registered (tests start from this)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(settings: PluginSettings) -> PluginHost:
    """Load and register every enabled plugin; raise :class:`PluginLoadError` on any problem."""
    pm = new_plugin_manager()
    for short in GROUPS:
        _register_group(pm, short, settings.names(short))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        plugin = pm.get_name(exc.plugin) or "?"
        group, _, name = plugin.partition(":")
        raise PluginLoadError(GROUPS.get(group, group), name, str(exc),
                              _distribution(GROUPS.get(group, group), name)[0]) from exc
    return PluginHost(pm, settings.enabled)
