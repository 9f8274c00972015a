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
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import Session, col, func, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import Tick
from handlers import backlog
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
from handlers.when import local, parse_clock, to_utc, week_start, zone_of
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
    if is_quiet(ctx.owner, now) or backlog.pending(ctx.session, owner_id=ctx.owner.id):
        return  # (its field mix would count profiles a first sync has not read yet)
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
    withdrawn = session.exec(
        select(func.count()).select_from(Draft).where(
            Draft.owner_id == owner.id, Draft.status == "withdrawn",
            col(Draft.decided_at) >= since, col(Draft.decided_at) < now)).one()
    digest.fields["drafts_pending"], digest.fields["drafts_expired"] = pending, expired
    digest.fields["drafts_withdrawn"] = withdrawn
    if pending or expired or withdrawn:
        parts = [f"{pending} waiting (`drafts`)"] if pending else []
        parts += [f"{expired} expired unsent this week"] if expired else []
        parts += [f"{withdrawn} withdrawn because the person left before it was sent"
                  ] if withdrawn else []
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
    """Per week, oldest first: its label, connections at its end, gained, lost and
    conversations in it. The weeks are the digest's own: seven days ending now, and the
    six-times-seven before them, so the last bar is the week the text describes."""

    labels: list[str]
    network: list[int]
    gained: list[int]
    lost: list[int]
    conversations: list[int]

    @property
    def empty(self) -> bool:
        return not any((*self.network, *self.gained, *self.lost, *self.conversations))


def week_windows(now: datetime, weeks: int) -> list[tuple[datetime, datetime]]:
    """(start, end) of the last ``weeks`` seven-day windows ending at ``now``, oldest first."""
    return [(now - timedelta(days=7 * (n + 1)), now - timedelta(days=7 * n))
            for n in range(weeks - 1, -1, -1)]


def window_label(start: datetime, end: datetime, tz: str) -> str:
    """ "22–29 Nov", "29 Nov–6 Dec": the days the week runs between, as the text says."""
    first, last = local(start, tz), local(end, tz)
    if first.month == last.month:
        return f"{first.day}–{last.day} {last:%b}"
    return f"{first.day} {first:%b}–{last.day} {last:%b}"


def per_window(moments: list[datetime], windows: list[tuple[datetime, datetime]]) -> list[int]:
    ordered = sorted(moments)
    return [bisect_left(ordered, end) - bisect_left(ordered, start) for start, end in windows]


def chart_series(session: Session, *, owner: Owner, now: datetime,
                 weeks: int = CHART_WEEKS) -> ChartSeries:
    """The network's size at the end of each week, and what each week gained and lost."""
    windows = week_windows(now, weeks)
    rows = session.exec(
        select(Connection.since, Connection.lost_at).where(Connection.owner_id == owner.id)
    ).all()
    joined = sorted(since for since, _ in rows)
    left = sorted(lost for _, lost in rows if lost is not None)
    network = [bisect_right(joined, end) - bisect_right(left, end) for _, end in windows]
    start, end = windows[0][0], now
    gained = [at for _, at in event_times(session, owner, ("gained", "returned"), start, end)]
    lost = [at for _, at in event_times(session, owner, ("lost", "severed"), start, end)]
    talks = session.exec(
        select(Interaction.at).where(
            Interaction.owner_id == owner.id, Interaction.kind == "conversation",
            Interaction.at >= start, Interaction.at < end)
    ).all()
    return ChartSeries(labels=[window_label(a, b, owner.tz) for a, b in windows],
                       network=network, gained=per_window(gained, windows),
                       lost=per_window(lost, windows),
                       conversations=per_window(list(talks), windows))


def event_times(session: Session, owner: Owner, kinds: tuple[str, ...], since: datetime,
                until: datetime) -> list[tuple[str, datetime]]:
    """(kind, when) of connection events in the window; a first sync's quiet baseline
    and imports are not arrivals."""
    rows = session.exec(
        select(ConnectionEvent.kind, ConnectionEvent.at, ConnectionEvent.detail)
        .where(ConnectionEvent.owner_id == owner.id, col(ConnectionEvent.kind).in_(kinds),
               ConnectionEvent.at >= since, ConnectionEvent.at < until)
    ).all()
    return [(kind, at) for kind, at, detail in rows
            if kind != "gained" or detail not in NOT_ARRIVALS]


GAINED, LOST, TOTAL, TALKS = "#2a9d8f", "#e76f51", "#264653", "#f4a261"
EMPTY_TEXT = ("Nothing to chart yet.\nYour connections, what each week gains and loses,\n"
              "and your conversations will show here week by week.")


def chart_figure(series: ChartSeries) -> Any:
    """Small multiples on one x axis, each with its own whole-number scale: the network's
    size, gained (up) and lost (down) per week, conversations per week. A network with
    nothing to show gets a picture that says so instead of a flat line at zero."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 6), dpi=100)
    if series.empty:
        figure.suptitle("Your network, week by week", fontsize=12)
        figure.text(0.5, 0.5, EMPTY_TEXT, ha="center", va="center", fontsize=14,
                    color=TOTAL, linespacing=1.6)
        return figure
    size, change, talks = figure.subplots(3, 1, sharex=True,
                                          gridspec_kw={"height_ratios": (3, 2, 2)})
    positions = list(range(len(series.labels)))
    size.plot(positions, series.network, color=TOTAL, marker="o", linewidth=2)
    size.set_title("Connections at the end of each week", loc="left", fontsize=10)
    change.bar(positions, series.gained, color=GAINED, label="gained")
    change.bar(positions, [-n for n in series.lost], color=LOST, label="lost")
    change.axhline(0, color="#888888", linewidth=0.8)
    change.set_title("Gained (up) and lost (down) each week", loc="left", fontsize=10)
    change.legend(loc="upper left", fontsize=8, frameon=False)
    talks.bar(positions, series.conversations, color=TALKS)
    talks.set_title("Conversations logged each week", loc="left", fontsize=10)
    for axes in (size, change, talks):
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
    size.set_ylim(bottom=0, top=max(1, max(series.network)) * 1.15)
    change.set_ylim(-max(1, max(series.lost)) * 1.2, max(1, max(series.gained)) * 1.2)
    change.yaxis.set_major_formatter(lambda value, _: f"{abs(int(value))}")
    talks.set_ylim(bottom=0, top=max(1, max(series.conversations)) * 1.15)
    talks.set_xticks(positions, series.labels, rotation=45, ha="right", fontsize=8)
    figure.suptitle("Your network, week by week (each week as in the digest)", fontsize=12)
    figure.tight_layout()
    return figure


def draw_chart(series: ChartSeries, path: Path | BinaryIO) -> None:
    import matplotlib

    matplotlib.use("Agg")
    chart_figure(series).savefig(path, format="png")
