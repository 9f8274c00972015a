"""Wiring: settings + database + dispatcher + outbox + chat surface (+ sources).

``App.handle(event)`` is the one path for everything: dispatch the event in one
transaction, then deliver whatever the outbox holds for the owner.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.context import Clock, WelcomeSender, utcnow
from bot.dispatcher import Dispatcher
from bot.events import Event, Tick
from bot.outbox import ChatSurface, Outbox
from storage import repo
from storage.db import (
    DatabaseError,
    default_database_url,
    ensure_schema,
    make_engine,
    session_scope,
)

log = logging.getLogger(__name__)


class Source(Protocol):
    """A platform connection source: one poll turns platform changes into events."""

    platform: str

    async def poll(self, app: App) -> None: ...


def open_database(settings: Settings, url: str | None = None, *, migrate: bool = True) -> Engine:
    """The engine for ``--db``, else ``DATABASE_URL``, else the default SQLite file."""
    engine = make_engine(url or settings.database_url or default_database_url())
    if migrate:
        try:
            ensure_schema(engine)
        except DatabaseError:
            raise
        except Exception as exc:  # alembic and drivers raise many types; one message for all
            reason = f"{type(exc).__name__}: {exc}"
            raise DatabaseError(f"cannot prepare the database: {reason}") from exc
    return engine


def crash_point(name: str) -> None:
    """A hidden test hook: die here, as a crash would, when PLNBOT_CRASH_AT names this point.

    The reliability tests use it to prove that work committed but not yet delivered is
    delivered exactly once after a restart.
    """
    if os.environ.get("PLNBOT_CRASH_AT") == name:
        log.warning("PLNBOT_CRASH_AT=%s: exiting abruptly (test hook)", name)
        os._exit(99)


class App:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        surface: ChatSurface,
        clock: Clock = utcnow,
        senders: dict[str, WelcomeSender] | None = None,
        sources: Iterable[Source] = (),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.surface = surface
        self.clock = clock
        self.senders = dict(senders or {})
        self.sources = list(sources)
        self.dispatcher = Dispatcher(
            engine=engine, settings=settings, clock=lambda: self.clock(), senders=self.senders
        )
        self.outbox = Outbox(engine, clock=lambda: self.clock())
        self.owner_id = self._ensure_owner()

    def _ensure_owner(self) -> int:
        with session_scope(self.engine) as session:
            owner = repo.get_or_create_owner(
                session, external_ref=self.settings.owner_ref, settings=self.settings,
                now=self.clock(),
            )
            return owner.id

    async def handle(self, event: Event) -> None:
        await self.dispatcher.dispatch(event)
        await self.flush()

    async def flush(self) -> int:
        return await self.outbox.deliver(self.surface, owner_ids=[self.owner_id])

    async def sweep(self) -> None:
        """Deliver anything due: the scheduler calls this, and so does start-up (catch-up)."""
        await self.dispatcher.dispatch(Tick(owner_ref=self.settings.owner_ref, name="sweep"))
        crash_point("after-sweep-commit")
        await self.flush()

    async def poll_sources(self) -> None:
        for source in self.sources:
            try:
                await source.poll(self)
            except Exception:
                log.exception("polling %s failed; will retry on the next poll", source.platform)
        await self.flush()
