"""Periodic work, triggered by ``Tick`` events from the scheduler.

The scheduler holds no state: what is due is read from the database every time, so
work missed while the bot was down is simply found on the next sweep.
"""

from __future__ import annotations

from sqlmodel import col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from storage.models import Draft


@on(Tick)
async def expire_drafts(event: Tick, ctx: Context) -> None:
    """Pending drafts past their expiry become ``expired``; the digest mentions them."""
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
