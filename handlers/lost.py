"""Lost connections, told honestly.

People who leave are recorded with a time and reported quietly (in the digest, or
at once if the owner asked). A sudden mass drop is almost always the platform, not
people: those connections are held as "vanished", re-checked on a back-off schedule
and only counted as lost if they have not come back after
``PLNBOT_VANISHED_GIVE_UP_DAYS``. Connections the platform itself cut (Mastodon's
``severed_relationships``) are lost with that cause and never reported as people
leaving. The sync engine (``handlers.connections``) decides *what* changed; this
module decides what that means and what the owner is told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, update
from sqlmodel import Session, col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import ConnectionsSevered, Tick
from handlers.drafting import PLATFORM_NAMES
from handlers.present import at_handle, history_line
from storage import connections as store
from storage import repo
from storage.models import Account, Connection, Draft, MassDrop, Owner

log = logging.getLogger(__name__)

# After a mass drop: re-check soon (glitches are often fixed within minutes), then
# less and less often; the last step repeats until the give-up time.
RECHECK_BACKOFF = (
    timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=12),
    timedelta(days=1),
)
LISTED = 20  # people named in one message's text; the ``contacts`` field has everyone
WITH_HISTORY = 200  # contacts that get a history line in one message
GAVE_UP_CAUSE = "did not come back after a mass drop"
SEVERED_WORDING = {
    "domain_block": "your server blocked {target}",
    "user_domain_block": "you blocked the domain {target}",
    "account_suspension": "{target} was suspended",
}


def where(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform)


def where_account(ctx: Context, account: Account) -> str:
    """ "Discord", or "Discord (PLN)" when the owner has several accounts there (two
    servers): which one the people left."""
    several = ctx.session.exec(select(func.count()).select_from(Account).where(
        Account.owner_id == ctx.owner.id, Account.platform == account.platform)).one() > 1
    name = where(account.platform)
    return f"{name} ({account.handle})" if several and account.handle else name


def next_check_at(now: datetime, checks: int) -> datetime:
    return now + RECHECK_BACKOFF[min(checks, len(RECHECK_BACKOFF) - 1)]


def is_mass_drop(ctx: Context, *, gone: int, known: int) -> bool:
    """More than the configured share *and* at least the configured count."""
    settings = ctx.settings
    return gone >= settings.mass_drop_min and gone > settings.mass_drop_share * known


def reports_immediately(ctx: Context) -> bool:
    return ctx.owner.report_losses == "immediate"


# --- people leaving ---------------------------------------------------------------


def lose(
    ctx: Context, *, account: Account, connection_ids: Sequence[int], quiet: bool = False,
    cause: str | None = None,
) -> None:
    """People left: record it, and tell the owner now or keep it for the digest.

    ``quiet`` (a baseline still being recorded) records without ever reporting.
    """
    if not connection_ids:
        return
    now = ctx.now()
    store.update_connections(
        ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids,
        state="lost", lost_at=now, lost_cause=cause, mass_drop_id=None,
    )
    withdraw_drafts(ctx, connection_ids=connection_ids)
    tell_now = reports_immediately(ctx) and not quiet
    store.add_events(
        ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids, kind="lost", at=now,
        detail=cause or "", reported=quiet or tell_now,
    )
    if tell_now:
        count = len(connection_ids)
        report_lost(ctx, platform=account.platform, connection_ids=connection_ids,
                    key=f"lost:{account.id}:{now.isoformat()}",
                    intro=f"{count} connection{'s' if count != 1 else ''} ended on "
                          f"{where_account(ctx, account)}")


def withdraw_drafts(ctx: Context, *, connection_ids: Sequence[int]) -> int:
    """A welcome still waiting for someone who has left is withdrawn: sending it now
    would greet a person who is gone. The digest says so."""
    handles = {row.handle.id for row in store.connection_rows(
        ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids)}
    if not handles:
        return 0
    still_here = set(ctx.session.exec(select(Connection.handle_id).where(
        Connection.owner_id == ctx.owner.id, col(Connection.handle_id).in_(handles),
        Connection.state == "active")).all())
    gone = sorted(handles - still_here)
    withdrawn = 0
    for batch in store.chunks(gone):
        result = ctx.session.execute(
            update(Draft).where(col(Draft.owner_id) == ctx.owner.id,
                                col(Draft.handle_id).in_(batch), col(Draft.status) == "pending")
            .values(status="withdrawn", decided_at=ctx.now()))
        # an UPDATE's result is a CursorResult; Session.execute is typed with the base class
        withdrawn += cast(CursorResult[Any], result).rowcount or 0
    return withdrawn


def report_lost(
    ctx: Context, *, platform: str, connection_ids: Sequence[int], key: str,
    intro: str | None = None, **fields,
) -> None:
    """One ``connection_lost`` message naming the people, each with their history."""
    people = contacts_of(ctx, connection_ids)
    count = len(people)
    intro = intro or (
        f"{count} connection{'s' if count != 1 else ''} ended on {where(platform)}"
    )
    ctx.send("connection_lost", f"{intro}:\n{listing(people)}", key=key,
             platform=platform, contacts=people, **fields)


def contacts_of(ctx: Context, connection_ids: Sequence[int]) -> list[dict]:
    rows = store.connection_rows(ctx.session, owner_id=ctx.owner.id,
                                 connection_ids=connection_ids)
    people = []
    for index, row in enumerate(rows):
        person = {"id": row.contact.id, "name": row.contact.name,
                  "handle": row.handle.display_handle or row.handle.handle,
                  "platform": row.handle.platform}
        if index < WITH_HISTORY:
            person["history"] = history_line(ctx.session, owner=ctx.owner, contact=row.contact)
        people.append(person)
    return people


def listing(people: list[dict]) -> str:
    """ "  Jane Doe (@jane, #12): You talked twice; last in March 2026." per person."""
    lines = []
    for person in people[:LISTED]:
        history = f": {person['history']}" if person.get("history") else ""
        shown = at_handle(person["platform"], person["handle"])
        lines.append(f"  {person['name'] or 'someone'} ({shown}, #{person['id']}){history}")
    if len(people) > LISTED:
        lines.append(f"  … and {len(people) - LISTED} more (write `lost` to see them all).")
    return "\n".join(lines)


# --- mass drops -------------------------------------------------------------------


def hold_vanished(ctx: Context, *, account: Account, connection_ids: Sequence[int]) -> MassDrop:
    """Too many gone at once: hold them as vanished and say so once."""
    now = ctx.now()
    count = len(connection_ids)
    drop = MassDrop(
        owner_id=ctx.owner.id, account_id=account.id, detected_at=now, count=count,
        next_check_at=next_check_at(now, 0), still_missing=count,
    )
    ctx.session.add(drop)
    ctx.session.flush()
    store.update_connections(
        ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids,
        state="vanished", lost_at=now, mass_drop_id=drop.id,
    )
    store.add_events(ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids,
                     kind="vanished", at=now, detail=f"mass drop #{drop.id}", reported=True)
    ctx.send(
        "connections_vanished",
        f"{count} connections vanished at once on {where_account(ctx, account)}; this looks "
        f"like a platform problem, not people leaving; I'll re-check and tell you who comes "
        f"back.",
        key=f"vanished:{drop.id}", platform=account.platform, count=count,
        mass_drop_id=drop.id,
    )
    log.info("mass drop #%s on %s: %s connections held as vanished", drop.id,
             account.platform, count)
    return drop


def restore_vanished(ctx: Context, *, connection_ids: Sequence[int]) -> None:
    """Vanished people are back: they never left, so no welcome, just active again.

    ``mass_drop_id`` stays, so the drop still knows who came back.
    """
    if not connection_ids:
        return
    store.update_connections(
        ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids,
        state="active", lost_at=None, lost_cause=None,
    )
    store.add_events(ctx.session, owner_id=ctx.owner.id, connection_ids=connection_ids,
                     kind="returned", at=ctx.now(), detail="back after a platform glitch",
                     reported=True)


def recheck(ctx: Context, *, account: Account, complete: bool) -> None:
    """After a sync: report mass drops of ``account`` whose missing count went down.

    A complete sync is a re-check: it moves the drop to its next back-off step.
    """
    for drop in store.open_mass_drops(ctx.session, owner_id=ctx.owner.id,
                                      account_id=account.id):
        still = store.vanished_ids(ctx.session, owner_id=ctx.owner.id, mass_drop_id=drop.id)
        if complete:
            drop.checks += 1
            drop.next_check_at = next_check_at(ctx.now(), drop.checks)
        if len(still) < drop.still_missing:
            report_returned(ctx, account=account, drop=drop, still=still)
        if not still:
            drop.status = "resolved"
            drop.closed_at = ctx.now()
        ctx.session.add(drop)


def report_returned(ctx: Context, *, account: Account, drop: MassDrop, still: list[int]) -> None:
    drop.still_missing = len(still)
    returned = drop.count - len(still)
    place = where_account(ctx, account)
    if still:
        people = contacts_of(ctx, still)
        text = (f"Re-check on {place}: {returned} of the {drop.count} connections that "
                f"vanished are back; {len(still)} still missing:\n{listing(people)}")
    else:
        people = []
        text = (f"Re-check on {place}: all {drop.count} connections that vanished are back. "
                f"It was a platform glitch; nobody left.")
    ctx.send("connections_returned", text, key=f"returned:{drop.id}:{len(still)}",
             platform=account.platform, returned=returned, still_missing=len(still),
             contacts=people, mass_drop_id=drop.id)


def give_up_due(ctx: Context, *, account: Account | None = None) -> None:
    """Mass drops older than the give-up time: whoever is still missing is lost."""
    horizon = ctx.now() - timedelta(days=ctx.settings.vanished_give_up_days)
    drops = store.open_mass_drops(
        ctx.session, owner_id=ctx.owner.id, account_id=account.id if account else None
    )
    for drop in drops:
        if drop.detected_at <= horizon:
            give_up(ctx, drop=drop)


def give_up(ctx: Context, *, drop: MassDrop) -> None:
    """They did not come back: ordinary lost connections, reported once as a list."""
    still = store.vanished_ids(ctx.session, owner_id=ctx.owner.id, mass_drop_id=drop.id)
    account = ctx.session.get_one(Account, drop.account_id)
    store.update_connections(
        ctx.session, owner_id=ctx.owner.id, connection_ids=still,
        state="lost", lost_at=drop.detected_at, lost_cause=GAVE_UP_CAUSE,
    )
    store.add_events(ctx.session, owner_id=ctx.owner.id, connection_ids=still, kind="lost",
                     at=ctx.now(), detail=GAVE_UP_CAUSE, reported=True)
    withdraw_drafts(ctx, connection_ids=still)
    drop.status, drop.closed_at, drop.still_missing = "given_up", ctx.now(), len(still)
    ctx.session.add(drop)
    if still:
        days = (ctx.now() - drop.detected_at).days
        intro = (f"{len(still)} of the {drop.count} connections that vanished on "
                 f"{where_account(ctx, account)} {days} days ago did not come back, so I now "
                 f"count them as lost")
        report_lost(ctx, platform=account.platform, connection_ids=still,
                    key=f"gaveup:{drop.id}", intro=intro, mass_drop_id=drop.id,
                    cause=GAVE_UP_CAUSE)


@on(Tick)
async def give_up_on_vanished(event: Tick, ctx: Context) -> None:
    """The sweep closes mass drops past their give-up time even if no sync comes."""
    if event.name == "sweep":
        give_up_due(ctx)


# --- cut by the platform ----------------------------------------------------------


def describe_cause(cause: str) -> str:
    """ "domain_block:school.social" → "your server blocked school.social"; free text as is."""
    kind, _, target = cause.partition(":")
    wording = SEVERED_WORDING.get(kind.strip())
    if wording is None:
        return cause
    return wording.format(target=target.strip() or "an account")


@on(ConnectionsSevered)
async def on_severed(event: ConnectionsSevered, ctx: Context) -> None:
    """The platform cut these connections: lost, with the cause, reported as such."""
    account = repo.get_or_create_account(ctx.session, owner=ctx.owner, platform=event.platform)
    ids = severable(ctx, account=account, kind=event.kind, external_ids=event.external_ids)
    if not ids:
        return
    now = ctx.now()
    store.update_connections(
        ctx.session, owner_id=ctx.owner.id, connection_ids=ids,
        state="lost", lost_at=now, lost_cause=event.cause[:200], mass_drop_id=None,
    )
    store.add_events(ctx.session, owner_id=ctx.owner.id, connection_ids=ids, kind="severed",
                     at=now, detail=event.cause[:500], reported=True)
    supersede_unreported_losses(ctx, connection_ids=ids)
    count = len(ids)
    intro = (f"{where(event.platform)} itself cut {count} connection{'s' if count != 1 else ''} "
             f"because {describe_cause(event.cause)}; they did not unfollow you")
    report_lost(ctx, platform=event.platform, connection_ids=ids, intro=intro,
                key=f"severed:{account.id}:{now.isoformat()}:{event.cause[:60]}",
                cause=event.cause, platform_caused=True)


def severable(ctx: Context, *, account: Account, kind: str, external_ids: list[str]) -> list[int]:
    """Connections the platform may have cut: active, vanished, or lost without a cause
    (a sync may have seen them gone before the notification arrived)."""
    wanted = set(external_ids)
    ids = [cid for ext, (cid, _) in store.active_connections(
        ctx.session, owner_id=ctx.owner.id, account_id=account.id, kind=kind).items()
        if ext in wanted]
    inactive = store.inactive_connections(ctx.session, owner_id=ctx.owner.id,
                                          account_id=account.id, kind=kind)
    ids += [row.connection_id for ext, row in inactive.items()
            if ext in wanted and (row.state == "vanished" or row.lost_cause is None)]
    return ids


def supersede_unreported_losses(ctx: Context, *, connection_ids: Sequence[int]) -> None:
    """A loss already recorded as someone leaving is now explained: the digest must not
    list it as a person leaving."""
    wanted = set(connection_ids)
    rows = store.connection_events(ctx.session, owner=ctx.owner, kinds=("lost",),
                                   unreported_only=True)
    store.mark_reported(ctx.session, owner=ctx.owner,
                        event_ids=[r.event.id for r in rows if r.connection.id in wanted])


# --- for the digest ---------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """One unreported loss, ready for the digest."""

    event_id: int
    at: datetime
    platform: str
    contact_id: int
    name: str
    handle: str
    cause: str | None
    history: str

    def line(self) -> str:
        cause = f" ({describe_cause(self.cause)})" if self.cause else ""
        shown = at_handle(self.platform, self.handle)
        return f"{self.name or 'someone'} ({shown}, {where(self.platform)}){cause}: {self.history}"


def unreported_losses(
    session: Session, *, owner: Owner, since: datetime | None = None,
    until: datetime | None = None,
) -> list[Loss]:
    """Losses the owner has not been told about yet, newest first, each with the person's
    history ("You talked twice; last in March 2026."). The digest lists them and then
    calls ``mark_losses_reported`` so they are told once."""
    rows = store.connection_events(session, owner=owner, since=since, until=until,
                                   kinds=store.LOSS_KINDS, unreported_only=True)
    return [
        Loss(event_id=r.event.id, at=r.event.at, platform=r.handle.platform,
             contact_id=r.contact.id, name=r.contact.name,
             handle=r.handle.display_handle or r.handle.handle,
             cause=r.connection.lost_cause,
             history=history_line(session, owner=owner, contact=r.contact))
        for r in rows
    ]


def mark_losses_reported(session: Session, *, owner: Owner, losses: Sequence[Loss]) -> None:
    store.mark_reported(session, owner=owner, event_ids=[loss.event_id for loss in losses])
