"""Factories for normalised events and platform-shaped payloads."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.adapters.translate import bluesky_profile, mastodon_profile, x_profile
from bot.events import CommandReceived, NewConnection, Profile
from storage.models import Connection

_ids = itertools.count(1000)


def x_user(name: str = "Jane Doe", username: str | None = None, description: str = "",
           **extra) -> dict:
    user_id = extra.pop("id", None) or str(next(_ids))
    return {"id": user_id, "name": name, "username": username or name.split()[0].lower() + user_id,
            "description": description, **extra}


def mastodon_account(display_name: str = "Jane Doe", acct: str | None = None, note: str = "",
                     **extra) -> dict:
    account_id = extra.pop("id", None) or str(next(_ids))
    return {"id": account_id, "username": (acct or "jane").split("@")[0],
            "acct": acct or f"user{account_id}@example.social", "display_name": display_name,
            "note": note, "fields": extra.pop("fields", []), "bot": extra.pop("bot", False),
            **extra}


def bluesky_view(display_name: str = "Jane Doe", handle: str | None = None,
                 description: str = "", allow: str | None = "all") -> dict:
    did = f"did:plc:test{next(_ids)}"
    view = {"did": did, "handle": handle or f"{did[-6:]}.bsky.social",
            "displayName": display_name, "description": description}
    if allow:
        view["associated"] = {"chat": {"allowIncoming": allow}}
    return view


def x_person(*args, **kwargs) -> Profile:
    return x_profile(x_user(*args, **kwargs))


def mastodon_person(*args, **kwargs) -> Profile:
    return mastodon_profile(mastodon_account(*args, **kwargs))


def bluesky_person(*args, **kwargs) -> Profile:
    return bluesky_profile(bluesky_view(*args, **kwargs))


def arrival(profile: Profile, owner_ref: str = "local") -> NewConnection:
    return NewConnection(owner_ref=owner_ref, profile=profile)


def command(text: str, owner_ref: str = "local", message_id: str | None = None) -> CommandReceived:
    return CommandReceived(owner_ref=owner_ref, text=text, message_id=message_id)


def lose_the_only_connection(engine: Engine, at: datetime) -> None:
    """The one stored connection was lost at ``at`` (they unfollowed)."""
    with Session(engine) as session:
        connection = session.exec(select(Connection)).one()
        connection.state, connection.lost_at = "lost", at
        session.add(connection)
        session.commit()
