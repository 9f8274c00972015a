"""Looking people up and logging what happened: ``who``, ``log``, ``note``."""

from __future__ import annotations

import re

from bot.context import Context
from handlers import people
from handlers.commands import CommandError, command
from handlers.present import at_handle, connection_lines, contact_summary, history_line
from storage import repo
from storage.models import Contact

TAG = re.compile(r"(?<![\w&#])#([^\W\d_][\w-]{0,49})", re.UNICODE)
MAX_TEXT = 2_000


def tags_in(text: str) -> list[str]:
    return list(dict.fromkeys(tag.lower() for tag in TAG.findall(text)))


def _text_argument(text: str, usage: str, what: str) -> str:
    if not text:
        raise CommandError(f"Say what to {what}.", usage=usage)
    if len(text) > MAX_TEXT:
        raise CommandError(
            f"That text is {len(text)} characters; the limit is {MAX_TEXT}. "
            "Split it into shorter notes.", usage=usage,
        )
    return text


@command("who", "who <person>", group="people")
async def who(args: str, ctx: Context) -> None:
    """Show everything I know about someone.

    Handles on each platform, field, role, school, how you met, your last conversation,
    open reminders and recent history. <person> is @handle, handle@instance, a name or #id.
    """
    if not args:
        raise CommandError("Say who: a @handle, a name, or #id.")
    contact = people.resolve(ctx.session, owner=ctx.owner, text=args)
    ctx.send("reply", who_text(ctx, contact), contact=contact_summary(contact))


def who_text(ctx: Context, contact: Contact) -> str:
    session, owner = ctx.session, ctx.owner
    handles = repo.handles_of(session, owner=owner, contact=contact)
    lines = [f"{contact.name} (#{contact.id})"]
    lines += [f"  {h.platform}: {at_handle(h.platform, h.display_handle or h.handle)}"
              for h in handles]
    details = [("Field", contact.field), ("Role", contact.role),
               ("Works at", contact.organisation), ("Location", contact.location),
               ("Website", contact.website), ("How you met", contact.how_met)]
    lines += [f"  {label}: {value}" for label, value in details if value]
    lines += [f"  {line}" for line in connection_lines(session, owner=owner, contact=contact)]
    if contact.bio:
        lines.append(f"  Bio: {contact.bio[:300]}")
    lines.append(f"  {history_line(session, owner=owner, contact=contact)}")
    for reminder in repo.open_reminders_for(session, owner=owner, contact=contact):
        lines.append(f"  Reminder #{reminder.id}: {reminder.text or 'follow up'} "
                     f"(due {reminder.due_at:%Y-%m-%d %H:%M} UTC)")
    recent = repo.recent_interactions(session, owner=owner, contact=contact)
    if recent:
        lines.append("  Recent:")
        lines += [f"    {i.at:%Y-%m-%d} {i.kind}: {i.text[:120]}" for i in recent]
    return "\n".join(lines)


async def _record(args: str, ctx: Context, *, kind: str, usage: str, verb: str) -> None:
    person, text = people.split_person(args, usage)
    text = _text_argument(text, usage, verb)
    contact = people.resolve(ctx.session, owner=ctx.owner, text=person)
    tags = tags_in(text)
    interaction = repo.add_interaction(
        ctx.session, owner=ctx.owner, contact=contact, kind=kind, text=text, tags=tags,
        at=ctx.now(),
    )
    what = "Conversation" if kind == "conversation" else "Note"
    tag_text = f" Tags: {' '.join('#' + t for t in tags)}." if tags else ""
    ctx.send("reply", f"{what} with {contact.name} (#{contact.id}) saved.{tag_text}",
             interaction_id=interaction.id, contact=contact_summary(contact))


@command("log", "log <person> <text…>", group="people")
async def log_conversation(args: str, ctx: Context) -> None:
    """Log a conversation with someone; #tags in the text become tags.

    A logged conversation counts for goals and streaks and resets keep-in-touch cadences.
    Example: log @jane talked about flipped classrooms #edtech
    """
    await _record(args, ctx, kind="conversation", usage="log <person> <text…>", verb="log")


@command("note", "note <person> <text…>", group="people")
async def note(args: str, ctx: Context) -> None:
    """Add a note about someone (not a conversation); #tags in the text become tags.

    Example: note @jane runs the county maths network #mathchat
    """
    await _record(args, ctx, kind="note", usage="note <person> <text…>", verb="note")
