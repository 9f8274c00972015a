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
from storage.models import Contact, Draft


@on(Tick)
async def expire_drafts(event: Tick, ctx: Context) -> None:
    """Pending drafts past their expiry become ``expired``, and the owner hears so once.

    Expired drafts stay in the database (``repo.drafts_expired_between`` gives the
    digest what expired in its week); ``edit`` or ``send`` can still revive one.
    """
    if event.name != "sweep":
        return
    now = ctx.now()
    stale = ctx.session.exec(
        select(Draft).where(
            Draft.owner_id == ctx.owner.id,
            Draft.status == "pending",
            col(Draft.expires_at) <= now,
        ).order_by(Draft.id)
    ).all()
    for draft in stale:
        draft.status = "expired"
        draft.decided_at = now
        ctx.session.add(draft)
    if stale:
        tell_expired(ctx, list(stale))


def tell_expired(ctx: Context, drafts: list[Draft]) -> None:
    days = ctx.settings.draft_expiry_days
    names = [f"#{d.id} {ctx.session.get(Contact, d.contact_id).name}" for d in drafts]
    count = len(drafts)
    text = (f"{count} welcome draft{'s' if count != 1 else ''} expired unsent after {days} "
            f"days: {', '.join(names)}. Nothing was sent. `send <id>` or `edit <id> <text>` "
            "still works if you want to welcome them after all; `sent <id>` if you already did.")
    ids = [d.id for d in drafts]
    ctx.send("drafts_expired", text, key=f"expired:{ids[0]}:{ids[-1]}:{count}", draft_ids=ids)


@on(Tick)
async def check_interrupted_sends(event: Tick, ctx: Context) -> None:
    """A welcome left ``sending`` by a crash is reported, never re-sent on its own."""
    if event.name == "sweep":
        sending.report_interrupted(ctx)
