"""Delivering an approved welcome: at most once, and never without the owner's say-so.

``send <draft>`` marks the draft ``sending`` in the command's own transaction; only
after that is committed does :func:`deliver` call the platform's WelcomeSender. The
outcome is recorded in a new transaction: ``sent`` (plus a "welcome" interaction),
back to ``pending`` when the platform refused (nothing went out), or ``uncertain``
when the call failed in a way that may or may not have delivered it. A crash between
the call and the record leaves the draft ``sending``; the sweep reports it to the
owner as "may or may not have gone out" and never sends it again by itself.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import col

from bot.context import Context, ContextOpener, SendRefused, WelcomeSender
from handlers import drafting
from storage import repo
from storage.models import Contact, Draft, Handle

log = logging.getLogger(__name__)

# A draft still "sending" after this long was interrupted (the port calls time out
# well before it), so the owner is asked to check rather than left waiting.
STALE_SENDING = timedelta(minutes=10)
SENDABLE = ("pending", "expired", "uncertain")


def platform_name(platform: str) -> str:
    return drafting.PLATFORM_NAMES.get(platform, platform)


def claim(ctx: Context, draft: Draft, *, to: str, allowed: tuple[str, ...]) -> bool:
    """Move ``draft`` to status ``to`` only if it is still in ``allowed`` (one winner)."""
    result = ctx.session.execute(
        update(Draft)
        .where(col(Draft.id) == draft.id, col(Draft.status).in_(allowed))
        .values(status=to, decided_at=ctx.now())
    )
    ctx.session.refresh(draft)
    return cast(CursorResult[Any], result).rowcount == 1  # an UPDATE's result


def deliver_after_commit(ctx: Context, *, draft: Draft, sender: WelcomeSender,
                         via: str | None = None) -> None:
    """Queue the platform call for after this transaction has made ``sending`` durable."""

    async def deliver_welcome(open_context: ContextOpener) -> None:
        await deliver(open_context, draft_id=draft.id, sender=sender, via=via)

    ctx.after_commit.append(deliver_welcome)


async def deliver(open_context: ContextOpener, *, draft_id: int, sender: WelcomeSender,
                  via: str | None = None) -> None:
    with open_context() as ctx:
        draft = ctx.session.get_one(Draft, draft_id)
        handle = ctx.session.get_one(Handle, draft.handle_id)
        if draft.status != "sending":
            return
    try:
        confirmation = await sender.send_welcome(handle=handle, text=draft.text, via=via)
    except SendRefused as exc:
        with open_context() as ctx:
            refused(ctx, draft_id=draft_id, reason=str(exc))
        return
    except Exception as exc:  # a timeout or a dropped connection: it may have gone out
        log.exception("sending welcome draft %s failed; outcome unknown", draft_id)
        with open_context() as ctx:
            uncertain(ctx, draft_id=draft_id, reason=f"{type(exc).__name__}: {exc}")
        return
    with open_context() as ctx:
        record_sent(ctx, draft_id=draft_id, note=confirmation)


def record_sent(ctx: Context, *, draft_id: int, note: str = "", by_hand: bool = False) -> Draft:
    """Mark the welcome sent and put it in the contact's history (once, whoever says so)."""
    draft = ctx.session.get_one(Draft, draft_id)
    if draft.status == "sent":
        return draft
    draft.status = "sent"
    draft.decided_at = ctx.now()
    ctx.session.add(draft)
    contact = ctx.session.get_one(Contact, draft.contact_id)
    repo.add_interaction(ctx.session, owner=ctx.owner, contact=contact, kind="welcome",
                         text=draft.text[:4000], tags=[], at=ctx.now())
    how = "Recorded your welcome" if by_hand else "Sent your welcome"
    text = f"{how} to {contact.name} on {platform_name(draft.platform)} (draft #{draft.id})."
    if note and not by_hand:
        text += f" {note}"
    ctx.send("reply", text, key=f"welcome-sent:{draft.id}", draft_id=draft.id, status="sent",
             platform=draft.platform)
    return draft


def refused(ctx: Context, *, draft_id: int, reason: str) -> None:
    """The platform said no: nothing went out, so the draft waits again with a fallback."""
    draft = ctx.session.get_one(Draft, draft_id)
    if draft.status == "sending":
        draft.status = "pending"
        draft.decided_at = None
        ctx.session.add(draft)
    contact = ctx.session.get_one(Contact, draft.contact_id)
    handle = ctx.session.get_one(Handle, draft.handle_id)
    text = (f"{platform_name(draft.platform)} would not take your welcome to {contact.name}: "
            f"{reason}. Nothing was sent; draft #{draft.id} is still waiting.\n"
            + fallback_text(draft, handle))
    ctx.send("error", text, key=f"welcome-refused:{draft.id}:{ctx.now().isoformat()}",
             draft_id=draft.id, status=draft.status, platform=draft.platform,
             fallback=draft.text)


def uncertain(ctx: Context, *, draft_id: int, reason: str) -> None:
    """We cannot know whether it arrived: ask the owner, never retry by ourselves."""
    draft = ctx.session.get_one(Draft, draft_id)
    if draft.status != "sending":
        return
    draft.status = "uncertain"
    ctx.session.add(draft)
    contact = ctx.session.get_one(Contact, draft.contact_id)
    where = platform_name(draft.platform)
    text = (f"Your welcome to {contact.name} on {where} (draft #{draft.id}) may or may not "
            f"have gone out ({reason}). Please check your messages on {where}: reply "
            f"`sent {draft.id}` if it arrived, or `send {draft.id}` to try again.")
    ctx.send("welcome_uncertain", text, key=f"welcome-uncertain:{draft.id}:{draft.decided_at}",
             draft_id=draft.id, platform=draft.platform)


def fallback_text(draft: Draft, handle: Handle) -> str:
    """How to send it by hand on that platform, with the exact text."""
    who = handle.display_handle or handle.handle
    profile_url = json.loads(handle.profile_json or "{}").get("url") or ""
    ways = {
        "mastodon": f"Send it yourself as a private mention to @{who.lstrip('@')}"
                    + (f" ({profile_url})" if profile_url.startswith("http") else ""),
        "bluesky": f"Message them yourself at https://bsky.app/profile/{who.lstrip('@')} "
                   "(or reply to one of their posts if their chat is closed)",
        "discord": f"Post it yourself in your welcome channel, mentioning @{who}, "
                   "or send them a message",
    }
    how = ways.get(draft.platform, f"Send it yourself to {who}")
    lines = [f"{how}, then reply `sent {draft.id}` so I record it. The text:"]
    lines += [f"  {line}" for line in draft.text.splitlines()]
    return "\n".join(lines)


def report_interrupted(ctx: Context) -> int:
    """Drafts left ``sending`` by a crash become ``uncertain`` and the owner is asked."""
    cutoff = ctx.now() - STALE_SENDING
    stale = [d for d in repo.drafts_in_status(ctx.session, owner=ctx.owner, status="sending")
             if d.decided_at is None or d.decided_at <= cutoff]
    for draft in stale:
        uncertain(ctx, draft_id=draft.id, reason="I stopped while sending it")
    return len(stale)
