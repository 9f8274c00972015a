"""The contact book as a whole: ``undo``, ``yes``, ``unlink``, ``people``, ``history``,
``draft``, ``tag``/``untag``, ``add``, ``rename`` and ``delete`` (log entries and notes).

Every change here is recorded for ``undo`` (see handlers/prompts.py); every list that
can grow is paged and says how to see the next page.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, func, select

from bot.context import Context
from handlers import backlog, people, prompts
from handlers.commands import NAMED, CommandError, command
from handlers.commands.contacts import MAX_TEXT, PLATFORM_NAMES, TAG, tags_in
from handlers.nudges import tag_members
from handlers.present import at_handle, describe_contact
from handlers.profiles import first_name
from handlers.reminders import first_handles
from storage import repo, search, undo
from storage.linking import merge_contacts
from storage.models import (
    Connection,
    Contact,
    Draft,
    Handle,
    Interaction,
    Reminder,
    UndoEntry,
)

PAGE = 20
HISTORY_PAGE = 50
FIELDS = ("education", "technology", "research", "health", "arts & culture", "business",
          "public sector", "other")


def local_day(ctx: Context, moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(ctx.owner.tz)):%a %d %b %Y}"


def local_minute(ctx: Context, moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(ctx.owner.tz)):%a %d %b %Y %H:%M}"


# --- undo and yes ------------------------------------------------------------------------


@command("undo", "undo", group="general", profiles=NAMED)
async def undo_command(args: str, ctx: Context) -> None:
    """Reverse your last change (and say exactly what it was).

    Works for log, note, tag, untag, link (after `yes`), unlink, skip, done, cancel,
    snooze, remind, cadence, goal, settings, add, rename, and editing or deleting a
    log entry or note. Each `undo` goes one change further back, over everything you
    changed in the last 30 days and your last 100 changes. Messages already sent to
    other people are never unsent.
    """
    if args:
        raise CommandError("`undo` takes nothing after it.", usage="undo")
    entry = undo.latest(ctx.session, owner_id=ctx.owner.id)
    if entry is None:
        raise CommandError("There is nothing to undo.", usage="undo")
    if undo.pruned(entry):
        raise CommandError(
            f"There is nothing more to undo: `undo` reaches back over everything you "
            f"changed in the last {undo.KEEP_DAYS} days and your last {undo.KEEP_LAST} "
            f"changes, and what you changed before that can no longer be undone. Fix it "
            f"by hand instead (for example `rename`, `untag` or `edit log`).",
            usage="undo")
    try:
        undo.reverse(ctx.session, entry=entry, now=ctx.now())
    except undo.BuiltOn:
        raise CommandError(f"I can't undo `{entry.command}`: what it made has been built on "
                           "since (for example, someone you added has followed you since). "
                           "Nothing was changed.", usage="undo") from None
    said = f" It had said: {entry.summary}" if entry.summary else ""
    ctx.send("reply", f"Undone: `{entry.command}`.{said}", undone=entry.command,
             undo_id=entry.id, quoting=undo.quoted(entry))


@command("yes", "yes", group="general", aliases=("y",), profiles=NAMED)
async def yes(args: str, ctx: Context) -> None:
    """Confirm what I just asked (a link)."""
    prompt = prompts.pending(ctx)
    if prompt is None or prompt.kind != "confirm" or args:
        raise CommandError("There is nothing waiting for a yes.", usage="yes")
    prompts.drop(ctx)
    payload = json.loads(prompt.payload_json)
    first = repo.get_contact(ctx.session, owner=ctx.owner, contact_id=payload["first"])
    second = repo.get_contact(ctx.session, owner=ctx.owner, contact_id=payload["second"])
    if (first is None or second is None or first.merged_into_id or second.merged_into_id
            or first.id == second.id):
        raise CommandError("Those two people changed since I asked; write `link` again.",
                           usage="link <person> <person>")
    prompts.describe_as(ctx, f"link #{first.id} #{second.id}")
    do_link(ctx, first, second)


def do_link(ctx: Context, first: Contact, second: Contact) -> None:
    second_label = f"{second.name} (#{second.id})"
    moved = merge_contacts(ctx.session, owner=ctx.owner, survivor=first, merged=second)
    handles = repo.handles_of(ctx.session, owner=ctx.owner, contact=first)
    ctx.send("reply",
             f"Linked: {second_label} is now part of {first.name} (#{first.id}). "
             f"Handles: {handle_list(handles) or 'none'}. Moved {moved.interactions} logged "
             f"item(s), {moved.reminders} reminder(s), {moved.drafts} draft(s); "
             f"#{second.id} now means #{first.id}. `unlink #{second.id}` splits them again.",
             merged_id=second.id, contact={"id": first.id, "name": first.name})


def handle_list(handles: list[Handle]) -> str:
    return ", ".join(f"{PLATFORM_NAMES.get(h.platform, h.platform)} "
                     f"{at_handle(h.platform, h.display_handle or h.handle)}" for h in handles)


def link_card(ctx: Context, contact: Contact) -> str:
    """One person, briefly, so the owner can see the two are the same."""
    handles = repo.handles_of(ctx.session, owner=ctx.owner, contact=contact)
    about = ", ".join(x for x in (contact.role, contact.organisation, contact.location) if x)
    talks = repo.count_interactions(ctx.session, owner=ctx.owner, contact=contact,
                                    kind="conversation")
    return (f"{contact.name} (#{contact.id}): {handle_list(handles) or 'no handles'}"
            + (f"; {about}" if about else "") + f"; {talks} conversation(s) logged")


def ask_link(ctx: Context, first: Contact, second: Contact) -> None:
    prompts.ask(ctx, "confirm", {"action": "link", "first": first.id, "second": second.id})
    ctx.send("reply", "Link these two as one person?\n"
             f"  1. {link_card(ctx, first)}\n  2. {link_card(ctx, second)}\n"
             f"Reply `yes` to link them (#{first.id} stays; #{second.id}'s handles and history "
             "move to it). Anything else cancels.",
             confirm="link", first_id=first.id, second_id=second.id)


# --- unlink --------------------------------------------------------------------------------

UNLINK_USAGE = "unlink <person>"
MOVED_TABLES: dict[str, Any] = {"handle": Handle, "interaction": Interaction, "reminder": Reminder,
                "draft": Draft}


@command("unlink", UNLINK_USAGE, group="people", profiles=NAMED)
async def unlink(args: str, ctx: Context) -> None:
    """Split a link again.

    The person linked in goes back to being separate.

    Their handles, history, reminders and drafts from before the link go back with
    them; anything logged since stays where it is.
    Example: unlink #7   (the old #id of the person linked in)
    """
    merged = linked_in(ctx, args)
    survivor = ctx.session.get_one(Contact, merged.merged_into_id)
    moved = moved_by_link(ctx, merged.id)
    for table, ids in moved.items():
        model: Any = MOVED_TABLES[table]
        undo.before_rows(ctx.session, model, col(model.id).in_(ids), columns=("contact_id",))
        ctx.session.execute(update(model).where(
            model.owner_id == ctx.owner.id, col(model.id).in_(ids),
            model.contact_id == survivor.id).values(contact_id=merged.id))
    merged.merged_into_id = None
    ctx.session.add(merged)
    ctx.session.flush()
    search.reindex(ctx.session.connection(), [merged.id, survivor.id])
    ctx.send("reply", f"Unlinked: {merged.name} (#{merged.id}) is separate from "
             f"{survivor.name} (#{survivor.id}) again, with "
             f"{len(moved.get('handle', []))} handle(s) and "
             f"{len(moved.get('interaction', []))} logged item(s).",
             contact_id=merged.id, split_from=survivor.id)


def linked_in(ctx: Context, args: str) -> Contact:
    """The contact that was linked into another: by its old #id, or the only one
    linked into the person named."""
    text = args.strip()
    if not text:
        raise CommandError("Say who to unlink.", usage=UNLINK_USAGE)
    if re.fullmatch(r"#\d{1,12}", text):
        raw = repo.get_contact(ctx.session, owner=ctx.owner, contact_id=int(text[1:]))
        if raw is not None and raw.merged_into_id:
            return raw
    person = people.resolve(ctx.session, owner=ctx.owner, text=text)
    parts = list(ctx.session.exec(select(Contact).where(
        Contact.owner_id == ctx.owner.id, Contact.merged_into_id == person.id)))
    if not parts:
        raise CommandError(f"{person.name} (#{person.id}) is not linked with anyone.",
                           usage=UNLINK_USAGE)
    if len(parts) > 1:
        lines = [f"  {n}. {c.name} (#{c.id})" for n, c in enumerate(parts, 1)]
        raise CommandError(f"Several people were linked into {person.name}; say which one:\n"
                           + "\n".join(lines) + "\nReply with its number.",
                           usage=UNLINK_USAGE, choices=[(text, c.id) for c in parts])
    return parts[0]


def moved_by_link(ctx: Context, merged_id: int) -> dict[str, list[int]]:
    """The rows the link of ``merged_id`` moved, read from the undo log of that link."""
    entries = ctx.session.exec(
        select(UndoEntry).where(UndoEntry.owner_id == ctx.owner.id)
        .order_by(col(UndoEntry.id).desc()).limit(2000))
    for entry in entries:
        rows = json.loads(entry.changes_json)["rows"]
        if any(t == "contact" and i == merged_id and b and "merged_into_id" in b
               and b["merged_into_id"] is None for t, i, b in rows):
            moved: dict[str, list[int]] = {}
            for table, row_id, before in rows:
                if table in MOVED_TABLES and before and before.get("contact_id") == merged_id:
                    moved.setdefault(table, []).append(row_id)
            return moved
    raise CommandError("I have no record of what that link moved (it was made before "
                       "links could be split), so I can't split it.", usage=UNLINK_USAGE)


# --- people --------------------------------------------------------------------------------

PEOPLE_USAGE = "people [#tag | never | field <f> | lost] [page <n>]"


@command("people", PEOPLE_USAGE, group="people", profiles=NAMED)
async def people_command(args: str, ctx: Context) -> None:
    """List everyone, or some of them.

    `people #tag`, `people never` (never talked to), `people field <field>`, `people lost`.

    Twenty at a time, by name; `page <n>` shows more: `people never page 2`.
    Fields: education, technology, research, health, arts & culture, business,
    public sector, other.
    Example: people #mathchat   or   people field technology
    """
    text, page = page_of(args)
    if text.lower().startswith("field"):  # everyone's field, so every profile read
        backlog.catch_up(ctx.session, owner_id=ctx.owner.id)
    title, query = people_query(ctx, text)
    total = ctx.session.exec(select(func.count()).select_from(query.subquery())).one()
    shown = list(ctx.session.exec(query.order_by(func.lower(Contact.name), Contact.id)
                                  .offset((page - 1) * PAGE).limit(PAGE)))
    if not shown:
        reply = f"Nobody {title}." if page == 1 else f"There is no page {page}; {total} in all."
        ctx.send("reply", reply, contacts=[], total=total, page=page)
        return
    handles = first_handles(ctx.session, [c.id for c in shown])
    lines = [f"{total} {'person' if total == 1 else 'people'} {title}"
             + (f" (page {page} of {-(-total // PAGE)})" if total > PAGE else "") + ":"]
    lines += [f"  {describe_contact(c, handles.get(c.id))}" for c in shown]
    if page * PAGE < total:
        lines.append(f"More: `people {(text + ' ') if text else ''}page {page + 1}`.")
    ctx.send("reply", "\n".join(lines), total=total, page=page,
             contacts=[{"id": c.id, "name": c.name} for c in shown])


def page_of(args: str, usage: str = PEOPLE_USAGE) -> tuple[str, int]:
    """``… page 3`` → ("…", 3); no ``page`` → page 1."""
    words = args.split()
    if len(words) >= 2 and words[-2].lower() == "page":
        page = repo.row_id(words[-1])
        if page is None or page > 100_000:
            raise CommandError("Pages are numbered from 1: `page 2`.", usage=usage)
        return " ".join(words[:-2]), page
    return " ".join(words), 1


def people_query(ctx: Context, text: str):  # noqa: ANN201 - a SQLModel select
    live = select(Contact).where(Contact.owner_id == ctx.owner.id,
                                 col(Contact.merged_into_id).is_(None))
    lowered = text.lower()
    if not text:
        return "in your network", live
    if lowered == "never":
        return "you never talked to", live.where(col(Contact.last_conversation_at).is_(None))
    if lowered == "lost":
        return "who left and did not come back", live.where(col(Contact.id).in_(lost_ids(ctx)))
    if lowered.startswith("field"):
        field = lowered[5:].strip()
        if field not in FIELDS:
            raise CommandError(f"Say a field: {', '.join(FIELDS)}.", usage=PEOPLE_USAGE)
        return f"in {field}", live.where(Contact.field == field)
    match = TAG.fullmatch(text)
    if match:
        tag = match[1].lower()
        return f"tagged #{tag}", live.where(col(Contact.id).in_(
            tag_members(ctx.session, owner_id=ctx.owner.id, tag=tag)))
    raise CommandError(f"I can't list {text[:40]!r}: write `people`, `people #tag`, "
                       "`people never`, `people field <field>` or `people lost`.",
                       usage=PEOPLE_USAGE)


def lost_ids(ctx: Context):  # noqa: ANN201 - a SQL subquery
    """Contacts with a lost or vanished connection and no active one."""
    joined = select(Handle.contact_id).join(
        Connection, col(Connection.handle_id) == col(Handle.id)).where(
        Connection.owner_id == ctx.owner.id)
    active = joined.where(Connection.state == "active")
    return joined.where(col(Connection.state).in_(("lost", "vanished")),
                        col(Handle.contact_id).not_in(active))


# --- history and single entries ------------------------------------------------------------

HISTORY_USAGE = "history <person> [page <n>]"


@command("history", HISTORY_USAGE, group="people", profiles=NAMED)
async def history(args: str, ctx: Context) -> None:
    """Everything logged about someone.

    Oldest first, each entry with its number.

    The numbers are what `edit log <n> <text…>` and `delete log <n>` take.
    Fifty at a time; `history <person> page 2` shows the next fifty.
    """
    person, page = page_of(args, HISTORY_USAGE)
    contact, rest = people.split_known(ctx.session, owner=ctx.owner, args=person,
                                       usage=HISTORY_USAGE)
    if rest:
        raise CommandError(f"After the person, only `page <n>` fits, not {rest[:40]!r}.",
                           usage=HISTORY_USAGE)
    base = select(Interaction).where(Interaction.owner_id == ctx.owner.id,
                                     Interaction.contact_id == contact.id)
    total = ctx.session.exec(select(func.count()).select_from(base.subquery())).one()
    rows = list(ctx.session.exec(base.order_by(col(Interaction.at), col(Interaction.id))
                                 .offset((page - 1) * HISTORY_PAGE).limit(HISTORY_PAGE)))
    if not rows:
        ctx.send("reply", f"Nothing is logged about {contact.name} (#{contact.id}) yet."
                 if page == 1 else f"There is no page {page}; {total} entries in all.",
                 entries=[], contact_id=contact.id, name=contact.name)
        return
    lines = [f"History of {contact.name} (#{contact.id}), {total} entr"
             f"{'y' if total == 1 else 'ies'}:"]
    lines += [f"  {i.id}. {local_day(ctx, i.at)} {i.kind}: {i.text}" for i in rows]
    if page * HISTORY_PAGE < total:
        lines.append(f"More: `history #{contact.id} page {page + 1}`.")
    lines.append("`edit log <n> <text…>` or `delete log <n>` changes an entry.")
    ctx.send("reply", "\n".join(lines), contact_id=contact.id, total=total,
             entries=[{"id": i.id, "kind": i.kind, "text": i.text, "at": i.at.isoformat()}
                      for i in rows])


ENTRY_KINDS = ("log", "note", "entry")
DELETE_USAGE = "delete <log|note> <n>"
EDIT_ENTRY_USAGE = "edit <log|note> <n> <text…>"


def owned_entry(ctx: Context, token: str, usage: str) -> Interaction:
    token = token.strip().lstrip("#")
    if not token.isdigit():
        raise CommandError("Give the entry's number, as `history <person>` shows it.",
                           usage=usage)
    number = repo.row_id(token)
    entry = ctx.session.get(Interaction, number) if number is not None else None
    if entry is None or entry.owner_id != ctx.owner.id:
        raise CommandError(f"There is no log entry or note {token}. "
                           "`history <person>` shows the numbers.", usage=usage)
    return entry


@command("delete", DELETE_USAGE, group="people", profiles=NAMED)
async def delete(args: str, ctx: Context) -> None:
    """Delete a log entry or note.

    Its number is in `history <person>`.

    `undo` brings it back.
    Example: delete log 42
    """
    words = args.split()
    if len(words) != 2 or words[0].lower() not in ENTRY_KINDS:
        raise CommandError("Write `delete log <n>` or `delete note <n>`.", usage=DELETE_USAGE)
    entry = owned_entry(ctx, words[1], DELETE_USAGE)
    contact = ctx.session.get_one(Contact, entry.contact_id)
    ctx.session.delete(entry)
    ctx.session.flush()
    refresh_last_conversation(ctx, contact)
    ctx.send("reply", f"Deleted {entry.kind} {entry.id} about {contact.name} "
             f"(#{contact.id}): \u201c{entry.text}\u201d", entry_id=entry.id)


async def edit_entry(args: str, ctx: Context) -> None:
    """``edit log <n> <text…>``: called by ``edit`` when its first word is log/note."""
    parts = args.split(maxsplit=2)
    if len(parts) < 3 or not parts[2].strip():
        raise CommandError("Give the entry's number and its new text.", usage=EDIT_ENTRY_USAGE)
    entry = owned_entry(ctx, parts[1], EDIT_ENTRY_USAGE)
    text = parts[2].strip()
    if len(text) > MAX_TEXT:
        raise CommandError(f"That text is {len(text)} characters; the limit is {MAX_TEXT}.",
                           usage=EDIT_ENTRY_USAGE)
    entry.text, entry.tags = text, " ".join(tags_in(text))
    ctx.session.add(entry)
    contact = ctx.session.get_one(Contact, entry.contact_id)
    ctx.send("reply", f"Entry {entry.id} about {contact.name} (#{contact.id}) now reads: "
             f"\u201c{text}\u201d", entry_id=entry.id, new_text=text)


def refresh_last_conversation(ctx: Context, contact: Contact) -> None:
    last = ctx.session.exec(select(func.max(Interaction.at)).where(
        Interaction.owner_id == ctx.owner.id, Interaction.contact_id == contact.id,
        Interaction.kind == "conversation")).one()
    contact.last_conversation_at = last
    ctx.session.add(contact)


# --- one draft in full ---------------------------------------------------------------------

DRAFT_USAGE = "draft <id>"


@command("draft", DRAFT_USAGE, group="drafts", profiles=NAMED)
async def draft(args: str, ctx: Context) -> None:
    """Show one welcome draft in full.

    With who it is for, its status and what you can do with it.
    """
    token = args.strip().lstrip("#")
    if not token.isdigit():
        raise CommandError("Give the draft's number, as shown in `drafts`.", usage=DRAFT_USAGE)
    number = repo.row_id(token)
    row = repo.get_draft(ctx.session, owner=ctx.owner, draft_id=number) if number else None
    if row is None:
        raise CommandError(f"There is no draft #{token}. `drafts` lists them.",
                           usage=DRAFT_USAGE)
    contact = ctx.session.get_one(Contact, row.contact_id)
    handle = ctx.session.get_one(Handle, row.handle_id)
    where = PLATFORM_NAMES.get(row.platform, row.platform)
    lines = [f"Draft #{row.id} for {contact.name} ({where} "
             f"{at_handle(row.platform, handle.display_handle or handle.handle)}), "
             f"{row.status}{' (edited)' if row.edited else ''}:"]
    lines += [f"  {line}" for line in row.text.splitlines()]
    if row.status == "pending":
        if row.expires_at:
            lines.append(f"Expires {local_minute(ctx, row.expires_at)}.")
        lines.append(f"`send {row.id}`, `edit {row.id} <text…>` or `skip {row.id}`.")
    ctx.send("reply", "\n".join(lines), draft_id=row.id, draft=row.text, status=row.status)


# --- tags ----------------------------------------------------------------------------------

TAG_USAGE = "tag <person> #tag…"
UNTAG_USAGE = "untag <person> #tag…"


def tag_words(rest: str, usage: str) -> list[str]:
    words = rest.split()
    if not words:
        raise CommandError("Say which #tags.", usage=usage)
    bad = [w for w in words if not TAG.fullmatch(w)]
    if bad:
        raise CommandError(f"{bad[0][:40]!r} is not a #tag (a # and a word, e.g. #edtech).",
                           usage=usage)
    return list(dict.fromkeys(w[1:].lower() for w in words))


def tags_of(ctx: Context, contact: Contact) -> set[str]:
    rows = ctx.session.exec(select(Interaction.tags).where(
        Interaction.owner_id == ctx.owner.id, Interaction.contact_id == contact.id))
    return {tag for tags in rows for tag in (tags or "").split()}


@command("tag", TAG_USAGE, group="people", profiles=NAMED)
async def tag(args: str, ctx: Context) -> None:
    """Tag someone.

    Tags group people for `people #tag`, `find #tag` and `cadence #tag`.

    Example: tag Jo Whitfield #artsed #gallery
    """
    contact, rest = people.split_known(ctx.session, owner=ctx.owner, args=args,
                                       usage=TAG_USAGE)
    wanted = tag_words(rest, TAG_USAGE)
    new = [t for t in wanted if t not in tags_of(ctx, contact)]
    if not new:
        raise CommandError(f"{contact.name} (#{contact.id}) already has "
                           f"{' '.join('#' + t for t in wanted)}.", usage=TAG_USAGE)
    shown = " ".join("#" + t for t in new)
    repo.add_interaction(ctx.session, owner=ctx.owner, contact=contact, kind="tag",
                         text=f"tagged {shown}", tags=new, at=ctx.now())
    ctx.send("reply", f"Tagged {contact.name} (#{contact.id}): {shown}.", tags=new,
             contact_id=contact.id)


@command("untag", UNTAG_USAGE, group="people", profiles=NAMED)
async def untag(args: str, ctx: Context) -> None:
    """Take #tags off someone.

    The tag comes off every note and log entry that carries it.
    """
    contact, rest = people.split_known(ctx.session, owner=ctx.owner, args=args,
                                       usage=UNTAG_USAGE)
    wanted = tag_words(rest, UNTAG_USAGE)
    missing = [t for t in wanted if t not in tags_of(ctx, contact)]
    if missing:
        raise CommandError(f"{contact.name} (#{contact.id}) has no #{missing[0]}.",
                           usage=UNTAG_USAGE)
    for row in ctx.session.exec(select(Interaction).where(
            Interaction.owner_id == ctx.owner.id, Interaction.contact_id == contact.id)):
        kept = [t for t in (row.tags or "").split() if t not in wanted]
        if kept != (row.tags or "").split():
            if row.kind == "tag" and not kept:
                ctx.session.delete(row)
            else:
                row.tags = " ".join(kept)
                ctx.session.add(row)
    ctx.session.flush()
    ctx.send("reply", f"Untagged {contact.name} (#{contact.id}): "
             f"{' '.join('#' + t for t in wanted)}.", tags=wanted, contact_id=contact.id)


# --- add and rename ------------------------------------------------------------------------

ADD_USAGE = "add <name> [handles…] [— how you met]"
RENAME_USAGE = "rename <person> <name>"
HOW_MET = re.compile(r"\s+(?:—|–|--)\s*|^(?:—|–|--)\s*")
PLATFORM_PREFIX = re.compile(r"^(x|twitter|mastodon|bluesky|discord):(.+)$", re.I)
MAX_NAME = 300


def platform_of(token: str) -> tuple[str, str] | None:
    """(platform, handle) for a handle as written, or None if the word is not a handle:
    ``@jo@art.social`` Mastodon, ``@jo.bsky.social`` Bluesky, ``@jo`` X,
    ``discord:jo`` Discord (any platform can be named with such a prefix)."""
    prefixed = PLATFORM_PREFIX.match(token)
    if prefixed:
        platform = prefixed[1].lower().replace("twitter", "x")
        return platform, prefixed[2].lstrip("@")
    if not token.startswith("@") and "@" not in token:
        return None
    handle = token.lstrip("@")
    if re.fullmatch(r"[\w.]+@[\w.-]+\.\w+", handle):
        return "mastodon", handle
    if re.fullmatch(r"[\w-]+(\.[\w-]+)+", handle):
        return "bluesky", handle
    if re.fullmatch(r"\w{1,50}", handle):
        return "x", handle
    raise CommandError(f"I can't tell which platform {token[:60]!r} is on; write it as "
                       "@name (X), name@instance (Mastodon), @name.bsky.social (Bluesky) "
                       "or discord:name.", usage=ADD_USAGE)


def parse_add(args: str) -> tuple[str, list[tuple[str, str]], str]:
    parts = HOW_MET.split(args.strip(), maxsplit=1)
    head, how_met = parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")
    name_words: list[str] = []
    handles: list[tuple[str, str]] = []
    for word in head.split():
        found = platform_of(word)
        if found:
            handles.append(found)
        elif handles:
            raise CommandError("Write the name first, then the handles.", usage=ADD_USAGE)
        else:
            name_words.append(word)
    name = " ".join(name_words)
    if not name:
        raise CommandError("Say the person's name first.", usage=ADD_USAGE)
    check_name(name, ADD_USAGE)
    if len(name) > MAX_NAME or len(how_met) > 300:
        raise CommandError("That name or how-you-met is too long (300 characters at most).",
                           usage=ADD_USAGE)
    return name, handles, how_met


def check_name(name: str, usage: str) -> None:
    """A name starts with a letter, so it can never be read as an #id, a number or a
    handle later."""
    if not name[0].isalpha():
        raise CommandError(f"A name starts with a letter; {name[:40]!r} does not.",
                           usage=usage)


@command("add", ADD_USAGE, group="people", profiles=NAMED)
async def add(args: str, ctx: Context) -> None:
    """Add someone by hand.

    For a colleague you met at a conference who does not follow you (yet).

    Handles are optional: @name (X), name@instance (Mastodon), @name.bsky.social
    (Bluesky), discord:name. When they later follow you there, that connection joins
    this contact. After a dash, how you met.
    Example: add Jo Whitfield jo@art.social — met at the gallery late opening
    """
    name, handles, how_met = parse_add(args)
    for platform, handle in handles:
        known = ctx.session.exec(select(Handle).where(
            Handle.owner_id == ctx.owner.id, Handle.platform == platform,
            Handle.handle == handle.lower())).first()
        if known is not None:
            other = ctx.session.get_one(Contact, known.contact_id)
            raise CommandError(f"{at_handle(platform, handle)} on "
                               f"{PLATFORM_NAMES.get(platform, platform)} is already "
                               f"{other.name} (#{other.id}).", usage=ADD_USAGE)
    now = ctx.now()
    contact = Contact(owner_id=ctx.owner.id, name=name, first_name=first_name(name),
                      how_met=how_met, created_at=now)
    ctx.session.add(contact)
    ctx.session.flush()
    for platform, handle in handles:
        ctx.session.add(Handle(owner_id=ctx.owner.id, contact_id=contact.id, platform=platform,
                               external_id=f"acct:{handle.lower()}", handle=handle.lower(),
                               display_handle=handle, created_at=now))
    ctx.session.flush()
    rows = repo.handles_of(ctx.session, owner=ctx.owner, contact=contact)
    ctx.send("reply", f"Added {name} (#{contact.id})"
             + (f": {handle_list(rows)}" if rows else "")
             + (f". How you met: {how_met}" if how_met else "") + ". "
             f"Now `log {name} <text…>` works.", contact={"id": contact.id, "name": name})


@command("rename", RENAME_USAGE, group="people", profiles=NAMED)
async def rename(args: str, ctx: Context) -> None:
    """Rename someone.

    Give them the name you know them by.
    Example: rename #12 Joanna Whitfield
    """
    contact, name = people.split_known(ctx.session, owner=ctx.owner, args=args,
                                       usage=RENAME_USAGE)
    if not name:
        raise CommandError("Say the new name after the person.", usage=RENAME_USAGE)
    check_name(name, RENAME_USAGE)
    if len(name) > MAX_NAME:
        raise CommandError(f"Names are {MAX_NAME} characters at most.", usage=RENAME_USAGE)
    old = contact.name
    contact.name, contact.first_name = name, first_name(name)
    ctx.session.add(contact)
    ctx.session.flush()
    ctx.send("reply", f"Renamed: {old} (#{contact.id}) is now {name}.",
             contact={"id": contact.id, "name": name})


def shorten(text: str, width: int) -> str:
    """Cut at a word boundary, never mid-word."""
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" …")
