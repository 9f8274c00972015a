"""Keyword-only query functions with an explicit session.

Every function takes the owner explicitly and filters by it, so one owner can never
read or change another owner's rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from storage.models import (
    Account,
    Connection,
    Contact,
    Draft,
    Handle,
    Interaction,
    Owner,
    Reminder,
)


class OwnerDefaults(Protocol):
    """What a new owner starts with (``bot.config.Settings`` has these); storage reads
    them structurally and imports nothing from ``bot``."""

    owner_name: str
    timezone: str
    owner_field: str
    owner_interests: str


class Profile(Protocol):
    """A person's profile as a platform shows it (``bot.events.Profile`` is one)."""

    @property
    def platform(self) -> str: ...
    @property
    def external_id(self) -> str: ...
    @property
    def handle(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def bio(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def accepts_dms(self) -> bool | None: ...
    @property
    def raw(self) -> dict[str, Any]: ...


# The largest id any row can have (PostgreSQL INTEGER); a bigger number names no row.
MAX_ROW_ID = 2**31 - 1

def get_or_create_owner(
    session: Session, *, external_ref: str, settings: OwnerDefaults, now: datetime
) -> Owner:
    """The owner with ``external_ref``, created on first contact.

    Two workers may meet a new owner at the same moment: the loser of the insert race
    (a unique violation, inside a savepoint) reads the winner's row instead.
    """
    query = select(Owner).where(Owner.external_ref == external_ref)
    owner = session.exec(query).first()
    if owner is not None:
        return owner
    owner = Owner(
        external_ref=external_ref,
        name=settings.owner_name,
        tz=settings.timezone,
        field=settings.owner_field,
        interests=settings.owner_interests,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(owner)
            session.flush()
    except IntegrityError:
        return session.exec(query).one()
    return owner


def save_source_cursor(session: Session, *, owner: Owner, platform: str, cursor: str) -> None:
    """Where the owner's ``platform`` source has got to, in the caller's transaction (the
    one that stores what the source found up to there)."""
    account = get_or_create_account(session, owner=owner, platform=platform)
    account.cursor = cursor
    session.add(account)


SCOPED_ACCOUNT = "plnbot.account_id"  # key in ``Session.info``: see ``scope_account``


def scope_account(session: Session, account_id: int | None) -> None:
    """Say which account this transaction's event is about (None: none in particular).

    An owner may have several accounts on one platform (two Discord servers); an event
    from one of them names it (``Event.account_id``) and the dispatcher scopes its
    transaction to it, so every handler's ``get_or_create_account`` finds that one
    without each having to pass it along."""
    session.info[SCOPED_ACCOUNT] = account_id


def get_or_create_account(
    session: Session, *, owner: Owner, platform: str, external_id: str = "", handle: str = ""
) -> Account:
    """The owner's account on ``platform`` this transaction is about: the scoped one
    (``scope_account``) when it is the owner's and on ``platform``; else the one with
    ``external_id``; else the owner's account there that was not connected by chat (the
    environment's), created when missing."""
    account = _scoped_account(session, owner=owner, platform=platform)
    if account is None:
        account = _account_by_id_or_first(session, owner=owner, platform=platform,
                                          external_id=external_id)
    if account is None:
        account = Account(
            owner_id=owner.id, platform=platform, external_id=external_id, handle=handle
        )
        session.add(account)
        session.flush()
    else:
        account.external_id = external_id or account.external_id
        account.handle = handle or account.handle
    return account


def _scoped_account(session: Session, *, owner: Owner, platform: str) -> Account | None:
    account_id = session.info.get(SCOPED_ACCOUNT)
    if account_id is None:
        return None
    account = session.get(Account, account_id)
    if account is None or account.owner_id != owner.id or account.platform != platform:
        return None  # another owner's account is never theirs to use
    return account


def _account_by_id_or_first(session: Session, *, owner: Owner, platform: str,
                            external_id: str) -> Account | None:
    """With no scope: the account with that id on the platform, or the environment's (a
    row never connected by chat comes first), or the owner's oldest there."""
    query = select(Account).where(Account.owner_id == owner.id, Account.platform == platform)
    if external_id:
        found = session.exec(query.where(Account.external_id == external_id)).first()
        if found is not None:
            return found
    return session.exec(query.order_by(col(Account.connected_at).is_not(None),
                                       col(Account.id))).first()


def normalise_handle(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


def find_handle(session: Session, *, owner: Owner, platform: str, external_id: str):
    return session.exec(
        select(Handle).where(
            Handle.owner_id == owner.id,
            Handle.platform == platform,
            Handle.external_id == external_id,
        )
    ).first()


# one encoder for every handle (``json.dumps`` with options builds one per call)
PROFILE_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def c_encoder() -> Callable[[Any, int], list[str]] | None:
    """``PROFILE_ENCODER``'s C encoder, made once: ``JSONEncoder.encode`` makes one per
    call and spends more in Python around it than encoding a follower's JSON costs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # (an interpreter without the C accelerator)
        return None
    encoder = PROFILE_ENCODER
    return make({}, encoder.default, json.encoder.encode_basestring, encoder.indent,
                encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                encoder.skipkeys, encoder.allow_nan)


_C_ENCODER = c_encoder()


def encode_profile(raw: Any) -> str:
    """``PROFILE_ENCODER.encode(raw)``, the same text, a third of the time. Anything it
    refuses (a value ``default`` turns into one that refers back to itself) goes to
    ``encode`` itself, which says what is wrong, and the encoder is made anew (its
    record of the containers it is inside may be left half full)."""
    global _C_ENCODER
    if _C_ENCODER is None or type(raw) is str:
        return PROFILE_ENCODER.encode(raw)
    try:
        return "".join(_C_ENCODER(raw, 0))
    except Exception:
        _C_ENCODER = c_encoder()
        return PROFILE_ENCODER.encode(raw)


# half of a UTF-16 pair on its own: no database can store it as text
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def profile_json(profile: Profile) -> str:
    """The platform's JSON for the handle row. Callers clean it first; a lone surrogate
    that got through anyway becomes U+FFFD here rather than failing the whole write."""
    encoded = encode_profile(profile.raw or {})
    if not encoded.isascii() and LONE_SURROGATE.search(encoded):  # (isascii: no scan)
        return LONE_SURROGATE.sub("\ufffd", encoded)
    return encoded


def placeholder_name(platform: str, external_id: str) -> str:
    """The name of someone known only by id (an archive import) until a sync names them."""
    return f"{platform.capitalize()} user {external_id}"


def upsert_handle(
    session: Session, *, owner: Owner, profile: Profile, now: datetime, how_met: str = "",
    new_contact_values: dict | None = None,
) -> tuple[Handle, Contact, bool]:
    """The handle (and its contact) for ``profile``; ``True`` when newly created.

    A known handle keeps its contact (and so its whole history); its profile data is
    refreshed because people change their bios. ``new_contact_values`` (what the
    profile was understood to say) go into a new contact's first insert.
    """
    handle = find_handle(
        session, owner=owner, platform=profile.platform, external_id=profile.external_id
    )
    placeholder = None if handle else _imported_placeholder(session, owner=owner, profile=profile)
    handle = handle or placeholder
    if handle is not None:
        handle.external_id = profile.external_id
        handle.handle = normalise_handle(profile.handle) or handle.handle
        handle.display_handle = profile.handle or handle.display_handle
        handle.profile_json = profile_json(profile)
        handle.accepts_dms = profile.accepts_dms
        contact = session.get_one(Contact, handle.contact_id)
        unnamed = placeholder_name(profile.platform, handle.external_id)
        if profile.name and (placeholder is not None or contact.name == unnamed):
            contact.name = profile.name
        return handle, contact, False
    contact = Contact(**new_contact_values_for(owner_id=owner.id, profile=profile, now=now,
                                              how_met=how_met, understood=new_contact_values))
    session.add(contact)
    session.flush()
    handle = Handle(**new_handle_values(owner_id=owner.id, contact_id=contact.id,
                                        profile=profile, now=now))
    session.add(handle)
    session.flush()
    return handle, contact, True


def new_contact_values_for(*, owner_id: int, profile: Profile, now: datetime, how_met: str,
                           understood: dict | None = None) -> dict:
    """The columns of a contact first met through ``profile`` (one arrival or many)."""
    return {
        "owner_id": owner_id, "name": profile.name or profile.handle, "bio": profile.bio,
        "location": profile.location or None, "website": profile.url or None,
        "how_met": how_met, "created_at": now, **(understood or {}),
    }


def new_handle_values(*, owner_id: int, contact_id: int, profile: Profile,
                      now: datetime) -> dict:
    """The columns of the handle a new contact is first known by."""
    return {
        "owner_id": owner_id, "contact_id": contact_id, "platform": profile.platform,
        "external_id": profile.external_id, "handle": normalise_handle(profile.handle),
        "display_handle": profile.handle, "profile_json": profile_json(profile),
        "accepts_dms": profile.accepts_dms, "created_at": now,
    }


def placeholder_id(profile: Profile) -> str:
    """The external id an export gave someone known only by address (``acct:…``)."""
    return f"acct:{normalise_handle(profile.handle)}"


def _imported_placeholder(session: Session, *, owner: Owner, profile: Profile):
    """A handle an export created by address (``acct:<address>``) before its id was known."""
    return find_handle(session, owner=owner, platform=profile.platform,
                       external_id=placeholder_id(profile))


def handles_of(session: Session, *, owner: Owner, contact: Contact) -> list[Handle]:
    return list(
        session.exec(
            select(Handle)
            .where(Handle.owner_id == owner.id, Handle.contact_id == contact.id)
            .order_by(col(Handle.id))
        )
    )


def row_id(text: str) -> int | None:
    """``text`` ("12" or "#12") as a row id, or None when it can name no row: anything but
    ASCII digits ("²", "١٢"), 0, or past what every database here stores ("#1000…0")."""
    text = text.strip().removeprefix("#")
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


def get_contact(session: Session, *, owner: Owner, contact_id: int) -> Contact | None:
    if not 0 < contact_id <= MAX_ROW_ID:
        return None
    contact = session.get(Contact, contact_id)
    if contact is None or contact.owner_id != owner.id:
        return None
    return contact


def add_interaction(
    session: Session, *, owner: Owner, contact: Contact, kind: str, text: str,
    tags: list[str], at: datetime,
) -> Interaction:
    """Record a conversation, note or welcome.

    Only a conversation resets keep-in-touch clocks: a welcome is one message from the
    owner, not a talk, so the person still counts as "never talked to" for follow-ups,
    `stats` and `who`.
    """
    interaction = Interaction(
        owner_id=owner.id, contact_id=contact.id, kind=kind, text=text,
        tags=" ".join(tags), at=at,
    )
    session.add(interaction)
    if kind == "conversation" and (
        contact.last_conversation_at is None or contact.last_conversation_at < at
    ):
        contact.last_conversation_at = at
        session.add(contact)
    session.flush()
    return interaction


def recent_interactions(
    session: Session, *, owner: Owner, contact: Contact, limit: int = 5
) -> list[Interaction]:
    return list(
        session.exec(
            select(Interaction)
            .where(Interaction.owner_id == owner.id, Interaction.contact_id == contact.id)
            .order_by(col(Interaction.at).desc(), col(Interaction.id).desc())
            .limit(limit)
        )
    )


def count_interactions(session: Session, *, owner: Owner, contact: Contact, kind: str) -> int:
    return session.exec(
        select(func.count())
        .select_from(Interaction)
        .where(
            Interaction.owner_id == owner.id,
            Interaction.contact_id == contact.id,
            Interaction.kind == kind,
        )
    ).one()


def pending_drafts(session: Session, *, owner: Owner) -> list[Draft]:
    return list(
        session.exec(
            select(Draft)
            .where(Draft.owner_id == owner.id, Draft.status == "pending")
            .order_by(col(Draft.id))
        )
    )


def get_draft(session: Session, *, owner: Owner, draft_id: int) -> Draft | None:
    if not 0 < draft_id <= MAX_ROW_ID:  # "#99999999999999999999" names no row, on any database
        return None
    draft = session.get(Draft, draft_id)
    if draft is None or draft.owner_id != owner.id:
        return None
    return draft


def open_reminders_for(session: Session, *, owner: Owner, contact: Contact) -> list[Reminder]:
    return list(
        session.exec(
            select(Reminder)
            .where(
                Reminder.owner_id == owner.id,
                Reminder.contact_id == contact.id,
                col(Reminder.status).in_(("open", "delivered")),
            )
            .order_by(col(Reminder.due_at))
        )
    )


def connections_of(session: Session, *, owner: Owner, contact: Contact) -> list[Connection]:
    return list(
        session.exec(
            select(Connection)
            .join(Handle, col(Handle.id) == Connection.handle_id)
            .where(Connection.owner_id == owner.id, Handle.contact_id == contact.id)
        )
    )


RECENT_DRAFTS = 1_000


def recent_draft_texts(session: Session, *, owner: Owner, other_than: int) -> set[str]:
    """The texts of the owner's newest ``RECENT_DRAFTS`` drafts for anyone but contact
    ``other_than``: what a new welcome must not repeat.

    Two people who compare notes must not find the same welcome; a welcome drafted a
    thousand arrivals ago is past that, and checking every draft ever made would make
    each arrival slower as the network grows. Read once per welcome (one index range),
    then every candidate text is checked in memory.
    """
    recent = (select(Draft.text, Draft.contact_id).where(Draft.owner_id == owner.id)
              .order_by(col(Draft.id).desc()).limit(RECENT_DRAFTS))
    return {text for text, contact_id in session.exec(recent) if contact_id != other_than}


def contacts_named(session: Session, *, owner: Owner, name: str, other_than: int) -> list[Contact]:
    """Other contacts with exactly this full name (two words or more), case-insensitively."""
    if len(name.split()) < 2:
        return []
    return list(
        session.exec(
            select(Contact)
            .where(
                Contact.owner_id == owner.id,
                func.lower(Contact.name) == name.lower(),
                Contact.id != other_than,
                col(Contact.merged_into_id).is_(None),
            )
            .order_by(col(Contact.id))
            .limit(3)
        )
    )


def contacts_by_name(session: Session, *, owner: Owner, names: Iterable[str],
                     ) -> dict[str, list[tuple[int, str]]]:
    """lower(name) → [(id, name), …] by id, for every live contact with one of ``names``
    (two words or more): ``contacts_named`` for many names in one query."""
    wanted = sorted({name.lower() for name in names if len(name.split()) >= 2})
    found: dict[str, list[tuple[int, str]]] = {}
    for start in range(0, len(wanted), 500):
        rows = session.exec(
            select(Contact.id, Contact.name)
            .where(Contact.owner_id == owner.id,
                   func.lower(Contact.name).in_(wanted[start:start + 500]),
                   col(Contact.merged_into_id).is_(None))
            .order_by(col(Contact.id))
        )
        for contact_id, name in rows:
            found.setdefault(name.lower(), []).append((contact_id, name))
    return found


def drafts_in_status(session: Session, *, owner: Owner, status: str) -> list[Draft]:
    return list(
        session.exec(
            select(Draft)
            .where(Draft.owner_id == owner.id, Draft.status == status)
            .order_by(col(Draft.id))
        )
    )


def drafts_expired_between(
    session: Session, *, owner: Owner, start: datetime, end: datetime
) -> list[Draft]:
    """Drafts that expired unsent in [start, end): what the weekly digest reports."""
    return list(
        session.exec(
            select(Draft)
            .where(
                Draft.owner_id == owner.id,
                Draft.status == "expired",
                col(Draft.decided_at) >= start,
                col(Draft.decided_at) < end,
            )
            .order_by(col(Draft.decided_at), col(Draft.id))
        )
    )
