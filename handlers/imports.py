"""People from a platform's data export, stored as the quiet baseline of the network.

Everyone in an export was already connected when it was made, so nobody gets a welcome
draft. The import adds what is missing and leaves everything else alone, which makes
re-importing the same export a no-op and keeps what live syncs learnt (names, bios,
losses) intact. It works in bulk because an archive can hold tens of thousands of people.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import col, select

from bot.context import Context
from bot.dispatcher import on
from bot.events import NetworkImported, Profile
from handlers.drafting import PLATFORM_NAMES
from handlers.present import at_handle
from storage import connections as store
from storage import repo
from storage.models import Account, Connection, Contact, Handle, table_of

log = logging.getLogger(__name__)

HOW_MET = {"follower": "followed you on {where}", "following": "you follow them on {where}"}


@dataclass
class ImportResult:
    followers: int = 0
    following: int = 0
    mutuals: int = 0
    new_contacts: int = 0
    new_connections: int = 0
    already_known: int = 0
    unnamed: int = 0


@on(NetworkImported)
async def on_network_imported(event: NetworkImported, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.platform,
        external_id=event.account_external_id, handle=event.account_handle,
    )
    result = import_network(
        ctx, account=account, followers=event.followers, following=event.following
    )
    ctx.send(
        "reply", summary_text(account, result, source=event.source), platform=event.platform,
        **vars(result),
    )


def import_network(
    ctx: Context, *, account: Account, followers: list[Profile], following: list[Profile]
) -> ImportResult:
    """Add the missing contacts, handles and connections; the baseline is then done."""
    lists = {"follower": _unique(followers), "following": _unique(following)}
    people = {**lists["following"], **lists["follower"]}
    handles = _handles_for(ctx, account=account, people=people)
    result = ImportResult(
        followers=len(lists["follower"]), following=len(lists["following"]),
        mutuals=len(lists["follower"].keys() & lists["following"].keys()),
        new_contacts=len(people) - len(handles),
        unnamed=sum(1 for i, p in people.items() if i not in handles and not p.name),
    )
    handles.update(_create_people(ctx, account=account, people=people, known=handles,
                                  lists=lists))
    for kind, members in lists.items():
        added = _connect(ctx, account=account, kind=kind,
                         handle_ids=[handles[i] for i in members])
        result.new_connections += added
        result.already_known += len(members) - added
    if lists["follower"]:  # a following-only export (Mastodon's CSV) is no follower baseline
        account.baseline_done = True
    ctx.session.add(account)
    return result


def _unique(profiles: Iterable[Profile]) -> dict[str, Profile]:
    return {p.external_id: p for p in profiles if not p.is_bot}


def _handles_for(ctx: Context, *, account: Account, people: dict[str, Profile]) -> dict[str, int]:
    """external id → handle id for the people already known."""
    found = store.handle_ids(ctx.session, owner_id=ctx.owner.id, platform=account.platform,
                             external_ids=list(people))
    return {**found, **_handles_by_address(ctx, account=account, people=people, found=found)}


def _handles_by_address(ctx: Context, *, account: Account, people: dict[str, Profile],
                        found: dict[str, int]) -> dict[str, int]:
    """Address-only exports (Mastodon's CSV) name people ``acct:<address>``; someone a live
    sync already knows by their platform id is matched by address instead."""
    wanted = {repo.normalise_handle(p.handle): external_id for external_id, p in people.items()
              if external_id.startswith("acct:") and external_id not in found}
    matched: dict[str, int] = {}
    for batch in store.chunks(list(wanted)):
        rows = ctx.session.exec(
            select(Handle.handle, Handle.id).where(
                Handle.owner_id == ctx.owner.id, Handle.platform == account.platform,
                col(Handle.handle).in_(batch),
            )
        )
        matched.update({wanted[address]: handle_id for address, handle_id in rows})
    return matched


def _create_people(ctx, *, account, people, known, lists) -> dict[str, int]:
    """One contact and one handle per unknown person, in ``executemany`` batches."""
    now, where = ctx.now(), PLATFORM_NAMES.get(account.platform, account.platform)
    missing = [p for external_id, p in people.items() if external_id not in known]
    templates = {
        kind: Contact(owner_id=ctx.owner.id, created_at=now,
                      how_met=HOW_MET[kind].format(where=where)).model_dump(exclude={"id"})
        for kind in HOW_MET
    }
    contact_ids = store.insert_rows(ctx.session, table_of(Contact), [
        {**templates["follower" if p.external_id in lists["follower"] else "following"],
         "name": p.name or repo.placeholder_name(account.platform, p.external_id)}
        for p in missing
    ])
    handle_ids = store.insert_rows(ctx.session, table_of(Handle), [
        {"owner_id": ctx.owner.id, "contact_id": contact_id, "platform": p.platform,
         "external_id": p.external_id, "created_at": now,
         "handle": repo.normalise_handle(p.handle) or p.external_id,
         "display_handle": p.handle, "profile_json": repo.profile_json(p)}
        for p, contact_id in zip(missing, contact_ids, strict=True)
    ])
    return dict(zip((p.external_id for p in missing), handle_ids, strict=True))


def _connect(ctx: Context, *, account: Account, kind: str, handle_ids: list[int]) -> int:
    """Connect every handle not connected yet (in any state); returns how many were added."""
    existing: set[int] = set()
    for batch in store.chunks(handle_ids):
        existing.update(ctx.session.exec(
            select(Connection.handle_id).where(
                Connection.owner_id == ctx.owner.id, Connection.account_id == account.id,
                Connection.kind == kind, col(Connection.handle_id).in_(batch),
            )
        ))
    now = ctx.now()
    added = store.insert_rows(ctx.session, table_of(Connection), [
        {"owner_id": ctx.owner.id, "account_id": account.id, "handle_id": handle_id,
         "kind": kind, "state": "active", "since": now}
        for handle_id in handle_ids if handle_id not in existing
    ])
    # "imported": already in the network, so neither welcomed nor followed up
    store.add_events(ctx.session, owner_id=ctx.owner.id, connection_ids=added, kind="gained",
                     at=now, detail="imported", reported=True)
    return len(added)


def summary_text(account: Account, result: ImportResult, *, source: str) -> str:
    where = PLATFORM_NAMES.get(account.platform, account.platform)
    whose = f" ({at_handle(account.platform, account.handle)})" if account.handle else ""
    counts = (
        f"{result.followers:,} follower{'s' if result.followers != 1 else ''} and "
        f"{result.following:,} account{'s' if result.following != 1 else ''} you follow "
        f"({result.mutuals:,} mutual)"
    )
    if not result.new_connections and not result.new_contacts:
        return (f"Imported your {where} {source}{whose}: {counts}. All of them were already "
                "known, so nothing changed.")
    return (
        f"Imported your {where} {source}{whose}: {counts}. "
        f"{_count(result.new_contacts, 'new contact')}, "
        f"{_count(result.new_connections, 'new connection')}, {result.already_known:,} "
        "already known. Nobody gets a welcome draft: they were already in your network."
        + (f" People known only by id show as \"{repo.placeholder_name(account.platform, '<id>')}"
           "\" until a live sync names them." if result.unnamed else "")
    )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
