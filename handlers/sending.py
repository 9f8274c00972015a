"""Delivering an approved welcome: at most once, and never without the owner's say-so.

``send <draft>`` marks the draft ``sending`` in the command's own transaction; only
after that is committed does :func:`deliver` call the platform's WelcomeSender. The
outcome is recorded in a new transaction: ``sent`` (plus a "welcome" interaction),
back to ``pending`` when the platform refused (nothing went out) or when a bug of ours
failed before any request was made (reported as an error), or ``uncertain`` only when
the request may have reached the platform (a timeout, a connection dropped after
sending). A crash between
the call and the record leaves the draft ``sending``; the sweep reports it to the
owner as "may or may not have gone out" and never sends it again by itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import col

from bot import platforms
from bot.context import Context, ContextOpener
from bot.ports import SendRefused, SendUncertain, WelcomeSender
from storage import repo
from storage.models import Contact, Draft, Handle

log = logging.getLogger(__name__)

# A draft still "sending" after this long was interrupted (the port calls time out
# well before it), so the owner is asked to check rather than left waiting.
STALE_SENDING = timedelta(minutes=10)
SENDABLE = ("pending", "expired", "uncertain")


def platform_name(platform: str) -> str:
    return platforms.name(platform)


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
    except (SendUncertain, TimeoutError, ConnectionError) as exc:  # it may have gone out
        log.warning("sending welcome draft %s: outcome unknown (%s)", draft_id,
                    type(exc).__name__)
        with open_context() as ctx:
            uncertain(ctx, draft_id=draft_id, reason=describe(exc))
        return
    except Exception as exc:  # a bug of ours before any request: nothing went out
        log.exception("sending welcome draft %s failed before reaching the platform", draft_id)
        with open_context() as ctx:
            failed(ctx, draft_id=draft_id, reason=describe(exc))
        return
    with open_context() as ctx:
        record_sent(ctx, draft_id=draft_id, note=confirmation)


def describe(exc: BaseException) -> str:
    """An exception as a short clause: its own words, or its type when it has none."""
    if isinstance(exc, SendUncertain) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def sentence(text: str) -> str:
    """``text`` as one sentence ending in a single full stop (reasons come from adapters
    with or without one)."""
    text = text.strip().removeprefix("Not sent: ").strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


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
    back_to_pending(ctx, draft_id=draft_id,
                    why=lambda where, name: (f"{where} would not take your welcome to {name}: "
                                             f"{sentence(reason)}"),
                    key="welcome-refused")


def failed(ctx: Context, *, draft_id: int, reason: str) -> None:
    """A bug of ours stopped the send before any request: say so, keep the draft waiting."""
    back_to_pending(ctx, draft_id=draft_id,
                    why=lambda where, name: (f"Something went wrong in plnbot before your "
                                             f"welcome to {name} reached {where} ({reason}); "
                                             f"this is a bug, not {where}."),
                    key="welcome-failed")


def back_to_pending(ctx: Context, *, draft_id: int, why: Callable[[str, str], str],
                    key: str) -> None:
    """Nothing went out: the draft is pending again, and the owner gets one sentence why,
    then the text to send by hand (once)."""
    draft = ctx.session.get_one(Draft, draft_id)
    if draft.status == "sending":
        draft.status = "pending"
        draft.decided_at = None
        ctx.session.add(draft)
    contact = ctx.session.get_one(Contact, draft.contact_id)
    handle = ctx.session.get_one(Handle, draft.handle_id)
    first = why(platform_name(draft.platform), contact.name)
    text = (f"{first} Nothing was sent; draft #{draft.id} is still waiting.\n"
            + fallback_text(draft, handle))
    ctx.send("error", text, key=f"{key}:{draft.id}:{ctx.now().isoformat()}",
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
    how = platforms.get(draft.platform).by_hand_hint(who, profile_url)
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
