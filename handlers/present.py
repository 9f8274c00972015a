"""How people and their history are shown to the owner (text and ``--json`` fields)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from bot.events import Profile
from handlers.drafting import PLATFORM_NAMES
from storage import repo
from storage.models import Account, Connection, Contact, Handle, Owner

COUNT_WORDS = {1: "once", 2: "twice"}


def at_handle(platform: str, handle: str) -> str:
    handle = handle.lstrip("@")
    return handle if platform == "discord" else f"@{handle}"


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
