"""Chat commands: network (see handlers/commands/__init__.py for the registry)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.context import Context
from handlers.commands import CommandError, command
from handlers.lost import describe_cause, where
from handlers.present import at_handle, history_line
from storage import connections as store
from storage.models import MassDrop

# --- lost ---------------------------------------------------------------------------

LOST_USAGE = "lost [days]"
LOST_DEFAULT_DAYS = 30
LOST_MAX_DAYS = 3650
LOST_LINES = 100
GLITCH_STATUS = {
    "open": "re-checking",
    "resolved": "all came back: a platform glitch",
    "given_up": "I gave up waiting; the rest count as lost",
}


@command("lost", LOST_USAGE, group="network")
async def lost_command(args: str, ctx: Context) -> None:
    """List connections lost, vanished or back again, newest first.

    `lost` covers the last 30 days, `lost 90` the last 90. People who vanished in a
    mass drop are shown together, with how many came back.
    """
    days = lost_days(args)
    rows = store.connection_events(ctx.session, owner=ctx.owner,
                                   since=ctx.now() - timedelta(days=days))
    lines, seen_drops = [], set()
    for row in rows:
        line = lost_line(ctx, row, seen_drops)
        if line:
            lines.append(line)
    if not lines:
        ctx.send("reply", f"No connections lost, vanished or back again in the last {days} "
                          f"days.", days=days, count=0)
        return
    shown = lines[:LOST_LINES]
    more = f"\n… and {len(lines) - LOST_LINES} more; try fewer days." if len(lines) > len(shown) \
        else ""
    ctx.send("reply", f"Lost, vanished and returned connections, last {days} days:\n"
             + "\n".join(shown) + more, days=days, count=len(lines))


def lost_days(args: str) -> int:
    text = args.strip()
    if not text:
        return LOST_DEFAULT_DAYS
    if not text.isdigit() or not 1 <= int(text) <= LOST_MAX_DAYS:
        raise CommandError(
            f"{text[:40]!r} is not a number of days; write e.g. `lost 7` "
            f"(1 to {LOST_MAX_DAYS}) or just `lost` for the last {LOST_DEFAULT_DAYS} days.",
            usage=LOST_USAGE,
        )
    return int(text)


def lost_line(ctx: Context, row: store.EventRow, seen_drops: set[int]) -> str | None:
    """One line per event; a mass drop (its vanished and returned people) is one line."""
    event, connection = row.event, row.connection
    drop_id = connection.mass_drop_id
    if event.kind == "vanished" or (event.kind == "returned" and drop_id and
                                    event.detail.startswith("back after a platform")):
        if drop_id is None or drop_id in seen_drops:
            return None
        seen_drops.add(drop_id)
        return drop_line(ctx, ctx.session.get(MassDrop, drop_id), row.handle.platform)
    when = local_time(ctx, event.at)
    person = (f"{row.contact.name or 'someone'} "
              f"({at_handle(row.handle.platform, row.handle.display_handle or row.handle.handle)}"
              f", {where(row.handle.platform)}, #{row.contact.id})")
    if event.kind == "returned":
        gap = f" ({event.detail})" if event.detail else ""
        return f"{when} · back{gap} · {person}"
    if event.kind == "severed":
        return f"{when} · cut by the platform ({describe_cause(event.detail)}) · {person}"
    cause = f" ({event.detail})" if event.detail else ""
    history = history_line(ctx.session, owner=ctx.owner, contact=row.contact)
    return f"{when} · lost{cause} · {person}: {history}"


def drop_line(ctx: Context, drop: MassDrop, platform: str) -> str:
    missing = store.vanished_ids(ctx.session, owner_id=ctx.owner.id, mass_drop_id=drop.id)
    if drop.status == "given_up":
        missing_text = f"{drop.still_missing} did not come back"
        back = drop.count - drop.still_missing
    else:
        missing_text = f"{len(missing)} still missing"
        back = drop.count - len(missing)
    return (f"{local_time(ctx, drop.detected_at)} · {drop.count} vanished at once on "
            f"{where(platform)} (mass drop #{drop.id}: {back} back, {missing_text}; "
            f"{GLITCH_STATUS.get(drop.status, drop.status)})")


def local_time(ctx: Context, at: datetime) -> str:
    return f"{at.astimezone(ZoneInfo(ctx.owner.tz)):%Y-%m-%d %H:%M}"
