"""Someone connected: remember them, draft a welcome, tell the owner.

The same arrival seen twice (a re-delivered follow event, a poll that overlaps the
last one) changes nothing the second time, and someone who left and came back gets
a ``welcome_back`` with their history, never a second first-time welcome.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot import platforms
from bot.context import Context
from bot.dispatcher import on
from bot.events import NewConnection, Profile, ProfilesUnreadable, Unreadable
from handlers import drafting, lost, profiles
from handlers.present import at_handle, contact_summary, describe_contact, history_line
from storage import repo
from storage.models import (
    Account,
    Connection,
    ConnectionEvent,
    Contact,
    Draft,
    Handle,
    Interaction,
    OutboxMessage,
)

log = logging.getLogger(__name__)

HOW_MET_VERBS = {
    "follower": "followed you on {platform}",
    "following": "you followed them on {platform}",
    "member": "joined your {platform} server",
}
VIA = {
    "live": "spotted as it happened",
    "sync": "found in a follower-list sync",
    "import": "from an imported archive",
}
MAX_STORED_LINK = 12_000


@on(NewConnection)
async def on_new_connection(event: NewConnection, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.profile.platform
    )
    person, reason = profiles.understand_or_reason(event.profile)
    if person is None:
        tell_skipped(ctx, [(event.profile, reason)])
        return
    record_arrival(ctx, account=account, profile=event.profile, kind=event.kind, at=event.at,
                   via="live", person=person)


def tell_skipped(ctx: Context, skipped: list[tuple[Profile, str]]) -> None:
    """One message for every profile of an arrival that could not be read: "1 profile
    could not be read and was skipped: @ivy — ValueError: …". Everyone else was stored."""
    if not skipped:
        return
    _send_skipped(ctx, [(f"@{p.handle.lstrip('@')}", why) for p, why in skipped],
                  key=f"skipped:{skipped[0][0].platform}:{skipped[0][0].external_id}:"
                      f"{len(skipped)}",
                  handles=[p.handle for p, _ in skipped])


@on(ProfilesUnreadable)
async def on_profiles_unreadable(event: ProfilesUnreadable, ctx: Context) -> None:
    tell_unreadable(ctx, event.entries)


def tell_unreadable(ctx: Context, entries: list[Unreadable]) -> None:
    """The same message for people a platform sent that could not even be made into a
    profile (an id that is no id, an entry that is not an object), each told once: a
    poisoned follower that every poll fetches again is not news the second time."""
    told = told_unreadable(ctx) if entries else set()
    fresh = list({entry.key: entry for entry in entries if entry.key not in told}.values())
    if not fresh:
        return
    keys = sorted(entry.key for entry in fresh)
    _send_skipped(ctx, [(entry.label, entry.reason) for entry in fresh],
                  key=f"unreadable:{fresh[0].platform}:{keys[0]}:{len(keys)}",
                  handles=[entry.handle or entry.external_id or "" for entry in fresh],
                  platform=fresh[0].platform, entry_keys=keys)


TOLD_LOOKBACK = 1_000  # profiles_skipped messages read back to know who was told


def told_unreadable(ctx: Context) -> set[str]:
    """Keys of unreadable entries the owner was already told about (the outbox keeps
    every message, so it is the durable record of what was said)."""
    told: set[str] = set()
    for payload in ctx.session.exec(
            select(OutboxMessage.payload_json)
            .where(OutboxMessage.owner_id == ctx.owner.id,
                   OutboxMessage.kind == "profiles_skipped")
            .order_by(col(OutboxMessage.id).desc()).limit(TOLD_LOOKBACK)):
        keys = json.loads(payload or "{}").get("entry_keys")
        told.update(k for k in keys or () if isinstance(k, str))
    return told


def _send_skipped(ctx: Context, people: list[tuple[str, str]], *, key: str,
                  **fields) -> None:
    count = len(people)
    listed = "; ".join(f"{who} — {why}" for who, why in people[:10])
    more = f"; and {count - 10} more" if count > 10 else ""
    noun = "profile" if count == 1 else "profiles"
    ctx.send("profiles_skipped",
             f"{count} {noun} could not be read and {'was' if count == 1 else 'were'} "
             f"skipped: {listed}{more}", key=key, count=count, **fields)


def record_arrival(
    ctx: Context, *, account: Account, profile: Profile, kind: str = "follower",
    at: datetime | None = None, quiet: bool = False, via: str = "sync",
    person: profiles.Understanding | None = None,
) -> str:
    """Store an arrival; returns "new", "returned", "restored" or "known".

    ``quiet`` skips drafts. "restored" is someone held as vanished after a mass drop:
    they never left, so they get no welcome back (the mass drop's re-check reports them).

    ``via`` says how the bot learned of it ("live", "sync", "import") for "how you met".
    """
    if profile.is_bot:
        return "known"
    at = at or ctx.now()
    how_met = how_met_text(profile.platform, kind, at, ctx.owner.tz, via, account.handle)
    person = person or profiles.understand_safely(profile)
    handle, contact, created = repo.upsert_handle(
        ctx.session, owner=ctx.owner, profile=profile, now=at, how_met=how_met,
        new_contact_values=understood_values(person, profile.bio, profile.bio),
    )
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
            draft_welcome(ctx, contact=contact, handle=handle, profile=profile, person=person,
                          created=created)
        return "new"
    if connection.state == "vanished":
        lost.restore_vanished(ctx, connection_ids=[connection.id])
        return "restored"
    if connection.state != "active":
        _reconnect(ctx, connection=connection, contact=contact, profile=profile, at=at, quiet=quiet)
        return "returned"
    return "known"


def understood_values(person: profiles.Understanding, bio: str, stored_bio: str = "") -> dict:
    """The contact columns a profile fills; a value too long for its column is left
    out, not cut. Plain values, so bulk inserts need no ORM object per person."""
    return {
        "bio": (profiles.plain_text(bio) or stored_bio)[:5000],
        "first_name": _fits(person.first_name, 100),
        "role": _fits(person.role, 200),
        "organisation": _fits(person.organisation, 300),
        "location": _fits(person.location, 300),
        "website": _fits(person.website, 500),
        "field": person.field,
        "interests": ",".join(person.interests)[:1000],
    }


def _fits(value: str | None, limit: int) -> str | None:
    return value if value and len(value) <= limit else None


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
        f"{welcomed_line(ctx, contact)}"
    )
    ctx.send(
        "welcome_back", text, key=f"back:{connection.id}:{at.isoformat()}",
        platform=profile.platform, contact=contact_summary(contact, profile),
    )


def welcomed_line(ctx: Context, contact: Contact) -> str:
    """ " You welcomed them on Mon 2 Nov 2026." — so nobody gets a second first welcome."""
    welcome = ctx.session.exec(
        select(Interaction)
        .where(Interaction.owner_id == ctx.owner.id, Interaction.contact_id == contact.id,
               Interaction.kind == "welcome")
        .order_by(col(Interaction.at).desc())
    ).first()
    if welcome is None:
        return ""
    local = welcome.at.astimezone(ZoneInfo(ctx.owner.tz or "UTC"))
    return f" You welcomed them on {local:%a %-d %b %Y}."


def _describe_gap(gap: timedelta) -> str:
    """ "3 days away", "5 hours away", "12 minutes away", "10 seconds away": the unit
    that fits, so a gap of ten seconds is never "1 hour"."""
    seconds = max(0, int(gap.total_seconds()))
    if gap.days >= 2:
        amount, unit = gap.days, "day"
    elif seconds >= 3600:
        amount, unit = seconds // 3600, "hour"
    elif seconds >= 60:
        amount, unit = seconds // 60, "minute"
    else:
        amount, unit = max(1, seconds), "second"
    return f"{amount} {unit}{'s' if amount != 1 else ''} away"


def how_met_text(platform: str, kind: str, at: datetime, owner_tz: str, via: str,
                 server: str = "") -> str:
    """ "followed you on Mastodon · Mon 2 Nov 2026 · spotted as it happened"; a member
    joined the ``server`` named (an owner may have several): "joined your Discord
    server PLN · …"."""
    name = drafting.PLATFORM_NAMES.get(platform, platform)
    kind = platforms.get(platform).connection_kind or kind
    verb = HOW_MET_VERBS.get(kind, HOW_MET_VERBS["follower"]).format(platform=name)
    if kind == "member" and server:
        verb = f"{verb} {server}"
    local = at.astimezone(ZoneInfo(owner_tz or "UTC"))
    return f"{verb} · {local:%a %-d %b %Y} · {VIA.get(via, via)}"


def draft_welcome(
    ctx: Context, *, contact: Contact, handle: Handle, profile: Profile,
    person: profiles.Understanding | None = None, created: bool = True,
) -> Draft:
    """Draft a personal welcome and ask the owner to send, edit or skip it."""
    person = person or profiles.understand(profile)
    taken = repo.recent_draft_texts(ctx.session, owner=ctx.owner, other_than=contact.id)
    composed = compose(ctx, person=person, profile=profile, taken=taken,
                       recent=latest_drafts(ctx))
    draft = Draft(**draft_values(ctx, contact_id=contact.id, handle_id=handle.id,
                                 profile=profile, text=composed.text))
    ctx.session.add(draft)
    ctx.session.flush()
    mutual = mutual_context(ctx, contact=contact, handle=handle, created=created)
    text, fields = welcome_message(contact, profile, draft, person=person, composed=composed,
                                   mutual=mutual, tz=ctx.owner.tz)
    ctx.send("new_connection", text, key=welcome_key(handle.id, draft.id), **fields)
    return draft


def compose(ctx: Context, *, person: profiles.Understanding, profile: Profile,
            taken: set[str], recent: list[str] | None = None) -> drafting.Composed:
    """The owner's welcome for this person, unlike every text in ``taken``, and not
    echoing how the ``recent`` drafts (newest first) opened or what they asked."""
    templates_dir = ctx.settings.templates_dir
    return drafting.compose_welcome(
        person=person, profile=profile, owner=ctx.owner,
        templates_dir=str(templates_dir) if templates_dir else None, taken=taken.__contains__,
        recent=recent or (),
    )


def latest_drafts(ctx: Context) -> list[str]:
    """The texts of the owner's newest drafts, newest first (one short index range)."""
    return list(ctx.session.exec(
        select(Draft.text).where(Draft.owner_id == ctx.owner.id)
        .order_by(col(Draft.id).desc()).limit(drafting.RECENT_FRAMES)))


def draft_values(ctx: Context, *, contact_id: int, handle_id: int, profile: Profile,
                 text: str) -> dict:
    """The columns of a new pending draft (one arrival or many)."""
    now = ctx.now()
    return {
        "owner_id": ctx.owner.id, "contact_id": contact_id, "handle_id": handle_id,
        "platform": profile.platform, "text": text, "created_at": now,
        "expires_at": now + timedelta(days=ctx.settings.draft_expiry_days),
        "send_url": storable_link(profile.platform, profile.external_id, text),
    }


def welcome_key(handle_id: int, draft_id: int) -> str:
    return f"new:{handle_id}:{draft_id}"


def welcome_message(
    contact: Contact, profile: Profile, draft: Draft, *, person: profiles.Understanding,
    composed: drafting.Composed, mutual: list[str], tz: str,
) -> tuple[str, dict]:
    """The ``new_connection`` message: its text and its ``--json`` fields."""
    fields = {
        "platform": profile.platform,
        "contact": contact_summary(contact, profile),
        "draft_id": draft.id,
        "draft": composed.text,
        "how_met": contact.how_met,
        "field": contact.field,
        "mutual": mutual,
        "spam": person.spam_reasons,
        "limit": drafting.limit_for(profile.platform, profile.handle),
        "bio": shown_bio(profile),  # as the text quotes it (chat surfaces escape it)
    }
    if draft.send_url:
        fields["send_url"] = draft.send_url
    if composed.warning:
        fields["template_warning"] = composed.warning
    text = new_connection_text(contact, profile, draft, person=person, mutual=mutual,
                               warning=composed.warning, tz=tz)
    return text, fields


def storable_link(platform: str, external_id: str, text: str) -> str | None:
    """The X compose link, unless it is too long to store (``send`` rebuilds it then)."""
    link = drafting.compose_link(platform=platform, external_id=external_id, text=text)
    return link if link and len(link) <= MAX_STORED_LINK else None


def mutual_context(ctx: Context, *, contact: Contact, handle: Handle, created: bool) -> list[str]:
    """What the owner already knows about this person: other handles, history, look-alikes."""
    notes = []
    if not created:  # a brand-new contact has only the handle and connection just made
        notes += known_elsewhere(ctx, contact=contact, handle=handle)
        notes.append(history_line(ctx.session, owner=ctx.owner, contact=contact))
    for twin in repo.contacts_named(ctx.session, owner=ctx.owner, name=contact.name,
                                    other_than=contact.id):
        notes.append(twin_note(contact.id, twin.id, twin.name))
    return notes


def twin_note(contact_id: int, twin_id: int, twin_name: str) -> str:
    return (f"Possibly the same person as {twin_name} (#{twin_id}) — "
            f"`link #{contact_id} #{twin_id}` if so.")


def known_elsewhere(ctx: Context, *, contact: Contact, handle: Handle) -> list[str]:
    """Other handles of this contact, and whether the owner already follows them."""
    notes = []
    for other in repo.handles_of(ctx.session, owner=ctx.owner, contact=contact):
        if other.id != handle.id:
            where = drafting.PLATFORM_NAMES.get(other.platform, other.platform)
            notes.append(f"Already in your contacts as "
                         f"{at_handle(other.platform, other.display_handle or other.handle)}"
                         f" on {where}.")
    for connection in repo.connections_of(ctx.session, owner=ctx.owner, contact=contact):
        if connection.kind == "following" and connection.state == "active":
            notes.append("You already follow them.")
            break
    return notes


def new_connection_text(
    contact: Contact, profile: Profile, draft: Draft, *, person: profiles.Understanding,
    mutual: list[str], warning: str | None = None, tz: str = "UTC",
) -> str:
    where = drafting.PLATFORM_NAMES.get(profile.platform, profile.platform)
    lines = [f"New connection on {where}: {describe_contact(contact, profile)}"]
    lines += [f"  {line}" for line in profile_lines(contact, person, profile)]
    lines.append(f"  How you met: {contact.how_met}")
    lines += [f"  Also: {note}" for note in mutual]
    if person.spammy:
        reasons = ", ".join(f'"{r}"' for r in person.spam_reasons)
        lines.append(f"  ⚠ This profile looks promotional or spammy ({reasons}), so the draft "
                     f"is deliberately plain. `skip {draft.id}` if you'd rather not reply.")
    if warning:
        lines.append(f"  ⚠ {warning}")
    used = drafting.length(draft.text, profile.platform)
    limit = drafting.limit_for(profile.platform, profile.handle)
    lines.append(f"Draft #{draft.id} ({used} of {limit} {limit_unit(profile.platform)}):")
    lines += [f"  {line}" if line else "" for line in draft.text.splitlines()]
    where = platforms.get(profile.platform)
    send_hint = f"send {draft.id}" + (f" (gives you a link to send it on {where.name})"
                                      if where.sends_by == "link" else "")
    lines.append(f"Reply: {send_hint} · edit {draft.id} <new text> · skip {draft.id}")
    if draft.expires_at:
        local = draft.expires_at.astimezone(ZoneInfo(tz or "UTC"))
        lines.append(f"(Unless you decide, this draft expires on {local:%a %-d %b}.)")
    return "\n".join(lines)


def shown_bio(profile: Profile) -> str:
    """The bio as the new-connection message quotes it: plain text, one line, 280 chars."""
    return " ".join(profiles.plain_text(profile.bio).split())[:280]


def limit_unit(platform: str) -> str:
    return platforms.get(platform).counts


def profile_lines(contact: Contact, person: profiles.Understanding, profile: Profile) -> list[str]:
    """The profile summary: who they are, where, what they care about, where they write."""
    headline = " · ".join(p for p in (person.headline(), contact.location) if p)
    headline = headline[:1].upper() + headline[1:]
    lines = [f"{headline} · field: {contact.field}" if headline else f"Field: {contact.field}"]
    if person.former_role:
        lines.append(f"Previously: {person.former_role}")
    interests = {i.casefold().lstrip("#"): i for i in
                 [*person.topics, *(f"#{h}" for h in person.hashtags)]}
    if interests:
        lines.append("Interests: " + ", ".join(sorted(interests.values(), key=str.casefold)))
    if contact.website:
        lines.append(f"{'Blog' if person.website_kind == 'blog' else 'Website'}: {contact.website}")
    bio = shown_bio(profile)
    if bio:
        lines.append("Bio: " + bio)
    elif not person.known_details:
        lines.append("(Their profile says very little, so the draft keeps to the basics.)")
    return lines
