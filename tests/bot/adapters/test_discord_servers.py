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
from datetime import timedelta

import discord
import pytest
import yarl
from sqlmodel import Session, select

from bot import runner
from bot.adapters import discord_worker as adapter
from bot.context import utcnow
from bot.owners import add_owner
from bot.worker import RoutingSurface, Worker
from storage.db import make_engine, upgrade
from storage.models import Account, Connection, Contact, Draft, Handle, Owner
from tests.conftest import make_settings
from tests.support.fake_discord import RunningDiscord
from tests.support.fakes import FakeSurface


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


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def enrol(engine, *user_ids: str) -> None:
    with Session(engine) as session:
        for user_id in user_ids:
            add_owner(session, external_ref=f"discord:{user_id}", name="", tz="UTC",
                      now=utcnow() - timedelta(days=1))
        session.commit()


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

        lee = fake.add_user("lee")
        before = len(said_to(fake, fake.ada))
        fake.join(staffroom, lee)
        await wait_until(lambda: drafts_for(engine, fake.ada))
        await wait_until(lambda: len(said_to(fake, fake.ada)) > before)
        assert "Lee" in "\n".join(said_to(fake, fake.ada)[before:])
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
