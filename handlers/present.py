"""How people and their history are shown to the owner (text and ``--json`` fields)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot import platforms
from bot.events import Profile
from handlers.drafting import PLATFORM_NAMES
from storage import repo
from storage.models import (
    Account,
    Connection,
    ConnectionEvent,
    Contact,
    Handle,
    MassDrop,
    Owner,
)

COUNT_WORDS = {1: "once", 2: "twice"}


def at_handle(platform: str, handle: str) -> str:
    return platforms.get(platform).shown_handle(handle)


def describe_contact(contact: Contact, profile: Profile | Handle | None = None) -> str:
    """ "Jane Doe (@jane@school.social, #12)" """
    name = contact.name or "someone"
    if profile is None:
        return f"{name} (#{contact.id})"
    handle = getattr(profile, "display_handle", None) or profile.handle
    return f"{name} ({at_handle(profile.platform, handle)}, #{contact.id})"


def contact_summary(contact: Contact, profile: Profile | Handle | None = None) -> dict[str, Any]:
    handle = ""
    if profile is not None:
        handle = getattr(profile, "display_handle", None) or profile.handle
    return {
        "id": contact.id,
        "handle": handle,
        "name": contact.name,
        "first_name": contact.first_name,
        "role": contact.role,
        "organisation": contact.organisation,
        "location": contact.location,
        "website": contact.website,
        "field": contact.field,
        "interests": [i for i in contact.interests.split(",") if i],
    }


def history_line(session: Session, *, owner: Owner, contact: Contact) -> str:
    """ "You talked twice; last in March 2026." or "No conversations logged yet." """
    talks = repo.count_interactions(session, owner=owner, contact=contact, kind="conversation")
    if not talks:
        return "No conversations logged yet."
    times = COUNT_WORDS.get(talks, f"{talks} times")
    last = contact.last_conversation_at
    when = f"; last in {last:%B %Y}" if last else ""
    return f"You talked {times}{when}."


CONNECTION_WORDS = {"follower": "follows you", "following": "you follow them",
                    "member": "member of your server"}


def connection_lines(session: Session, *, owner: Owner, contact: Contact) -> list[str]:
    """ "X: follows you, you follow them (mutual)" for each platform with an active link."""
    rows = session.exec(
        select(Account.platform, Connection.kind)
        .join(Connection, col(Connection.account_id) == Account.id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(Connection.owner_id == owner.id, Handle.contact_id == contact.id,
               Connection.state == "active")
    )
    kinds: dict[str, set[str]] = {}
    for platform, kind in rows:
        kinds.setdefault(platform, set()).add(kind)
    lines = []
    for platform, found in sorted(kinds.items()):
        words = [CONNECTION_WORDS.get(k, k) for k in ("follower", "following", "member")
                 if k in found]
        mutual = " (mutual)" if {"follower", "following"} <= found else ""
        lines.append(f"{PLATFORM_NAMES.get(platform, platform)}: {', '.join(words)}{mutual}")
    return lines


def connection_states(session: Session, *, owner: Owner, contact: Contact,
                      day: Callable[[datetime], str]) -> list[str]:
    """Each platform's connections in words: follows you since, stopped following you
    on, vanished in the mass drop of <date>, back since; "(mutual)" when both follow.
    ``day`` shows a moment in the owner's time zone."""
    rows = session.exec(
        select(Account.platform, Account.handle, Connection)
        .join(Connection, col(Connection.account_id) == col(Account.id))
        .join(Handle, col(Handle.id) == col(Connection.handle_id))
        .where(Connection.owner_id == owner.id, Handle.contact_id == contact.id)
        .order_by(col(Account.platform), col(Connection.kind), col(Account.id))
    ).all()
    by_platform: dict[str, list[tuple[str, Connection]]] = {}
    for platform, account, connection in rows:
        by_platform.setdefault(platform, []).append((account, connection))
    lines = []
    for platform, connections in by_platform.items():
        active = {c.kind for _, c in connections if c.state == "active"}
        mutual = " (mutual)" if {"follower", "following"} <= active else ""
        # connected through several of the owner's accounts there (two servers): say which
        several = len({account for account, _ in connections}) > 1
        states = ", ".join(_state(session, c, day) + (f" ({account})" if several else "")
                           for account, c in connections)
        lines.append(f"{PLATFORM_NAMES.get(platform, platform)}: {states}{mutual}")
    return lines


STATE_WORDS = {
    "follower": ("follows you since", "stopped following you on"),
    "following": ("you follow them since", "you stopped following them on"),
    "member": ("member of your server since", "left your server on"),
}


def _state(session: Session, connection: Connection, day: Callable[[datetime], str]) -> str:
    since, left = STATE_WORDS.get(connection.kind, ("connected since", "left on"))
    if connection.state == "vanished":
        drop = session.get(MassDrop, connection.mass_drop_id) if connection.mass_drop_id else None
        when = day(drop.detected_at) if drop else day(connection.lost_at or connection.since)
        return (f"vanished in the mass drop of {when}"
                + (f" (#{drop.id}), still missing" if drop else ""))
    if connection.state == "lost":
        cause = f" ({connection.lost_cause})" if connection.lost_cause else ""
        return f"{left} {day(connection.lost_at or connection.since)}{cause}"
    back = session.exec(
        select(ConnectionEvent.at).where(ConnectionEvent.connection_id == connection.id,
                                         ConnectionEvent.kind == "returned")
        .order_by(col(ConnectionEvent.at).desc()).limit(1)).first()
    if back is not None:
        return f"{since.replace(' since', '')}; back since {day(back)}"
    return f"{since} {day(connection.since)}"
