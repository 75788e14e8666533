"""``schedule`` scaling: min-idle, except that ``scaleDownSchedule`` windows hold no idle workers.

A window opens at each fire time of the 5-field cron expression (UTC) and lasts
``scaleDownDuration`` (one minute when unset, so ``* 0-6 * * *`` covers 00:00-06:59 without a gap).
While a window is open the pool keeps no idle workers; allocations still get workers on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cronsim import CronSim

from buildkit_controller.core import hookimpl
from buildkit_controller.core.models import Pool, ScalingDecision, Worker
from buildkit_controller.core.scaling import plan_min_idle

__all__ = ["ScheduleScaling", "window_active"]

CRON_STEP = timedelta(minutes=1)


def window_active(expression: str, duration: timedelta | None, now: datetime) -> bool:
    """Whether ``now`` lies in ``[fire, fire + duration)`` for the latest fire time ≤ now."""
    minute = now.replace(second=0, microsecond=0, tzinfo=None)
    # cronsim's reverse iteration yields fire times strictly before its start: start a minute later.
    latest_fire = next(CronSim(expression, minute + CRON_STEP, reverse=True))
    return now.replace(tzinfo=None) < latest_fire + (duration or CRON_STEP)


class ScheduleScaling:
    """Off-hours scale-down on a cron schedule; the rest of the time it behaves as ``minidle``."""

    @hookimpl
    def bkc_scaling_decide(self, pool: Pool, workers: Sequence[Worker], now: datetime,
                           demand: int) -> ScalingDecision:
        scaling = pool.spec.scaling
        if scaling.scale_down_schedule and window_active(
                scaling.scale_down_schedule, scaling.scale_down_duration, now):
            return plan_min_idle(pool, workers, now, demand, min_idle=0, why="off-hours window, min")
        return plan_min_idle(pool, workers, now, demand, min_idle=scaling.min)
