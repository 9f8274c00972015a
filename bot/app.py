"""Wiring: settings + database + dispatcher + outbox + chat surface (+ sources).

``App.handle(event)`` is the one path for everything: dispatch the event in one
transaction, then deliver whatever the outbox holds for the owner.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine

from bot.arrivals import ArrivalQueue
from bot.config import Settings
from bot.context import Clock, WelcomeSender, utcnow
from bot.dispatcher import Dispatcher
from bot.events import Event, NewConnection, Tick
from bot.outbox import Outbox, worker_id
from bot.ports import ChatSurface, Source, senders_of
from bot.scheduler import Job
from handlers import backlog
from storage import leases, repo
from storage.db import (
    DatabaseError,
    checkpoint,
    default_database_url,
    ensure_schema,
    make_engine,
    session_scope,
)
from storage.models import Account

log = logging.getLogger(__name__)


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
        from bot.vault import check_key  # cryptography only for commands that open a database

        check_key(settings, engine)
    return engine


def crash_point(name: str) -> None:
    """A hidden test hook: die here, as a crash would, when PLNBOT_CRASH_AT names this point.

    The reliability tests use it to prove that work committed but not yet delivered is
    delivered exactly once after a restart.
    """
    if os.environ.get("PLNBOT_CRASH_AT") == name:
        log.warning("PLNBOT_CRASH_AT=%s: exiting abruptly (test hook)", name)
        os._exit(99)


def attach_senders(app: App) -> None:
    """Give the senders that keep state with the owner's account (Bluesky's session, so
    a console does not log in again for every welcome) the app they send for."""
    for sender in app.senders.values():
        attach = getattr(sender, "attach", None)
        if callable(attach):
            attach(app)


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
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.surface = surface
        self.clock = clock
        self.sources = list(sources)
        # a source that can also deliver approved welcomes (Mastodon, Bluesky) offers its
        # ``sender``; senders given explicitly win
        self.senders: dict[str, WelcomeSender] = {**senders_of(self.sources),
                                                  **dict(senders or {})}
        self.dispatcher = Dispatcher(
            engine=engine, settings=settings, clock=lambda: self.clock(), senders=self.senders
        )
        self.worker = worker or worker_id(settings.worker_id)
        self.lease = timedelta(seconds=settings.lease_seconds)
        # Messages leased by a process killed mid-delivery are taken over as soon as it
        # restarts on the same host (Outbox looks for dead processes' leases first).
        self.outbox = Outbox(engine, clock=lambda: self.clock(), worker=self.worker,
                             lease=self.lease, files=settings.data_path)
        self.owner_id = self._ensure_owner()
        attach_senders(self)
        # One event's transaction at a time, and one delivery run at a time: the periodic
        # sweep and the owner's commands share this process (console, demo, run).
        self._dispatching = asyncio.Lock()
        self._delivering = asyncio.Lock()
        self.arrivals = ArrivalQueue(self.dispatch, self.flush)

    def _ensure_owner(self) -> int:
        now = self.clock()
        with session_scope(self.engine) as session:
            owner = repo.get_or_create_owner(
                session, external_ref=self.settings.owner_ref, settings=self.settings,
                now=now,
            )
            # created just now: the console greets a first run (see bot.runner)
            self.new_owner = owner.created_at == now
            return owner.id

    async def handle(self, event: Event) -> None:
        """Dispatch ``event`` and deliver what it queued; returns when both are done.

        Arrivals handed over together (concurrently, or through ``handle_arrivals``)
        are written together: see ``bot.arrivals``."""
        if isinstance(event, NewConnection):
            await self.arrivals.submit(event)
            return
        await self.dispatch(event)
        await self.flush()

    async def dispatch(self, event: Event) -> bool:
        async with self._dispatching:
            return await self.dispatcher.dispatch(event)

    async def handle_arrivals(self, events: Iterable[NewConnection]) -> None:
        """Arrivals one poll found: written in as few transactions as possible, in order."""
        await asyncio.gather(*(self.handle(event) for event in events))

    async def flush(self) -> int:
        async with self._delivering:
            return await self.outbox.deliver(self.surface, owner_ids=[self.owner_id])

    async def sweep(self) -> int:
        """Deliver anything due (the scheduler calls this); returns messages delivered."""
        await self.dispatch(Tick(owner_ref=self.settings.owner_ref, name="sweep"))
        crash_point("after-sweep-commit")
        delivered = await self.flush()
        await self.read_backlog()
        checkpoint(self.engine)
        return delivered

    async def read_backlog(self) -> None:
        """Profiles a first sync stored unread (``handlers.backlog``), a batch per
        transaction until none are left: arrivals and polls waiting for the lock go
        between two batches instead of after them all (a command about everyone reads
        the rest itself first; one about a person reads only theirs: see
        ``handlers.commands.NAMED``)."""
        while self._backlog_pending():
            if not await self.dispatch(Tick(owner_ref=self.settings.owner_ref,
                                            name=backlog.TICK)):
                return  # (logged) the next sweep tries again
            await asyncio.sleep(0)

    def _backlog_pending(self) -> bool:
        with session_scope(self.engine) as session:
            return backlog.pending(session, owner_id=self.owner_id)

    async def catch_up(self, max_rounds: int = 100) -> None:
        """On start, deliver everything that came due while the bot was down.

        One sweep delivers a bounded batch (so one message stays readable); after a long
        downtime more may be waiting, so sweep until a round delivers nothing.
        """
        for _ in range(max_rounds):
            if not await self.sweep():
                return

    async def poll_sources(self) -> None:
        """Poll every source whose account this worker can lease; skip the others."""
        for source in self.sources:
            async with self.account_lease(source.platform) as held:
                if not held:
                    log.info("%s is being polled by another worker; skipping", source.platform)
                    continue
                try:
                    await source.poll(self)
                except Exception:
                    log.exception("polling %s failed; will retry on the next poll",
                                  source.platform)
        await self.flush()

    async def start_work(self, *, once: bool,
                         also: Sequence[Job] = ()) -> AsyncIOScheduler | None:
        """The lifecycle every surface shares: poll the sources (and run ``also``, e.g. the
        poll of accounts connected by chat), catch up on what came due while the bot was
        down, then (unless ``once``) keep polling and sweeping on timers. Returns the
        running scheduler for the caller to shut down (None with ``once``)."""
        from bot.scheduler import build_scheduler

        await self.poll_sources()
        for _name, job, _seconds in also:
            await job()
        await self.catch_up()
        if once:
            return None
        scheduler = build_scheduler([
            ("sweep", self.sweep, self.settings.sweep_seconds),
            ("poll", self.poll_sources, self.settings.poll_minutes * 60),
            *also,
        ])
        scheduler.start()
        return scheduler

    @asynccontextmanager
    async def account_lease(self, platform: str) -> AsyncIterator[bool]:
        """Hold the owner's ``platform`` account lease for the block (yields False when
        another live worker holds it), renewing it in the background."""
        with session_scope(self.engine) as session:
            account_id = leases.claim_account(
                session, owner_id=self.owner_id, platform=platform, worker=self.worker,
                now=self.clock(), lease=self.lease,
            )
        if account_id is None:
            yield False
            return
        heartbeat = asyncio.create_task(self._keep_lease(account_id))
        try:
            yield True
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
            with session_scope(self.engine) as session:
                leases.release(session, Account, [account_id], worker=self.worker)

    async def _keep_lease(self, account_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            with session_scope(self.engine) as session:
                held = leases.renew(session, Account, [account_id], worker=self.worker,
                                    now=self.clock(), lease=self.lease)
            if not held:
                log.warning("lost the poll lease on account %s to another worker", account_id)
                return
