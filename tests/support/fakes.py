"""Test doubles for the edges of the system: the chat surface and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.context import OutgoingMessage


class FakeSurface:
    """Collects what the owner would see; ``pop()`` returns and forgets it."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.fail_next = 0

    async def send(self, message: OutgoingMessage) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("surface unavailable")
        self.messages.append(message)

    def pop(self) -> list[OutgoingMessage]:
        messages, self.messages = self.messages, []
        return messages

    def kinds(self) -> list[str]:
        return [m.kind for m in self.messages]


class FakeClock:
    """A clock that only moves when told to (no sleeping in tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


class FakeSleep:
    """An injectable ``sleep`` that records the wait and moves the fake clock instead."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds=seconds)
