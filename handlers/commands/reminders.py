"""Reminders, keep-in-touch cadences and goals: the owner's side of the nudges.

``remind``/``reminders``/``done``/``snooze``/``cancel`` manage Reminder rows; what is
due is delivered by ``handlers/reminders.py`` on the sweep. Times are read in the
owner's zone (``handlers/when.py``) and stored in UTC.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import col, select

from bot.context import Context
from handlers import people
from handlers.commands import NAMED, CommandError, command
from handlers.nudges import (
    GOAL_KINDS,
    cadence_status,
    describe_period,
    due_line,
    goal_label,
    goal_progress,
    progress_line,
    tag_members,
)
from handlers.periodic import is_quiet
from handlers.present import contact_summary, describe_contact
from handlers.reminders import first_handle, first_handles
from handlers.when import (
    WhenError,
    describe_recurrence,
    is_day_first,
    parse_when,
    show_time,
    split_when,
)
from storage import repo
from storage.models import Cadence, Contact, Goal, Reminder

REMIND_USAGE = "remind <person|me> <when> [text…]"
MAX_REMINDER_TEXT = 1000
LIST_LIMIT = 50
ME = ("me", "myself")


@command("remind", REMIND_USAGE, group="reminders", profiles=NAMED)
async def remind(args: str, ctx: Context) -> None:
    """Set a reminder for yourself or about someone.

    <when> is in your time zone: in 3 days, in 2 weeks, tomorrow, tomorrow 9am,
    next monday, monday 14:00, 2026-12-01, 2026-12-01 14:00, every friday,
    every 2 weeks. Dates without a time mean 09:00.
    Example: remind @jane next monday ask about the robotics club
    Example: remind me every friday 16:00 write the week's notes
    """
    contact, rest = remind_target(ctx, args)
    if not rest:
        raise CommandError("Say when.", usage=REMIND_USAGE)
    try:
        when, text = split_when(rest, tz=ctx.owner.tz, now=ctx.now(),
                                day_first=is_day_first(ctx.owner.tz, ctx.owner.date_order))
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


def remind_target(ctx: Context, args: str) -> tuple[Contact | None, str]:
    """``me`` (None) or a person, who may be a full name unquoted; and the rest."""
    first, _, rest = args.strip().partition(" ")
    if first.lower() in ME:
        return None, rest.strip()
    return people.split_known(ctx.session, owner=ctx.owner, args=args, usage=REMIND_USAGE)


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


@command("reminders", "reminders", group="reminders", profiles=NAMED)
async def reminders(args: str, ctx: Context) -> None:
    """List your reminders that are not done yet."""
    rows = list(ctx.session.exec(
        select(Reminder)
        .where(Reminder.owner_id == ctx.owner.id,
               col(Reminder.status).in_(("open", "delivered")))
        .order_by(col(Reminder.due_at), col(Reminder.id))
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
    if not token.isdecimal():
        raise CommandError("Give the reminder's number, as shown in `reminders`.", usage=usage)
    number = int(token)
    reminder = ctx.session.get(Reminder, number) if number <= repo.MAX_ROW_ID else None
    if reminder is None or reminder.owner_id != ctx.owner.id:
        raise CommandError(f"There is no reminder #{token}. `reminders` lists them.",
                           usage=usage)
    if reminder.status not in ("open", "delivered"):
        raise CommandError(f"Reminder #{reminder.id} is already {reminder.status}.", usage=usage)
    return reminder


@command("done", "done <id>", group="reminders", profiles=NAMED)
async def done(args: str, ctx: Context) -> None:
    """Mark a reminder as done (a repeating one goes on; `cancel` stops it)."""
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
    ctx.send("reply", f"Done: reminder #{reminder.id}, {what_it_said(ctx, reminder)}.",
             reminder_id=reminder.id)


def what_it_said(ctx: Context, reminder: Reminder) -> str:
    """The reminder's words (and who it is about), so `done 4` and `cancel 4` confirm
    the right one."""
    contact = ctx.session.get(Contact, reminder.contact_id) if reminder.contact_id else None
    about = f" about {contact.name}" if contact is not None else ""
    return f"\u201c{reminder.text or 'follow up'}\u201d{about}"


def single_token(args: str, usage: str) -> str:
    parts = args.split()
    if len(parts) != 1:
        raise CommandError("Give one reminder number.", usage=usage)
    return parts[0]


@command("snooze", "snooze <id> <when>", group="reminders", profiles=NAMED)
async def snooze(args: str, ctx: Context) -> None:
    """Move a reminder to later: `snooze 4 tomorrow 9am`, `snooze 4 in 2 hours`.

    Snoozing a repeating reminder makes a one-off copy; the series goes on as before.
    """
    usage = "snooze <id> <when>"
    token, _, when_text = args.strip().partition(" ")
    reminder = owned_reminder(ctx, token, usage)
    if not when_text.strip():
        raise CommandError("Say until when.", usage=usage)
    try:
        when = parse_when(when_text, tz=ctx.owner.tz, now=ctx.now(),
                          day_first=is_day_first(ctx.owner.tz, ctx.owner.date_order))
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


@command("cancel", "cancel <id>", group="reminders", profiles=NAMED)
async def cancel(args: str, ctx: Context) -> None:
    """Cancel a reminder (a repeating one stops for good)."""
    usage = "cancel <id>"
    reminder = owned_reminder(ctx, single_token(args, usage), usage)
    reminder.status = "cancelled"
    ctx.session.add(reminder)
    ctx.send("reply", f"Cancelled reminder #{reminder.id}, {what_it_said(ctx, reminder)}.",
             reminder_id=reminder.id)


# --- keep-in-touch cadences ---------------------------------------------------------

CADENCE_USAGE = "cadence <person|#tag> <every N days|weeks|months | off>"
UNIT_DAYS = {"day": 1, "week": 7, "fortnight": 14, "month": 30}
TAG_TARGET = re.compile(r"#([^\W\d_][\w-]{0,49})", re.UNICODE)
MAX_CADENCE_DAYS = 3650


@command("cadence", CADENCE_USAGE, group="reminders", profiles=NAMED)
async def cadence(args: str, ctx: Context) -> None:
    """Be nudged when you haven't talked to someone (or a #tag) for a while.

    A logged conversation (`log`) starts the clock again. A #tag covers everyone
    whose conversations or notes carry that tag. `cadence` alone lists your rules.
    Example: cadence @jane every 3 weeks
    Example: cadence #mathchat every 2 months
    Example: cadence @jane off
    """
    if not args.strip():
        list_cadences(ctx)
        return
    target, rule = cadence_target(ctx, args)
    contact, tag = target
    existing = find_cadence(ctx, contact=contact, tag=tag)
    if rule.lower() == "off":
        stop_cadence(ctx, existing, name=target_name(ctx, contact, tag))
        return
    days = cadence_days(rule)
    row = existing or Cadence(owner_id=ctx.owner.id, contact_id=contact.id if contact else None,
                              tag=tag, every_days=days, created_at=ctx.now())
    row.every_days = days
    ctx.session.add(row)
    ctx.session.flush()
    ctx.send("reply", cadence_reply(ctx, row, contact, tag), cadence_id=row.id, every_days=days)


def cadence_target(ctx: Context, args: str) -> tuple[tuple[Contact | None, str | None], str]:
    """((contact, None) or (None, tag), the rest of the line)."""
    stripped = args.strip()
    match = TAG_TARGET.match(stripped)
    if match and (len(stripped) == match.end() or stripped[match.end()].isspace()):
        rule = stripped[match.end():].strip()
        if not rule:
            raise CommandError("Say how often, e.g. `every 3 weeks`, or `off`.",
                               usage=CADENCE_USAGE)
        return (None, match[1].lower()), rule
    contact, rule = people.split_known(ctx.session, owner=ctx.owner, args=args,
                                       usage=CADENCE_USAGE)
    if not rule:
        raise CommandError("Say how often, e.g. `every 3 weeks`, or `off`.",
                           usage=CADENCE_USAGE)
    return (contact, None), rule


def cadence_days(rule: str) -> int:
    """ "every 3 weeks" → 21; "every month" → 30; "weekly" → 7."""
    text = " ".join(rule.lower().split())
    text = {"daily": "every day", "weekly": "every week", "fortnightly": "every fortnight",
            "monthly": "every month"}.get(text, text)
    match = re.fullmatch(r"(?:every\s+)?(?:(\d{1,4}|a|an|one|two|three|four|six)\s+)?"
                         r"(day|week|fortnight|month)s?", text)
    if match is None:
        raise CommandError(f"I can't read {rule[:40]!r} as a period. Write `every N days`, "
                           "`every N weeks`, `every N months`, or `off`.", usage=CADENCE_USAGE)
    words = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "six": 6}
    count = int(match[1]) if (match[1] or "").isdecimal() else words.get(match[1] or "one", 1)
    days = count * UNIT_DAYS[match[2]]
    if not 1 <= days <= MAX_CADENCE_DAYS:
        raise CommandError("Choose a period between one day and ten years.",
                           usage=CADENCE_USAGE)
    return days


def find_cadence(ctx: Context, *, contact: Contact | None, tag: str | None) -> Cadence | None:
    query = select(Cadence).where(Cadence.owner_id == ctx.owner.id)
    if contact is not None:
        query = query.where(Cadence.contact_id == contact.id)
    else:
        query = query.where(Cadence.tag == tag, col(Cadence.contact_id).is_(None))
    return ctx.session.exec(query).first()


def target_name(ctx: Context, contact: Contact | None, tag: str | None) -> str:
    if contact is None:
        return f"#{tag}"
    return describe_contact(contact, first_handle(ctx.session, contact))


def stop_cadence(ctx: Context, existing: Cadence | None, *, name: str) -> None:
    if existing is None:
        raise CommandError(f"There is no cadence for {name}. `cadence` lists them.",
                           usage=CADENCE_USAGE)
    ctx.session.delete(existing)
    ctx.send("reply", f"Stopped the keep-in-touch cadence for {name}.")


def cadence_reply(ctx: Context, row: Cadence, contact: Contact | None, tag: str | None) -> str:
    period = describe_period(row.every_days)
    gap = f"a {period}" if period in ("day", "week", "month") else period
    if contact is not None:
        due_at = (contact.last_conversation_at or row.created_at) + timedelta(days=row.every_days)
        when = "now" if due_at <= ctx.now() else show_time(due_at, ctx.owner.tz)
        return (f"I'll nudge you when you haven't talked to {target_name(ctx, contact, None)} "
                f"for {gap} (next due: {when}).")
    members = len(tag_members(ctx.session, owner_id=ctx.owner.id, tag=tag or ""))
    if not members:
        return (f"I'll nudge you about everyone tagged #{tag} after {gap} without a "
                f"conversation. Nobody is tagged #{tag} yet: tag a conversation with "
                f"`log <person> … #{tag}`.")
    group = "1 person" if members == 1 else f"{members} people"
    return f"I'll nudge you about the {group} tagged #{tag} after {gap} without a conversation."


def list_cadences(ctx: Context) -> None:
    rows = ctx.session.exec(
        select(Cadence).where(Cadence.owner_id == ctx.owner.id).order_by(col(Cadence.id))
    ).all()
    if not rows:
        ctx.send("reply", "You have no keep-in-touch cadences. Try `cadence @jane every 3 weeks`.")
        return
    lines = []
    for row in rows:
        contact = ctx.session.get(Contact, row.contact_id) if row.contact_id else None
        lines.append(f"  {target_name(ctx, contact, row.tag)}: every "
                     f"{describe_period(row.every_days)}")
    ctx.send("reply", "Your keep-in-touch cadences:\n" + "\n".join(lines))


@command("due", "due", group="reminders", profiles=NAMED)
async def due(args: str, ctx: Context) -> None:
    """Who is due for a conversation, most overdue first."""
    now = ctx.now()
    status = cadence_status(ctx.session, owner=ctx.owner)
    overdue = [d for d in status if d.due_at <= now]
    if not overdue:
        upcoming = status[0] if status else None
        after = (f" Next: {target_name(ctx, upcoming.contact, None)} on "
                 f"{show_time(upcoming.due_at, ctx.owner.tz)}.") if upcoming else \
            " Set a cadence with `cadence <person|#tag> every 3 weeks`."
        ctx.send("reply", "Nobody is due." + after, due=[])
        return
    handles = first_handles(ctx.session, [d.contact.id for d in overdue])
    lines = [f"  {due_line(d, now=now, handle=handles.get(d.contact.id))}" for d in overdue]
    ctx.send("reply", f"{len(overdue)} due, most overdue first:\n" + "\n".join(lines),
             due=[contact_summary(d.contact) | {"due_at": d.due_at.isoformat()}
                  for d in overdue])


# --- weekly goals -------------------------------------------------------------------

GOAL_USAGE = "goal <conversations|connections|outside> <N> per week"
MAX_GOAL = 100


@command("goal", GOAL_USAGE, group="reminders", profiles=NAMED)
async def goal(args: str, ctx: Context) -> None:
    """Set a weekly goal, or see progress and streaks (`goal` alone).

    conversations: logged conversations; connections: new connections; outside:
    conversations with people outside your own field. Weeks start on Monday in your
    time zone. `goal <kind> off` removes one.
    Example: goal conversations 3 per week
    Example: goal outside 1 per week
    """
    words = args.lower().split()
    if not words:
        show_goals(ctx)
        return
    kind = words[0]
    if kind not in GOAL_KINDS:
        raise CommandError(f"I know three goals: {', '.join(GOAL_KINDS)}.", usage=GOAL_USAGE)
    if words[1:] == ["off"]:
        remove_goal(ctx, kind)
        return
    per_week = goal_number(words[1:])
    row = ctx.session.exec(
        select(Goal).where(Goal.owner_id == ctx.owner.id, Goal.kind == kind)
    ).first() or Goal(owner_id=ctx.owner.id, kind=kind, per_week=per_week, created_at=ctx.now())
    row.per_week = per_week
    ctx.session.add(row)
    ctx.session.flush()
    [progress] = [p for p in goal_progress(ctx.session, owner=ctx.owner, now=ctx.now())
                  if p.goal.kind == kind]
    ctx.send("reply", f"Goal set: {per_week} {goal_label(kind, ctx.owner)} a week. "
             f"So far: {progress_line(progress, ctx.owner)}.", goal=kind, per_week=per_week)


def goal_number(words: list[str]) -> int:
    if not words or not words[0].isdecimal() or words[1:] not in ([], ["per", "week"],
                                                                   ["a", "week"], ["/week"]):
        raise CommandError("Say how many per week, e.g. `3 per week`.", usage=GOAL_USAGE)
    number = int(words[0])
    if not 1 <= number <= MAX_GOAL:
        raise CommandError(f"Choose between 1 and {MAX_GOAL} per week "
                           "(or `off` to remove the goal).", usage=GOAL_USAGE)
    return number


def remove_goal(ctx: Context, kind: str) -> None:
    row = ctx.session.exec(
        select(Goal).where(Goal.owner_id == ctx.owner.id, Goal.kind == kind)
    ).first()
    if row is None:
        raise CommandError(f"You have no {kind} goal.", usage=GOAL_USAGE)
    ctx.session.delete(row)
    ctx.send("reply", f"Removed your {kind} goal.")


def show_goals(ctx: Context) -> None:
    progress = goal_progress(ctx.session, owner=ctx.owner, now=ctx.now())
    if not progress:
        ctx.send("reply", "You have no goals yet. Try `goal conversations 3 per week`.",
                 goals=[])
        return
    ctx.send("reply", "This week:\n" + "\n".join(f"  {progress_line(p, ctx.owner)}"
                                                 for p in progress),
             goals=[{"kind": p.goal.kind, "per_week": p.goal.per_week, "done": p.done,
                     "streak": p.streak} for p in progress])
