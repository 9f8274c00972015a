"""Welcome drafts: ``drafts``, ``send``, ``sent``, ``edit`` and ``skip``.

Every welcome needs the owner's approval of its exact text: ``send`` sends what
``drafts`` (or the new-connection message) showed, and ``edit`` only changes the text,
so the owner sees the new version before sending it.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta

from bot import platforms
from bot.context import Context
from handlers import drafting, sending
from handlers.commands import NAMED, CommandError, command
from handlers.welcome import storable_link
from storage import repo
from storage.models import Contact, Draft, Handle

RECENTLY = timedelta(days=7)
STATUS_WORDS = {
    "sent": "was already sent",
    "skipped": "was already skipped",
    "expired": "expired without being sent",
    "sending": "is being sent right now",
    "uncertain": "may or may not have gone out",
    "withdrawn": "was withdrawn: they left before it was sent",
}


def parse_draft_id(token: str, usage: str) -> int:
    token = token.strip().lstrip("#")
    if not token.isdecimal():
        raise CommandError("Give the draft's number, as shown in `drafts`.", usage=usage)
    return int(token)


def find_draft(ctx: Context, args: str, usage: str) -> Draft:
    """The owner's draft named by the first word of ``args``, or a CommandError."""
    token = args.split(maxsplit=1)[0] if args.strip() else ""
    draft = repo.get_draft(ctx.session, owner=ctx.owner, draft_id=parse_draft_id(token, usage))
    if draft is None:
        raise CommandError(f"There is no draft #{token.lstrip('#')}. `drafts` lists them.",
                           usage=usage)
    return draft


def draft_in(ctx: Context, args: str, usage: str, allowed: tuple[str, ...]) -> Draft:
    draft = find_draft(ctx, args, usage)
    if draft.status not in allowed:
        raise CommandError(f"Draft #{draft.id} {STATUS_WORDS.get(draft.status, draft.status)}.",
                           usage=usage)
    return draft


def one_id(args: str, usage: str) -> None:
    if len(args.split()) != 1:
        raise CommandError("Give exactly one draft number.", usage=usage)


def contact_of(ctx: Context, draft: Draft) -> Contact:
    return ctx.session.get_one(Contact, draft.contact_id)


@command("drafts", "drafts", group="drafts", profiles=NAMED)
async def drafts(args: str, ctx: Context) -> None:
    """List the welcome drafts waiting for you to send, edit or skip."""
    if args:
        raise CommandError("`drafts` takes no arguments.")
    pending = repo.pending_drafts(ctx.session, owner=ctx.owner)
    unsure = repo.drafts_in_status(ctx.session, owner=ctx.owner, status="uncertain")
    now = ctx.now()
    expired = repo.drafts_expired_between(ctx.session, owner=ctx.owner, start=now - RECENTLY,
                                          end=now + timedelta(microseconds=1))
    lines: list[str] = []
    items: list[dict] = []
    if pending:
        lines.append(f"{len(pending)} draft{'s' if len(pending) != 1 else ''} waiting:")
        lines += [draft_line(ctx, d, items) for d in pending]
        lines.append("Reply `send <id>`, `edit <id> <text>` or `skip <id>`; "
                     "`draft <id>` shows one in full.")
    else:
        lines.append("No drafts are waiting.")
    if unsure:
        lines.append("May or may not have gone out (check, then `sent <id>` or `send <id>`):")
        lines += [draft_line(ctx, d, items) for d in unsure]
    if expired:
        lines.append("Expired unsent this week (`edit <id> <text>` brings one back):")
        lines += [draft_line(ctx, d, items) for d in expired]
    ctx.send("reply", "\n".join(lines), drafts=[i for i in items if i["status"] == "pending"],
             others=[i for i in items if i["status"] != "pending"])


def draft_line(ctx: Context, draft: Draft, items: list[dict]) -> str:
    contact = contact_of(ctx, draft)
    first_line = " ".join(draft.text.split())
    left = ""
    if draft.expires_at and draft.status == "pending":
        days = max(0, -(-(draft.expires_at - ctx.now()) // timedelta(days=1)))
        left = f" (expires in {days} day{'s' if days != 1 else ''})"
    items.append({"id": draft.id, "contact": contact.name, "platform": draft.platform,
                  "text": draft.text, "status": draft.status,
                  "expires_at": draft.expires_at.isoformat() if draft.expires_at else None})
    where = sending.platform_name(draft.platform)
    shown = textwrap.shorten(first_line, width=90, placeholder=" …")
    return f"  #{draft.id} {contact.name} ({where}){left}: {shown}"


@command("send", "send <draft> [dm|channel]", group="drafts", profiles=NAMED)
async def send(args: str, ctx: Context) -> None:
    """Send a welcome draft exactly as shown.

    On Mastodon, Bluesky and Discord I send it for you (on Discord a post in the
    welcome channel, or `send <draft> dm` for a direct message). On X I never send
    messages myself: you get a link that opens X with the text filled in; send it
    there, then reply `sent <draft>`. If a platform refuses (closed DMs, rate limits),
    nothing is sent, the draft keeps waiting, and I tell you how to send it by hand.
    """
    usage = "send <draft> [dm|channel]"
    words = args.split()
    if not 1 <= len(words) <= 2:
        raise CommandError("Give one draft number (and, for Discord, `dm` or `channel`).",
                           usage=usage)
    draft = draft_in(ctx, args, usage, sending.SENDABLE)
    via = words[1].lower() if len(words) == 2 else None
    where = platforms.get(draft.platform)
    if via is not None and via not in where.send_choices:
        raise CommandError(choices_text(where), usage=usage)
    handle = ctx.session.get_one(Handle, draft.handle_id)
    if where.sends_by == "link":
        reply_with_link(ctx, draft, handle)
        return
    sender = ctx.senders.get(draft.platform)
    problem = None if sender else f"{where.name} isn't connected"
    if where.respects_closed_dms and handle.accepts_dms is False:
        problem = f"they don't accept direct messages on {where.name}"
    if problem:
        report_cannot_send(ctx, draft, handle, problem, usage=usage)
        return
    if not sending.claim(ctx, draft, to="sending", allowed=sending.SENDABLE):
        raise CommandError(f"Draft #{draft.id} {STATUS_WORDS.get(draft.status, draft.status)}.")
    assert sender is not None, "a missing sender is a problem, reported above"
    sending.deliver_after_commit(ctx, draft=draft, sender=sender, via=via)


def choices_text(where: platforms.Platform) -> str:
    """Why a ``send <draft> <choice>`` cannot be: the platform's choices, or none."""
    with_choices = [p for p in platforms.registry().values() if p.send_choices]
    if not where.send_choices:
        names = " or ".join(p.name for p in with_choices) or "no platform"
        words = sorted({f"`{c}`" for p in with_choices for c in p.send_choices})
        return f"{' or '.join(words)} only applies to {names} welcomes."
    return (f"{where.name} welcomes go by "
            f"{' or '.join(f'`{c}`' for c in where.send_choices)}.")


def reply_with_link(ctx: Context, draft: Draft, handle: Handle) -> None:
    """X forbids automated DMs: the owner sends it through a compose link, then confirms."""
    where = platforms.get(draft.platform)
    link = where.compose_link(external_id=handle.external_id, text=draft.text)
    contact = contact_of(ctx, draft)
    ctx.send(
        "reply",
        f"Open this link to send your welcome to {contact.name} on {where.name} (it opens "
        f"{where.name} with the text filled in; I never send {where.name} messages myself):"
        f"\n{link}\n"
        f"When you have sent it, reply `sent {draft.id}` and I'll record it.",
        draft_id=draft.id, send_url=link, platform=draft.platform,
    )


def report_cannot_send(ctx: Context, draft: Draft, handle: Handle, problem: str, *,
                       usage: str) -> None:
    """Nothing can go out (no sender, closed DMs): an ``error`` like any other, with the
    usage, and the text to send by hand."""
    contact = contact_of(ctx, draft)
    text = (f"I can't send your welcome to {contact.name}: {problem}. Nothing was sent; "
            f"draft #{draft.id} is still waiting.\n" + sending.fallback_text(draft, handle))
    ctx.send("error", text, draft_id=draft.id, platform=draft.platform, fallback=draft.text,
             usage=usage)


@command("sent", "sent <draft>", group="drafts", profiles=NAMED)
async def sent(args: str, ctx: Context) -> None:
    """Record that a welcome went out: after an X link, or one you sent by hand.

    It goes into the person's history like any welcome I send.
    """
    usage = "sent <draft>"
    one_id(args, usage)
    draft = draft_in(ctx, args, usage, ("pending", "expired", "uncertain", "sending", "skipped"))
    sending.record_sent(ctx, draft_id=draft.id, by_hand=True)


@command("edit", "edit <draft> <text…>", group="drafts", profiles=NAMED)
async def edit(args: str, ctx: Context) -> None:
    """Replace a draft's text with yours; then `send <draft>` sends it as written.

    `edit log <n> <text…>` (or `edit note <n> <text…>`) rewrites a log entry or note
    instead; `history <person>` shows their numbers.
    """
    usage = "edit <draft> <text…>"
    if args.split(maxsplit=1)[:1] and args.split()[0].lower() in ("log", "note", "entry"):
        from handlers.commands.book import edit_entry

        await edit_entry(args, ctx)
        return
    parts = args.split(maxsplit=1)
    if len(parts) < 2 or not parts[1].strip():
        raise CommandError("Give the draft number and the new text.", usage=usage)
    draft = draft_in(ctx, args, usage, ("pending", "expired", "uncertain"))
    text = parts[1].strip()
    handle = ctx.session.get_one(Handle, draft.handle_id)
    check_length(text, draft.platform, handle, usage)
    draft.text, draft.edited, draft.status, draft.decided_at = text, True, "pending", None
    draft.expires_at = ctx.now() + timedelta(days=ctx.settings.draft_expiry_days)
    draft.send_url = storable_link(draft.platform, handle.external_id, text)
    ctx.session.add(draft)
    contact = contact_of(ctx, draft)
    shown = "\n".join(f"  {line}" for line in text.splitlines())
    ctx.send("reply", f"Draft #{draft.id} for {contact.name} now reads:\n{shown}\n"
                      f"Reply `send {draft.id}` to send it as it is.",
             draft_id=draft.id, draft=text)


def check_length(text: str, platform: str, handle: Handle, usage: str) -> None:
    used = drafting.length(text, platform)
    limit = drafting.limit_for(platform, handle.display_handle or handle.handle)
    if used > limit:
        where = platforms.get(platform)
        raise CommandError(
            f"That text is {used} {where.counts}; {where.name} allows {limit} here"
            + (" (the @mention counts too)" if where.mention_counts else "") + ".",
            usage=usage)


@command("skip", "skip <draft>", group="drafts", profiles=NAMED)
async def skip(args: str, ctx: Context) -> None:
    """Decide not to send a welcome draft; nothing is sent to the person."""
    usage = "skip <draft>"
    one_id(args, usage)
    draft = draft_in(ctx, args, usage, ("pending", "expired", "uncertain"))
    draft.status = "skipped"
    draft.decided_at = ctx.now()
    ctx.session.add(draft)
    ctx.send("reply", f"Skipped the welcome for {contact_of(ctx, draft).name} "
                      f"(draft #{draft.id}). Nothing was sent.", draft_id=draft.id)
