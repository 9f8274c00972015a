"""The weekly digest: what happened in the network, how the habits went, and a chart.

Scheduled on the owner's ``digest_weekday``/``digest_time`` in their zone: each sweep
works out the latest scheduled moment and sends the digest if ``JobRun`` says it has
not been sent since — so a bot that was down over the moment sends it once when it
comes back, never once per missed week. ``digest`` sends one on demand.

The chart is drawn with matplotlib's Agg canvas (no display needed) and imported
lazily, because importing it costs most of a second.
"""

from __future__ import annotations

import io
import logging
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import Session, col, func, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from handlers.lost import mark_losses_reported, unreported_losses
from handlers.nudges import (
    cadence_status,
    describe_period,
    goal_label,
    goal_progress,
    weekly_counts,
)
from handlers.periodic import is_quiet, last_run, mark_run
from handlers.reminders import NOT_ARRIVALS
from handlers.when import local, parse_clock, shift_weeks, to_utc, week_start, zone_of
from storage.models import Connection, ConnectionEvent, Contact, Draft, Handle, Interaction, Owner

log = logging.getLogger(__name__)

DIGEST_JOB = "digest"
CHART_WEEKS = 12
LISTED = 5


# --- when -------------------------------------------------------------------------------


def latest_slot(owner: Owner, now: datetime) -> datetime:
    """The most recent scheduled digest moment at or before ``now`` (UTC)."""
    at = parse_clock(owner.digest_time) or time(9, 0)
    monday = local(week_start(now, owner.tz), owner.tz).date()
    slot = to_utc(monday + timedelta(days=owner.digest_weekday % 7), at, zone_of(owner.tz))
    if slot > now:
        slot = to_utc(monday + timedelta(days=owner.digest_weekday % 7 - 7), at,
                      zone_of(owner.tz))
    return slot


@on(Tick)
async def scheduled_digest(event: Tick, ctx: Context) -> None:
    """Send the week's digest once, at (or after downtime, soon after) its moment."""
    now = ctx.now()
    if event.name != "sweep":
        return
    slot = latest_slot(ctx.owner, now)
    previous = last_run(ctx.session, owner=ctx.owner, job=DIGEST_JOB)
    if slot <= ctx.owner.created_at or (previous is not None and previous >= slot):
        return
    if is_quiet(ctx.owner, now):
        return
    mark_run(ctx.session, owner=ctx.owner, job=DIGEST_JOB, at=now)
    send_digest(ctx, now=now, key=f"digest:{slot.isoformat()}")


def send_digest(ctx: Context, *, now: datetime, key: str | None = None) -> None:
    digest = build_digest(ctx.session, owner=ctx.owner, now=now)
    ctx.send("digest", digest.text, key=key, attachment=chart_png(ctx, now=now),
             **digest.fields)


# --- what --------------------------------------------------------------------------------


@dataclass
class Digest:
    lines: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def build_digest(session: Session, *, owner: Owner, now: datetime) -> Digest:
    """The last seven days, section by section; every section also goes in ``fields``."""
    since = now - timedelta(days=7)
    digest = Digest([f"Your week ({local(since, owner.tz):%a %d %b} – "
                     f"{local(now, owner.tz):%a %d %b}):"],
                    {"since": since.isoformat(), "until": now.isoformat()})
    for section in (new_connections, conversations, goals, field_mix, who_is_due,
                    losses_and_returns, drafts):
        section(session, owner, since, now, digest)
    return digest


def names(session: Session, contact_ids: list[int]) -> str:
    shown = []
    for contact_id in contact_ids[:LISTED]:
        contact = session.get(Contact, contact_id)
        if contact is not None:
            shown.append(contact.name or f"#{contact.id}")
    more = len(contact_ids) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def events_between(session: Session, owner: Owner, kinds: tuple[str, ...], since: datetime,
                   until: datetime) -> list[tuple[str, int]]:
    """(kind, contact id) for connection events in the window, arrivals only for "gained"."""
    rows = session.exec(
        select(ConnectionEvent.kind, Handle.contact_id, ConnectionEvent.detail)
        .join(Connection, col(Connection.id) == ConnectionEvent.connection_id)
        .join(Handle, col(Handle.id) == Connection.handle_id)
        .where(ConnectionEvent.owner_id == owner.id, col(ConnectionEvent.kind).in_(kinds),
               ConnectionEvent.at >= since, ConnectionEvent.at < until)
        .order_by(col(ConnectionEvent.at))
    ).all()
    return [(kind, cid) for kind, cid, detail in rows
            if kind != "gained" or detail not in NOT_ARRIVALS]


def new_connections(session, owner, since, now, digest: Digest) -> None:
    arrived = list(dict.fromkeys(cid for _, cid in events_between(
        session, owner, ("gained",), since, now)))
    digest.fields["new_connections"] = len(arrived)
    digest.lines.append(f"• New connections: {len(arrived)}"
                        + (f" ({names(session, arrived)})" if arrived else ""))


def conversations(session, owner, since, now, digest: Digest) -> None:
    talked = session.exec(
        select(Interaction.contact_id).where(
            Interaction.owner_id == owner.id, Interaction.kind == "conversation",
            Interaction.at >= since, Interaction.at < now)
    ).all()
    people = list(dict.fromkeys(talked))
    digest.fields["conversations"] = len(talked)
    with_whom = f" with {len(people)} {'person' if len(people) == 1 else 'people'}" \
        f" ({names(session, people)})" if people else ""
    digest.lines.append(f"• Conversations logged: {len(talked)}{with_whom}")


def goals(session, owner, since, now, digest: Digest) -> None:
    progress = goal_progress(session, owner=owner, now=now)
    digest.fields["goals"] = []
    if not progress:
        digest.lines.append("• Goals: none set (try `goal conversations 3 per week`)")
        return
    digest.lines.append("• Goals:")
    for item in progress:
        counts = weekly_counts(session, owner=owner, kind=item.goal.kind, now=now, weeks=2)
        digest.lines.append(
            f"    {goal_label(item.goal.kind, owner)}: last week {counts[0]} of "
            f"{item.goal.per_week}{' ✓' if counts[0] >= item.goal.per_week else ''}, "
            f"this week {item.done} so far; {streak_text(item.streak)}")
        digest.fields["goals"].append({"kind": item.goal.kind, "per_week": item.goal.per_week,
                                       "last_week": counts[0], "this_week": item.done,
                                       "streak": item.streak})


def streak_text(streak: int) -> str:
    if not streak:
        return "no streak yet"
    return f"streak {streak} week{'s' if streak != 1 else ''}"


def field_mix(session, owner, since, now, digest: Digest) -> None:
    rows = session.exec(
        select(Contact.field, func.count()).where(
            Contact.owner_id == owner.id, col(Contact.merged_into_id).is_(None))
        .group_by(Contact.field)
    ).all()
    mix = Counter(dict(rows))
    digest.fields["field_mix"] = dict(mix.most_common())
    total = sum(mix.values())
    if not total:
        digest.lines.append("• Field mix: nobody in your network yet")
        return
    parts = [f"{name} {count * 100 // total}%" for name, count in mix.most_common(6)]
    digest.lines.append(f"• Field mix of your {total} contacts: " + ", ".join(parts))


def who_is_due(session, owner, since, now, digest: Digest) -> None:
    due = [d for d in cadence_status(session, owner=owner) if d.due_at <= now]
    digest.fields["due"] = [d.contact.id for d in due]
    if due:
        shown = ", ".join(f"{d.contact.name} (every {describe_period(d.cadence.every_days)})"
                          for d in due[:LISTED])
        more = f" and {len(due) - LISTED} more" if len(due) > LISTED else ""
        digest.lines.append(f"• Due for a conversation: {shown}{more} — see `due`")


def losses_and_returns(session, owner, since, now, digest: Digest) -> None:
    """Losses not told yet (kept for the digest by handlers/lost.py, then marked told)
    and the people who came back this week."""
    losses = unreported_losses(session, owner=owner, until=now)
    back = list(dict.fromkeys(cid for _, cid in events_between(
        session, owner, ("returned",), since, now)))
    digest.fields["lost"], digest.fields["returned"] = len(losses), len(back)
    digest.fields["lost_contacts"] = [loss.contact_id for loss in losses]
    if losses:
        digest.lines.append(f"• Lost: {len(losses)}")
        digest.lines += [f"    {loss.line()}" for loss in losses[:LISTED * 2]]
        if len(losses) > LISTED * 2:
            digest.lines.append(f"    … and {len(losses) - LISTED * 2} more (`lost` lists them)")
        mark_losses_reported(session, owner=owner, losses=losses)
    if back:
        digest.lines.append(f"• Came back: {len(back)} ({names(session, back)})")


def drafts(session, owner, since, now, digest: Digest) -> None:
    pending = session.exec(
        select(func.count()).select_from(Draft).where(
            Draft.owner_id == owner.id, Draft.status == "pending")).one()
    expired = session.exec(
        select(func.count()).select_from(Draft).where(
            Draft.owner_id == owner.id, Draft.status == "expired",
            col(Draft.decided_at) >= since, col(Draft.decided_at) < now)).one()
    digest.fields["drafts_pending"], digest.fields["drafts_expired"] = pending, expired
    if pending or expired:
        parts = [f"{pending} waiting (`drafts`)"] if pending else []
        parts += [f"{expired} expired unsent this week"] if expired else []
        digest.lines.append("• Welcome drafts: " + ", ".join(parts))


# --- the chart -----------------------------------------------------------------------------


def chart_png(ctx: Context, *, now: datetime) -> bytes | None:
    """The chart as PNG bytes, stored with the digest message (any worker can deliver it);
    a failure costs the picture, never the digest."""
    buffer = io.BytesIO()
    try:
        draw_chart(chart_series(ctx.session, owner=ctx.owner, now=now), buffer)
    except Exception:  # a matplotlib problem: say so in the log
        log.exception("could not draw the digest chart; sending the digest without it")
        return None
    return buffer.getvalue()


@dataclass
class ChartSeries:
    labels: list[str]
    network: list[int]
    conversations: list[int]


def chart_series(session: Session, *, owner: Owner, now: datetime,
                 weeks: int = CHART_WEEKS) -> ChartSeries:
    """Connections at the end of each of the last ``weeks`` weeks, and conversations in each."""
    current = week_start(now, owner.tz)
    starts = [shift_weeks(current, -n, owner.tz) for n in range(weeks - 1, -1, -1)]
    ends = [*starts[1:], now]
    rows = session.exec(
        select(Connection.since, Connection.lost_at).where(Connection.owner_id == owner.id)
    ).all()
    joined = sorted(since for since, _ in rows)
    left = sorted(lost for _, lost in rows if lost is not None)
    network = [bisect_right(joined, end) - bisect_right(left, end) for end in ends]
    talks = weekly_counts(session, owner=owner, kind="conversations", now=now, weeks=weeks)
    labels = [f"{local(start, owner.tz):%d %b}" for start in starts]
    return ChartSeries(labels, network, talks)


def draw_chart(series: ChartSeries, path: Path | BinaryIO) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4), dpi=100)
    growth = figure.subplots()
    positions = range(len(series.labels))
    talks = growth.twinx()
    talks.bar(positions, series.conversations, color="#f4a261", alpha=0.6,
              label="conversations per week")
    growth.plot(positions, series.network, color="#2a9d8f", marker="o", linewidth=2,
                label="connections")
    growth.set_zorder(talks.get_zorder() + 1)
    growth.patch.set_visible(False)
    growth.set_xticks(list(positions), series.labels, rotation=45, fontsize=8)
    growth.set_ylabel("connections")
    talks.set_ylabel("conversations")
    locator = talks.yaxis.get_major_locator()  # the default AutoLocator, a MaxNLocator
    assert isinstance(locator, MaxNLocator)
    locator.set_params(integer=True)
    growth.set_title("Your network: growth and conversations per week")
    handles = growth.get_legend_handles_labels()[0] + talks.get_legend_handles_labels()[0]
    growth.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
