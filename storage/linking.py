"""Merging two contacts that turn out to be one person (the ``link`` command).

The surviving contact takes over everything that hangs off the other one: handles
(and so their connections), interactions, reminders, drafts and cadences. The merged
row stays, pointing at the survivor through ``merged_into_id``, so its old ``#id``
still resolves; it leaves the search index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from storage import search
from storage.models import Cadence, Contact, Draft, Handle, Interaction, Owner, Reminder

FILLABLE = ("first_name", "bio", "role", "organisation", "location", "website", "how_met")


@dataclass
class MergeResult:
    handles: int
    interactions: int
    reminders: int
    drafts: int


def merge_contacts(session: Session, *, owner: Owner, survivor: Contact,
                   merged: Contact) -> MergeResult:
    """Move everything of ``merged`` onto ``survivor``; both must be live and distinct."""
    assert survivor.owner_id == owner.id == merged.owner_id and survivor.id != merged.id
    moved = {model: _move(session, model, owner, merged.id, survivor.id)
             for model in (Handle, Interaction, Reminder, Draft)}
    _move_cadence(session, owner, merged.id, survivor.id)
    session.execute(
        update(Contact)
        .where(col(Contact.owner_id) == owner.id, col(Contact.merged_into_id) == merged.id)
        .values(merged_into_id=survivor.id)
    )
    _combine_profiles(survivor, merged)
    merged.merged_into_id = survivor.id
    session.add_all([survivor, merged])
    session.flush()
    search.reindex(session.connection(), [survivor.id, merged.id])
    return MergeResult(handles=moved[Handle], interactions=moved[Interaction],
                       reminders=moved[Reminder], drafts=moved[Draft])


def _move(session: Session, model, owner: Owner, old_id: int, new_id: int) -> int:
    result = session.execute(
        update(model)
        .where(model.owner_id == owner.id, model.contact_id == old_id)
        .values(contact_id=new_id)
    )
    # an UPDATE's result is a CursorResult; Session.execute is typed with the base class
    return cast(CursorResult[Any], result).rowcount or 0


def _move_cadence(session: Session, owner: Owner, old_id: int, new_id: int) -> None:
    """One person keeps one keep-in-touch rule: the survivor's, else the merged one's."""
    kept = session.exec(
        select(Cadence).where(Cadence.owner_id == owner.id, Cadence.contact_id == new_id)
    ).first()
    for cadence in session.exec(
        select(Cadence).where(Cadence.owner_id == owner.id, Cadence.contact_id == old_id)
    ):
        if kept is None:
            cadence.contact_id = new_id
            kept = cadence
        else:
            session.delete(cadence)


def _combine_profiles(survivor: Contact, merged: Contact) -> None:
    """Keep the survivor's details; fill its gaps from the merged contact."""
    for name in FILLABLE:
        if not getattr(survivor, name) and getattr(merged, name):
            setattr(survivor, name, getattr(merged, name))
    if survivor.field == "other" and merged.field != "other":
        survivor.field = merged.field
    interests = [i for i in f"{survivor.interests},{merged.interests}".split(",") if i]
    survivor.interests = ",".join(dict.fromkeys(interests))[:1000]
    talks = [t for t in (survivor.last_conversation_at, merged.last_conversation_at) if t]
    survivor.last_conversation_at = max(talks) if talks else None
    survivor.created_at = min(survivor.created_at, merged.created_at)
