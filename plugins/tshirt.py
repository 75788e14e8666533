"""``tshirt`` sizing: the seed's four sizes, plus buildkitd parallelism matched to the CPU limit."""

from __future__ import annotations

from collections.abc import Sequence

from buildkit_controller.core import hookimpl
from buildkit_controller.core.models import ResourceRequirements, SizeProfile

__all__ = ["SIZES", "TShirtSizing"]

#: name → (cpu request, memory request, cpu limit, memory limit, max-parallelism)
SIZES: dict[str, tuple[str, str, str, str, int]] = {
    "sm": ("500m", "512Mi", "2", "2Gi", 2),
    "md": ("1", "2Gi", "4", "4Gi", 4),
    "lg": ("2", "4Gi", "8", "8Gi", 8),
    "xl": ("4", "8Gi", "16", "16Gi", 16),
}
DEFAULT = "md"


def _profile(rank: int, name: str) -> SizeProfile:
    cpu_req, mem_req, cpu_lim, mem_lim, parallelism = SIZES[name]
    resources = ResourceRequirements(requests={"cpu": cpu_req, "memory": mem_req},
                                     limits={"cpu": cpu_lim, "memory": mem_lim})
    return SizeProfile(name=name, rank=rank * 10, resources=resources, max_parallelism=parallelism,
                       default=name == DEFAULT)


class TShirtSizing:
    """Sizes ``sm``, ``md`` (the default), ``lg`` and ``xl``."""

    @hookimpl
    def bkc_sizing_profiles(self) -> Sequence[SizeProfile]:
        return [_profile(rank, name) for rank, name in enumerate(SIZES)]
