"""What a handler gets besides its event: the session, the owner, the clock, ``send``.

Handlers never talk to a platform or a chat surface directly. ``ctx.send`` writes an
OutboxMessage in the handler's own transaction, so the message exists if and only if
the state change that caused it was committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.config import Settings
from bot.connecting import AccountConnector
from bot.ports import SendRefused, SendUncertain, WelcomeSender
from storage import connections as store
from storage.models import OutboxMessage, Owner, table_of

log = logging.getLogger(__name__)

__all__ = ["SendRefused", "SendUncertain", "WelcomeSender"]  # the ports, where handlers look

Clock = Callable[[], datetime]
# Work that must happen only once the handler's transaction is committed (calling a
# platform to deliver an approved welcome). It gets a way to open a fresh transaction.
ContextOpener = Callable[[], AbstractContextManager["Context"]]
AfterCommit = Callable[[ContextOpener], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class OutgoingMessage:
    """A message on its way to the owner's chat surface."""

    kind: str
    text: str
    fields: dict[str, Any]
    idempotency_key: str
    owner_ref: str
    outbox_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, **self.fields}


@dataclass
class Context:
    session: Session
    owner: Owner
    settings: Settings
    clock: Clock = utcnow
    key_prefix: str = ""
    senders: dict[str, WelcomeSender] = field(default_factory=dict)
    sent: list[OutboxMessage] = field(default_factory=list)
    after_commit: list[AfterCommit] = field(default_factory=list)
    # how ``connect …`` reaches the platforms (bot/connecting.py); None where unavailable
    connector: AccountConnector | None = None

    def now(self) -> datetime:
        return self.clock()

    def send(self, kind: str, text: str, *, key: str | None = None,
             attachment: bytes | None = None, **fields: Any):
        """Queue a message to the owner; the same key twice queues it once.

        ``attachment`` (a chart PNG) is stored with the message, so whichever worker
        delivers it has it (bot/outbox.py writes it where that worker keeps files)."""
        key = key or f"{self.key_prefix}:{len(self.sent)}"
        key = f"{self.owner.id}:{key}"
        existing = self.session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).first()
        if existing is not None:
            return existing
        now = self.now()
        message = OutboxMessage(
            owner_id=self.owner.id,
            idempotency_key=key,
            kind=kind,
            text=text,
            payload_json=json.dumps(fields, default=str, ensure_ascii=False),
            next_attempt_at=now,
            created_at=now,
            attachment=attachment,
        )
        self.session.add(message)
        self.session.flush()
        self.sent.append(message)
        return message

    def send_many(self, messages: list[tuple[str, str, str, dict[str, Any]]]) -> int:
        """Queue many ``(kind, text, key, fields)`` messages in one INSERT (a batch of
        arrivals); keys already queued are skipped, as ``send`` would. Returns how many
        were queued. They are not kept in ``sent``: nothing counts them afterwards."""
        keyed = {f"{self.owner.id}:{key}": (kind, text, fields)
                 for kind, text, key, fields in messages}
        queued: set[str] = set()
        for batch in store.chunks(list(keyed)):
            queued.update(self.session.exec(
                select(OutboxMessage.idempotency_key)
                .where(col(OutboxMessage.idempotency_key).in_(batch))).all())
        now = self.now()
        rows = [{"owner_id": self.owner.id, "idempotency_key": key, "kind": kind, "text": text,
                 "payload_json": json.dumps(fields, default=str, ensure_ascii=False),
                 "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
                for key, (kind, text, fields) in keyed.items() if key not in queued]
        store.insert_plain(self.session, table_of(OutboxMessage), rows)
        return len(rows)
