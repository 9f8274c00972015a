"""The network as a whole: ``lost`` (issue #6), ``stats`` and ``digest`` (issue #5)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, func, select

from bot.context import Context
from handlers.commands import NAMED, CommandError, command
from handlers.digest import send_digest
from handlers.lost import GAVE_UP_CAUSE, describe_cause, where
from handlers.nudges import cadence_status, goal_progress, progress_line, weekly_counts
from handlers.present import at_handle, history_line
from storage import connections as store
from storage import repo
from storage.models import (
    Account,
    Connection,
    Contact,
    Draft,
    Interaction,
    MassDrop,
    Reminder,
)

# --- lost ---------------------------------------------------------------------------

LOST_USAGE = "lost [days]"
LOST_DEFAULT_DAYS = 30
LOST_MAX_DAYS = 3650
LOST_LINES = 100
GLITCH_STATUS = {
    "open": "re-checking",
    "resolved": "all came back: a platform glitch",
    "given_up": "I gave up waiting; the rest count as lost",
}


@command("lost", LOST_USAGE, group="network", profiles=NAMED)
async def lost_command(args: str, ctx: Context) -> None:
    """List connections lost, vanished or back again, newest first.

    `lost` covers the last 30 days, `lost 90` the last 90. People who vanished in a
    mass drop are shown together, with how many came back; `lost #3` opens mass drop
    #3 and lists who is still missing.
    """
    if args.strip().startswith("#"):
        open_drop(ctx, args.strip())
        return
    days = lost_days(args)
    rows = store.connection_events(ctx.session, owner=ctx.owner,
                                   since=ctx.now() - timedelta(days=days))
    lines: list[str] = []
    seen_drops: set[int] = set()
    for row in rows:
        line = lost_line(ctx, row, seen_drops)
        if line:
            lines.append(line)
    if not lines:
        ctx.send("reply", f"No connections lost, vanished or back again in the last {days} "
                          f"days.", days=days, count=0)
        return
    shown = lines[:LOST_LINES]
    more = f"\n… and {len(lines) - LOST_LINES} more; try fewer days." if len(lines) > len(shown) \
        else ""
    ctx.send("reply", f"Lost, vanished and returned connections, last {days} days:\n"
             + "\n".join(shown) + more, days=days, count=len(lines),
             # the strangers' names and handles the lines quote (Discord escapes them)
             names=sorted({row.contact.name for row in rows if row.contact.name}),
             handles=sorted({row.handle.display_handle or row.handle.handle for row in rows}))


def lost_days(args: str) -> int:
    text = args.strip()
    if not text:
        return LOST_DEFAULT_DAYS
    if not text.isdecimal() or not 1 <= int(text) <= LOST_MAX_DAYS:
        raise CommandError(
            f"{text[:40]!r} is not a number of days; write e.g. `lost 7` "
            f"(1 to {LOST_MAX_DAYS}) or just `lost` for the last {LOST_DEFAULT_DAYS} days.",
            usage=LOST_USAGE,
        )
    return int(text)


def lost_line(ctx: Context, row: store.EventRow, seen_drops: set[int]) -> str | None:
    """One line per event; a mass drop (its vanished and returned people) is one line."""
    event, connection = row.event, row.connection
    drop_id = connection.mass_drop_id
    if event.kind == "vanished" or (event.kind == "returned" and drop_id and
                                    event.detail.startswith("back after a platform")):
        if drop_id is None or drop_id in seen_drops:
            return None
        seen_drops.add(drop_id)
        return drop_line(ctx, ctx.session.get_one(MassDrop, drop_id), row.handle.platform)
    when = local_time(ctx, event.at)
    person = (f"{row.contact.name or 'someone'} "
              f"({at_handle(row.handle.platform, row.handle.display_handle or row.handle.handle)}"
              f", {where(row.handle.platform)}, #{row.contact.id})")
    if event.kind == "returned":
        gap = f" ({event.detail})" if event.detail else ""
        return f"{when} · back{gap} · {person}"
    if event.kind == "severed":
        return f"{when} · cut by the platform ({describe_cause(event.detail)}) · {person}"
    cause = f" ({event.detail})" if event.detail else ""
    history = history_line(ctx.session, owner=ctx.owner, contact=row.contact)
    return f"{when} · lost{cause} · {person}: {history}"


def drop_line(ctx: Context, drop: MassDrop, platform: str) -> str:
    missing = store.vanished_ids(ctx.session, owner_id=ctx.owner.id, mass_drop_id=drop.id)
    if drop.status == "given_up":
        missing_text = f"{drop.still_missing} did not come back"
        back = drop.count - drop.still_missing
    else:
        missing_text = f"{len(missing)} still missing"
        back = drop.count - len(missing)
    return (f"{local_time(ctx, drop.detected_at)} · {drop.count} vanished at once on "
            f"{where(platform)} (mass drop #{drop.id}: {back} back, {missing_text}; "
            f"{GLITCH_STATUS.get(drop.status, drop.status)}; `lost #{drop.id}` lists them)")


def open_drop(ctx: Context, text: str) -> None:
    """``lost #3``: one mass drop, with everyone still missing (or who never came back)."""
    number = text[1:]
    drop_id = repo.row_id(number)
    drop = ctx.session.get(MassDrop, drop_id) if drop_id is not None else None
    if drop is None or drop.owner_id != ctx.owner.id:
        raise CommandError(f"There is no mass drop {text[:20]}. `lost` shows them with their "
                           "numbers.", usage=LOST_USAGE)
    account = ctx.session.get_one(Account, drop.account_id)
    state = "vanished" if drop.status == "open" else "lost"
    query = (select(Connection.id).where(Connection.owner_id == ctx.owner.id,
                                         Connection.mass_drop_id == drop.id,
                                         Connection.state == state))
    if drop.status == "given_up":
        query = (select(Connection.id).where(
            Connection.owner_id == ctx.owner.id, Connection.state == "lost",
            Connection.lost_cause == GAVE_UP_CAUSE, Connection.lost_at == drop.detected_at,
            Connection.account_id == drop.account_id))
    ids = [i for i in ctx.session.exec(query.order_by(col(Connection.id))) if i is not None]
    rows = store.connection_rows(ctx.session, owner_id=ctx.owner.id, connection_ids=ids)
    head = (f"Mass drop #{drop.id} on {where(account.platform)}, "
            f"{local_time(ctx, drop.detected_at)}: {drop.count} vanished, "
            f"{drop.count - len(rows)} back, {len(rows)} "
            f"{'still missing' if drop.status == 'open' else 'did not come back'}"
            + (":" if rows else "."))
    lines = [f"  {r.contact.name or 'someone'} "
             f"({at_handle(r.handle.platform, r.handle.display_handle or r.handle.handle)}, "
             f"#{r.contact.id})" for r in rows[:LOST_LINES]]
    if len(rows) > LOST_LINES:
        lines.append(f"  … and {len(rows) - LOST_LINES} more (`people lost` pages through "
                     "everyone who left).")
    ctx.send("reply", "\n".join([head, *lines]), mass_drop_id=drop.id,
             still_missing=len(rows), contacts=[{"id": r.contact.id, "name": r.contact.name}
                                                for r in rows])


def local_time(ctx: Context, at: datetime) -> str:
    return f"{at.astimezone(ZoneInfo(ctx.owner.tz)):%Y-%m-%d %H:%M}"


# --- stats and digest (issue #5) ------------------------------------------------------


@command("digest", "digest", group="network")
async def digest(args: str, ctx: Context) -> None:
    """Your weekly digest now: the last seven days and a chart.

    New connections, conversations, goals and streaks, field mix, who is due,
    lost and returned connections, drafts, and a PNG chart of growth and
    conversations per week. It also arrives by itself on your digest day.
    """
    send_digest(ctx, now=ctx.now())


@command("stats", "stats", group="network", profiles=NAMED)
async def stats(args: str, ctx: Context) -> None:
    """Numbers: people, connections, conversations, goals."""
    facts = network_facts(ctx)
    lines = [
        f"People: {facts['contacts']}; active connections: {facts['connections']}"
        + (f" ({platform_text(facts['platforms'])})" if facts["platforms"] else ""),
        f"Conversations: {facts['conversations_this_week']} this week, "
        f"{facts['conversations_4_weeks']} in the last 4 weeks, {facts['conversations']} in all",
        f"Never talked to: {facts['never_talked']}; due under a cadence: {facts['due']}",
        f"Open reminders: {facts['reminders']}; welcome drafts waiting: {facts['drafts']}",
    ]
    lines += [f"Goal — {progress_line(p, ctx.owner)}"
              for p in goal_progress(ctx.session, owner=ctx.owner, now=ctx.now())]
    ctx.send("reply", "\n".join(lines), stats=facts)


def platform_text(platforms: dict[str, int]) -> str:
    return ", ".join(f"{count} on {name}" for name, count in sorted(platforms.items()))


def count(ctx: Context, query) -> int:
    return ctx.session.exec(query).one()


def network_facts(ctx: Context) -> dict:
    owner, now = ctx.owner, ctx.now()
    people = select(func.count()).select_from(Contact).where(
        Contact.owner_id == owner.id, col(Contact.merged_into_id).is_(None))
    talks = select(func.count()).select_from(Interaction).where(
        Interaction.owner_id == owner.id, Interaction.kind == "conversation")
    platforms = dict(ctx.session.exec(
        select(Connection.kind, func.count()).where(
            Connection.owner_id == owner.id, Connection.state == "active")
        .group_by(Connection.kind)).all())
    by_platform = active_by_platform(ctx)
    return {
        "contacts": count(ctx, people),
        "never_talked": count(ctx, people.where(col(Contact.last_conversation_at).is_(None))),
        "connections": sum(platforms.values()),
        "connection_kinds": platforms,
        "platforms": by_platform,
        "conversations": count(ctx, talks),
        "conversations_this_week": weekly_counts(ctx.session, owner=owner,
                                                 kind="conversations", now=now, weeks=1)[0],
        "conversations_4_weeks": count(ctx, talks.where(
            Interaction.at >= now - timedelta(weeks=4))),
        "due": sum(1 for d in cadence_status(ctx.session, owner=owner) if d.due_at <= now),
        "reminders": count(ctx, select(func.count()).select_from(Reminder).where(
            Reminder.owner_id == owner.id, col(Reminder.status).in_(("open", "delivered")))),
        "drafts": count(ctx, select(func.count()).select_from(Draft).where(
            Draft.owner_id == owner.id, Draft.status == "pending")),
    }


def active_by_platform(ctx: Context) -> dict[str, int]:
    rows = ctx.session.exec(
        select(Account.platform, func.count())
        .join(Connection, col(Connection.account_id) == Account.id)
        .where(Connection.owner_id == ctx.owner.id, Connection.state == "active")
        .group_by(Account.platform)
    ).all()
    return dict(rows)
