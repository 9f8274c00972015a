"""What a handler gets besides its event: the session, the owner, the clock, ``send``.

Handlers never talk to a platform or a chat surface directly. ``ctx.send`` writes an
OutboxMessage in the handler's own transaction, so the message exists if and only if
the state change that caused it was committed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.connecting import AccountConnector
from bot.ports import SendRefused, SendUncertain, WelcomeSender
from storage import connections as store
from storage.models import Contact, Handle, OutboxMessage, Owner, table_of

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
    # values from strangers' profiles that ``text`` quotes (``quoted_in``): a surface
    # that renders Markdown shows them as text; never part of ``--json``
    quoted: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, **self.fields}


# Where a message keeps what it quotes from strangers (``quoted_in``), beside its fields:
# the outbox takes it out into ``OutgoingMessage.quoted``, so ``--json`` never shows it.
QUOTED_KEY = "_quoted"
# Characters with a meaning in chat Markdown or mentions (Discord's, for one); a value
# without any needs no escaping anywhere.
MARKUP = re.compile(r"[\\*_~|`>\[\]()#@<:-]")
# The profile text a contact or handle carries: the person's own words, not the owner's;
# the first two name them (a text quoting anything else of theirs names them too).
PROFILE_TEXT: dict[type, tuple[str, ...]] = {
    Contact: ("name", "first_name", "bio", "role", "organisation", "location", "website",
              "interests"),
    Handle: ("handle", "display_handle"),
}
PREFIX = 24  # a value quoted only from its start (a bio cut short) is found by this much
# Contacts and handles a transaction loaded, held for ``quoted_in`` (the session's own
# identity map lets go of an object nothing else holds); bounded, so a sync that loads
# a hundred thousand keeps only the first few thousand alive.
LOADED_KEY = "plnbot_profiles_loaded"
MAX_REMEMBERED = 2_000


def _remember_loaded(target: Contact | Handle, context: Any) -> None:
    """A contact or handle read from the database: kept for ``quoted_in``."""
    remembered = context.session.info.setdefault(LOADED_KEY, [])
    if len(remembered) < MAX_REMEMBERED:
        remembered.append(target)


for _model in PROFILE_TEXT:
    event.listen(_model, "load", _remember_loaded)


def quoted_in(session: Session, text: str) -> list[str]:
    """The profile values with markup that ``text`` quotes, from every contact and handle
    this transaction has loaded or made: replies name people in their text (``drafts``,
    ``due``, ``history``, the digest…) without carrying the values in their fields, and
    a value that reaches the owner's Discord as written would render as bold, a spoiler
    or a masked link from their own bot. A text quotes a person's bio or place only with
    their name or handle, so only the people it names are looked at further (one
    substring test for everyone else); a value quoted in part (a bio cut short) gives
    the words of it that the text holds. Nothing is read from the database."""
    found: set[str] = set()
    held = {id(e): e for e in (*session.info.get(LOADED_KEY, ()),
                               *session.identity_map.values())}
    for entity in held.values():
        names = PROFILE_TEXT.get(type(entity))
        if names is None:
            continue
        values = entity.__dict__  # as loaded: reading never queries
        first, second = values.get(names[0]), values.get(names[1])
        # named in full or by the start (a name cut short); inline: it runs for everyone
        if not ((first and first[:PREFIX] in text) or (second and second[:PREFIX] in text)):
            continue
        for name in names:
            found.update(_quoted_parts(text, values.get(name)))
    return sorted(found)


def _quoted_parts(text: str, value: Any) -> set[str]:
    """``value`` if ``text`` quotes it and it holds markup; else the words of it with
    markup that ``text`` holds, when it quotes its start."""
    if not isinstance(value, str) or len(value) < 2 or not MARKUP.search(value):
        return set()
    if value in text:
        return {value}
    if value[:PREFIX] not in text:
        return set()
    return {word for word in value.split()
            if len(word) >= 2 and word in text and MARKUP.search(word)}


# Keys of message fields whose values come from someone else's profile: a surface that
# renders Markdown (Discord) shows them, wherever the text quotes them, as text.
UNTRUSTED_KEYS = frozenset({"name", "names", "handle", "handles", "first_name", "role",
                            "organisation", "location", "website", "interests", "bio",
                            "display_handle"})


def untrusted_values(value: Any, key: str = "") -> Iterator[str]:
    """The profile values in a message's fields (under UNTRUSTED_KEYS, at any depth),
    each whole and then word by word, for text that quotes one only in part (a bio cut
    at 280 characters, a name inside a longer line)."""
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            yield from untrusted_values(inner, str(inner_key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from untrusted_values(item, key)
    elif isinstance(value, str) and key in UNTRUSTED_KEYS and len(value) >= 2:
        yield value
        for word in value.split():
            if len(word) >= 2 and word != value:
                yield word


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
             attachment: bytes | None = None, quoting: Iterable[str] = (), **fields: Any):
        """Queue a message to the owner; the same key twice queues it once.

        ``attachment`` (a chart PNG) is stored with the message, so whichever worker
        delivers it has it (bot/outbox.py writes it where that worker keeps files).
        ``quoting``: strangers' words the text holds that this transaction did not load
        (``undo`` repeating an earlier reply), kept with what ``quoted_in`` finds."""
        key = key or f"{self.key_prefix}:{len(self.sent)}"
        key = f"{self.owner.id}:{key}"
        existing = self.session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).first()
        if existing is not None:
            return existing
        now = self.now()
        fields = self._with_quoted(text, fields, quoting)
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

    def _with_quoted(self, text: str, fields: dict[str, Any],
                     quoting: Iterable[str] = ()) -> dict[str, Any]:
        """``fields`` and, under QUOTED_KEY, the strangers' words ``text`` quotes that
        the fields do not already carry (a new connection carries its whole profile, so
        it reads the same whether the arrival was written alone or in a batch)."""
        quoted = {*quoted_in(self.session, text), *(q for q in quoting if q in text)}
        if not quoted:
            return fields
        quoted -= set(untrusted_values(fields))
        return {**fields, QUOTED_KEY: sorted(quoted)} if quoted else fields

    def send_many(self, messages: list[tuple[str, str, str, dict[str, Any]]]) -> int:
        """Queue many ``(kind, text, key, fields)`` messages in one INSERT (a batch of
        arrivals); keys already queued are skipped, as ``send`` would. Returns how many
        were queued. They are not kept in ``sent``: nothing counts them afterwards."""
        keyed = {f"{self.owner.id}:{key}": (kind, text, self._with_quoted(text, fields))
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
