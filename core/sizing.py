"""Resolving a worker's size: which resources and how much buildkitd parallelism it gets.

Precedence: a size the allocation request asks for (capped at the pool's maximum) → the pool's
explicit ``resources.buildkit`` → the pool's ``size`` → the default profile. The maximum is the
pool's ``maxSize``, else its ``size``, else the default profile: a request never gets a bigger
worker than the pool's owner chose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from buildkit_controller.core.errors import ConfigError, SpecError
from buildkit_controller.core.models.hooks import SizeProfile
from buildkit_controller.core.models.pool import PoolSpec, ResourceRequirements
from buildkit_controller.core.models.units import parse_quantity

__all__ = ["ResolvedSize", "merge_profiles", "requestable", "resolve_size"]

DEFAULT_MAX_PARALLELISM = 4


@dataclass(frozen=True, kw_only=True)
class ResolvedSize:
    """The outcome: ``profile`` is ``None`` when the pool's explicit resources were used."""

    resources: ResourceRequirements
    max_parallelism: int
    profile: str | None


def merge_profiles(results: Sequence[Sequence[SizeProfile]]) -> Mapping[str, SizeProfile]:
    """Merge ``bkc_sizing_profiles`` results; a name offered twice is a configuration error."""
    merged: dict[str, SizeProfile] = {}
    for profiles in results:
        for profile in profiles:
            if profile.name in merged:
                raise ConfigError(f"size profile {profile.name!r} is offered by more than one plugin")
            merged[profile.name] = profile
    return merged


def _default(profiles: Mapping[str, SizeProfile]) -> SizeProfile:
    defaults = [p for p in profiles.values() if p.default]
    if not defaults:
        raise ConfigError("no sizing plugin marks a default size profile; enable one (e.g. tshirt)")
    return defaults[0]


def _named(profiles: Mapping[str, SizeProfile], name: str, field: str) -> SizeProfile:
    try:
        return profiles[name]
    except KeyError:
        known = ", ".join(sorted(profiles, key=lambda n: profiles[n].rank)) or "none"
        raise SpecError(field, f"unknown size {name!r} (known: {known})") from None


def _parallelism_from(resources: ResourceRequirements) -> int:
    cpu = resources.limits.get("cpu") or resources.requests.get("cpu")
    return max(1, math.ceil(parse_quantity(cpu))) if cpu else DEFAULT_MAX_PARALLELISM


def _of(profile: SizeProfile) -> ResolvedSize:
    return ResolvedSize(resources=profile.resources, max_parallelism=profile.max_parallelism,
                        profile=profile.name)


def _cap(spec: PoolSpec, profiles: Mapping[str, SizeProfile]) -> SizeProfile:
    if spec.max_size:
        return _named(profiles, spec.max_size, "spec.maxSize")
    return _named(profiles, spec.size, "spec.size") if spec.size else _default(profiles)


def requestable(spec: PoolSpec, profiles: Mapping[str, SizeProfile]) -> list[SizeProfile]:
    """The profiles an allocation request may name and get as asked (smallest first); none when
    the pool names no size and no plugin offers a default (a pool with explicit resources)."""
    if not (spec.max_size or spec.size or any(p.default for p in profiles.values())):
        return []
    cap = _cap(spec, profiles)
    return sorted((p for p in profiles.values() if p.rank <= cap.rank), key=lambda p: p.rank)


def resolve_size(spec: PoolSpec, profiles: Mapping[str, SizeProfile],
                 requested: str | None = None) -> ResolvedSize:
    """Resolve the resources for a worker of this pool, optionally for a requested size."""
    if requested is not None:
        wanted = _named(profiles, requested, "size")
        cap = _cap(spec, profiles)
        return _of(wanted if wanted.rank <= cap.rank else cap)
    if not spec.resources.buildkit.is_empty:
        explicit = spec.resources.buildkit
        return ResolvedSize(resources=explicit, max_parallelism=_parallelism_from(explicit), profile=None)
    if spec.size:
        return _of(_named(profiles, spec.size, "spec.size"))
    return _of(_default(profiles))
