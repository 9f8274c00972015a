"""Each owner carries the time of its next due work (``Owner.next_sweep_at``).

Workers claim only owners whose time has come (bot/worker.py), so an idle owner costs
nothing between its due moments instead of a sweep every ``PLNBOT_SWEEP_SECONDS``.
The time is kept current in two ways, both in the transaction of the change itself:

- at the end of every sweep (this module's ``Tick`` handler runs last), it is set to
  the soonest of: an open reminder, a pending draft's expiry, a welcome left
  ``sending`` by a crash, the next follow-up, a cadence coming due, the next digest and
  mid-week nudge, a mass drop's give-up time, and at most ``MAX_IDLE`` from now;
- any other event for the owner (a command, an arrival, a sync) may have created or
  moved due work, so it makes the owner due at once; the sweep that follows works out
  the precise time again. A poll that changed nothing (``SourceChecked``) does not.

Messages waiting in the outbox (retries) are found by the claim itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Event, SourceChecked, Tick
from handlers import backlog
from handlers.digest import DIGEST_JOB, latest_slot
from handlers.nudges import MIDWEEK_JOB, cadence_status, midweek_moment
from handlers.periodic import last_run
from handlers.reminders import NOT_ARRIVALS
from handlers.sending import STALE_SENDING
from storage.models import ConnectionEvent, Draft, MassDrop, Owner, Reminder

# An owner is looked at at least this often even with nothing due (a safety net for
# due work this module does not know about).
MAX_IDLE = timedelta(hours=6)
WEEK = timedelta(days=7)


@on(Tick)
async def record_next_due(event: Tick, ctx: Context) -> None:
    """After the sweep: when this owner next has something to do."""
    if event.name != "sweep":
        return
    now = ctx.now()
    soonest = next_due(ctx.session, owner=ctx.owner, now=now,
                       followup_days=ctx.settings.followup_days,
                       give_up_days=ctx.settings.vanished_give_up_days)
    # still-due work (quiet hours, a batch limit) is looked at again after a pause
    floor = now + timedelta(seconds=ctx.settings.sweep_seconds)
    ctx.owner.next_sweep_at = max(soonest, floor)
    ctx.session.add(ctx.owner)


@on(Event)
async def work_may_have_changed(event: Event, ctx: Context) -> None:
    """A command, an arrival or a sync may add or move due work: look again at once."""
    if isinstance(event, Tick | SourceChecked):
        return
    if ctx.owner.next_sweep_at is not None and ctx.owner.next_sweep_at > ctx.now():
        ctx.owner.next_sweep_at = None
        ctx.session.add(ctx.owner)


def next_due(session: Session, *, owner: Owner, now: datetime, followup_days: int,
             give_up_days: int) -> datetime:
    """The soonest moment any of the owner's periodic work is due (may be in the past)."""
    if backlog.pending(session, owner_id=owner.id):
        return now  # a first sync's profiles to read: the next sweep goes on with them
    moments = [now + MAX_IDLE, _digest(session, owner, now), _midweek(session, owner, now),
               *_stored(session, owner.id, give_up_days),
               *_followup(session, owner.id, now, timedelta(days=followup_days)),
               *_cadences(session, owner, now)]
    return min(m for m in moments if m is not None)


def _stored(session: Session, owner_id: int | None, give_up_days: int) -> list[datetime]:
    """Due times kept in rows: reminders, draft expiry, interrupted sends, mass drops."""
    def soonest(column: Any, *where: Any) -> datetime | None:
        return session.exec(select(func.min(column)).where(*where)).one()

    reminder = soonest(Reminder.due_at, Reminder.owner_id == owner_id,
                       Reminder.status == "open")
    expiry = soonest(Draft.expires_at, Draft.owner_id == owner_id, Draft.status == "pending")
    sending = soonest(Draft.decided_at, Draft.owner_id == owner_id, Draft.status == "sending")
    drop = soonest(MassDrop.detected_at, MassDrop.owner_id == owner_id,
                   MassDrop.status == "open")
    return [m for m in (reminder, expiry,
                        sending + STALE_SENDING if sending else None,
                        drop + timedelta(days=give_up_days) if drop else None) if m]


def _followup(session: Session, owner_id: int | None, now: datetime,
              age: timedelta) -> list[datetime]:
    """The next new connection to reach the follow-up age."""
    first = session.exec(
        select(func.min(ConnectionEvent.at)).where(
            ConnectionEvent.owner_id == owner_id, ConnectionEvent.kind == "gained",
            ConnectionEvent.at > now - age, col(ConnectionEvent.detail).not_in(NOT_ARRIVALS))
    ).one()
    return [first + age] if first else []


def _cadences(session: Session, owner: Owner, now: datetime) -> list[datetime]:
    """The soonest cadence coming due that has not been nudged for yet."""
    waiting = [d.due_at for d in cadence_status(session, owner=owner)
               if d.cadence.last_nudged_at is None or d.cadence.last_nudged_at < d.due_at]
    return waiting[:1]


def _digest(session: Session, owner: Owner, now: datetime) -> datetime:
    slot = latest_slot(owner, now)
    previous = last_run(session, owner=owner, job=DIGEST_JOB)
    if slot > owner.created_at and (previous is None or previous < slot):
        return slot  # due and not sent yet (quiet hours)
    return latest_slot(owner, now + WEEK)


def _midweek(session: Session, owner: Owner, now: datetime) -> datetime:
    moment = midweek_moment(now, owner.tz)
    if now < moment:
        return moment
    previous = last_run(session, owner=owner, job=MIDWEEK_JOB)
    if previous is None or previous < moment:
        return moment
    return midweek_moment(now + WEEK, owner.tz)
