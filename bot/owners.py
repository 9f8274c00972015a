"""Enrolling owners for a multi-owner bot: ``plnbot owner add`` / ``plnbot owner list``.

A worker serving many teachers (``plnbot run --worker``) must not answer just anyone
who finds the bot on Discord, so an operator enrols each owner by their address
(``discord:<user id>``); the Discord adapter serves only enrolled owners. This module
is SDK-free: the CLI uses it without loading discord.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Contact, Owner

# A Discord user id is a snowflake: a positive 64-bit integer, 17 to 20 digits for any
# account made since 2015.
DISCORD_REF = re.compile(r"^discord:(?P<id>[1-9][0-9]{16,19})$")
MAX_SNOWFLAKE = 2**64 - 1
NAME_LIMIT = 200  # Owner.name


class EnrolmentError(ValueError):
    """An owner address, name or time zone that cannot be enrolled; says which and why."""


@dataclass(frozen=True)
class OwnerSummary:
    external_ref: str
    name: str
    tz: str
    contacts: int


def discord_user_id(owner_ref: str) -> int | None:
    """The Discord user id in ``discord:<id>``, or None when the ref is not one."""
    match = DISCORD_REF.match(owner_ref)
    if match is None or int(match["id"]) > MAX_SNOWFLAKE:
        return None
    return int(match["id"])


def discord_ref(user_id: int) -> str:
    return f"discord:{user_id}"


def check_ref(external_ref: str) -> str:
    """The ref as stored, or an ``EnrolmentError`` naming the accepted form."""
    ref = external_ref.strip()
    if discord_user_id(ref) is None:
        raise EnrolmentError(
            f"{external_ref!r} is not an owner address; use discord:<user id>, the number "
            "Discord shows with Developer Mode on (right-click the person → Copy User ID), "
            "e.g. discord:123456789012345678"
        )
    return ref


@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_tz(zone: str) -> str:
    if zone not in known_zones():
        raise EnrolmentError(f"unknown time zone {zone!r}; use an Area/City name such as "
                             "Europe/London or America/Chicago")
    return zone


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if len(name) > NAME_LIMIT:
        raise EnrolmentError(f"the name is longer than {NAME_LIMIT} characters")
    return name


def add_owner(session: Session, *, external_ref: str, name: str, tz: str,
              now: datetime) -> tuple[Owner, bool]:
    """Enrol an owner; returns the row and whether it was created (False: it existed,
    and is left exactly as it was — adding twice is harmless)."""
    ref, tz, name = check_ref(external_ref), check_tz(tz), check_name(name)
    existing = session.exec(select(Owner).where(Owner.external_ref == ref)).first()
    if existing is not None:
        return existing, False
    # Field and interests keep the model's defaults: PLNBOT_OWNER_FIELD/_INTERESTS
    # describe the single PLNBOT_OWNER, not everyone; each owner sets their own.
    owner = Owner(external_ref=ref, name=name, tz=tz, created_at=now)
    try:
        with session.begin_nested():  # another operator may be adding them right now
            session.add(owner)
            session.flush()
    except IntegrityError:
        return session.exec(select(Owner).where(Owner.external_ref == ref)).one(), False
    return owner, True


def list_owners(session: Session) -> list[OwnerSummary]:
    """Every owner with their number of contacts, in the order they were enrolled."""
    contacts = (select(Contact.owner_id, func.count().label("n"))
                .group_by(col(Contact.owner_id)).subquery())
    rows = session.exec(
        select(Owner.external_ref, Owner.name, Owner.tz, func.coalesce(contacts.c.n, 0))
        .outerjoin(contacts, contacts.c.owner_id == Owner.id).order_by(col(Owner.id))
    ).all()
    return [OwnerSummary(*row) for row in rows]


def is_enrolled(session: Session, external_ref: str) -> int | None:
    """The owner's row id when ``external_ref`` is enrolled, else None."""
    return session.exec(select(Owner.id).where(Owner.external_ref == external_ref)).first()
