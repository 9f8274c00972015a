"""Serving every owner on a shared database: ``plnbot run --worker``.

``App`` serves one owner (the console path). A ``Worker`` serves all of them, and any
number of workers can run against one PostgreSQL database:

1. it claims a batch of owners that need attention (their periodic sweep is due, or
   they have outbox messages due) with a lease (``storage/leases.py``: ``FOR UPDATE
   SKIP LOCKED`` on PostgreSQL), so one owner is served by one worker at a time;
2. for each owner it runs the sweep (``Tick("sweep")``: due reminders, nudges, draft
   expiry… in one transaction, so a reminder becomes exactly one outbox message), then
   delivers that owner's outbox (claimed in batches, marked sent one by one, see
   ``bot/outbox.py``);
3. it gives the owner back with the time of its next sweep.

A worker that dies holds its owners and messages only until their leases expire; then
another worker takes them over. Messages go to one surface that routes by
``OutgoingMessage.owner_ref`` (``RoutingSurface``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import union, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from bot.config import Settings
from bot.context import Clock, OutgoingMessage, WelcomeSender, utcnow
from bot.dispatcher import Dispatcher
from bot.events import Event, Tick
from bot.outbox import ChatSurface, Outbox, worker_id
from storage import leases
from storage.db import checkpoint
from storage.models import OutboxMessage, Owner

log = logging.getLogger(__name__)

OWNERS_PER_CLAIM = 20


class NoRoute(LookupError):
    """No surface is configured for this owner's address; the message waits (retried)."""


class RoutingSurface:
    """One surface for many owners: picks a surface by the scheme of ``owner_ref``.

    An owner_ref ``"discord:1234"`` goes to ``routes["discord"]`` (which reads the rest
    as the address); anything without a route goes to ``default``. With no default, the
    send fails and the outbox retries it later, so a message is never dropped.
    """

    def __init__(self, routes: dict[str, ChatSurface] | None = None,
                 default: ChatSurface | None = None) -> None:
        self.routes = dict(routes or {})
        self.default = default

    def route(self, owner_ref: str) -> ChatSurface:
        scheme = owner_ref.split(":", 1)[0] if ":" in owner_ref else ""
        surface = self.routes.get(scheme, self.default)
        if surface is None:
            raise NoRoute(f"no chat surface for owner {owner_ref!r}")
        return surface

    async def send(self, message: OutgoingMessage) -> None:
        await self.route(message.owner_ref).send(message)


class Worker:
    def __init__(
        self, *, settings: Settings, engine: Engine, surface: ChatSurface,
        clock: Clock = utcnow, worker: str | None = None,
        senders: dict[str, WelcomeSender] | None = None,
        owners_per_claim: int = OWNERS_PER_CLAIM,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.surface = surface
        self.clock = clock
        self.id = worker or worker_id(settings.worker_id)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.every = timedelta(seconds=settings.sweep_seconds)
        self.owners_per_claim = owners_per_claim
        self.dispatcher = Dispatcher(engine=engine, settings=settings,
                                     clock=lambda: self.clock(), senders=senders or {})
        self.outbox = Outbox(engine, clock=lambda: self.clock(), worker=self.id,
                             lease=self.lease, files=settings.data_path)

    async def handle(self, event: Event) -> None:
        """An event from a live chat surface (a Discord DM): dispatch it, then deliver its
        owner's messages at once rather than at the owner's next claim. Messages are
        claimed under leases (``Outbox``), so this never races another worker's delivery."""
        await self.dispatcher.dispatch(event)
        with Session(self.engine) as session:
            owner_id = session.exec(
                select(Owner.id).where(Owner.external_ref == event.owner_ref)).first()
        if owner_id is not None:
            await self.outbox.deliver(self.surface, owner_ids=[owner_id])

    def claim_owners(self) -> list[int]:
        """Lease owners whose sweep is due or who have messages due, oldest sweep first."""
        now = self.clock()
        messages_due = select(OutboxMessage.owner_id).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
            leases.lease_free(OutboxMessage, now))
        sweep_due = select(Owner.id).where(
            or_(col(Owner.next_sweep_at).is_(None), col(Owner.next_sweep_at) <= now))
        # a UNION of two indexed lookups: an OR across them made PostgreSQL read every
        # owner (95 ms for 100,000 idle owners; see bench/bench_due.py)
        needs_work = col(Owner.id).in_(union(sweep_due, messages_due))
        with Session(self.engine) as session:
            return leases.claim(
                session, Owner, where=[needs_work], worker=self.id, now=now, lease=self.lease,
                order_by=[col(Owner.next_sweep_at).asc().nulls_first()],
                limit=self.owners_per_claim,
            )

    async def run_once(self) -> int:
        """Claim one batch of owners and serve each; returns how many were served."""
        return await self.serve_many(self.claim_owners(), just_claimed=True)

    async def drain(self) -> int:
        """Serve until no owner needs attention (``--once``); returns owners served."""
        total = 0
        while served := await self.run_once():
            total += served
        return total

    async def serve(self, owner_id: int) -> int:
        """Serve one owner this worker claimed earlier (1), or leave it if taken over (0)."""
        return await self.serve_many([owner_id], just_claimed=False)

    async def serve_many(self, owner_ids: list[int], *, just_claimed: bool) -> int:
        """Sweep each owner if due and deliver its messages, renewing the leases whenever
        half of one has passed; give them all back at the end (one write per kind)."""
        held, renewed_at = set(owner_ids), self.clock() if just_claimed else None
        swept: list[int] = []
        served: list[int] = []
        try:
            for index, owner_id in enumerate(owner_ids):
                if renewed_at is None or self.clock() >= renewed_at + self.lease / 2:
                    held, renewed_at = self._renew(owner_ids[index:]), self.clock()
                if owner_id not in held:
                    log.info("owner %s was taken over by another worker; leaving it", owner_id)
                    continue
                done = swept if await self._serve_owner(owner_id) else served
                done.append(owner_id)
        finally:
            self._give_back(swept + served)
            self._not_before(swept, self.clock() + self.every)
        return len(swept) + len(served)

    async def _serve_owner(self, owner_id: int) -> bool:
        """Sweep (when due) and deliver; True when the owner was swept."""
        with Session(self.engine) as session:
            ref, next_sweep_at = session.exec(
                select(Owner.external_ref, Owner.next_sweep_at).where(Owner.id == owner_id)
            ).one()
        swept = _is_due(next_sweep_at, self.clock())
        if swept:
            await self.dispatcher.dispatch(Tick(owner_ref=ref, name="sweep"))
        await self.outbox.deliver(self.surface, owner_ids=[owner_id], limit=10_000)
        return swept

    def _renew(self, owner_ids: list[int]) -> set[int]:
        with Session(self.engine) as session:
            return set(leases.renew(session, Owner, owner_ids, worker=self.id,
                                    now=self.clock(), lease=self.lease))

    def _not_before(self, owner_ids: list[int], moment: datetime) -> None:
        """A sweep that failed (rolled back) left its owner due: wait ``every`` before the
        next try. A sweep that worked has set the owner's next due time itself
        (handlers/due.py), which this leaves alone."""
        if not owner_ids:
            return
        now = self.clock()
        with Session(self.engine) as session:
            session.execute(
                update(Owner).where(col(Owner.id).in_(owner_ids),
                                    or_(col(Owner.next_sweep_at).is_(None),
                                        col(Owner.next_sweep_at) <= now))
                .values(next_sweep_at=moment).execution_options(synchronize_session=False))
            session.commit()

    def _give_back(self, owner_ids: list[int], **values) -> None:
        with Session(self.engine) as session:
            leases.release(session, Owner, owner_ids, worker=self.id, **values)

    async def run_forever(self, stop: asyncio.Event, *, idle_seconds: float = 5.0) -> None:
        """Serve until ``stop`` is set; between empty passes wait ``idle_seconds``."""
        while not stop.is_set():
            try:
                served = await self.run_once()
            except Exception:  # a database hiccup must not end the worker
                log.exception("worker pass failed; retrying shortly")
                served = 0
            if not served:
                checkpoint(self.engine)  # SQLite: while idle, not in a command's commit
                try:
                    await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
                except TimeoutError:
                    pass


def _is_due(when: datetime | None, now: datetime) -> bool:
    return when is None or when <= now
