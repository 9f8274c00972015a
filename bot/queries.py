"""What adapters may ask about an owner's stored state, so they read no tables themselves.

The Discord client needs to know whether a server's first member list was recorded,
which draft a button means, when it last read the owner's DMs, and (a worker's) which
owners connected a server by chat; these answer it from the database, each in its own
short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from handlers import periodic
from storage import accounts
from storage.db import session_scope
from storage.models import Account, Draft, Owner


def baseline_done(engine: Engine, *, owner_id: int, platform: str) -> bool:
    """Whether the owner's ``platform`` account has its first (quiet) sync behind it:
    the environment's (single-owner ``plnbot run``), else their first one there."""
    with session_scope(engine) as session:
        account = session.exec(select(Account).where(
            Account.owner_id == owner_id, Account.platform == platform)
            .order_by(col(Account.connected_at).is_not(None), col(Account.id))).first()
        return account is not None and account.baseline_done


def draft_of(engine: Engine, *, owner_id: int, draft_id: int) -> Draft | None:
    """Draft ``draft_id`` if it is ``owner_id``'s (detached, for reading), else None."""
    with Session(engine, expire_on_commit=False) as session:
        draft = session.get(Draft, draft_id)
        return draft if draft is not None and draft.owner_id == owner_id else None


def last_run(engine: Engine, *, owner_id: int, job: str) -> datetime | None:
    """When ``job`` last ran for the owner (a JobRun row), or None."""
    with session_scope(engine) as session:
        owner = session.get(Owner, owner_id)
        return periodic.last_run(session, owner=owner, job=job) if owner else None


def mark_run(engine: Engine, *, owner_id: int, job: str, at: datetime) -> None:
    """Record that ``job`` ran at ``at`` for the owner, unless a later run is recorded."""
    with session_scope(engine) as session:
        owner = session.get(Owner, owner_id)
        if owner is None:
            return
        seen = periodic.last_run(session, owner=owner, job=job)
        if seen is None or at > seen:
            periodic.mark_run(session, owner=owner, job=job, at=at)


def owner_id_of(engine: Engine, ref: str) -> int | None:
    """The id of the owner enrolled as ``ref`` (``discord:<user id>``), or None."""
    with Session(engine) as session:
        return session.exec(select(Owner.id).where(Owner.external_ref == ref)).first()


def owners_with_prefix(engine: Engine, prefix: str) -> list[tuple[int, str]]:
    """``(id, external_ref)`` of every owner whose ref starts with ``prefix``, by id."""
    with Session(engine) as session:
        rows = session.exec(select(Owner.id, Owner.external_ref).where(
            col(Owner.external_ref).startswith(prefix)).order_by(col(Owner.id))).all()
    return [(owner_id, ref) for owner_id, ref in rows if owner_id is not None]


def owner_since(engine: Engine, owner_id: int) -> datetime | None:
    """When the owner was enrolled."""
    with Session(engine) as session:
        owner = session.get(Owner, owner_id)
        return owner.created_at if owner is not None else None


@dataclass(frozen=True)
class Watcher:
    """An owner who connected a server (or other account) by chat, as read just now:
    one per account (an owner who connected two servers is two watchers)."""

    account_id: int
    owner_id: int
    owner_ref: str
    external_id: str
    baseline_done: bool
    # its connections were read since it was (last) connected: until then, live events
    # wait for that first read (the quiet baseline, or the catch-up after a reconnect)
    synced: bool
    welcome_channel: int | None


def watchers(engine: Engine, *, platform: str, external_id: str | None = None,
             owner_id: int | None = None) -> list[Watcher]:
    """The accounts on ``platform`` connected by chat: all of them, those of
    ``external_id`` (one Discord server, for each owner who connected it), or only
    ``owner_id``'s (each of their servers)."""
    with engine.connect() as connection:
        rows = accounts.connected_by_chat(connection, platform=platform,
                                          external_id=external_id, owner_id=owner_id)
    return [Watcher(account_id=row.account_id, owner_id=row.owner_id,
                    owner_ref=row.owner_ref, external_id=row.external_id,
                    baseline_done=bool(row.baseline_done),
                    synced=bool(row.synced), welcome_channel=_channel_id(row.welcome_channel))
            for row in rows]


def _channel_id(stored: str | None) -> int | None:
    return int(stored) if stored and stored.isdigit() else None


def arrival_welcome_channel(engine: Engine, *, owner_id: int, handle_id: int,
                            platform: str) -> int | None:
    """The welcome channel of the owner's server (connected by chat) that this member
    arrived on most recently, where a welcome to them belongs; None: send a DM."""
    with engine.connect() as connection:
        stored = accounts.arrival_welcome_channel(connection, owner_id=owner_id,
                                                  handle_id=handle_id, platform=platform)
    return _channel_id(stored)
