"""``minidle`` scaling: keep ``scaling.min`` warm idle workers, never more than ``scaling.max``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from buildkit_controller.core import hookimpl
from buildkit_controller.core.models import Pool, ScalingDecision, Worker
from buildkit_controller.core.scaling import plan_min_idle

__all__ = ["MinIdleScaling"]


class MinIdleScaling:
    """The default policy; see :mod:`buildkit_controller.core.scaling` for the rule."""

    @hookimpl
    def bkc_scaling_decide(self, pool: Pool, workers: Sequence[Worker], now: datetime,
                           demand: int) -> ScalingDecision:
        return plan_min_idle(pool, workers, now, demand, min_idle=pool.spec.scaling.min)
