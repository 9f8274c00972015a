"""Welcome drafts: ``drafts`` and ``skip``."""

from __future__ import annotations

from bot.context import Context
from handlers.commands import CommandError, command
from storage import repo
from storage.models import Contact, Draft


def parse_draft_id(args: str, usage: str) -> int:
    token = args.strip().lstrip("#")
    if not token.isdigit():
        raise CommandError("Give the draft's number, as shown in `drafts`.", usage=usage)
    return int(token)


def pending_draft(ctx: Context, args: str, usage: str) -> Draft:
    """The owner's pending draft named by ``args``, or a CommandError saying why not."""
    token = args.split(maxsplit=1)[0] if args.strip() else ""
    draft = repo.get_draft(ctx.session, owner=ctx.owner, draft_id=parse_draft_id(token, usage))
    if draft is None:
        raise CommandError(f"There is no draft #{token.lstrip('#')}. `drafts` lists them.",
                           usage=usage)
    if draft.status != "pending":
        raise CommandError(f"Draft #{draft.id} was already {draft.status}.", usage=usage)
    return draft


@command("drafts", "drafts", group="drafts")
async def drafts(args: str, ctx: Context) -> None:
    """List the welcome drafts waiting for you to send, edit or skip."""
    if args:
        raise CommandError("`drafts` takes no arguments.")
    pending = repo.pending_drafts(ctx.session, owner=ctx.owner)
    if not pending:
        ctx.send("reply", "No drafts are waiting.", drafts=[])
        return
    lines = [f"{len(pending)} draft{'s' if len(pending) != 1 else ''} waiting:"]
    items = []
    for draft in pending:
        contact = ctx.session.get(Contact, draft.contact_id)
        first_line = draft.text.splitlines()[0] if draft.text else ""
        lines.append(f"  #{draft.id} {contact.name} ({draft.platform}): {first_line[:80]}")
        items.append({"id": draft.id, "contact": contact.name, "platform": draft.platform,
                      "text": draft.text})
    lines.append("Reply `send <id>`, `edit <id> <text>` or `skip <id>`.")
    ctx.send("reply", "\n".join(lines), drafts=items)


@command("skip", "skip <draft>", group="drafts")
async def skip(args: str, ctx: Context) -> None:
    """Decide not to send a welcome draft; nothing is sent to the person."""
    if len(args.split()) != 1:
        raise CommandError("Give exactly one draft number.")
    draft = pending_draft(ctx, args, "skip <draft>")
    draft.status = "skipped"
    draft.decided_at = ctx.now()
    ctx.session.add(draft)
    contact = ctx.session.get(Contact, draft.contact_id)
    ctx.send("reply", f"Skipped the welcome for {contact.name} (draft #{draft.id}).",
             draft_id=draft.id)
