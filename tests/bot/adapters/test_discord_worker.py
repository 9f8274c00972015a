"""Discord for many owners (``plnbot run --worker``) without the network: spec'd
discord.py objects in, a real Worker on a real database, Discord calls out."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select

from bot.adapters import discord_worker as adapter
from bot.adapters.discord.buttons import DraftButton
from bot.adapters.discord.surface import DiscordSurface, DiscordUnavailable
from bot.adapters.discord.text import nonce_for
from bot.adapters.discord_worker import WorkerDiscordClient, discord_route, hold_gateway
from bot.worker import RoutingSurface, Worker
from storage.db import make_engine, upgrade
from storage.models import Draft, OutboxMessage, Owner, Reminder
from storage.singleton import SingletonLock
from tests.conftest import make_settings
from tests.support.discord_mocks import mock_dm_channel, mock_interaction, mock_message, mock_user
from tests.support.factories import arrival, command, x_person
from tests.support.fakes import FakeSurface
from tests.support.owner import enrol

ADA_ID = 404_000_000_000_000_001
BEN_ID = 404_000_000_000_000_002
STRANGER_ID = 404_000_000_000_000_099


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()



class Discord:
    """The users and DM channels a logged-in client can reach, by user id."""

    def __init__(self, client: discord.Client, *user_ids: int) -> None:
        self.users = {user_id: mock_user(user_id=user_id) for user_id in user_ids}
        for user in self.users.values():
            user.dm_channel = mock_dm_channel()
        client._connection.user = MagicMock(spec=discord.ClientUser)  # logged in
        client.get_user = self.users.get

    def dm(self, user_id: int) -> MagicMock:
        return self.users[user_id].dm_channel

    def said_to(self, user_id: int) -> list[str]:
        return [call.args[0] for call in self.dm(user_id).send.await_args_list]


@pytest.fixture
def worker(engine, clock):
    """A worker routing ``discord:`` owners to Discord DMs and the rest to a fake."""
    settings = make_settings(DISCORD_TOKEN="token-for-tests")
    return Worker(settings=settings, engine=engine, clock=clock,
                  surface=RoutingSurface(default=FakeSurface()))


@pytest.fixture
def client(worker, engine):
    client = WorkerDiscordClient(worker.settings, worker)
    worker.surface.routes["discord"] = DiscordSurface(client)
    enrol(engine, ADA_ID, BEN_ID)
    client.discord = Discord(client, ADA_ID, BEN_ID, STRANGER_ID)
    return client


def owner_count(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Owner)).one()


# --- outbound: one surface, many recipients -------------------------------------------------


async def test_two_owners_messages_go_to_their_own_dms_with_nonces(client, worker):
    await worker.dispatcher.dispatch(command("help", owner_ref=f"discord:{ADA_ID}"))
    await worker.dispatcher.dispatch(command("drafts", owner_ref=f"discord:{BEN_ID}"))
    assert await worker.drain() == 2
    with Session(worker.engine) as session:
        rows = {row.owner_id: row for row in session.exec(select(OutboxMessage))}
        ids = dict(session.exec(select(Owner.external_ref, Owner.id)).all())
    for user_id in (ADA_ID, BEN_ID):
        row = rows[ids[f"discord:{user_id}"]]
        assert row.status == "sent"
        sent = client.discord.dm(user_id).send.await_args_list
        assert sent and {call.kwargs["nonce"] for call in sent} <= {
            nonce_for(row.idempotency_key, part) for part in range(len(sent))}
        assert sent[0].kwargs["nonce"] == nonce_for(row.idempotency_key, 0)
    assert any("drafts" in text.lower() for text in client.discord.said_to(ADA_ID))
    assert not client.discord.dm(STRANGER_ID).send.await_count


async def test_a_dm_that_fails_stays_in_the_outbox_for_a_retry(client, worker):
    refused = discord.Forbidden(MagicMock(status=403, reason="Forbidden"),
                                {"code": 50007, "message": "Cannot send messages to this user"})
    client.discord.dm(ADA_ID).send.side_effect = refused
    await worker.dispatcher.dispatch(command("help", owner_ref=f"discord:{ADA_ID}"))
    await worker.drain()
    with Session(worker.engine) as session:
        [row] = session.exec(select(OutboxMessage)).all()
    assert row.status == "pending" and row.attempts == 1
    assert "DiscordUnavailable" in row.last_error


async def test_an_owner_who_is_not_a_discord_user_is_not_sent_to_discord(client):
    surface = DiscordSurface(client)
    message = MagicMock(owner_ref="discord:not-a-number", idempotency_key="1:k:0")
    with pytest.raises(DiscordUnavailable, match="not a Discord user"):
        surface.recipient(message)


# --- inbound: enrolled owners only ----------------------------------------------------------


async def test_a_dm_from_an_enrolled_owner_is_answered_to_that_owner_only(client):
    ada = client.discord.users[ADA_ID]
    await client.on_message(mock_message(ada, "remind me tomorrow water the plants"))
    [reply] = client.discord.said_to(ADA_ID)
    assert "water the plants" in reply
    assert client.discord.said_to(BEN_ID) == []
    with Session(client.engine) as session:
        [reminder] = session.exec(select(Reminder)).all()
        assert session.get(Owner, reminder.owner_id).external_ref == f"discord:{ADA_ID}"


async def test_a_stranger_is_declined_once_and_nothing_is_stored(client, engine):
    before = owner_count(engine)
    stranger = client.discord.users[STRANGER_ID]
    first, second = mock_message(stranger, "help"), mock_message(stranger, "who ada")
    await client.on_message(first)
    await client.on_message(second)
    [note] = [call.args[0] for call in first.channel.send.await_args_list]
    assert f"plnbot owner add discord:{STRANGER_ID}" in note and "\n" not in note
    second.channel.send.assert_not_awaited()
    assert owner_count(engine) == before
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 0


async def test_slash_commands_run_for_enrolled_owners_and_decline_strangers(client, engine):
    interaction = mock_interaction(client, user_id=BEN_ID)
    await client.tree.get_command("help").callback(interaction, "remind")
    assert client.discord.said_to(BEN_ID)[0].startswith("Usage: remind")  # a DM reply
    interaction.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)

    before = owner_count(engine)
    stranger = mock_interaction(client, user_id=STRANGER_ID)
    await client.tree.get_command("drafts").callback(stranger)
    [note] = stranger.response.send_message.await_args.args
    assert f"discord:{STRANGER_ID}" in note
    assert owner_count(engine) == before


async def ada_draft(client, worker) -> int:
    await worker.dispatcher.dispatch(arrival(x_person("Jane Doe"), owner_ref=f"discord:{ADA_ID}"))
    with Session(worker.engine) as session:
        [draft] = session.exec(select(Draft)).all()
    return draft.id


async def test_a_button_press_by_another_owner_is_refused(client, worker):
    draft_id = await ada_draft(client, worker)
    interaction = mock_interaction(client, user_id=BEN_ID)
    button = DraftButton("skip", draft_id)
    assert await button.interaction_check(interaction)  # Ben is an owner…
    await button.callback(interaction)  # …but not this draft's
    interaction.response.send_message.assert_awaited_once_with(
        f"There is no draft #{draft_id} any more.", ephemeral=True)
    with Session(worker.engine) as session:
        assert session.get(Draft, draft_id).status == "pending"

    stranger = mock_interaction(client, user_id=STRANGER_ID)
    assert not await button.interaction_check(stranger)

    await button.callback(mock_interaction(client, user_id=ADA_ID))
    with Session(worker.engine) as session:
        assert session.get(Draft, draft_id).status == "skipped"
    assert any(f"#{draft_id}" in text for text in client.discord.said_to(ADA_ID))
    assert client.discord.said_to(BEN_ID) == []


def history_of(*messages) -> MagicMock:
    async def history(**kwargs):
        for message in messages:
            yield message

    channel = mock_dm_channel()
    channel.history = MagicMock(side_effect=history)
    return channel


async def test_dms_written_while_nobody_held_the_gateway_are_answered_once(client, worker):
    ada = client.discord.users[ADA_ID]
    missed = [mock_message(ada, "remind me tomorrow call Ben"), mock_message(ada, "help")]
    ada.dm_channel = history_of(*missed)
    await client.catch_up_on_dms()  # never read before: from the enrolment on
    after = ada.dm_channel.history.call_args.kwargs["after"]
    with Session(worker.engine) as session:
        enrolled = session.exec(select(Owner).where(
            Owner.external_ref == f"discord:{ADA_ID}")).one().created_at
    assert after.replace(tzinfo=None) == enrolled.replace(tzinfo=None)
    assert len(ada.dm_channel.send.await_args_list) == 2

    # a new holder after a hand-over reads the same DMs again: nothing runs twice
    successor = WorkerDiscordClient(worker.settings, worker)
    successor._connection.user = MagicMock(spec=discord.ClientUser)
    successor.get_user = client.discord.users.get
    with Session(worker.engine) as session:  # as if the old holder died before marking
        session.exec(text("DELETE FROM jobrun"))
        session.commit()
    await successor.catch_up_on_dms()
    assert len(ada.dm_channel.send.await_args_list) == 2
    with Session(worker.engine) as session:
        assert len(session.exec(select(Reminder)).all()) == 1


# --- one gateway among several workers ------------------------------------------------------


class FakeGateway:
    """``client.connect`` stand-in: connected until cancelled; counts who is connected."""

    live = 0
    most = 0

    def __init__(self) -> None:
        self.connects = 0
        self.connected = False

    async def connect(self, *, reconnect: bool = True) -> None:
        self.connects += 1
        self.connected = True
        FakeGateway.live += 1
        FakeGateway.most = max(FakeGateway.most, FakeGateway.live)
        try:
            await asyncio.Event().wait()
        finally:
            self.connected = False
            FakeGateway.live -= 1


def gateway_client() -> MagicMock:
    client = MagicMock(spec=discord.Client)
    client.ws = None
    gateway = FakeGateway()
    client.connect = gateway.connect
    client.gateway = gateway
    return client


async def wait_until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.postgres
async def test_one_of_two_workers_holds_the_gateway_and_the_other_takes_over(pg_url):
    FakeGateway.live = FakeGateway.most = 0
    engines = [make_engine(pg_url), make_engine(pg_url)]
    locks = [SingletonLock(engine, adapter.GATEWAY_LOCK) for engine in engines]
    clients = [gateway_client(), gateway_client()]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(hold_gateway(c, lock, stop, retry_seconds=0.05,
                                              check_seconds=0.05))
             for c, lock, stop in zip(clients, locks, stops, strict=True)]
    try:
        await wait_until(lambda: any(c.gateway.connected for c in clients))
        await asyncio.sleep(0.5)  # the other keeps trying, and keeps failing
        holder = 0 if clients[0].gateway.connected else 1
        other = 1 - holder
        assert not clients[other].gateway.connected and clients[other].gateway.connects == 0

        # the holder dies without a word (no release): the lock lives on with its
        # session, until the server ends the session, as it does for a dead process
        pid = locks[holder].connection.execute(text("SELECT pg_backend_pid()")).scalar()
        locks[holder].release = lambda: None
        tasks[holder].cancel()
        await asyncio.gather(tasks[holder], return_exceptions=True)
        await asyncio.sleep(0.3)
        assert not clients[other].gateway.connected
        with engines[other].connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await wait_until(lambda: clients[other].gateway.connected)
        assert FakeGateway.most == 1
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
async def test_a_holder_that_loses_its_database_session_drops_the_gateway(pg_url):
    engine = make_engine(pg_url)
    lock = SingletonLock(engine, adapter.GATEWAY_LOCK)
    client, stop = gateway_client(), asyncio.Event()
    task = asyncio.create_task(hold_gateway(client, lock, stop, retry_seconds=10,
                                            check_seconds=0.05))
    try:
        await wait_until(lambda: client.gateway.connected)
        pid = lock.connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await wait_until(lambda: not client.gateway.connected)
        assert not lock.held
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        engine.dispose()


async def test_on_sqlite_the_one_worker_simply_connects(engine):
    client, stop = gateway_client(), asyncio.Event()
    task = asyncio.create_task(hold_gateway(client, SingletonLock(engine, "gw"), stop))
    try:
        await wait_until(lambda: client.gateway.connected)
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
    assert not client.gateway.connected


# --- wiring ---------------------------------------------------------------------------------


async def test_once_logs_in_for_sending_but_never_connects_the_gateway(worker, monkeypatch):
    login, connect = AsyncMock(), AsyncMock()
    monkeypatch.setattr(WorkerDiscordClient, "login", login)
    monkeypatch.setattr(WorkerDiscordClient, "connect", connect)
    async with discord_route(worker.settings, worker, stop=None) as surface:
        assert isinstance(surface, DiscordSurface) and surface.owner_user_id is None
    login.assert_awaited_once_with("token-for-tests")
    connect.assert_not_awaited()


async def test_a_rejected_token_is_one_line(worker, monkeypatch):
    from bot.cli import UserError

    monkeypatch.setattr(WorkerDiscordClient, "login",
                        AsyncMock(side_effect=discord.LoginFailure("Improper token")))
    with pytest.raises(UserError, match="DISCORD_TOKEN"):
        async with discord_route(worker.settings, worker, stop=None):
            pass


async def test_a_fatal_gateway_error_stops_the_worker_with_one_line(engine):
    from bot.cli import UserError

    client, stop = gateway_client(), asyncio.Event()
    client.connect = AsyncMock(side_effect=discord.LoginFailure("Improper token"))
    with pytest.raises(UserError, match="Discord rejected DISCORD_TOKEN"):
        await adapter.keep_gateway(client, SingletonLock(engine, "gw"), stop)
    assert stop.is_set()


async def test_run_worker_once_dms_each_enrolled_owner(engine, db_url, monkeypatch):
    """The whole wiring: ``plnbot run --worker --once`` with DISCORD_TOKEN."""
    import bot.adapters.discord.surface as single
    from bot import runner

    enrol(engine, ADA_ID, BEN_ID)
    settings = make_settings(DISCORD_TOKEN="token-for-tests")
    worker = Worker(settings=settings, engine=engine, surface=FakeSurface())
    for user_id in (ADA_ID, BEN_ID):
        await worker.dispatcher.dispatch(command("help", owner_ref=f"discord:{user_id}"))
    channels = {ADA_ID: mock_dm_channel(), BEN_ID: mock_dm_channel()}

    async def login(self, token):
        self._connection.user = MagicMock(spec=discord.ClientUser)

    async def open_dm(client, user_id):
        return channels[user_id]

    monkeypatch.setattr(WorkerDiscordClient, "login", login)
    monkeypatch.setattr(WorkerDiscordClient, "connect", AsyncMock())
    monkeypatch.setattr(single, "open_dm", open_dm)
    await runner.run_worker(settings, db_url, once=True, as_json=True)
    for channel in channels.values():
        assert channel.send.await_count >= 1
    assert WorkerDiscordClient.connect.await_count == 0
    with Session(engine) as session:
        assert {row.status for row in session.exec(select(OutboxMessage))} == {"sent"}
