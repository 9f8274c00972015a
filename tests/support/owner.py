"""Changing the owner's preferences directly, as ``settings`` would."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import Owner


def set_owner(app, **fields) -> None:
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        for name, value in fields.items():
            setattr(owner, name, value)
        session.add(owner)
        session.commit()
