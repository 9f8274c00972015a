"""Reminders, keep-in-touch cadences and goals: the owner's side of the nudges.

``remind``/``reminders``/``done``/``snooze``/``cancel`` manage Reminder rows; what is
due is delivered by ``handlers/reminders.py`` on the sweep. Times are read in the
owner's zone (``handlers/when.py``) and stored in UTC.
"""

from __future__ import annotations

from sqlmodel import col, select

from bot.context import Context
from handlers import people
from handlers.commands import CommandError, command
from handlers.periodic import is_quiet
from handlers.present import describe_contact
from handlers.reminders import first_handle
from handlers.when import (
    WhenError,
    describe_recurrence,
    parse_when,
    show_time,
    split_when,
)
from storage.models import Contact, Reminder

REMIND_USAGE = "remind <person|me> <when> [text…]"
MAX_REMINDER_TEXT = 1000
LIST_LIMIT = 50
ME = ("me", "myself")


@command("remind", REMIND_USAGE, group="reminders")
async def remind(args: str, ctx: Context) -> None:
    """Set a reminder for yourself or about someone.

    <when> is in your time zone: in 3 days, in 2 weeks, tomorrow, tomorrow 9am,
    next monday, monday 14:00, 2026-12-01, 2026-12-01 14:00, every friday,
    every 2 weeks. Dates without a time mean 09:00.
    Example: remind @jane next monday ask about the robotics club
    Example: remind me every friday 16:00 write the week's notes
    """
    who, rest = people.split_person(args, REMIND_USAGE)
    contact = None if who.lower() in ME else people.resolve(ctx.session, owner=ctx.owner,
                                                            text=who)
    if not rest:
        raise CommandError("Say when.", usage=REMIND_USAGE)
    try:
        when, text = split_when(rest, tz=ctx.owner.tz, now=ctx.now())
    except WhenError as exc:
        raise CommandError(str(exc), usage=REMIND_USAGE) from None
    check_text(text, contact)
    reminder = Reminder(owner_id=ctx.owner.id, contact_id=contact.id if contact else None,
                        text=text, due_at=when.due_at, recurrence=when.recurrence,
                        created_at=ctx.now())
    ctx.session.add(reminder)
    ctx.session.flush()
    text = f"Reminder #{reminder.id} set: {summary(ctx, reminder)}.{quiet_note(ctx, reminder)}"
    ctx.send("reply", text, reminder_id=reminder.id, due_at=reminder.due_at.isoformat(),
             recurrence=reminder.recurrence)


def check_text(text: str, contact: Contact | None) -> None:
    if contact is None and not text:
        raise CommandError("Say what to remind you about after the time.", usage=REMIND_USAGE)
    if len(text) > MAX_REMINDER_TEXT:
        raise CommandError(f"That reminder is {len(text)} characters; the limit is "
                           f"{MAX_REMINDER_TEXT}.", usage=REMIND_USAGE)


def summary(ctx: Context, reminder: Reminder) -> str:
    """ "Tue 3 Nov 2026 09:00 (Europe/London) — get in touch with Jane Doe: ask…" """
    tz = ctx.owner.tz
    parts = [f"{show_time(reminder.due_at, tz)} ({tz})"]
    repeat = describe_recurrence(reminder.recurrence, reminder.due_at, tz)
    if repeat:
        parts[0] += f", {repeat}"
    contact = ctx.session.get(Contact, reminder.contact_id) if reminder.contact_id else None
    if contact is not None:
        who = describe_contact(contact, first_handle(ctx.session, contact))
        parts.append(f"get in touch with {who}" + (f": {reminder.text}" if reminder.text else ""))
    elif reminder.text:
        parts.append(reminder.text)
    return " — ".join(parts)


def quiet_note(ctx: Context, reminder: Reminder) -> str:
    if not is_quiet(ctx.owner, reminder.due_at):
        return ""
    return (f" That is inside your quiet hours ({ctx.owner.quiet_start}–{ctx.owner.quiet_end}),"
            f" so it will reach you when they end.")


@command("reminders", "reminders", group="reminders")
async def reminders(args: str, ctx: Context) -> None:
    """List your reminders that are still open or delivered but not yet done."""
    rows = list(ctx.session.exec(
        select(Reminder)
        .where(Reminder.owner_id == ctx.owner.id,
               col(Reminder.status).in_(("open", "delivered")))
        .order_by(Reminder.due_at, Reminder.id)
        .limit(LIST_LIMIT + 1)
    ))
    if not rows:
        ctx.send("reply", "You have no reminders. Set one with `remind me tomorrow 9am …`.",
                 reminders=[])
        return
    lines = [listing_line(ctx, r) for r in rows[:LIST_LIMIT]]
    if len(rows) > LIST_LIMIT:
        lines.append("  … and more; `done <id>` or `cancel <id>` the old ones.")
    ctx.send("reply", "Your reminders:\n" + "\n".join(lines),
             reminders=[{"id": r.id, "status": r.status, "kind": r.kind, "text": r.text,
                         "due_at": r.due_at.isoformat(), "recurrence": r.recurrence}
                        for r in rows[:LIST_LIMIT]])


def listing_line(ctx: Context, reminder: Reminder) -> str:
    state = " (delivered; `done` it when done)" if reminder.status == "delivered" else ""
    followup = "follow-up: " if reminder.kind == "followup" else ""
    return f"  #{reminder.id} {followup}{summary(ctx, reminder)}{state}"


def owned_reminder(ctx: Context, token: str, usage: str) -> Reminder:
    """The owner's reminder named by ``token`` ("5" or "#5"), still open or delivered."""
    token = token.strip().lstrip("#")
    if not token.isdigit():
        raise CommandError("Give the reminder's number, as shown in `reminders`.", usage=usage)
    reminder = ctx.session.get(Reminder, int(token))
    if reminder is None or reminder.owner_id != ctx.owner.id:
        raise CommandError(f"There is no reminder #{token}. `reminders` lists them.",
                           usage=usage)
    if reminder.status not in ("open", "delivered"):
        raise CommandError(f"Reminder #{reminder.id} is already {reminder.status}.", usage=usage)
    return reminder


@command("done", "done <id>", group="reminders")
async def done(args: str, ctx: Context) -> None:
    """Mark a reminder as done. A repeating one keeps repeating; `cancel` stops it."""
    usage = "done <id>"
    reminder = owned_reminder(ctx, single_token(args, usage), usage)
    if reminder.recurrence:
        ctx.send("reply", f"Done. Reminder #{reminder.id} repeats "
                 f"({describe_recurrence(reminder.recurrence, reminder.due_at, ctx.owner.tz)});"
                 f" next on {show_time(reminder.due_at, ctx.owner.tz)}. "
                 f"`cancel {reminder.id}` stops it.", reminder_id=reminder.id)
        return
    reminder.status = "done"
    ctx.session.add(reminder)
    ctx.send("reply", f"Done: reminder #{reminder.id}.", reminder_id=reminder.id)


def single_token(args: str, usage: str) -> str:
    parts = args.split()
    if len(parts) != 1:
        raise CommandError("Give one reminder number.", usage=usage)
    return parts[0]


@command("snooze", "snooze <id> <when>", group="reminders")
async def snooze(args: str, ctx: Context) -> None:
    """Move a reminder to a later time: `snooze 4 tomorrow 9am`, `snooze 4 in 2 hours`.

    Snoozing a repeating reminder makes a one-off copy; the series goes on as before.
    """
    usage = "snooze <id> <when>"
    token, _, when_text = args.strip().partition(" ")
    reminder = owned_reminder(ctx, token, usage)
    if not when_text.strip():
        raise CommandError("Say until when.", usage=usage)
    try:
        when = parse_when(when_text, tz=ctx.owner.tz, now=ctx.now())
    except WhenError as exc:
        raise CommandError(str(exc), usage=usage) from None
    if when.recurrence:
        raise CommandError("Snooze to one time (e.g. `tomorrow 9am`), not a repeat.",
                           usage=usage)
    target = snoozed_copy(ctx, reminder) if reminder.recurrence else reminder
    target.due_at, target.status, target.delivered_at = when.due_at, "open", None
    ctx.session.add(target)
    ctx.session.flush()
    ctx.send("reply", f"Snoozed: reminder #{target.id} now comes "
             f"{show_time(target.due_at, ctx.owner.tz)}.{quiet_note(ctx, target)}",
             reminder_id=target.id, due_at=target.due_at.isoformat())


def snoozed_copy(ctx: Context, reminder: Reminder) -> Reminder:
    return Reminder(owner_id=ctx.owner.id, contact_id=reminder.contact_id, kind=reminder.kind,
                    text=reminder.text, due_at=reminder.due_at, created_at=ctx.now())


@command("cancel", "cancel <id>", group="reminders")
async def cancel(args: str, ctx: Context) -> None:
    """Cancel a reminder (a repeating one stops for good)."""
    usage = "cancel <id>"
    reminder = owned_reminder(ctx, single_token(args, usage), usage)
    reminder.status = "cancelled"
    ctx.session.add(reminder)
    ctx.send("reply", f"Cancelled reminder #{reminder.id}.", reminder_id=reminder.id)
