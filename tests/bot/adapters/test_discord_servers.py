"""Servers connected by chat (``connect discord-server``) in ``plnbot run --worker``:
their members become the connections of the owners who connected them.

Everything goes through the public path: a real worker (``runner.discord_for_workers``,
the gateway lock, discord.py's real HTTP and websocket clients) against the fake
Discord's REST API and gateway; owners talk to the bot by DM over that gateway and
read its answers in the DMs the fake received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import discord
import pytest
import yarl
from sqlmodel import Session, select

from bot import runner
from bot.adapters import discord_worker as adapter
from bot.worker import RoutingSurface, Worker
from storage.db import make_engine, upgrade
from storage.models import Account, Connection, Contact, Draft, Handle, Owner
from tests.conftest import make_settings
from tests.support.fake_discord import BOT_ID, RunningDiscord
from tests.support.fakes import FakeSurface
from tests.support.owner import enrol

# --- the fake Discord and the worker ----------------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    with RunningDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(fake.gateway_url))
        fake.ada = fake.add_user("ada")
        fake.ben = fake.add_user("ben")
        yield fake


@pytest.fixture(autouse=True)
def quick_gateway(monkeypatch):
    """A worker without the gateway tries again every 0.1 s (not 5 s)."""
    hold = adapter.hold_gateway

    async def hold_gateway(client, lock, stop):
        await hold(client, lock, stop, retry_seconds=0.1, check_seconds=0.1)

    monkeypatch.setattr(adapter, "hold_gateway", hold_gateway)




@contextlib.asynccontextmanager
async def running_worker(fake, engine, tmp_path):
    """A worker with DISCORD_TOKEN, holding the gateway until the block ends."""
    settings = make_settings(DISCORD_TOKEN=fake.token, PLNBOT_DATA_DIR=str(tmp_path / "data"))
    worker = Worker(settings=settings, engine=engine,
                    surface=RoutingSurface(default=FakeSurface()))
    stop = asyncio.Event()
    async with runner.discord_for_workers(settings, worker, stop) as surface:
        worker.surface.routes["discord"] = surface
        surface.client._connection.guild_ready_timeout = 0.05
        try:
            yield surface.client
        finally:
            stop.set()


async def wait_until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def said_to(fake, user_id: str) -> list[str]:
    """What the bot wrote to ``user_id`` by DM, oldest first."""
    return [m["content"] for m in fake.messages
            if fake.channels.get(m["channel_id"], {}).get("dm_for") == user_id]


async def told_of(fake, user_id: str, name: str) -> None:
    """Wait for the owner's new-connection DM about ``name`` (a draft is stored before
    its DM goes out, so waiting for the draft is not enough before the next ``tell``)."""
    await wait_until(lambda: any(f"New connection on Discord: {name}" in text
                                 for text in said_to(fake, user_id)))


async def tell(fake, user_id: str, line: str, *, answers: int = 1) -> list[str]:
    """``user_id`` DMs the bot ``line``; returns the ``answers`` DMs it writes back."""
    before = len(said_to(fake, user_id))
    fake.send_dm(user_id, line)
    await wait_until(lambda: len(said_to(fake, user_id)) >= before + answers)
    return said_to(fake, user_id)[before:]


def people(engine, user_id: str) -> dict[str, str]:
    """The owner's Discord connections: member name → state."""
    with Session(engine) as session:
        owner = session.exec(select(Owner).where(
            Owner.external_ref == f"discord:{user_id}")).one()
        rows = session.exec(
            select(Handle.handle, Connection.state)
            .join(Connection, Connection.handle_id == Handle.id)
            .where(Connection.owner_id == owner.id, Handle.platform == "discord")).all()
    return dict(rows)


def drafts_for(engine, user_id: str) -> list[tuple[int, str]]:
    """(draft id, contact name) of the owner's welcome drafts."""
    with Session(engine) as session:
        owner = session.exec(select(Owner).where(
            Owner.external_ref == f"discord:{user_id}")).one()
        rows = session.exec(select(Draft.id, Contact.name)
                            .join(Contact, Contact.id == Draft.contact_id)
                            .where(Draft.owner_id == owner.id).order_by(Draft.id)).all()
    return [(draft_id, name) for draft_id, name in rows]


def last_read(engine, user_id: str):
    """When the owner's server's member list was last read."""
    with Session(engine) as session:
        return session.exec(select(Account.last_synced_at).join(
            Owner, Owner.id == Account.owner_id).where(
            Owner.external_ref == f"discord:{user_id}", Account.platform == "discord")).one()


@pytest.fixture
def staffroom(fake, engine):
    """Ada's server, with two members already; Ada and Ben are enrolled owners."""
    enrol(engine, fake.ada, fake.ben)
    server = fake.add_guild("Staffroom", owner_id=fake.ada)
    fake.jane, fake.omar = fake.add_user("jane"), fake.add_user("omar")
    fake.add_member(server, fake.jane)
    fake.add_member(server, fake.omar)
    return server


# --- members become connections ----------------------------------------------------------


async def test_a_connected_servers_members_become_the_owners_connections(
        fake, engine, staffroom, tmp_path):
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        fake.join(staffroom, fake.add_user("early"))  # nobody connected it yet: ignored
        connected, baseline = await tell(fake, fake.ada, f"connect discord-server {staffroom}",
                                         answers=2)
        assert connected.startswith("Connected the Discord server Staffroom")
        assert "as a DM" in connected
        assert "3 existing connections recorded quietly" in baseline
        assert people(engine, fake.ada) == {"jane": "active", "omar": "active",
                                            "early": "active"}
        assert drafts_for(engine, fake.ada) == []  # the baseline is quiet
        [listed] = await tell(fake, fake.ada, "accounts")
        assert (f"Discord: Staffroom (id {staffroom}; connected; joins and leaves seen as "
                "they happen") in listed

        lee = fake.add_user("lee")
        fake.join(staffroom, lee)
        await told_of(fake, fake.ada, "Lee")
        [(draft_id, name)] = drafts_for(engine, fake.ada)
        assert name == "Lee"

        fake.leave(staffroom, fake.jane)
        await wait_until(lambda: people(engine, fake.ada)["jane"] != "active")
        assert people(engine, fake.ada)["jane"] == "lost"

        [sent] = await tell(fake, fake.ada, f"send {draft_id}")
        assert "Sent your welcome to Lee" in sent and "as a Discord DM" in sent
        [welcome] = said_to(fake, lee)
        assert welcome.strip()
    assert said_to(fake, fake.ben) == []
    with Session(engine) as session:
        assert session.get(Draft, draft_id).status == "sent"


async def test_joins_and_leaves_while_offline_are_reconciled_on_reconnect(
        fake, engine, staffroom, tmp_path):
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        await tell(fake, fake.ada, f"connect discord-server {staffroom}", answers=2)
    # nobody holds the gateway: Discord does not replay what happens meanwhile
    fake.add_member(staffroom, fake.add_user("lee"))
    fake.guilds[staffroom]["members"].pop(fake.omar)
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(lambda: people(engine, fake.ada).get("omar") == "lost")
        await wait_until(lambda: any("New connection on Discord: Lee" in text
                                     for text in said_to(fake, fake.ada)))
        assert [name for _, name in drafts_for(engine, fake.ada)] == ["Lee"]

        # a dropped connection is resumed, then re-identified: read again, no news
        told, read_at = len(said_to(fake, fake.ada)), last_read(engine, fake.ada)
        fake.drop()
        await wait_until(lambda: last_read(engine, fake.ada) != read_at)
        assert said_to(fake, fake.ada)[told:] == []
    assert [name for _, name in drafts_for(engine, fake.ada)] == ["Lee"]
    assert people(engine, fake.ada) == {"jane": "active", "omar": "lost", "lee": "active"}


async def test_a_mass_drop_seen_on_reconnect_is_held_not_reported_as_losses(
        fake, engine, staffroom, tmp_path):
    for index in range(40):
        fake.add_member(staffroom, fake.add_user(f"member{index}"))
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        await tell(fake, fake.ada, f"connect discord-server {staffroom}", answers=2)
    for user_id in list(fake.guilds[staffroom]["members"]):
        if fake.users.get(user_id, {}).get("username", "").startswith("member"):
            fake.guilds[staffroom]["members"].pop(user_id)
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(lambda: "vanished" in people(engine, fake.ada).values())
    states = people(engine, fake.ada)
    assert "lost" not in states.values()
    assert sum(state == "vanished" for state in states.values()) == 40


# --- tenancy, disconnecting, servers nobody connected ------------------------------------


async def test_each_owner_gets_only_the_members_of_the_server_they_connected(
        fake, engine, staffroom, tmp_path):
    labroom = fake.add_guild("Lab", owner_id=fake.ben)
    nobodys = fake.add_guild("Elsewhere", owner_id=fake.add_user("carol"))
    fake.add_member(labroom, fake.jane)  # Jane is in both servers
    fake.add_member(staffroom, fake.ben)  # Ben too, but may not manage Staffroom
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        [refused] = await tell(fake, fake.ben, f"connect discord-server {staffroom}")
        assert "You need the Manage Server permission in Staffroom" in refused
        await tell(fake, fake.ada, f"connect discord-server {staffroom}", answers=2)
        await tell(fake, fake.ben, f"connect discord-server {labroom}", answers=2)
        assert set(people(engine, fake.ada)) == {"jane", "omar", "ben"}
        assert set(people(engine, fake.ben)) == {"jane"}  # not themself

        lee, kim, zed = fake.add_user("lee"), fake.add_user("kim"), fake.add_user("zed")
        fake.join(staffroom, lee)
        fake.join(labroom, kim)
        fake.join(nobodys, zed)
        await told_of(fake, fake.ada, "Lee")
        await told_of(fake, fake.ben, "Kim")
        fake.leave(labroom, fake.jane)
        await wait_until(lambda: people(engine, fake.ben)["jane"] == "lost")
        assert people(engine, fake.ada)["jane"] == "active"  # still in Ada's server

        [gone] = await tell(fake, fake.ben, "disconnect discord-server")
        assert gone.startswith("Disconnected Lab on Discord")
        fake.join(labroom, fake.add_user("max"))
        fake.join(staffroom, fake.add_user("ned"))
        await wait_until(lambda: len(drafts_for(engine, fake.ada)) == 2)
    assert [name for _, name in drafts_for(engine, fake.ada)] == ["Lee", "Ned"]
    assert [name for _, name in drafts_for(engine, fake.ben)] == ["Kim"]
    assert set(people(engine, fake.ben)) == {"jane", "kim"}
    with Session(engine) as session:  # Zed, of a server nobody connected, is nobody's
        assert session.exec(select(Handle).where(Handle.handle == "zed")).first() is None


async def test_a_join_just_after_connecting_is_an_arrival_not_baseline(
        fake, engine, staffroom, tmp_path):
    """The first list is read right after ``connect``; a join racing it (the list not
    yet read) is left out of the baseline and welcomed."""
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        reading = asyncio.Event()
        original = client.read_unread_servers

        async def late(owner_ref: str) -> None:  # the list is read after the join
            await reading.wait()
            await original(owner_ref)

        client.read_unread_servers = late
        fake.send_dm(fake.ada, f"connect discord-server {staffroom}")
        await wait_until(lambda: said_to(fake, fake.ada))
        fake.join(staffroom, fake.add_user("lee"))
        await wait_until(lambda: drafts_for(engine, fake.ada))
        reading.set()
        await asyncio.sleep(0.2)
    assert [name for _, name in drafts_for(engine, fake.ada)] == ["Lee"]
    assert people(engine, fake.ada) == {"jane": "active", "omar": "active", "lee": "active"}


# --- several servers of one owner ---------------------------------------------------------


def memberships(engine, user_id: str) -> dict[tuple[str, str], str]:
    """The owner's Discord connections: (server name, member name) → state."""
    with Session(engine) as session:
        owner = session.exec(select(Owner).where(
            Owner.external_ref == f"discord:{user_id}")).one()
        rows = session.exec(
            select(Account.handle, Handle.handle, Connection.state)
            .join(Connection, Connection.handle_id == Handle.id)
            .join(Account, Account.id == Connection.account_id)
            .where(Connection.owner_id == owner.id, Handle.platform == "discord")).all()
    return {(server, member): state for server, member, state in rows}


def servers_of(engine, user_id: str) -> list[tuple[str, bool]]:
    """(server name, connected) of each of the owner's Discord accounts, oldest first."""
    with Session(engine) as session:
        rows = session.exec(select(Account.handle, Account.connected_at).join(
            Owner, Owner.id == Account.owner_id).where(
            Owner.external_ref == f"discord:{user_id}", Account.platform == "discord")
            .order_by(Account.id)).all()
    return [(name, connected_at is not None) for name, connected_at in rows]


async def test_an_owner_watches_two_servers_each_on_its_own(fake, engine, staffroom, tmp_path):
    """A class server and a PLN server: each its own baseline, members, losses and
    welcome channel; a member of both is one contact with a connection in each."""
    pln = fake.add_guild("PLN", owner_id=fake.ada)
    fake.add_member(pln, fake.jane)  # Jane is in both of Ada's servers
    fake.add_member(pln, fake.add_user("pat"))
    channel = fake.add_text_channel("welcome", guild_id=pln)
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        await tell(fake, fake.ada, f"connect discord-server {staffroom}", answers=2)
        connected, baseline = await tell(fake, fake.ada,
                                         f"connect discord-server {pln} {channel}", answers=2)
        assert connected.startswith("Connected the Discord server PLN")
        assert "2 existing connections recorded quietly" in baseline  # PLN's own baseline
        assert drafts_for(engine, fake.ada) == []
        assert memberships(engine, fake.ada) == {
            ("Staffroom", "jane"): "active", ("Staffroom", "omar"): "active",
            ("PLN", "jane"): "active", ("PLN", "pat"): "active"}  # Staffroom's stay
        with Session(engine) as session:
            assert len(session.exec(select(Handle).where(Handle.handle == "jane")).all()) == 1
        [listed] = await tell(fake, fake.ada, "accounts")
        assert f"Discord: Staffroom (id {staffroom}; connected" in listed
        assert f"Discord: PLN (id {pln}; connected" in listed

        await tell(fake, fake.ada, "settings losses immediate")
        fake.leave(pln, fake.jane)  # a loss in PLN only
        await wait_until(lambda: any("1 connection ended on Discord (PLN)" in text
                                     for text in said_to(fake, fake.ada)))
        assert memberships(engine, fake.ada)[("PLN", "jane")] == "lost"
        assert memberships(engine, fake.ada)[("Staffroom", "jane")] == "active"
        [who] = await tell(fake, fake.ada, "who jane")
        assert re.search(r"Discord: member of your server since [^,]+ \(Staffroom\), "
                         r"left your server on [^,]+ \(PLN\)", who), who

        [again] = await tell(fake, fake.ada, f"connect discord-server {staffroom}")
        assert "Staffroom was already connected" in again and "as a DM" in again
        assert servers_of(engine, fake.ada) == [("Staffroom", True), ("PLN", True)]

        lee, kim = fake.add_user("lee"), fake.add_user("kim")
        fake.join(pln, lee)
        await told_of(fake, fake.ada, "Lee")
        fake.join(staffroom, kim)
        await told_of(fake, fake.ada, "Kim")
        (lee_draft, _), (kim_draft, _) = drafts_for(engine, fake.ada)
        [told] = [text for text in said_to(fake, fake.ada) if "New connection on Discord: Lee"
                  in text]
        assert "How you met: joined your Discord server PLN ·" in told
        [posted] = await tell(fake, fake.ada, f"send {lee_draft}")
        assert "Posted your welcome to lee in #welcome" in posted  # PLN's channel
        [dm] = await tell(fake, fake.ada, f"send {kim_draft}")
        assert "as a Discord DM" in dm  # Staffroom has no welcome channel

        [which] = await tell(fake, fake.ada, "disconnect discord-server")
        assert which.startswith(f"**Error:** You have 2 Discord servers connected: Staffroom "
                                f"(id {staffroom}), PLN (id {pln}). Say which, e.g. "
                                f"`disconnect discord-server {staffroom}`.\nUsage: ")
        [gone] = await tell(fake, fake.ada, f"disconnect discord-server {pln}")
        assert gone.startswith("Disconnected PLN on Discord")
        fake.join(pln, fake.add_user("ned"))  # no longer watched
        fake.leave(staffroom, fake.omar)  # still watched
        await wait_until(lambda: memberships(engine, fake.ada)[("Staffroom", "omar")] == "lost")
    assert [name for _, name in drafts_for(engine, fake.ada)] == ["Lee", "Kim"]
    assert memberships(engine, fake.ada) == {  # disconnecting PLN lost nobody
        ("Staffroom", "jane"): "active", ("Staffroom", "omar"): "lost",
        ("Staffroom", "kim"): "active", ("PLN", "jane"): "lost", ("PLN", "pat"): "active",
        ("PLN", "lee"): "active"}
    assert servers_of(engine, fake.ada) == [("Staffroom", True), ("PLN", False)]


# --- welcomes: a DM, or the owner's welcome channel --------------------------------------


async def test_welcomes_are_posted_in_the_welcome_channel_named_when_connecting(
        fake, engine, staffroom, tmp_path):
    channel = fake.add_text_channel("welcome", guild_id=staffroom)
    elsewhere = fake.add_text_channel("general", guild_id=fake.add_guild(
        "Lab", owner_id=fake.ben))
    voice = fake.add_text_channel("lounge", guild_id=staffroom)
    fake.channels[voice].update(type=2, bitrate=64_000, user_limit=0)
    closed = fake.add_text_channel("staff-only", guild_id=staffroom)
    fake.channels[closed]["permission_overwrites"] = [
        {"id": BOT_ID, "type": 1, "allow": "0", "deny": str(1 << 11)}]  # no Send Messages
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        for bad, why in ((elsewhere, "There is no channel"), ("12x", "Give the server's id"),
                         (voice, "#lounge is not a text channel"),
                         (closed, "The bot may not post in #staff-only")):
            [refused] = await tell(fake, fake.ada, f"connect discord-server {staffroom} {bad}")
            assert why in refused and "Usage: connect discord-server" in refused
        assert people(engine, fake.ada) == {}
        [connected, _] = await tell(fake, fake.ada,
                                    f"connect discord-server {staffroom} {channel}", answers=2)
        assert "posted in the welcome channel" in connected
        lee = fake.add_user("lee")
        fake.join(staffroom, lee)
        await told_of(fake, fake.ada, "Lee")
        [(draft_id, _)] = drafts_for(engine, fake.ada)
        [sent] = await tell(fake, fake.ada, f"send {draft_id}")
        assert "Posted your welcome to lee in #welcome" in sent
    [post] = [m for m in fake.messages if m["channel_id"] == channel]
    assert post["content"].startswith(f"<@{lee}> ")
    assert [str(user) for user in post["allowed_mentions"]["users"]] == [lee]
    assert said_to(fake, lee) == []


async def test_send_by_channel_without_a_welcome_channel_says_how_to_name_one(
        fake, engine, staffroom, tmp_path):
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        await tell(fake, fake.ada, f"connect discord-server {staffroom}", answers=2)
        fake.join(staffroom, fake.add_user("lee"))
        await told_of(fake, fake.ada, "Lee")
        [(draft_id, _)] = drafts_for(engine, fake.ada)
        [refused] = await tell(fake, fake.ada, f"send {draft_id} channel")
    assert "No welcome channel is set" in refused
    assert "connect discord-server <server id> <channel id>" in refused
    with Session(engine) as session:
        assert session.get(Draft, draft_id).status == "pending"


# --- a bot without the Server Members Intent ---------------------------------------------


async def test_without_the_members_intent_dms_still_work_and_connect_says_why_not(
        fake, engine, staffroom, tmp_path):
    fake.members_intent = False
    async with running_worker(fake, engine, tmp_path) as client:
        await wait_until(client.is_ready)
        [refused] = await tell(fake, fake.ada, f"connect discord-server {staffroom}")
        [helped] = await tell(fake, fake.ada, "help remind")
    assert "Server Members Intent" in refused and "\n" not in refused.split("Usage")[0].strip()
    assert helped.startswith("Usage: remind")
    members = discord.Intents(members=True).value
    assert fake.identified[0] & members and not fake.identified[-1] & members
    assert people(engine, fake.ada) == {}


# --- one gateway among several workers (PostgreSQL) --------------------------------------


@pytest.mark.postgres
async def test_a_worker_taking_over_the_gateway_reads_what_changed_meanwhile(
        fake, pg_url, tmp_path):
    engines = [make_engine(pg_url), make_engine(pg_url)]
    upgrade(engines[0])
    enrol(engines[0], fake.ada, fake.ben)
    server = fake.add_guild("Staffroom", owner_id=fake.ada)
    fake.add_member(server, fake.add_user("jane"))
    try:
        async with contextlib.AsyncExitStack() as first_worker:
            first = await first_worker.enter_async_context(
                running_worker(fake, engines[0], tmp_path / "a"))
            await wait_until(first.is_ready)
            async with running_worker(fake, engines[1], tmp_path / "b") as second:
                await asyncio.sleep(0.5)  # it keeps trying for the lock, and failing
                assert not second.is_ready() and len(fake.identified) == 1
                await tell(fake, fake.ada, f"connect discord-server {server}", answers=2)
                fake.join(server, fake.add_user("lee"))
                await wait_until(lambda: drafts_for(engines[0], fake.ada))
                # Kim joins as the holder goes down: nobody hears it
                fake.add_member(server, fake.add_user("kim"))
                await first_worker.aclose()
                await wait_until(lambda: len(drafts_for(engines[0], fake.ada)) == 2)
                assert second.is_ready() and len(fake.sockets) == 1
    finally:
        for engine in engines:
            engine.dispose()
    assert [name for _, name in drafts_for(engines[0], fake.ada)] == ["Lee", "Kim"]
    assert people(engines[0], fake.ada) == {"jane": "active", "lee": "active", "kim": "active"}
