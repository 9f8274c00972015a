"""Rate limits and outages, shared by the platform adapters.

Platforms announce their limits in response headers (Mastodon ``x-ratelimit-*``,
Bluesky ``ratelimit-*``). ``RateLimiter`` remembers the last announcement and waits
the window out *before* the call that would be refused, through an injectable
clock and sleep so that tests never sleep for real. ``Backoff`` spaces out retries
against an unreachable server so that a dead instance is not hammered every poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from bot.context import Clock, utcnow

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

MAX_WAIT = timedelta(minutes=15)
FALLBACK_WAIT = timedelta(seconds=60)


def parse_reset(value: str | None, *, now: datetime) -> datetime | None:
    """A reset header as an aware time: epoch seconds (Bluesky) or ISO 8601 (Mastodon)."""
    if not value:
        return None
    value = value.strip()
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), tz=UTC)
        reset = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        log.debug("unreadable rate-limit reset header %r", value)
        return None
    return reset if reset.tzinfo else reset.replace(tzinfo=UTC)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RateLimiter:
    """Waits until the platform's window resets when its remaining budget is spent."""

    def __init__(self, *, prefix: str, clock: Clock = utcnow, sleep: Sleep = asyncio.sleep,
                 reserve: int = 0) -> None:
        self.prefix = prefix
        self.clock = clock
        self.sleep = sleep
        self.reserve = reserve
        self.remaining: int | None = None
        self.reset_at: datetime | None = None
        self.waits: list[float] = []

    def observe(self, headers: Mapping[str, str]) -> None:
        """Record the limit headers of a response (case-insensitive mapping expected)."""
        remaining = _int(headers.get(f"{self.prefix}remaining"))
        if remaining is None:
            return
        self.remaining = remaining
        self.reset_at = parse_reset(headers.get(f"{self.prefix}reset"), now=self.clock())

    def seconds_to_wait(self) -> float:
        if self.remaining is None or self.remaining > self.reserve:
            return 0.0
        if self.reset_at is None:
            return FALLBACK_WAIT.total_seconds()
        delta = min(self.reset_at - self.clock(), MAX_WAIT)
        return max(0.0, delta.total_seconds())

    def spent_until(self) -> datetime | None:
        """When the budget is spent: when the window resets (at most ``MAX_WAIT`` away);
        None while requests remain or nothing was announced."""
        seconds = self.seconds_to_wait()
        return self.clock() + timedelta(seconds=seconds) if seconds > 0 else None

    async def wait_if_spent(self) -> None:
        """Before a call: sleep out the window if the budget is used up."""
        seconds = self.seconds_to_wait()
        if seconds > 0:
            log.info("%s rate limit reached; waiting %.0f s for the window to reset",
                     self.prefix.rstrip("-"), seconds)
            self.waits.append(seconds)
            await self.sleep(seconds)
        if self.remaining is not None and self.remaining <= self.reserve:
            self.remaining = None  # the window has reset; the next response tells us more

    async def wait_after_refusal(self) -> None:
        """After a 429: the budget is certainly spent, whatever we knew before."""
        self.remaining = 0
        await self.wait_if_spent()


class Backoff:
    """Exponential back-off between attempts against an unreachable server."""

    def __init__(self, *, first: timedelta = timedelta(minutes=1),
                 longest: timedelta = timedelta(hours=1)) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0
        self.retry_at: datetime | None = None

    def ready(self, now: datetime) -> bool:
        return self.retry_at is None or now >= self.retry_at

    def failed(self, now: datetime) -> timedelta:
        delay = min(self.longest, self.first * (2 ** self.failures))
        self.failures += 1
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = None
