"""The sync diff engine: a list of current connections against what is stored.

Every source (live polls, ``plnbot sync --snapshot``, archive imports) goes through
``apply_snapshot`` so that the rules are the same everywhere:

- the first sync of an account records a quiet baseline (no welcome drafts);
- new handles are arrivals (draft + ``new_connection``), returning ones ``welcome_back``;
- handles gone are lost, but only when the list is known to be complete: a partial or
  interrupted list can add connections, never remove them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import select

from bot.context import Context
from bot.dispatcher import on
from bot.events import ConnectionLeft, Profile, SnapshotReceived
from handlers import welcome
from handlers.drafting import PLATFORM_NAMES
from handlers.present import at_handle
from storage import repo
from storage.models import Account, Connection, ConnectionEvent, Contact, Handle

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    baseline: bool = False
    new: int = 0
    returned: int = 0
    lost: list[tuple[Contact, Handle]] = field(default_factory=list)
    unchanged: int = 0


@on(SnapshotReceived)
async def on_snapshot(event: SnapshotReceived, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.platform,
        external_id=event.account_external_id, handle=event.account_handle,
    )
    apply_snapshot(ctx, account=account, profiles=event.profiles, complete=event.complete,
                   kind=event.kind)


@on(ConnectionLeft)
async def on_connection_left(event: ConnectionLeft, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.profile.platform
    )
    handle = repo.find_handle(
        ctx.session, owner=ctx.owner, platform=event.profile.platform,
        external_id=event.profile.external_id,
    )
    if handle is None:
        return
    connection = _connection(ctx, account=account, handle=handle, kind=event.kind)
    if connection is None or connection.state != "active":
        return
    mark_lost(ctx, connection=connection, cause=event.cause)
    contact = ctx.session.get(Contact, handle.contact_id)
    report_lost(ctx, account=account, lost=[(contact, handle)])


def _connection(ctx: Context, *, account: Account, handle: Handle, kind: str):
    return ctx.session.exec(
        select(Connection).where(
            Connection.account_id == account.id,
            Connection.handle_id == handle.id,
            Connection.kind == kind,
        )
    ).first()


def stored_connections(
    ctx: Context, *, account: Account, kind: str
) -> dict[str, tuple[Connection, Handle]]:
    """external id → (connection, handle) for everything ever connected to ``account``."""
    rows = ctx.session.exec(
        select(Connection, Handle)
        .join(Handle, Handle.id == Connection.handle_id)
        .where(Connection.account_id == account.id, Connection.kind == kind)
    )
    return {handle.external_id: (connection, handle) for connection, handle in rows}


def apply_snapshot(
    ctx: Context, *, account: Account, profiles: list[Profile], complete: bool = True,
    kind: str = "follower",
) -> SyncResult:
    """Diff ``profiles`` against the stored connections and tell the owner what changed."""
    result = SyncResult(baseline=not account.baseline_done)
    stored = stored_connections(ctx, account=account, kind=kind)
    current = {p.external_id: p for p in profiles if not p.is_bot}
    for profile in current.values():
        outcome = welcome.record_arrival(
            ctx, account=account, profile=profile, kind=kind, quiet=result.baseline
        )
        if outcome == "new":
            result.new += 1
        elif outcome == "returned":
            result.returned += 1
        else:
            result.unchanged += 1
    if complete:
        for external_id, (connection, handle) in stored.items():
            if connection.state == "active" and external_id not in current:
                mark_lost(ctx, connection=connection)
                result.lost.append((ctx.session.get(Contact, handle.contact_id), handle))
    account.last_synced_at = ctx.now()
    if complete:
        account.baseline_done = True
    ctx.session.add(account)
    _report(ctx, account=account, result=result, complete=complete)
    return result


def mark_lost(ctx: Context, *, connection: Connection, cause: str | None = None) -> None:
    now = ctx.now()
    connection.state = "lost"
    connection.lost_at = now
    connection.lost_cause = cause
    ctx.session.add(connection)
    ctx.session.add(
        ConnectionEvent(
            owner_id=ctx.owner.id, connection_id=connection.id, kind="lost", at=now,
            detail=cause or "",
        )
    )


def _report(ctx: Context, *, account: Account, result: SyncResult, complete: bool) -> None:
    where = PLATFORM_NAMES.get(account.platform, account.platform)
    if result.baseline:
        total = result.new + result.returned + result.unchanged
        note = "" if complete else " (the list was partial, so this is not the whole baseline yet)"
        ctx.send(
            "reply",
            f"First sync of your {where} account: {total} existing connections recorded "
            f"quietly as your baseline{note}. From now on, new arrivals get a welcome draft.",
            platform=account.platform, count=total,
        )
        return
    if result.lost:
        report_lost(ctx, account=account, lost=result.lost)
    if not (result.new or result.returned or result.lost):
        ctx.send("reply", f"{where}: no changes since the last sync.", platform=account.platform)


def report_lost(ctx: Context, *, account: Account, lost: list[tuple[Contact, Handle]]) -> None:
    where = PLATFORM_NAMES.get(account.platform, account.platform)
    names = [f"{c.name} ({at_handle(h.platform, h.display_handle or h.handle)})" for c, h in lost]
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    ctx.send(
        "connection_lost",
        f"{len(lost)} connection{'s' if len(lost) != 1 else ''} ended on {where}: {shown}.",
        platform=account.platform,
        contacts=[
            {"id": c.id, "name": c.name, "handle": h.display_handle or h.handle} for c, h in lost
        ],
    )
