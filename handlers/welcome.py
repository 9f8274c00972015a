"""Someone connected: remember them, draft a welcome, tell the owner.

The same arrival seen twice (a re-delivered follow event, a poll that overlaps the
last one) changes nothing the second time, and someone who left and came back gets
a ``welcome_back`` with their history, never a second first-time welcome.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import select

from bot.context import Context
from bot.dispatcher import on
from bot.events import NewConnection, Profile
from handlers import drafting, lost, profiles
from handlers.present import contact_summary, describe_contact, history_line
from storage import repo
from storage.models import Account, Connection, ConnectionEvent, Contact, Draft, Handle

log = logging.getLogger(__name__)


@on(NewConnection)
async def on_new_connection(event: NewConnection, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.profile.platform
    )
    record_arrival(ctx, account=account, profile=event.profile, kind=event.kind, at=event.at)


def record_arrival(
    ctx: Context, *, account: Account, profile: Profile, kind: str = "follower",
    at: datetime | None = None, quiet: bool = False,
) -> str:
    """Store an arrival; returns "new", "returned", "restored" or "known".

    ``quiet`` skips drafts. "restored" is someone held as vanished after a mass drop:
    they never left, so they get no welcome back (the mass drop's re-check reports them).
    """
    if profile.is_bot:
        return "known"
    at = at or ctx.now()
    how_met = f"followed you on {drafting.PLATFORM_NAMES.get(profile.platform, profile.platform)}"
    handle, contact, created = repo.upsert_handle(
        ctx.session, owner=ctx.owner, profile=profile, now=at, how_met=how_met
    )
    if created:
        apply_understanding(contact, profiles.understand(profile), profile.bio)
    connection = ctx.session.exec(
        select(Connection).where(
            Connection.account_id == account.id,
            Connection.handle_id == handle.id,
            Connection.kind == kind,
        )
    ).first()
    if connection is None:
        connection = _new_connection(
            ctx, account=account, handle=handle, kind=kind, at=at, quiet=quiet
        )
        if not quiet:
            draft_welcome(ctx, contact=contact, handle=handle, profile=profile)
        return "new"
    if connection.state == "vanished":
        lost.restore_vanished(ctx, connection_ids=[connection.id])
        return "restored"
    if connection.state != "active":
        _reconnect(ctx, connection=connection, contact=contact, profile=profile, at=at, quiet=quiet)
        return "returned"
    return "known"


def apply_understanding(contact: Contact, person: profiles.Understanding, bio: str = "") -> None:
    contact.bio = profiles.plain_text(bio) or contact.bio
    contact.first_name = person.first_name
    contact.role = person.role
    contact.organisation = person.organisation
    contact.location = person.location or contact.location
    contact.website = person.website or contact.website
    contact.field = person.field
    contact.interests = ",".join(person.interests)


def _new_connection(ctx, *, account, handle, kind, at, quiet=False) -> Connection:
    """A new connection and its "gained" event; a quiet one (baseline) is marked so that
    follow-ups and weekly counts leave it out."""
    connection = Connection(
        owner_id=ctx.owner.id, account_id=account.id, handle_id=handle.id, kind=kind, since=at
    )
    ctx.session.add(connection)
    ctx.session.flush()
    ctx.session.add(
        ConnectionEvent(owner_id=ctx.owner.id, connection_id=connection.id, kind="gained", at=at,
                        detail="quiet" if quiet else "")
    )
    return connection


def _reconnect(ctx, *, connection, contact, profile, at, quiet) -> None:
    gap = at - connection.lost_at if connection.lost_at else None
    connection.state = "active"
    connection.lost_at = None
    connection.lost_cause = None
    connection.mass_drop_id = None
    ctx.session.add(connection)
    ctx.session.add(
        ConnectionEvent(
            owner_id=ctx.owner.id, connection_id=connection.id, kind="returned", at=at,
            detail=f"gap {gap.days} days" if gap else "",
        )
    )
    if quiet:
        return
    away = f" after {_describe_gap(gap)}" if gap else ""
    text = (
        f"{describe_contact(contact, profile)} is back on "
        f"{drafting.PLATFORM_NAMES.get(profile.platform, profile.platform)}{away}. "
        f"{history_line(ctx.session, owner=ctx.owner, contact=contact)}"
    )
    ctx.send(
        "welcome_back", text, key=f"back:{connection.id}:{at.isoformat()}",
        platform=profile.platform, contact=contact_summary(contact, profile),
    )


def _describe_gap(gap: timedelta) -> str:
    if gap.days >= 2:
        return f"{gap.days} days away"
    hours = max(1, int(gap.total_seconds() // 3600))
    return f"{hours} hour{'s' if hours != 1 else ''} away"


def draft_welcome(ctx: Context, *, contact: Contact, handle: Handle, profile: Profile) -> Draft:
    """Draft a personal welcome and ask the owner to send, edit or skip it."""
    person = profiles.understand(profile)
    text = drafting.compose_welcome(
        person=person, profile=profile, owner=ctx.owner,
        templates_dir=str(ctx.settings.templates_dir) if ctx.settings.templates_dir else None,
    )
    now = ctx.now()
    draft = Draft(
        owner_id=ctx.owner.id, contact_id=contact.id, handle_id=handle.id,
        platform=profile.platform, text=text, created_at=now,
        expires_at=now + timedelta(days=ctx.settings.draft_expiry_days),
        send_url=drafting.compose_link(
            platform=profile.platform, external_id=profile.external_id, text=text
        ),
    )
    ctx.session.add(draft)
    ctx.session.flush()
    fields = {
        "platform": profile.platform,
        "contact": contact_summary(contact, profile),
        "draft_id": draft.id,
        "draft": text,
    }
    if draft.send_url:
        fields["send_url"] = draft.send_url
    ctx.send(
        "new_connection", new_connection_text(contact, profile, draft),
        key=f"new:{handle.id}:{draft.id}", **fields,
    )
    return draft


def new_connection_text(contact: Contact, profile: Profile, draft: Draft) -> str:
    where = drafting.PLATFORM_NAMES.get(profile.platform, profile.platform)
    lines = [f"New connection on {where}: {describe_contact(contact, profile)}"]
    details = [
        ("Role", contact.role), ("Works at", contact.organisation),
        ("Location", contact.location), ("Field", contact.field),
        ("Interests", ", ".join(f"#{i}" for i in contact.interests.split(",") if i)),
        ("Website", contact.website),
    ]
    lines += [f"  {label}: {value}" for label, value in details if value]
    bio = profiles.plain_text(profile.bio)
    if bio:
        lines.append(f"  Bio: {bio[:280]}")
    lines.append(f"Draft #{draft.id}:")
    lines += [f"  {line}" for line in draft.text.splitlines()]
    lines.append(f"Reply: send {draft.id} · edit {draft.id} <new text> · skip {draft.id}")
    return "\n".join(lines)
