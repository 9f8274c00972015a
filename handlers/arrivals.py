"""Many live arrivals in one transaction (the batches ``bot.arrivals`` collects).

Brand-new people, the usual case, are written with one ``executemany`` per table for
the whole batch: contacts, handles, connections, their "gained" events, drafts and the
messages to the owner. Each person is understood, drafted and told about exactly as
one arrival on its own would be (``handlers.welcome``): the same welcome, unlike the
newest drafts and unlike each other, the same look-alike warnings, the same message.
Anyone already known in any way (a handle on file, an imported placeholder, someone
coming back, the same person twice in one batch) goes the one-at-a-time way, which
knows every such case, after the newcomers of the same run of arrivals: a welcome back
can come a few messages later than it would have one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from types import SimpleNamespace
from typing import cast

from bot.context import Context
from bot.dispatcher import on
from bot.events import ArrivalsReceived, NewConnection, Profile
from handlers import drafting, profiles, welcome
from storage import connections as store
from storage import repo
from storage.models import Account, Connection, ConnectionEvent, Contact, Draft, Handle, table_of


@dataclass
class Newcomer:
    """One brand-new person of a batch, filled in table by table.

    ``contact`` and ``draft`` are read-only views of the rows just inserted, for the
    message: building an ORM object costs ~90 µs, more than writing the row."""

    profile: Profile
    person: profiles.Understanding
    at: datetime  # when they connected
    # set by the steps in turn; typed as the rows they view (same names, same values)
    contact: Contact = field(init=False)
    handle_id: int = 0
    draft: Draft = field(init=False)
    composed: drafting.Composed = field(init=False)


@on(ArrivalsReceived)
async def on_arrivals(event: ArrivalsReceived, ctx: Context) -> None:
    for (platform, kind), run in groupby(event.arrivals,
                                         key=lambda a: (a.profile.platform, a.kind)):
        account = repo.get_or_create_account(ctx.session, owner=ctx.owner, platform=platform)
        batch = list(run)
        people, skipped = understood(batch)
        readable = [a for a in batch if id(a) in people]
        fresh, known = split_fresh(ctx, platform=platform, arrivals=readable)
        welcome_newcomers(ctx, account=account, kind=kind, arrivals=fresh, people=people)
        for arrival in known:
            welcome.record_arrival(ctx, account=account, profile=arrival.profile, kind=kind,
                                   at=arrival.at, via="live", person=people[id(arrival)])
        welcome.tell_skipped(ctx, skipped)


def understood(arrivals: list[NewConnection],
               ) -> tuple[dict[int, profiles.Understanding], list[tuple[Profile, str]]]:
    """Each arrival's profile read once (by ``id`` of the arrival); those that cannot be
    read are set aside (and told about), so one stranger's profile never costs the rest
    of the batch their welcome."""
    readable: dict[int, profiles.Understanding] = {}
    skipped: list[tuple[Profile, str]] = []
    for arrival in arrivals:
        person, reason = profiles.understand_or_reason(arrival.profile)
        if person is None:
            skipped.append((arrival.profile, reason))
        else:
            readable[id(arrival)] = person
    return readable, skipped


def split_fresh(ctx: Context, *, platform: str, arrivals: list[NewConnection],
                ) -> tuple[list[NewConnection], list[NewConnection]]:
    """(people never seen before, everyone else); bots are nobody's connection."""
    people = [a for a in arrivals if not a.profile.is_bot]
    wanted = {a.profile.external_id for a in people}
    wanted |= {repo.placeholder_id(a.profile) for a in people}
    on_file = store.handle_ids(ctx.session, owner_id=ctx.owner.id, platform=platform,
                               external_ids=sorted(wanted))
    fresh, known, seen = [], [], set()
    for arrival in people:
        profile = arrival.profile
        if (profile.external_id in on_file or repo.placeholder_id(profile) in on_file
                or profile.external_id in seen):
            known.append(arrival)
            continue
        seen.add(profile.external_id)
        fresh.append(arrival)
    return fresh, known


def welcome_newcomers(ctx: Context, *, account: Account, kind: str,
                      arrivals: list[NewConnection],
                      people: dict[int, profiles.Understanding]) -> None:
    if not arrivals:
        return
    newcomers = insert_contacts(ctx, kind=kind, arrivals=arrivals, people=people,
                                server=account.handle)
    insert_handles(ctx, newcomers)
    insert_connections(ctx, account=account, kind=kind, newcomers=newcomers)
    insert_drafts(ctx, newcomers)
    tell_owner(ctx, newcomers)


def insert_contacts(ctx: Context, *, kind: str, arrivals: list[NewConnection],
                    people: dict[int, profiles.Understanding],
                    server: str = "") -> list[Newcomer]:
    defaults = Contact(owner_id=ctx.owner.id, how_met="",
                       created_at=ctx.now()).model_dump(exclude={"id"})
    newcomers, rows = [], []
    for arrival in arrivals:
        profile, at = arrival.profile, arrival.at or ctx.now()
        person = people[id(arrival)]
        how_met = welcome.how_met_text(profile.platform, kind, at, ctx.owner.tz, "live",
                                       server)
        rows.append({**defaults, **repo.new_contact_values_for(
            owner_id=ctx.owner.id, profile=profile, now=at, how_met=how_met,
            understood=welcome.understood_values(person, profile.bio, profile.bio))})
        newcomers.append(Newcomer(profile=profile, person=person, at=at))
    ids = store.insert_rows(ctx.session, table_of(Contact), rows)
    for newcomer, row, contact_id in zip(newcomers, rows, ids, strict=True):
        newcomer.contact = cast(Contact, SimpleNamespace(**row, id=contact_id))
    return newcomers


def insert_handles(ctx: Context, newcomers: list[Newcomer]) -> None:
    defaults = Handle(owner_id=ctx.owner.id, contact_id=0, platform="", external_id="",
                      handle="", created_at=ctx.now()).model_dump(exclude={"id"})
    rows = [{**defaults, **repo.new_handle_values(
        owner_id=ctx.owner.id, contact_id=n.contact.id, profile=n.profile, now=n.at)}
        for n in newcomers]
    ids = store.insert_rows(ctx.session, table_of(Handle), rows)
    for newcomer, handle_id in zip(newcomers, ids, strict=True):
        newcomer.handle_id = handle_id


def insert_connections(ctx: Context, *, account: Account, kind: str,
                       newcomers: list[Newcomer]) -> None:
    """Their connections and "gained" events (not quiet: follow-ups and counts see them)."""
    defaults = Connection(owner_id=ctx.owner.id, account_id=account.id, handle_id=0, kind=kind,
                          since=ctx.now()).model_dump(exclude={"id"})
    ids = store.insert_rows(ctx.session, table_of(Connection), [
        {**defaults, "handle_id": n.handle_id, "since": n.at} for n in newcomers])
    store.insert_plain(ctx.session, table_of(ConnectionEvent), [
        {"owner_id": ctx.owner.id, "connection_id": connection_id, "kind": "gained",
         "at": n.at, "detail": "", "reported": False}
        for connection_id, n in zip(ids, newcomers, strict=True)])


def insert_drafts(ctx: Context, newcomers: list[Newcomer]) -> None:
    """A welcome each, unlike the newest drafts and unlike one another."""
    taken = repo.recent_draft_texts(ctx.session, owner=ctx.owner, other_than=0)
    defaults = Draft(owner_id=ctx.owner.id, contact_id=0, handle_id=0, platform="", text="",
                     created_at=ctx.now()).model_dump(exclude={"id"})
    rows = []
    recent = welcome.latest_drafts(ctx)
    for newcomer in newcomers:
        newcomer.composed = welcome.compose(ctx, person=newcomer.person,
                                            profile=newcomer.profile, taken=taken,
                                            recent=recent)
        taken.add(newcomer.composed.text)
        recent[:] = [newcomer.composed.text, *recent[:drafting.RECENT_FRAMES - 1]]
        rows.append({**defaults, **welcome.draft_values(
            ctx, contact_id=newcomer.contact.id, handle_id=newcomer.handle_id,
            profile=newcomer.profile, text=newcomer.composed.text)})
    ids = store.insert_rows(ctx.session, table_of(Draft), rows)
    for newcomer, row, draft_id in zip(newcomers, rows, ids, strict=True):
        newcomer.draft = cast(Draft, SimpleNamespace(**row, id=draft_id))


def tell_owner(ctx: Context, newcomers: list[Newcomer]) -> None:
    """One ``new_connection`` message each, with look-alikes among earlier contacts."""
    named = repo.contacts_by_name(ctx.session, owner=ctx.owner,
                                  names=[n.contact.name for n in newcomers])
    messages = []
    for newcomer in newcomers:
        contact = newcomer.contact
        twins = [(i, name) for i, name in named.get(contact.name.lower(), ()) if i < contact.id]
        mutual = [welcome.twin_note(contact.id, i, name) for i, name in twins[:3]]
        text, fields = welcome.welcome_message(
            contact, newcomer.profile, newcomer.draft, person=newcomer.person,
            composed=newcomer.composed, mutual=mutual, tz=ctx.owner.tz)
        messages.append(("new_connection", text,
                         welcome.welcome_key(newcomer.handle_id, newcomer.draft.id), fields))
    ctx.send_many(messages)
