"""Plugin loading: installed is not enabled; anything enabled but missing or broken stops start-up.

Fake distributions are written as ``*.dist-info`` folders on ``sys.path``, which is exactly how
installed packages are found, so stevedore and importlib.metadata see them as real.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stevedore.extension import ExtensionManager

from buildkit_controller.core import hookimpl
from buildkit_controller.core._aio import first_answer
from buildkit_controller.core._loader import installed_plugins, load_plugins
from buildkit_controller.core.errors import AuthenticationError, ConfigError, PluginLoadError
from buildkit_controller.core.models import AuthRequest, Identity
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.testing import host_with


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install fake distributions into a fresh folder on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    # stevedore caches each group's entry points for the life of the process; start afresh.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})

    def install(dist: str, module: str, source: str, entry_points: str) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))

    yield install
    for name in [m for m in sys.modules if m.startswith("fakeplug")]:
        del sys.modules[name]


GOOD = """
    from buildkit_controller.core import hookimpl
    class Sizes:
        @hookimpl
        def bkc_sizing_profiles(self):
            return []
"""


def settings(**groups: str) -> PluginSettings:
    return PluginSettings.from_env({f"BKC_PLUGINS_{k.upper()}": v for k, v in groups.items()})


def test_installed_is_not_enabled(site: Any) -> None:
    site("fake-sizes", "fakeplug_a", GOOD, "[buildkit_controller.sizing]\nfake = fakeplug_a:Sizes\n")
    listing = {(p.group, p.name): p for p in installed_plugins(settings())}
    assert listing["sizing", "fake"].enabled is False
    fake = listing["sizing", "fake"]
    assert (fake.distribution, fake.version) == ("fake-sizes", "1.2.3")
    host = load_plugins(settings())
    assert host.pm.get_plugin("sizing:fake") is None
    assert "fakeplug_a" not in sys.modules, "a plugin that is not enabled must not even be imported"
    enabled = load_plugins(settings(sizing="tshirt,fake"))
    assert enabled.names("sizing") == ("tshirt", "fake")
    assert enabled.pm.get_plugin("sizing:fake") is not None


def test_enabled_but_missing_names_group_and_plugin() -> None:
    with pytest.raises(PluginLoadError) as info:
        load_plugins(settings(scaling="minidle,nosuch"))
    assert str(info.value) == (
        "plugin 'nosuch' in group buildkit_controller.scaling is enabled but not installed"
    )


def test_broken_plugin_names_its_distribution(site: Any) -> None:
    site(
        "fake-broken",
        "fakeplug_b",
        "raise RuntimeError('boom at import')\n",
        "[buildkit_controller.scaling]\nbroken = fakeplug_b:Nope\n",
    )
    with pytest.raises(PluginLoadError) as info:
        load_plugins(settings(scaling="broken"))
    message = str(info.value)
    assert "'broken'" in message and "buildkit_controller.scaling" in message
    assert "fake-broken" in message and "boom at import" in message


def test_unknown_hook_name_fails_start_up(site: Any) -> None:
    source = """
        from buildkit_controller.core import hookimpl
        class Typo:
            @hookimpl
            def bkc_sizing_profile(self):
                return []
    """
    site("fake-typo", "fakeplug_c", source, "[buildkit_controller.sizing]\ntypo = fakeplug_c:Typo\n")
    with pytest.raises(PluginLoadError, match=r"'typo' in group buildkit_controller\.sizing"):
        load_plugins(settings(sizing="typo"))


def test_same_name_from_two_distributions_is_refused(site: Any) -> None:
    site("fake-one", "fakeplug_d", GOOD, "[buildkit_controller.sizing]\ndup = fakeplug_d:Sizes\n")
    site("fake-two", "fakeplug_e", GOOD, "[buildkit_controller.sizing]\ndup = fakeplug_e:Sizes\n")
    with pytest.raises(PluginLoadError, match="more than one distribution"):
        load_plugins(settings(sizing="dup"))


def test_settings_reject_unknown_groups_and_repeated_names() -> None:
    with pytest.raises(ConfigError, match="unknown plugin group 'sizes'"):
        PluginSettings.from_env({}, ["sizes=tshirt"])
    with pytest.raises(ConfigError, match="twice"):
        PluginSettings.from_env({"BKC_PLUGINS_SCALING": "minidle,minidle"})
    assert PluginSettings.from_env({"BKC_PLUGINS_SCALING": ""}).names("scaling") == ()


def test_targeted_call_reaches_only_the_named_plugin() -> None:
    host = load_plugins(settings())
    calls = []

    class Spy:
        @hookimpl
        def bkc_scaling_decide(self, pool: Any, workers: Any, now: Any, demand: Any) -> Any:
            calls.append("spy")

    host.pm.register(Spy(), name="scaling:spy")
    # minidle and schedule are registered too; reaching them with pool=None would raise.
    host.call("scaling", "spy", "bkc_scaling_decide", pool=None, workers=[], now=None, demand=0)
    assert calls == ["spy"]
    with pytest.raises(ConfigError, match="'nope' is not enabled"):
        host.call("scaling", "nope", "bkc_scaling_decide", pool=None, workers=[], now=None, demand=0)


class Abstains:
    @hookimpl
    async def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        return None


class Accepts:
    def __init__(self, subject: str) -> None:
        self.subject = subject

    @hookimpl
    async def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        return Identity(subject=self.subject, method="accepts")


class Rejects:
    @hookimpl
    def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        raise AuthenticationError("bad credential", method="rejects")


async def test_auth_chain_walks_in_configured_order_and_stops_at_first_answer() -> None:
    host = host_with("auth", "first", Abstains())
    host.pm.register(Accepts("second"), name="auth:second")
    host.pm.register(Accepts("third"), name="auth:third")
    host._enabled["auth"] = ("first", "second", "third")
    name, identity = await first_answer(host, "auth", "bkc_authenticate", request=AuthRequest(bearer="t"))
    assert (name, identity.subject) == ("second", "second")
    host._enabled["auth"] = ("first", "third", "second")
    assert (await first_answer(host, "auth", "bkc_authenticate", request=AuthRequest()))[0] == "third"


async def test_a_rejection_ends_the_chain() -> None:
    host = host_with("auth", "rejects", Rejects())
    host.pm.register(Accepts("later"), name="auth:later")
    host._enabled["auth"] = ("rejects", "later")
    with pytest.raises(AuthenticationError):
        await first_answer(host, "auth", "bkc_authenticate", request=AuthRequest(bearer="t"))
    host._enabled["auth"] = ("later", "rejects")
    assert (await first_answer(host, "auth", "bkc_authenticate", request=AuthRequest()))[0] == "later"
