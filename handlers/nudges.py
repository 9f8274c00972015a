"""Habit nudges: keep-in-touch cadences, weekly goals and streaks, network diversity.

Everything is derived from the database on each sweep: a cadence is due when the
last logged conversation (``Contact.last_conversation_at``, kept by
``repo.add_interaction``) is older than its period; goals count interactions in the
owner's week (Monday 00:00 in their zone). What was already said is remembered in
the database too (``Cadence.last_nudged_at``, ``JobRun``), so nothing is repeated
every sweep and nothing is lost to a restart.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from handlers import backlog
from handlers.periodic import is_quiet, last_run, mark_run
from handlers.present import contact_summary, describe_contact
from handlers.reminders import NOT_ARRIVALS, first_handle, first_handles
from handlers.when import ago, local, shift_weeks, show_time, to_utc, week_start, zone_of
from storage import search
from storage.connections import chunks
from storage.models import (
    Cadence,
    Connection,
    ConnectionEvent,
    Contact,
    Goal,
    Handle,
    Interaction,
    Owner,
)

log = logging.getLogger(__name__)

GOAL_KINDS = ("conversations", "connections", "outside")
MIDWEEK_JOB = "midweek_nudge"
MIDWEEK = (2, time(12, 0))  # Wednesday noon, owner's zone
STREAK_LOOKBACK_WEEKS = 104
DIVERSITY_WINDOW = timedelta(days=30)
DIVERSITY_MIN_PEOPLE = 4
MAX_LISTED = 15


# --- cadences --------------------------------------------------------------------------


@dataclass
class DueContact:
    contact: Contact
    cadence: Cadence
    due_at: datetime
    last_talk: datetime | None


def describe_period(days: int) -> str:
    if days % 30 == 0:
        months = days // 30
        return "month" if months == 1 else f"{months} months"
    if days % 7 == 0:
        weeks = days // 7
        return "week" if weeks == 1 else f"{weeks} weeks"
    return "day" if days == 1 else f"{days} days"


def tag_members(session: Session, *, owner_id: int, tag: str) -> list[int]:
    """Contacts with any interaction tagged ``#tag`` (tags are stored space separated).

    The search index names the candidates; only their interactions are read."""
    pattern = col(Interaction.tags)
    query = select(Interaction.contact_id).distinct().where(
        Interaction.owner_id == owner_id,
        or_(pattern == tag, pattern.startswith(f"{tag} "), pattern.endswith(f" {tag}"),
            pattern.contains(f" {tag} ")),
    )
    search.catch_up(session)  # a tag logged earlier in this transaction counts
    candidates = search.tagged(session.connection(), owner_id=owner_id, tag=tag)
    if candidates is None:
        return list(session.exec(query).all())
    members: list[int] = []
    for batch in chunks(sorted(candidates)):
        members += session.exec(query.where(col(Interaction.contact_id).in_(batch))).all()
    return members


def cadence_rules(session: Session, *, owner: Owner) -> dict[int, Cadence]:
    """The rule that applies to each contact: a personal one wins, else the shortest tag."""
    chosen: dict[int, Cadence] = {}
    cadences = session.exec(select(Cadence).where(Cadence.owner_id == owner.id)).all()
    for cadence in sorted(cadences, key=lambda c: (c.contact_id is None, c.every_days)):
        members = [cadence.contact_id] if cadence.contact_id else tag_members(
            session, owner_id=owner.id, tag=cadence.tag or "")
        for contact_id in members:
            chosen.setdefault(contact_id, cadence)
    return chosen


def cadence_status(session: Session, *, owner: Owner) -> list[DueContact]:
    """Every contact under a cadence with when they are (or were) due, soonest first."""
    rules = cadence_rules(session, owner=owner)
    contacts = live_contacts(session, owner=owner, ids=list(rules))
    result = []
    for contact_id, cadence in rules.items():
        contact = contacts.get(contact_id)
        if contact is None:
            continue
        last = contact.last_conversation_at
        start = last or cadence.created_at
        result.append(DueContact(contact, cadence, start + timedelta(days=cadence.every_days),
                                 last))
    return sorted(result, key=lambda d: (d.due_at, d.contact.id))


def live_contacts(session: Session, *, owner: Owner, ids: list[int]) -> dict[int, Contact]:
    """The owner's unmerged contacts among ``ids``, one query per 900 (``session.get``
    of each cost 0.1 ms apiece: 6 of the 12 ms of a `due` listing 60 people)."""
    found: dict[int, Contact] = {}
    for batch in chunks(ids):
        query = select(Contact).where(Contact.owner_id == owner.id, col(Contact.id).in_(batch),
                                      col(Contact.merged_into_id).is_(None))
        found.update((contact.id, contact) for contact in session.exec(query))
    return found


def due_now(session: Session, *, owner: Owner, now: datetime) -> list[DueContact]:
    return [d for d in cadence_status(session, owner=owner) if d.due_at <= now]


def due_line(item: DueContact, *, now: datetime, handle: Handle | None) -> str:
    who = describe_contact(item.contact, handle)
    rule = f"every {describe_period(item.cadence.every_days)}"
    rule += f" for #{item.cadence.tag}" if item.cadence.tag else ""
    last = f"last talked {ago(now - item.last_talk)} ago" if item.last_talk else \
        "no conversation logged yet"
    overdue = f"due {ago(now - item.due_at)} ago" if now - item.due_at >= timedelta(days=1) \
        else "due now"
    return f"{who}: {last}; {overdue} ({rule})"


@on(Tick)
async def nudge_due_cadences(event: Tick, ctx: Context) -> None:
    """One ``nudge`` for every contact that became due since their cadence last nudged."""
    if event.name != "sweep" or is_quiet(ctx.owner, ctx.now()):
        return
    now = ctx.now()
    fresh = [d for d in due_now(ctx.session, owner=ctx.owner, now=now)
             if d.cadence.last_nudged_at is None or d.cadence.last_nudged_at < d.due_at]
    if not fresh:
        return
    handles = first_handles(ctx.session, [d.contact.id for d in fresh[:MAX_LISTED]])
    lines = [due_line(d, now=now, handle=handles.get(d.contact.id))
             for d in fresh[:MAX_LISTED]]
    if len(fresh) > MAX_LISTED:
        lines.append(f"… and {len(fresh) - MAX_LISTED} more: see `due`.")
    for item in fresh:
        item.cadence.last_nudged_at = now
        ctx.session.add(item.cadence)
    text = "Time to catch up with:\n" + "\n".join(f"  {line}" for line in lines) + \
        "\nLog a conversation with `log <person> <text…>` and the clock starts again."
    ctx.send("nudge", text, key=cadence_key(fresh), reason="cadence",
             contacts=[contact_summary(d.contact) for d in fresh])


def cadence_key(items: list[DueContact]) -> str:
    parts = "|".join(f"{d.cadence.id}:{d.contact.id}@{d.due_at.isoformat()}" for d in items)
    return "cadence:" + hashlib.sha256(parts.encode()).hexdigest()[:40]


# --- goals and streaks --------------------------------------------------------------------


@dataclass
class GoalProgress:
    goal: Goal
    done: int
    streak: int

    @property
    def met(self) -> bool:
        return self.done >= self.goal.per_week


def goal_events(session: Session, *, owner: Owner, kind: str, since: datetime,
                until: datetime) -> list[datetime]:
    """When each thing a goal counts happened, in [since, until)."""
    if kind == "connections":
        query = select(ConnectionEvent.at).where(
            ConnectionEvent.owner_id == owner.id, ConnectionEvent.kind == "gained",
            col(ConnectionEvent.detail).not_in(NOT_ARRIVALS))
        at = ConnectionEvent.at
    else:
        query = select(Interaction.at).where(Interaction.owner_id == owner.id,
                                             Interaction.kind == "conversation")
        at = Interaction.at
        if kind == "outside":
            query = query.join(Contact, col(Contact.id) == Interaction.contact_id).where(
                Contact.field != owner.field)
    return list(session.exec(query.where(at >= since, at < until)))


def weekly_counts(session: Session, *, owner: Owner, kind: str, now: datetime,
                  weeks: int) -> list[int]:
    """Counts per owner-week, oldest first, the last being the current week."""
    current = week_start(now, owner.tz)
    starts = [shift_weeks(current, -n, owner.tz) for n in range(weeks - 1, -1, -1)]
    counts = [0] * weeks
    for moment in goal_events(session, owner=owner, kind=kind, since=starts[0],
                              until=shift_weeks(current, 1, owner.tz)):
        counts[bisect_right(starts, moment) - 1] += 1
    return counts


def streak_of(counts: list[int], target: int) -> int:
    """Weeks met in a row, ending last week; the current week adds one once it is met."""
    streak = 0
    for count in reversed(counts[:-1]):
        if count < target:
            break
        streak += 1
    return streak + (1 if counts[-1] >= target else 0)


def goal_progress(session: Session, *, owner: Owner, now: datetime) -> list[GoalProgress]:
    goals = session.exec(select(Goal).where(Goal.owner_id == owner.id).order_by(col(Goal.id))).all()
    result = []
    for goal in goals:
        counts = weekly_counts(session, owner=owner, kind=goal.kind, now=now,
                               weeks=STREAK_LOOKBACK_WEEKS)
        result.append(GoalProgress(goal, counts[-1], streak_of(counts, goal.per_week)))
    return result


def goal_label(kind: str, owner: Owner) -> str:
    return {"conversations": "conversations", "connections": "new connections",
            "outside": f"conversations outside {owner.field}"}[kind]


def progress_line(item: GoalProgress, owner: Owner) -> str:
    weeks = "week" if item.streak == 1 else "weeks"
    streak = f"; streak {item.streak} {weeks}" if item.streak else ""
    tick = " ✓" if item.met else ""
    return (f"{goal_label(item.goal.kind, owner)}: {item.done} of {item.goal.per_week} "
            f"this week{tick}{streak}")


# --- the mid-week nudge: goals behind, and a walled garden -------------------------


def midweek_moment(now: datetime, tz: str) -> datetime:
    """Wednesday noon of the owner's current week (UTC)."""
    start = week_start(now, tz)
    wall = local(start, tz).date() + timedelta(days=MIDWEEK[0])
    return to_utc(wall, MIDWEEK[1], zone_of(tz))


@on(Tick)
async def midweek_nudge(event: Tick, ctx: Context) -> None:
    """Once a week from Wednesday noon: goals that are behind, and a diversity hint."""
    now = ctx.now()
    if event.name != "sweep" or is_quiet(ctx.owner, now):
        return
    if backlog.pending(ctx.session, owner_id=ctx.owner.id):
        return  # its fields count people whose profiles a first sync has not read yet
    moment = midweek_moment(now, ctx.owner.tz)
    previous = last_run(ctx.session, owner=ctx.owner, job=MIDWEEK_JOB)
    if now < moment or (previous is not None and previous >= moment):
        return
    mark_run(ctx.session, owner=ctx.owner, job=MIDWEEK_JOB, at=now)
    parts = [p for p in (behind_text(ctx, now), diversity_text(ctx, now)) if p]
    if parts:
        ctx.send("nudge", "\n\n".join(text for text, _ in parts),
                 key=f"midweek:{moment.date().isoformat()}",
                 reason=[reason for _, reason in parts])


def behind_text(ctx: Context, now: datetime) -> tuple[str, str] | None:
    """Gentle: only goals with less than half done by mid-week are mentioned."""
    behind = [p for p in goal_progress(ctx.session, owner=ctx.owner, now=now)
              if p.done * 2 < p.goal.per_week]
    if not behind:
        return None
    lines = [f"  {progress_line(p, ctx.owner)}" for p in behind]
    return ("Half the week is gone; a small step keeps your goals in reach:\n"
            + "\n".join(lines) + "\nEven one short conversation counts.", "goal")


def recent_fields(session: Session, *, owner: Owner, since: datetime) -> Counter:
    """Fields of the people recently connected with or talked to (each person once)."""
    people: set[int] = set(session.exec(
        select(Interaction.contact_id).where(Interaction.owner_id == owner.id,
                                             Interaction.kind == "conversation",
                                             Interaction.at >= since)))
    people |= set(session.exec(
        select(Handle.contact_id)
        .join(Connection, col(Connection.handle_id) == Handle.id)
        .join(ConnectionEvent, col(ConnectionEvent.connection_id) == Connection.id)
        .where(ConnectionEvent.owner_id == owner.id, ConnectionEvent.kind == "gained",
               col(ConnectionEvent.detail).not_in(NOT_ARRIVALS), ConnectionEvent.at >= since)))
    fields = session.exec(select(Contact.field).where(col(Contact.id).in_(people))).all() \
        if people else []
    return Counter(fields)


def someone_outside(session: Session, *, owner: Owner, field: str) -> Contact | None:
    """A concrete person outside ``field``: longest without a conversation, then newest."""
    return session.exec(
        select(Contact)
        .where(Contact.owner_id == owner.id, col(Contact.merged_into_id).is_(None),
               col(Contact.field).not_in((field, "other")))
        .order_by(col(Contact.last_conversation_at).is_not(None),
                  col(Contact.last_conversation_at), col(Contact.created_at).desc())
        .limit(1)
    ).first()


def diversity_text(ctx: Context, now: datetime) -> tuple[str, str] | None:
    fields = recent_fields(ctx.session, owner=ctx.owner, since=now - DIVERSITY_WINDOW)
    if len(fields) != 1 or sum(fields.values()) < DIVERSITY_MIN_PEOPLE:
        return None
    [(field, count)] = fields.items()
    text = (f"Your last {count} new connections and conversations were all in {field}. "
            "A network is strongest when it reaches beyond one field.")
    person = someone_outside(ctx.session, owner=ctx.owner, field=field)
    if person is None:
        return (f"{text} Everyone you know here is in {field} — look for someone in "
                "technology, research, health or the arts to follow.", "diversity")
    who = describe_contact(person, first_handle(ctx.session, person))
    since = f"you last talked {show_time(person.last_conversation_at, ctx.owner.tz)}" \
        if person.last_conversation_at else "you haven't talked yet"
    return (f"{text} How about {who}, in {person.field}? ({since})", "diversity")
