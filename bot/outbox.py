"""Delivering the durable outbox to the owner's chat surface.

A message is claimed with a short lease (an UPDATE that only one worker can win),
handed to the surface with its idempotency key, then marked sent. A crash after the
claim leaves the lease to expire and the message is delivered again by whoever runs
next; surfaces that can (Discord's nonce) drop the repeat by its key. A surface
failure is retried with back-off and never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import timedelta
from typing import Protocol

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.context import Clock, OutgoingMessage, utcnow
from storage.models import OutboxMessage, Owner

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)


class ChatSurface(Protocol):
    """Where the owner reads the bot: the console, Discord DMs, a test double."""

    async def send(self, message: OutgoingMessage) -> None: ...


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Outbox:
    def __init__(self, engine: Engine, *, clock: Clock = utcnow, worker: str | None = None):
        self.engine = engine
        self.clock = clock
        self.worker = worker or worker_id()

    def _due_ids(self, session: Session, owner_ids: list[int] | None, limit: int) -> list[int]:
        now = self.clock()
        query = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(col(OutboxMessage.lease_until).is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if owner_ids is not None:
            query = query.where(col(OutboxMessage.owner_id).in_(owner_ids))
        return list(session.exec(query))

    def _claim(self, session: Session, message_id: int) -> bool:
        now = self.clock()
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "pending",
                or_(col(OutboxMessage.lease_until).is_(None), OutboxMessage.lease_until < now),
            )
            .values(lease_owner=self.worker, lease_until=now + LEASE)
        )
        session.commit()
        return result.rowcount == 1

    async def deliver(
        self, surface: ChatSurface, *, owner_ids: list[int] | None = None, limit: int = 500
    ) -> int:
        """Deliver due messages in order; returns how many reached the surface."""
        delivered = 0
        with Session(self.engine, expire_on_commit=False) as session:
            for message_id in self._due_ids(session, owner_ids, limit):
                if not self._claim(session, message_id):
                    continue
                row = session.get(OutboxMessage, message_id)
                owner = session.get(Owner, row.owner_id)
                try:
                    await surface.send(to_outgoing(row, owner.external_ref))
                except Exception as exc:  # the surface's failure must not lose the message
                    self._retry_later(session, row, exc)
                    continue
                row.status, row.sent_at, row.lease_until = "sent", self.clock(), None
                row.attempts += 1
                session.add(row)
                session.commit()
                delivered += 1
        return delivered

    def _retry_later(self, session: Session, row: OutboxMessage, exc: Exception) -> None:
        row.attempts += 1
        delay = min(MAX_BACKOFF, timedelta(seconds=5 * 2 ** min(row.attempts, 12)))
        row.next_attempt_at = self.clock() + delay
        row.lease_until = None
        row.last_error = f"{type(exc).__name__}: {exc}"[:500]
        session.add(row)
        session.commit()
        log.warning("delivering message %s failed (%s); retrying in %s",
                    row.id, type(exc).__name__, delay)


def to_outgoing(row: OutboxMessage, owner_ref: str) -> OutgoingMessage:
    return OutgoingMessage(
        kind=row.kind,
        text=row.text,
        fields=json.loads(row.payload_json or "{}"),
        idempotency_key=row.idempotency_key,
        owner_ref=owner_ref,
        outbox_id=row.id,
    )
