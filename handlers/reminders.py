"""Due reminders and follow-ups, delivered from the database on every sweep.

Nothing is held in memory: each ``Tick("sweep")`` selects what is due with the
``(status, due_at)`` index, marks it delivered (or rolls a recurring one forward) and
queues ONE ``reminder`` message for all of it, in the same transaction. The message's
idempotency key is derived from the reminders and their due times, so a crash after
choosing but before delivering leaves either nothing changed (rolled back: chosen
again next sweep) or a committed message the outbox delivers after restart — never a
lost reminder, never a second message.

Follow-ups are ordinary reminders (``kind="followup"``), created here for new
connections nobody has talked to after ``PLNBOT_FOLLOWUP_DAYS``; a watermark in
``JobRun`` makes that happen exactly once per connection.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from handlers.periodic import is_quiet, last_run, mark_run
from handlers.present import contact_summary, describe_contact
from handlers.when import ago, describe_recurrence, next_occurrence, show_time
from storage import repo
from storage.connections import chunks
from storage.models import (
    Connection,
    ConnectionEvent,
    Contact,
    Draft,
    Handle,
    Interaction,
    Reminder,
)

log = logging.getLogger(__name__)

BATCH_LIMIT = 100
CATCH_UP_AFTER = timedelta(minutes=10)
FOLLOWUP_LOOKBACK = timedelta(days=30)
FOLLOWUP_JOB = "followups"
# The watermark is saved at most this often when nothing was created: looking at a few
# events twice is harmless (one follow-up per contact is checked), a write every sweep
# is not.
WATERMARK_STEP = timedelta(hours=1)
# "gained" events that are not somebody new arriving: a first-sync baseline, an import.
NOT_ARRIVALS = ("quiet", "imported")


@on(Tick)
async def deliver_due_reminders(event: Tick, ctx: Context) -> None:
    """Schedule follow-ups, then deliver everything due as one message (unless quiet)."""
    if event.name != "sweep":
        return
    now = ctx.now()
    schedule_followups(ctx, now=now)
    if is_quiet(ctx.owner, now):
        return
    due = due_reminders(ctx.session, owner_id=ctx.owner.id, now=now)
    if due:
        deliver(ctx, due, now=now)


def due_reminders(session: Session, *, owner_id: int, now: datetime,
                  limit: int = BATCH_LIMIT) -> list[Reminder]:
    """Open reminders due by ``now``, oldest first, through the (status, due_at) index.

    ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite ignores it and serialises writers)
    keeps two workers from choosing the same rows.
    """
    return list(session.exec(due_query(owner_id=owner_id, now=now, limit=limit)))


def due_query(*, owner_id: int, now: datetime, limit: int = BATCH_LIMIT):
    return (
        select(Reminder)
        .where(Reminder.status == "open", Reminder.due_at <= now, Reminder.owner_id == owner_id)
        .order_by(col(Reminder.due_at), col(Reminder.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def delivery_key(reminders: list[Reminder]) -> str:
    """The same reminders at the same due times always give the same key."""
    parts = "|".join(f"{r.id}@{r.due_at.isoformat()}" for r in reminders)
    return "reminder:" + hashlib.sha256(parts.encode()).hexdigest()[:40]


def deliver(ctx: Context, due: list[Reminder], *, now: datetime) -> None:
    """One message for every due reminder; each is marked delivered or rolled forward."""
    key = delivery_key(due)
    live = [r for r in due if not followup_settled(ctx.session, r)]
    lines = [reminder_line(ctx, r, now=now) for r in live]
    items = [reminder_item(ctx, r) for r in live]
    catch_up = any(now - r.due_at > CATCH_UP_AFTER for r in live)
    for reminder in due:
        settle(reminder, tz=ctx.owner.tz, now=now, skipped=reminder not in live)
        ctx.session.add(reminder)
    if not live:
        return
    ctx.send("reminder", compose(lines, catch_up=catch_up), key=key,
             reminder_ids=[r.id for r in live], reminders=items, catch_up=catch_up)
    log.info("delivering %d reminder(s) for owner %s", len(live), ctx.owner.id)


def settle(reminder: Reminder, *, tz: str, now: datetime, skipped: bool = False) -> None:
    """Delivered (one-off) or moved to its next occurrence (recurring)."""
    if skipped:
        reminder.status = "done"
        return
    reminder.delivered_at = now
    if reminder.recurrence:
        reminder.due_at = next_occurrence(reminder.due_at, reminder.recurrence, tz=tz, after=now)
    else:
        reminder.status = "delivered"


def compose(lines: list[str], *, catch_up: bool) -> str:
    if catch_up:
        head = "While I was away, these came due:" if len(lines) > 1 else "While I was away:"
    else:
        head = "Reminders:" if len(lines) > 1 else "Reminder:"
    body = "\n".join(f"  {line}" for line in lines)
    return (f"{head}\n{body}\n"
            "Reply `done <id>` when it is done, `snooze <id> <when>` or `cancel <id>`.")


def first_handle(session: Session, contact: Contact) -> Handle | None:
    return session.exec(
        select(Handle).where(Handle.contact_id == contact.id).order_by(col(Handle.id))
    ).first()


def first_handles(session: Session, contact_ids: Sequence[int]) -> dict[int, Handle]:
    """``first_handle`` of many contacts at once: a list of people costs one query per
    900, not one each (0.1 ms apiece through the ORM)."""
    found: dict[int, Handle] = {}
    for batch in chunks(list(contact_ids)):
        query = select(Handle).where(col(Handle.contact_id).in_(batch)).order_by(col(Handle.id))
        for handle in session.exec(query):
            found.setdefault(handle.contact_id, handle)
    return found


def reminder_line(ctx: Context, reminder: Reminder, *, now: datetime) -> str:
    """ "#4 Get in touch with Jane Doe (@jane, #12): ask about robots (due Mon 2 Nov 09:00)" """
    contact = ctx.session.get(Contact, reminder.contact_id) if reminder.contact_id else None
    if reminder.kind == "followup" and contact is not None:
        text = followup_text(ctx, contact, reminder)
    elif contact is not None:
        who = describe_contact(contact, first_handle(ctx.session, contact))
        text = f"Get in touch with {who}" + (f": {reminder.text}" if reminder.text else "")
    else:
        text = reminder.text or "(no text)"
    late = f" (due {show_time(reminder.due_at, ctx.owner.tz)})" \
        if now - reminder.due_at > CATCH_UP_AFTER else ""
    repeat = describe_recurrence(reminder.recurrence, reminder.due_at, ctx.owner.tz)
    repeat = f" [{repeat}]" if repeat else ""
    return f"#{reminder.id} {text}{late}{repeat}"


def reminder_item(ctx: Context, reminder: Reminder) -> dict:
    contact = ctx.session.get(Contact, reminder.contact_id) if reminder.contact_id else None
    handle = first_handle(ctx.session, contact) if contact else None
    return {"id": reminder.id, "kind": reminder.kind, "text": reminder.text,
            "due_at": reminder.due_at.isoformat(), "recurrence": reminder.recurrence,
            "contact": contact_summary(contact, handle) if contact else None}


# --- follow-ups ----------------------------------------------------------------------


def schedule_followups(ctx: Context, *, now: datetime) -> int:
    """Create one follow-up reminder per new connection that reached the follow-up age.

    New connections are "gained" events that were not part of a quiet baseline; the
    JobRun watermark means every event is looked at exactly once.
    """
    age = timedelta(days=ctx.settings.followup_days)
    upto = now - age
    since = last_run(ctx.session, owner=ctx.owner, job=FOLLOWUP_JOB) or upto - FOLLOWUP_LOOKBACK
    if since >= upto:
        return 0
    created = 0
    for contact_id, gained_at in gained_between(ctx.session, owner_id=ctx.owner.id,
                                                since=since, upto=upto):
        created += add_followup(ctx, contact_id=contact_id, due_at=gained_at + age, now=now)
    if created or upto - since >= WATERMARK_STEP:
        mark_run(ctx.session, owner=ctx.owner, job=FOLLOWUP_JOB, at=upto)
    return created


def gained_between(session: Session, *, owner_id: int, since: datetime,
                   upto: datetime) -> list[tuple[int, datetime]]:
    rows = session.exec(
        select(Handle.contact_id, ConnectionEvent.at)
        .join(Connection, col(Connection.id) == ConnectionEvent.connection_id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(ConnectionEvent.owner_id == owner_id, ConnectionEvent.kind == "gained",
               ConnectionEvent.at > since, ConnectionEvent.at <= upto,
               col(ConnectionEvent.detail).not_in(NOT_ARRIVALS))
        .order_by(col(ConnectionEvent.at))
    ).all()
    first: dict[int, datetime] = {}
    for contact_id, at in rows:
        first.setdefault(contact_id, at)
    return list(first.items())


def add_followup(ctx: Context, *, contact_id: int, due_at: datetime, now: datetime) -> int:
    """1 when a follow-up was created; 0 when they talked already or one exists."""
    contact = repo.get_contact(ctx.session, owner=ctx.owner, contact_id=contact_id)
    if contact is None or contact.merged_into_id or talked_to(ctx.session, contact):
        return 0
    exists = ctx.session.exec(
        select(Reminder.id).where(Reminder.owner_id == ctx.owner.id,
                                  Reminder.contact_id == contact.id, Reminder.kind == "followup")
    ).first()
    if exists is not None:
        return 0
    ctx.session.add(Reminder(owner_id=ctx.owner.id, contact_id=contact.id, kind="followup",
                             text="follow up on the new connection", due_at=due_at,
                             created_at=now))
    return 1


def talked_to(session: Session, contact: Contact) -> bool:
    """Whether any conversation with them is logged (a sent welcome is not a conversation)."""
    return session.exec(
        select(Interaction.id).where(Interaction.owner_id == contact.owner_id,
                                     Interaction.contact_id == contact.id,
                                     Interaction.kind == "conversation").limit(1)
    ).first() is not None


def followup_settled(session: Session, reminder: Reminder) -> bool:
    """A follow-up whose person has been talked to since it was made needs no prompt."""
    if reminder.kind != "followup" or reminder.contact_id is None:
        return False
    contact = session.get(Contact, reminder.contact_id)
    return contact is None or talked_to(session, contact)


def followup_text(ctx: Context, contact: Contact, reminder: Reminder) -> str:
    """The prompt: who, how long ago, and the pending draft or a conversation starter."""
    who = describe_contact(contact, first_handle(ctx.session, contact))
    days = ago(ctx.now() - reminder.due_at + timedelta(days=ctx.settings.followup_days))
    text = f"Follow up with {who}: you connected {days} ago and haven't talked yet."
    draft = ctx.session.exec(
        select(Draft).where(Draft.owner_id == ctx.owner.id, Draft.contact_id == contact.id,
                            Draft.status == "pending").order_by(col(Draft.id).desc())
    ).first()
    if draft is not None:
        return f"{text} Your welcome draft #{draft.id} is waiting (`send {draft.id}`):" \
               f" \"{draft.text[:200]}\""
    return f"{text} {conversation_starter(contact)}"


def conversation_starter(contact: Contact) -> str:
    interests = [i.strip() for i in contact.interests.split(",") if i.strip()]
    first = contact.first_name or (contact.name.split()[0] if contact.name else "them")
    if interests:
        return f"Try asking {first} what they are exploring in {interests[0]} at the moment."
    if contact.role:
        return f"Try asking {first} what a good week looks like as {contact.role}."
    return f"Try asking {first} what they are working on and what brought them to you."
