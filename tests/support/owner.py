"""Owners for tests: their preferences changed directly, as ``settings`` would, and
teachers enrolled by their Discord ids, as ``plnbot owner add discord:<id>`` would."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from bot.context import utcnow
from bot.owners import add_owner
from storage.models import Owner


def enrol(engine, *user_ids: int | str) -> None:
    """Each Discord user id as an owner enrolled a day ago."""
    with Session(engine) as session:
        for user_id in user_ids:
            add_owner(session, external_ref=f"discord:{user_id}", name="", tz="UTC",
                      now=utcnow() - timedelta(days=1))
        session.commit()


def set_owner(app, **fields) -> None:
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        for name, value in fields.items():
            setattr(owner, name, value)
        session.add(owner)
        session.commit()
