"""Periodic work, triggered by ``Tick`` events from the scheduler.

The scheduler holds no state: what is due is read from the database every time, so
work missed while the bot was down is simply found on the next sweep.
"""

from __future__ import annotations

from sqlmodel import col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from handlers import sending
from storage import undo
from storage.models import Draft


@on(Tick)
async def expire_drafts(event: Tick, ctx: Context) -> None:
    """Pending drafts past their expiry become ``expired``; nothing is sent to anyone.

    The owner is not interrupted for it: the new-connection message says when a draft
    expires, ``drafts`` lists the recently expired ones, and the weekly digest reports
    them (``repo.drafts_expired_between``). ``edit`` or ``send`` can still revive one.
    """
    if event.name != "sweep":
        return
    now = ctx.now()
    stale = ctx.session.exec(
        select(Draft).where(
            Draft.owner_id == ctx.owner.id,
            Draft.status == "pending",
            col(Draft.expires_at) <= now,
        )
    ).all()
    for draft in stale:
        draft.status = "expired"
        draft.decided_at = now
        ctx.session.add(draft)


@on(Tick)
async def check_interrupted_sends(event: Tick, ctx: Context) -> None:
    """A welcome left ``sending`` by a crash is reported, never re-sent on its own."""
    if event.name == "sweep":
        sending.report_interrupted(ctx)


@on(Tick)
async def prune_undo_log(event: Tick, ctx: Context) -> None:
    """Let go of the changes ``undo`` no longer reaches (older than 30 days and behind
    the owner's last 100; see ``storage.undo.KEEP_LAST``), a bounded batch a sweep, so
    the log does not grow with every command for as long as the bot runs."""
    if event.name == "sweep":
        undo.prune(ctx.session, owner_id=ctx.owner.id, now=ctx.now())
