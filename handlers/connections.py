"""The sync diff engine: a list of current connections against what is stored.

Every source (live polls, ``plnbot sync --snapshot``, archive imports) goes through
``apply_snapshot`` so that the rules are the same everywhere:

- the first sync of an account records a quiet baseline (no welcome drafts);
- new handles are arrivals (draft + ``new_connection``), returning ones ``welcome_back``,
  and people held as vanished after a mass drop simply come back (they never left);
- handles gone are lost, but only when the list is known to be complete: a partial or
  interrupted list can add connections, never remove them; too many gone at once is a
  mass drop (see ``handlers.lost``).

Large accounts (a million followers) must sync in seconds, so the engine works in
bulk: one query reads (external id, connection id) for the account, the diff is set
arithmetic, and changes are written in ``executemany`` batches. Only genuinely new
arrivals after the baseline get per-person work (a drafted welcome), and at most
``WELCOMES_PER_SYNC`` of them: a flood of thousands is recorded quietly and summarised.
"""

from __future__ import annotations

import gc
import logging
import zlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from bot import platforms
from bot.context import Context
from bot.dispatcher import on
from bot.events import ConnectionLeft, Profile, SnapshotReceived, Unreadable
from handlers import backlog, lost, welcome
from storage import connections as store
from storage import repo, search
from storage.models import Account, Connection, ConnectionEvent, Contact, Handle, table_of

log = logging.getLogger(__name__)

WELCOMES_PER_SYNC = 50  # more new people than this in one sync: the rest quietly
BATCH = 5_000  # people per bulk insert
# what a first sync inserts a row a person into (their indexes are built once at the end)
BULK_TABLES = tuple(table_of(model) for model in (Contact, Handle, Connection, ConnectionEvent))


class Snapshot(Protocol):
    """A list of current connections as the engine reads it: ids first, profiles only
    for the people it needs (so a million unchanged followers are never translated)."""

    def fingerprints(self) -> dict[str, int]:
        """external id → a checksum of that person's profile as this snapshot shows it.

        The engine owns the dict it gets: it marks matched people in it (``SEEN``).
        """
        ...

    def profiles(self, wanted: Collection[str]) -> Iterator[Profile]: ...


class ProfileSnapshot:
    """A plain list of ``Profile``s seen as a ``Snapshot`` (bots left out)."""

    def __init__(self, profiles: Iterable[Profile]) -> None:
        self._profiles = [p for p in profiles if not p.is_bot]

    def fingerprints(self) -> dict[str, int]:
        return {p.external_id: profile_fingerprint(p) for p in self._profiles}

    def profiles(self, wanted: Collection[str]) -> Iterator[Profile]:
        seen: set[str] = set()
        for profile in self._profiles:
            if profile.external_id in wanted and profile.external_id not in seen:
                seen.add(profile.external_id)
                yield profile


def as_snapshot(profiles) -> Snapshot:
    return profiles if hasattr(profiles, "fingerprints") else ProfileSnapshot(profiles)


def profile_fingerprint(profile: Profile) -> int:
    """A checksum of what is stored about a handle, to skip rewriting unchanged ones:
    the same as a snapshot file's when the platform JSON is at hand."""
    checksum = platforms.get(profile.platform).checksum(profile.raw) if profile.raw else None
    if checksum is not None:
        return checksum
    parts = (profile.handle, profile.name, profile.bio, profile.location, profile.url,
             repr(profile.fields), repr(profile.accepts_dms))
    return zlib.crc32("\x1f".join(parts).encode())


@dataclass
class SyncResult:
    baseline: bool = False
    complete: bool = True
    new: int = 0  # welcomed arrivals
    quiet_new: int = 0  # recorded without a draft (baseline, or too many at once)
    returned: int = 0  # people who had left and came back
    restored: int = 0  # vanished in a mass drop and back: they never left
    lost: int = 0
    vanished: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return any((self.new, self.quiet_new, self.returned, self.restored, self.lost,
                    self.vanished))


SEEN = -1  # marks a matched person in the fingerprints dict (a crc32 is never negative)


@dataclass
class Stored:
    """What the database holds for one account and kind, already compared with the
    snapshot: who is gone, whose profile changed, and the inactive rows (usually few)."""

    active_count: int
    gone: list[int]  # connection ids of active connections missing from the snapshot
    changed: dict[str, int]  # external id → new checksum, active people whose profile changed
    inactive: dict[str, store.Inactive]

    @classmethod
    def compare(cls, ctx: Context, *, account: Account, kind: str,
                current: dict[str, int]) -> Stored:
        """One streaming pass over the stored active connections.

        Every stored person found in ``current`` has their checksum replaced by
        ``SEEN``, so afterwards the unmarked entries are exactly the people without an
        active connection. Marking in place instead of loading the stored side into its
        own dict keeps a million-follower sync about 230 MB smaller.
        """
        ids = {"owner_id": ctx.owner.id, "account_id": account.id}
        gone: list[int] = []
        changed: dict[str, int] = {}
        count = 0
        for external_id, connection_id, checksum in store.iter_active_connections(
                ctx.session, **ids, kind=kind):
            count += 1
            now = current.get(external_id)
            if now is None:
                gone.append(connection_id)
                continue
            if now != SEEN and now != checksum:
                changed[external_id] = now
            current[external_id] = SEEN
        return cls(active_count=count, gone=gone, changed=changed,
                   inactive=store.inactive_connections(ctx.session, **ids, kind=kind))


@on(SnapshotReceived)
async def on_snapshot(event: SnapshotReceived, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.platform,
        external_id=event.account_external_id, handle=event.account_handle,
    )
    told = len(ctx.sent)
    welcome.tell_unreadable(ctx, event.unreadable)
    result = apply_snapshot(ctx, account=account, profiles=event.profiles,
                            complete=event.complete, kind=event.kind,
                            unreadable=event.unreadable)
    if event.summary:
        summarise(ctx, account=account, result=result, told=len(ctx.sent) > told)


def apply_snapshot(
    ctx: Context, *, account: Account, profiles, complete: bool = True, kind: str = "follower",
    unreadable: Collection[Unreadable] = (),
) -> SyncResult:
    """Diff ``profiles`` (a list of Profiles or a ``Snapshot``) against what is stored.

    ``complete=False`` (an interrupted, partial or rate-limited fetch) only adds.
    ``unreadable``: entries of the list that could not be read; whoever they name by
    id or handle is still there, so never counted as gone.
    """
    snapshot = as_snapshot(profiles)
    result = SyncResult(baseline=not account.baseline_done, complete=complete)
    current = snapshot.fingerprints()
    stored = Stored.compare(ctx, account=account, kind=kind, current=current)
    if unreadable and stored.gone:
        keep = store.active_connections_named(
            ctx.session, owner_id=ctx.owner.id, account_id=account.id, kind=kind,
            external_ids={u.external_id for u in unreadable if u.external_id},
            handles={repo.normalise_handle(u.handle) for u in unreadable if u.handle})
        stored.gone = [c for c in stored.gone if c not in keep]
    arrivals(ctx, account=account, kind=kind, snapshot=snapshot, current=current,
             stored=stored, result=result)
    lost.recheck(ctx, account=account, complete=complete)
    if complete:
        departures(ctx, account=account, stored=stored, result=result)
        lost.give_up_due(ctx, account=account)
    finish(ctx, account=account, complete=complete)
    log.info("sync %s/%s: %s", account.platform, kind, result)
    return result


def finish(ctx: Context, *, account: Account, complete: bool) -> None:
    now = ctx.now()
    account.last_synced_at = now
    if complete:
        account.baseline_done = True
        account.last_reconciled_at = now
    ctx.session.add(account)


def arrivals(
    ctx: Context, *, account: Account, kind: str, snapshot: Snapshot, current: dict[str, int],
    stored: Stored, result: SyncResult,
) -> None:
    """Everyone in ``current`` without an active connection: new, back, or restored."""
    restored = [row.connection_id for ext, row in stored.inactive.items()
                if row.state == "vanished" and ext in current]
    lost.restore_vanished(ctx, connection_ids=restored)
    result.restored = len(restored)
    back = {ext for ext, row in stored.inactive.items()
            if row.state != "vanished" and ext in current}
    # one set of a million ids, not three (unmatched, new, and their union with back);
    # none when nothing is stored (a first sync): then everyone in ``current`` is new
    inactive = stored.inactive
    new: Collection[str] = current if not (stored.active_count or inactive) else {
        ext for ext, checksum in current.items() if checksum != SEEN and ext not in inactive}
    result.unchanged = len(current) - len(new) - len(back) - len(restored)
    refresh_profiles(ctx, account=account, snapshot=snapshot, current=current, stored=stored)
    if not (new or back):
        return
    wanted = set(new) | back if back else new
    people = snapshot.profiles(wanted)
    if result.baseline:
        with store.indexes_built_after(ctx.session, BULK_TABLES, rows=len(wanted)), \
                collection_paused():
            record_quietly(ctx, account=account, kind=kind, people=people, result=result,
                           current=current, defer=True)
        return
    overflow: list[Profile] = []
    for profile in people:
        if profile.external_id in back or result.new < WELCOMES_PER_SYNC:
            outcome = welcome.record_arrival(ctx, account=account, profile=profile, kind=kind)
            result.returned += outcome == "returned"
            result.new += outcome == "new"
            continue
        overflow.append(profile)
        if len(overflow) >= BATCH:
            record_quietly(ctx, account=account, kind=kind, people=overflow, result=result,
                           current=current)
            overflow = []
    record_quietly(ctx, account=account, kind=kind, people=overflow, result=result,
                   current=current)


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cycle collector off while a first sync stores its people.

    The sync makes millions of short-lived objects (profiles, rows) in no cycle, and
    each of the collector's periodic full passes walks every object the bot holds: a
    tenth of a first sync's processor time, for nothing to collect. Back on when the
    sync is done, whatever happened."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def record_quietly(
    ctx: Context, *, account: Account, kind: str, people: Iterable[Profile], result: SyncResult,
    current: dict[str, int], defer: bool = False,
) -> None:
    """Store arrivals in bulk without drafting (a baseline, or a flood of newcomers).
    ``defer``: leave reading their profiles to the backlog (``handlers.backlog``)."""
    iterator = iter(people)
    # people are new to this platform's handles when it has none yet (a first account
    # there): nothing to look up (the snapshot holds each person once)
    known = store.has_handles(ctx.session, owner_id=ctx.owner.id, platform=account.platform)
    while batch := list(islice(iterator, BATCH)):
        result.quiet_new += insert_connections(ctx, account=account, kind=kind, people=batch,
                                               current=current, defer=defer, known=known)


def insert_connections(ctx: Context, *, account: Account, kind: str, people: list[Profile],
                       current: dict[str, int], defer: bool = False, known: bool = True) -> int:
    """Contacts and handles for whoever is unknown, then their connections: a few
    ``executemany`` statements per batch. People who had a connection are skipped.

    ``defer`` (a first sync): profiles with something to understand are stored as they
    came, unread and unindexed, for the backlog to read (``handlers.backlog``).
    ``known=False``: the platform had no handles before this sync, so none are looked up.
    Each row carries only what is its own; what every row of a table shares (owner,
    time, defaults) is passed once (``store.insert_rows``'s ``shared``)."""
    session, now, owner_id = ctx.session, ctx.now(), ctx.owner.id
    handles = store.handle_ids(session, owner_id=owner_id, platform=account.platform,
                               external_ids=[p.external_id for p in people]) if known else {}
    fresh = [p for p in people if p.external_id not in handles]
    how_met = f"followed you on {lost.where(account.platform)}"
    defaults, contacts = contact_rows(ctx, fresh, how_met, defer=defer)
    contact_ids = store.insert_rows(session, table_of(Contact), contacts, shared=defaults)
    handle_rows = [handle_row(p, cid, current[p.external_id])
                   for p, cid in zip(fresh, contact_ids, strict=True)]
    handle_ids = store.insert_rows(
        session, table_of(Handle), handle_rows,
        shared={"owner_id": owner_id, "platform": account.platform, "created_at": now})
    # with nothing looked up everyone is fresh: their handles are the new ones, in order
    if known:
        handles.update(zip((p.external_id for p in fresh), handle_ids, strict=True))
    search.leave_unindexed(session, [contact_id for contact, contact_id
                                     in zip(contacts, contact_ids, strict=True)
                                     if contact.get("profile_pending")])
    search.index_new(session, [
        search.Document(contact_id=contact_id, owner_id=owner_id, name=contact["name"],
                        handles=handle["handle"],
                        bio=search.bio_words(contact.get("bio"), contact.get("role"),
                                             contact.get("organisation"), contact["location"],
                                             contact.get("interests")))
        for contact, handle, contact_id in zip(contacts, handle_rows, contact_ids, strict=True)
        if not contact.get("profile_pending")])
    connection_ids = store.insert_rows(
        session, table_of(Connection), [{"handle_id": handle_id} for handle_id in (
            [handles[p.external_id] for p in people] if known else handle_ids)],
        shared={"owner_id": owner_id, "account_id": account.id, "kind": kind,
                "state": "active", "since": now})
    # "quiet": not welcomed one by one, so no follow-ups either (handlers.reminders)
    store.add_events(session, owner_id=owner_id, connection_ids=connection_ids,
                     kind="gained", at=now, detail="quiet", reported=True)
    return len(connection_ids)


def contact_rows(ctx: Context, people: list[Profile], how_met: str, *,
                 defer: bool = False) -> tuple[dict, list[dict]]:
    """New contacts, understood from their profiles where there is something to read
    (or, with ``defer``, marked for the backlog to read when it can read them back):
    what they all share (the model's defaults), and each one's own values."""
    template = Contact(owner_id=ctx.owner.id, how_met=how_met, created_at=ctx.now())
    defaults = template.model_dump(exclude={"id"})
    if not defer:
        return defaults, [contact_row(profile) for profile in people]
    translatable: dict[str, bool] = {}  # each platform looked up once, not once a person
    return defaults, [{"name": profile.name or profile.handle, "profile_pending": True}
                      if can_defer(profile, translatable) else contact_row(profile)
                      for profile in people]


def can_defer(profile: Profile, translatable: dict[str, bool] | None = None) -> bool:
    """Whether the backlog can read this profile later exactly as now: it has something
    to understand, and platform JSON its platform translates back into it
    (``translatable``: what is known of the platforms so far, filled in here)."""
    if not ((profile.bio or profile.fields) and profile.raw):
        return False
    known = {} if translatable is None else translatable
    if profile.platform not in known:
        known[profile.platform] = platforms.get(profile.platform).translate is not None
    return known[profile.platform]


def contact_row(profile: Profile) -> dict:
    """Understanding a bio costs ~0.05 ms; a baseline of a million people without bios
    must not pay it (nor the first-name parsing, which only welcome drafts need)."""
    return {"name": profile.name or profile.handle, **backlog.contact_values(profile)}


def handle_row(profile: Profile, contact_id: int, checksum: int) -> dict:
    """A new handle's own values (owner, platform and time are the batch's)."""
    values = handle_values(profile, checksum)
    values["contact_id"], values["external_id"] = contact_id, profile.external_id
    return values


def handle_values(profile: Profile, checksum: int) -> dict:
    """What a sync keeps up to date on a handle (people change their names and bios)."""
    return {"handle": repo.normalise_handle(profile.handle) or profile.external_id,
            "display_handle": profile.handle, "profile_json": repo.profile_json(profile),
            "accepts_dms": profile.accepts_dms, "profile_hash": checksum}


def refresh_profiles(
    ctx: Context, *, account: Account, snapshot: Snapshot, current: dict[str, int],
    stored: Stored,
) -> None:
    """Rewrite only the handles whose profile checksum changed since the last sync, and
    name contacts known only by id (an archive import) once a sync shows their name."""
    changed = dict(stored.changed)
    changed.update((ext, current[ext]) for ext, row in stored.inactive.items()
                   if row.state == "vanished" and ext in current)
    if not changed:
        return
    known = store.handle_contacts(ctx.session, owner_id=ctx.owner.id,
                                  platform=account.platform, external_ids=list(changed))
    people = snapshot.profiles(changed.keys())
    while batch := list(islice(people, BATCH)):
        store.update_by_id(ctx.session, table_of(Handle), [
            {"row_id": known[p.external_id][0], **handle_values(p, changed[p.external_id])}
            for p in batch])
        store.update_by_id(ctx.session, table_of(Contact), [
            {"row_id": known[p.external_id][1], "name": p.name} for p in batch
            if p.name and known[p.external_id][2] == repo.placeholder_name(
                p.platform, p.external_id)])
    log.info("refreshed %s changed profiles on %s", len(changed), account.platform)


def departures(
    ctx: Context, *, account: Account, stored: Stored, result: SyncResult,
) -> None:
    """Active connections missing from a complete list: lost, or vanished if too many."""
    gone = stored.gone
    if not gone:
        return
    if not result.baseline and lost.is_mass_drop(ctx, gone=len(gone), known=stored.active_count):
        lost.hold_vanished(ctx, account=account, connection_ids=gone)
        result.vanished = len(gone)
        return
    lost.lose(ctx, account=account, connection_ids=gone, quiet=result.baseline)
    result.lost = len(gone)


def summarise(ctx: Context, *, account: Account, result: SyncResult, told: bool) -> None:
    """The ``reply`` for a sync someone asked for (``plnbot sync``): what happened that
    no other message says."""
    place = lost.where(account.platform)
    if result.baseline:
        total = result.quiet_new + result.unchanged + result.returned + result.restored
        note = "" if result.complete else (
            " (the list was partial, so this is not the whole baseline yet)")
        ctx.send(
            "reply",
            f"First sync of your {place} account: {total} existing connections recorded "
            f"quietly as your baseline{note}. From now on, new arrivals get a welcome draft.",
            platform=account.platform, count=total,
        )
        return
    lines = quiet_changes(ctx, result=result)
    if not (result.changed or told):
        lines.append("no changes since the last sync")
    if lines:
        partial = "" if result.complete else " (partial list: nobody was counted as gone)"
        ctx.send("reply", f"{place}: " + "; ".join(lines) + f".{partial}",
                 platform=account.platform)


def quiet_changes(ctx: Context, *, result: SyncResult) -> list[str]:
    lines = []
    if result.quiet_new:
        lines.append(f"{result.quiet_new} more new connections recorded without welcome "
                     f"drafts (more than {WELCOMES_PER_SYNC} arrived at once)")
    if result.lost and not lost.reports_immediately(ctx):
        lines.append(f"{result.lost} connection{'s' if result.lost != 1 else ''} ended; "
                     f"kept for your digest (write `lost` to see them now)")
    return lines


# --- live sources ------------------------------------------------------------------


@on(ConnectionLeft)
async def on_connection_left(event: ConnectionLeft, ctx: Context) -> None:
    """One person left, seen live (Discord's member remove): lost with the same rules."""
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.profile.platform
    )
    connection_id = store.active_connection_id(
        ctx.session, owner_id=ctx.owner.id, account_id=account.id, kind=event.kind,
        external_id=event.profile.external_id,
    )
    if connection_id is not None:
        lost.lose(ctx, account=account, connection_ids=[connection_id], cause=event.cause)
