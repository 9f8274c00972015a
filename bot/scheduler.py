"""APScheduler 3 wrapped once: periodic triggers only, never state.

The in-memory job store is deliberate: what is due lives in the database, and
APScheduler's job stores must never be shared between schedulers (several workers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

# (name, coroutine function, every N seconds)
Job = tuple[str, Callable[[], Awaitable[object]], int]


def build_scheduler(jobs: Sequence[Job]) -> AsyncIOScheduler:
    """``jobs``: (name, coroutine function, every N seconds). Overlapping runs are skipped."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for name, func, seconds in jobs:
        scheduler.add_job(
            func, "interval", seconds=seconds, id=name, name=name,
            max_instances=1, coalesce=True, misfire_grace_time=seconds,
        )
    return scheduler
