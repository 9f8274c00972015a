"""Looking people up and logging what happened: ``who``, ``find``, ``log``, ``note``,
``link``."""

from __future__ import annotations

import re
import textwrap
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot import platforms
from bot.context import Context
from handlers import people
from handlers.commands import NAMED, CommandError, command
from handlers.present import (
    at_handle,
    connection_states,
    contact_summary,
    describe_contact,
    history_line,
)
from handlers.reminders import first_handles
from storage import repo, search
from storage.models import Contact, Handle

TAG = re.compile(r"(?<![\w&#])#([^\W\d_][\w-]{0,49})", re.UNICODE)
MAX_TEXT = 2_000
FIND_LIMIT = 10
PLATFORM_NAMES = platforms.View(lambda p: p.name)


def tags_in(text: str) -> list[str]:
    return list(dict.fromkeys(tag.lower() for tag in TAG.findall(text)))


def _text_argument(text: str, usage: str, what: str) -> str:
    if not text:
        raise CommandError(f"Say what to {what} after the person.", usage=usage)
    if len(text) > MAX_TEXT:
        raise CommandError(
            f"That text is {len(text)} characters; the limit is {MAX_TEXT}. "
            "Split it into shorter notes.", usage=usage,
        )
    return text


def local_time(ctx: Context, moment: datetime) -> str:
    """A UTC moment as the owner reads it, in their own time zone."""
    return f"{moment.astimezone(ZoneInfo(ctx.owner.tz)):%Y-%m-%d %H:%M}"


@command("who", "who <person>", group="people", profiles=NAMED)
async def who(args: str, ctx: Context) -> None:
    """Show everything I know about someone.

    Handles on each platform, field, role, school or workplace, how you met, your
    last conversation, open reminders and recent history.
    <person> is @handle, handle@instance, part of a name or #id.
    Example: who @jane@school.social   or   who Jane Doe
    """
    if not args:
        raise CommandError("Say who: a @handle, a name, or #id.")
    person = args
    contact = people.resolve(ctx.session, owner=ctx.owner, text=person)
    handles = repo.handles_of(ctx.session, owner=ctx.owner, contact=contact)
    summary = contact_summary(contact, handles[0] if handles else None)
    summary["handles"] = [{"platform": h.platform, "handle": h.display_handle or h.handle}
                          for h in handles]
    summary["bio"] = (contact.bio or "")[:300]  # as the text quotes it (Discord escapes it)
    ctx.send("reply", who_text(ctx, contact, handles), contact=summary)


def who_text(ctx: Context, contact: Contact, handles: list[Handle]) -> str:
    session, owner = ctx.session, ctx.owner
    lines = [f"{contact.name} (#{contact.id})"]
    lines += [f"  {PLATFORM_NAMES.get(h.platform, h.platform)}: "
              f"{at_handle(h.platform, h.display_handle or h.handle)}" for h in handles]
    details = [("Field", contact.field if contact.field != "other" else ""),
               ("Role", contact.role), ("School/work", contact.organisation),
               ("Location", contact.location), ("Website", contact.website),
               ("Interests", contact.interests.replace(",", ", ")),
               ("How you met", contact.how_met)]
    lines += [f"  {label}: {value}" for label, value in details if value]
    lines += [f"  {line}" for line in connection_states(
        session, owner=owner, contact=contact,
        day=lambda at: f"{at.astimezone(ZoneInfo(owner.tz)):%a %d %b %Y}")]
    if contact.bio:
        lines.append(f"  Bio: {contact.bio[:300]}")
    lines.append(f"  {history_line(session, owner=owner, contact=contact)}")
    if contact.last_conversation_at:
        lines.append(f"  Last conversation: {local_time(ctx, contact.last_conversation_at)}")
    for reminder in repo.open_reminders_for(session, owner=owner, contact=contact):
        lines.append(f"  Reminder #{reminder.id}: {reminder.text or 'follow up'} "
                     f"(due {local_time(ctx, reminder.due_at)})")
    recent = repo.recent_interactions(session, owner=owner, contact=contact)
    if recent:
        lines.append("  Recent:")
        lines += [f"    {i.at.astimezone(ZoneInfo(owner.tz)):%Y-%m-%d} {i.kind}: "
                  f"{textwrap.shorten(' '.join(i.text.split()), 160, placeholder=' …')}"
                  for i in recent]
        lines.append(f"  All of it, numbered: `history #{contact.id}`.")
    return "\n".join(lines)


@command("find", "find <text…>", group="people")
async def find(args: str, ctx: Context) -> None:
    """Search names, handles, bios, notes and tags; best matches first.

    Every word must match (the start of a word is enough: `find angs` finds Ångström).
    Case and accents do not matter. People whose name or handle matches come first;
    when over a thousand match, the best of the newest thousand are shown.
    Example: find maths leeds   or   find #edtech
    """
    if not search.words(args):
        raise CommandError("Say what to look for: a name, a word from a bio or note, "
                           "or a #tag.")
    conn = ctx.session.connection()
    found = search.ranked(conn, owner_id=ctx.owner.id, query=args, limit=FIND_LIMIT + 1)
    ids = found.ids
    if not ids:
        ctx.send("reply", f"Nobody matches {args[:60]!r}.", contacts=[])
        return
    shown = _contacts_in_order(ctx, ids[:FIND_LIMIT])
    handles = first_handles(ctx.session, [c.id for c in shown])
    lines = [f"People matching {args[:60]!r}, best first:"]
    lines += [_find_line(c, handles.get(c.id)) for c in shown]
    if len(ids) > FIND_LIMIT or found.partial:
        lines.append(_more_line(found.partial))
    ctx.send("reply", "\n".join(lines),
             contacts=[contact_summary(c, handles.get(c.id)) for c in shown])


def _more_line(partial: bool) -> str:
    """Say when only the newest matches were ranked, so nobody takes the list for the
    best of everyone."""
    if not partial:
        return "  … more match; add a word to narrow it down."
    return (f"  … over {search.RANK_WINDOW:,} match: I ranked the {search.RANK_WINDOW:,} "
            "you added most recently, after anyone whose name or handle matches. Add a "
            "word to narrow it down.")


def _contacts_in_order(ctx: Context, ids: list[int]) -> list[Contact]:
    """The contacts with ``ids``, in that (ranked) order: one query, not one per contact."""
    found = {c.id: c for c in ctx.session.exec(
        select(Contact).where(Contact.owner_id == ctx.owner.id, col(Contact.id).in_(ids)))}
    return [found[contact_id] for contact_id in ids if contact_id in found]


def _find_line(contact: Contact, handle: Handle | None) -> str:
    about = contact.role or contact.organisation or contact.bio[:60]
    return f"  {describe_contact(contact, handle)}" + (f" — {about}" if about else "")


async def _record(args: str, ctx: Context, *, kind: str, usage: str, verb: str) -> None:
    contact, text = people.split_known(ctx.session, owner=ctx.owner, args=args, usage=usage)
    text = _text_argument(text, usage, verb)
    tags = tags_in(text)
    interaction = repo.add_interaction(
        ctx.session, owner=ctx.owner, contact=contact, kind=kind, text=text, tags=tags,
        at=ctx.now(),
    )
    what = "Conversation" if kind == "conversation" else "Note"
    tag_text = f" Tags: {' '.join('#' + t for t in tags)}." if tags else ""
    about = "with" if kind == "conversation" else "about"
    ctx.send("reply", f"{what} {about} {contact.name} (#{contact.id}) saved "
             f"(entry {interaction.id}): \u201c{text}\u201d{tag_text} "
             "`undo` takes it back.",
             interaction_id=interaction.id, tags=tags, contact=contact_summary(contact))


@command("log", "log <person> <text…>", group="people", profiles=NAMED)
async def log_conversation(args: str, ctx: Context) -> None:
    """Log a conversation with someone; #tags in the text become tags.

    A logged conversation counts for goals and streaks and resets keep-in-touch cadences.
    Example: log @jane talked about flipped classrooms #edtech
    """
    await _record(args, ctx, kind="conversation", usage="log <person> <text…>", verb="log")


@command("note", "note <person> <text…>", group="people", profiles=NAMED)
async def note(args: str, ctx: Context) -> None:
    """Add a note about someone (not a conversation); #tags in the text become tags.

    Notes show in `who` and are searched by `find`, but do not count as talking.
    Example: note @jane runs the county maths network #mathchat
    """
    await _record(args, ctx, kind="note", usage="note <person> <text…>", verb="note")


@command("link", "link <person> <person>", group="people", profiles=NAMED)
async def link(args: str, ctx: Context) -> None:
    """Treat two contacts as one person, e.g. the same teacher on X and on Mastodon.

    I show both and ask first: reply `yes` to link them. The first keeps its #id; the
    second's handles, history, reminders and drafts move to it, and the second's old
    #id keeps working as a name for the first. `unlink` or `undo` splits them again.
    Example: link @ravi_maths ravi@mathstodon.xyz
    """
    usage = "link <person> <person>"
    first, rest = people.split_known(ctx.session, owner=ctx.owner, args=args, usage=usage)
    if not rest:
        raise CommandError("Name two people: the one to keep first, then the other.",
                           usage=usage)
    second = people.resolve(ctx.session, owner=ctx.owner, text=rest)
    if first.id == second.id:
        raise CommandError(f"{first.name} (#{first.id}) is already one person.", usage=usage)
    from handlers.commands.book import ask_link

    ask_link(ctx, first, second)
