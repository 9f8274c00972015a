"""Discord as the chat surface of many owners: ``plnbot run --worker`` with DISCORD_TOKEN.

Every worker logs in over Discord's HTTP API (``Client.login``, no gateway), so each
can DM the owners whose messages it delivers (``DiscordSurface`` without a fixed
recipient: the ``discord:<user id>`` in the owner_ref says whom). Incoming DMs, slash
commands and button presses arrive only over the gateway, and Discord sends each one
to every gateway connection of the bot — so only one worker at a time connects it:
the holder of a database lock (``storage/singleton.py``). The others try again every
few seconds and take over within that time when the holder dies. A DM that reaches a
new holder twice (caught up after the hand-over) runs once: the dispatcher skips a
command whose answer is already in the outbox.

Only enrolled owners (``plnbot owner add discord:<id>``) are served; anyone else gets
one polite line saying how to be enrolled, and nothing of theirs is stored.

Servers connected by chat (``connect discord-server <id>``) are watched as
``DISCORD_GUILD_ID`` is for ``plnbot run``: member joins, leaves and the member list
read on every (re)connect become ``NewConnection`` / ``ConnectionLeft`` /
``SnapshotReceived`` for each owner who connected that server, looked up afresh for
every event (a server connected or disconnected a moment ago counts at once). A
server's first member list for an owner is read right after they connect it, and is
their quiet baseline; until it is read, that owner gets no live event from it.
An owner may connect several servers: each is an account of its own (its own
baseline, its own members as connections, its own welcome channel), and every event
names the account it is about, so a member leaving one server is a loss there only.
Approved welcomes go as DMs to the member, or to the welcome channel the owner named
when connecting the server the member arrived on (``ServerWelcomeSender``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

import discord
from sqlalchemy.engine import Engine

from bot import queries
from bot.adapters.discord import PLATFORM_ID as PLATFORM
from bot.adapters.discord.client import CHUNK_TIMEOUT, PORTAL, DiscordOwner, PlnbotClient
from bot.adapters.discord.run import startup_error
from bot.adapters.discord.sender import DiscordWelcomeSender
from bot.adapters.discord.surface import DiscordSurface
from bot.adapters.discord.text import member_profile
from bot.config import Settings, secret
from bot.events import CommandReceived, ConnectionLeft, Event, NewConnection, SnapshotReceived
from bot.owners import discord_ref, discord_user_id
from bot.queries import Watcher
from bot.worker import Worker
from storage.models import Handle
from storage.singleton import SingletonLock

log = logging.getLogger(__name__)

GATEWAY_LOCK = "discord-gateway"
RETRY_SECONDS = 5.0  # how often a worker without the gateway tries to take it
CHECK_SECONDS = 5.0  # how often the holder checks it still holds the lock
NOT_ENROLLED = ("Sorry, I only work for people enrolled on this bot; ask whoever runs it "
                "to run `plnbot owner add discord:{user_id}`.")
MEMBERS_FLAG = discord.Intents(members=True).value
CHANNEL_BY_CHAT = "`connect discord-server <server id> <channel id>`"  # how to name one


def worker_intents() -> discord.Intents:
    """DMs, and the members of servers connected by chat (privileged: see
    ``WorkerDiscordClient.without_members`` for a bot that was not granted it)."""
    intents = discord.Intents.none()
    intents.guilds = intents.dm_messages = intents.members = True
    return intents


class WorkerDiscordClient(PlnbotClient):
    """The Discord client of a worker: any enrolled owner, and the members of every
    server an owner connected by chat, for that owner.

    ``app`` is the ``Worker``: events go to ``Worker.handle``, which answers at once.
    Member lists are fetched only for connected servers (not every server the bot is
    in at start-up: ``chunk_guilds_at_startup=False``).
    """

    def __init__(self, settings: Settings, worker: Worker) -> None:
        super().__init__(settings.model_copy(
            update={"discord_guild_id": None, "discord_owner_id": None}),
            intents=worker_intents(), chunk_guilds_at_startup=False)
        self.worker = worker
        self.inbound = asyncio.Lock()
        self.members_refused = False  # Discord refused the Server Members Intent
        # whole member lists are read one at a time, each deciding afresh whose list is
        # still unread: a join racing ``connect`` must not read the baseline twice
        self.reading = asyncio.Lock()

    @property
    def engine(self) -> Engine:
        return self.worker.engine

    async def setup_hook(self) -> None:
        """At login (every worker): buttons resolve. No start-up watchdog: only the
        lock holder connects the gateway, and it may wait for the lock indefinitely."""
        self.register_components()

    async def on_ready(self) -> None:
        """On the holder's every (re)connect: register slash commands once, then read
        the DMs owners wrote while no worker held the gateway."""
        if not self._started:
            self._started = True
            await self.sync_commands()
        for catch_up in (self.snapshot_members, self.catch_up_on_dms):
            try:
                await catch_up()
            except Exception:  # one failed catch-up must not stop the live DMs
                log.exception("%s failed after connecting; continuing", catch_up.__name__)

    async def submit(self, event: Event) -> None:
        """One inbound event at a time, so an owner's DMs are answered in order. After
        an owner's command, a server they connected by it has its first list read."""
        async with self.inbound:
            await self.worker.handle(event)
        if isinstance(event, CommandReceived):
            await self.read_unread_servers(event.owner_ref)

    def owner_of(self, user_id: int) -> DiscordOwner | None:
        ref = discord_ref(user_id)
        owner_id = queries.owner_id_of(self.engine, ref)
        return None if owner_id is None else DiscordOwner(user_id=user_id, ref=ref, id=owner_id)

    def dm_owners(self) -> list[DiscordOwner]:
        rows = queries.owners_with_prefix(self.engine, "discord:")
        return [DiscordOwner(user_id=user_id, ref=ref, id=owner_id) for owner_id, ref in rows
                if (user_id := discord_user_id(ref)) is not None]

    def last_read(self, owner: DiscordOwner | None = None) -> datetime | None:
        """Never read before: from the moment they were enrolled, so a first DM written
        while no worker held the gateway is still answered."""
        seen = super().last_read(owner)
        if seen is not None or owner is None:
            return seen
        enrolled = queries.owner_since(self.engine, owner.id)
        if enrolled is None:
            return None
        return enrolled if enrolled.tzinfo else enrolled.replace(tzinfo=UTC)

    def not_owner_text(self, user_id: int) -> str:
        return NOT_ENROLLED.format(user_id=user_id)

    # members of servers connected by chat ----------------------------------------------

    def without_members(self, exc: BaseException) -> bool:
        """Discord refused the Server Members Intent: go on without it (DMs still work;
        ``connect discord-server`` then says what the operator has to do). True when the
        gateway should simply be connected again."""
        refused = isinstance(exc, discord.PrivilegedIntentsRequired) or (
            isinstance(exc, discord.ConnectionClosed) and exc.code == 4014)
        if not refused or not self.intents.members:
            return False
        self._connection._intents = discord.Intents(self.intents.value & ~MEMBERS_FLAG)
        self.members_refused = True
        log.warning("Discord refused the Server Members Intent: members of servers connected "
                    "by chat are not watched until it is enabled (%s → your application → "
                    "Bot → Privileged Gateway Intents) and the worker restarted", PORTAL)
        return True

    def watching_members(self) -> bool:
        """Without the members intent a server's member list holds only the bot: reading
        it would make every member look gone."""
        return self.intents.members

    async def snapshot_members(self) -> None:
        """On every ready: each connected server's member list, for each owner who
        connected it (a reconnect's catch-up: joins and leaves missed while offline)."""
        if self.watching_members():
            async with self.reading:
                await self.read_member_lists(queries.watchers(self.engine, platform=PLATFORM))

    async def read_unread_servers(self, owner_ref: str) -> None:
        """The owner's server connected since its list was last read (just now, by
        ``connect discord-server``): read it, their quiet baseline the first time."""
        owner_id = queries.owner_id_of(self.engine, owner_ref)
        if owner_id is None or not self.watching_members():
            return
        try:
            await self.read_unread(owner_id=owner_id)
        except Exception:  # the next (re)connect reads it again
            log.exception("reading a newly connected server's members failed")

    async def read_unread(self, *, owner_id: int | None = None, external_id: str | None = None,
                          leaving_out: int | None = None) -> None:
        """The lists not read since their server was (last) connected, decided under
        the lock so that each is read once."""
        async with self.reading:
            unread = [w for w in queries.watchers(self.engine, platform=PLATFORM,
                                                  owner_id=owner_id, external_id=external_id)
                      if not w.synced]
            await self.read_member_lists(unread, leaving_out=leaving_out)

    async def read_member_lists(self, watchers: list[Watcher], *,
                                leaving_out: int | None = None) -> None:
        """Each server's list once (fetched if need be), handed to each of its owners;
        ``leaving_out``: a member who just joined, an arrival rather than baseline."""
        by_server: dict[str, list[Watcher]] = {}
        for watcher in watchers:
            by_server.setdefault(watcher.external_id, []).append(watcher)
        for server_id, owners in by_server.items():
            guild = self.get_guild(int(server_id)) if server_id.isdigit() else None
            if guild is None:
                log.warning("server %s was connected by chat but the bot is not in it; its "
                            "members are not watched", server_id)
                continue
            await self.fetch_member_list(guild)
            for watcher in owners:
                try:
                    await self.submit(self.member_list(guild, watcher, leaving_out))
                except Exception:  # one owner's failed sync must not cost the others theirs
                    log.exception("reading server %s's members for %s failed; the next "
                                  "(re)connect reads them again", server_id, watcher.owner_ref)

    def member_list(self, guild: discord.Guild, watcher: Watcher,
                    leaving_out: int | None) -> SnapshotReceived:
        """The server's members as this owner's connections; the first list is their
        quiet baseline and says so, later ones speak only of changes."""
        return SnapshotReceived(
            owner_ref=watcher.owner_ref, platform=PLATFORM, kind="member",
            profiles=[member_profile(m) for m in guild.members
                      if m.id != leaving_out and self.is_connection(m, watcher)],
            complete=guild.chunked, account_external_id=str(guild.id),
            account_handle=guild.name, summary=not watcher.baseline_done,
            account_id=watcher.account_id)

    async def fetch_member_list(self, guild: discord.Guild) -> None:
        """Every member, when Discord gives them in time (else the list is partial, and
        nobody is counted as gone)."""
        if not guild.chunked:
            with suppress(TimeoutError, discord.HTTPException, discord.ClientException):
                await asyncio.wait_for(guild.chunk(), CHUNK_TIMEOUT)

    @staticmethod
    def is_connection(member: discord.Member | discord.User, watcher: Watcher) -> bool:
        """A connection of this owner: not a bot, and not the owner themself."""
        return not member.bot and discord_ref(member.id) != watcher.owner_ref

    async def live_watchers(self, guild_id: int, *,
                            leaving_out: int | None = None) -> list[Watcher]:
        """The owners who connected this server, read now; an owner whose first list is
        still unread has it read first (``leaving_out`` a member who just joined, who
        is then an arrival, not baseline)."""
        if not self.watching_members():
            return []
        watchers = queries.watchers(self.engine, platform=PLATFORM, external_id=str(guild_id))
        if any(not w.synced for w in watchers):
            await self.read_unread(external_id=str(guild_id), leaving_out=leaving_out)
        return watchers

    async def on_member_join(self, member: discord.Member) -> None:
        if member.bot:
            return
        for watcher in await self.live_watchers(member.guild.id, leaving_out=member.id):
            if self.is_connection(member, watcher):
                await self.submit(NewConnection(
                    owner_ref=watcher.owner_ref, profile=member_profile(member),
                    kind="member", at=member.joined_at, account_id=watcher.account_id))

    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        """A leave; for an owner whose first list was read just now it changes nothing
        (they were not in it)."""
        if payload.user.bot:
            return
        for watcher in await self.live_watchers(payload.guild_id):
            if self.is_connection(payload.user, watcher):
                await self.submit(ConnectionLeft(
                    owner_ref=watcher.owner_ref, profile=member_profile(payload.user),
                    kind="member", account_id=watcher.account_id))

class ServerWelcomeSender:
    """Approved welcomes to members of servers connected by chat: a DM to the member,
    or a post in the welcome channel its owner named (``connect discord-server <id>
    <channel id>``), read afresh for each welcome. ``send <draft> dm|channel`` chooses."""

    platform = PLATFORM

    def __init__(self, client: discord.Client, engine: Engine) -> None:
        self.client = client
        self.engine = engine

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        """Through the server the member arrived on (the owner may have connected
        several, each with its own welcome channel or none)."""
        channel = queries.arrival_welcome_channel(self.engine, owner_id=handle.owner_id,
                                                  handle_id=handle.id, platform=PLATFORM)
        sender = DiscordWelcomeSender(self.client, channel, set_by=CHANNEL_BY_CHAT)
        return await sender.send_welcome(handle=handle, text=text, via=via)


# --- one gateway among many workers ---------------------------------------------------


async def hold_gateway(client: discord.Client, lock: SingletonLock, stop: asyncio.Event, *,
                       retry_seconds: float = RETRY_SECONDS,
                       check_seconds: float = CHECK_SECONDS) -> None:
    """Until ``stop``: whenever this worker can take the lock, connect the gateway and
    keep it while the lock is held; otherwise try again every ``retry_seconds``."""
    while not stop.is_set():
        if lock.try_acquire():
            log.info("this worker holds the Discord gateway")
            try:
                await connect_while_held(client, lock, stop, check_seconds)
            finally:
                lock.release()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_seconds)


async def connect_while_held(client: discord.Client, lock: SingletonLock, stop: asyncio.Event,
                             check_seconds: float) -> None:
    """The gateway connection, for as long as the lock is ours and we are not stopping.
    A fatal gateway error (a bad token, say) ends the worker with one line."""
    connection = asyncio.ensure_future(client.connect(reconnect=True))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not connection.done() and not stop.is_set():
            await asyncio.wait({connection, stopping}, timeout=check_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            if not connection.done() and not lock.still_held():
                log.warning("gave up the Discord gateway: the database lock was lost")
                break
    finally:
        stopping.cancel()
        await drop_gateway(client, connection)
    exc = connection.exception() if connection.done() and not connection.cancelled() else None
    if exc is None or (isinstance(client, WorkerDiscordClient) and client.without_members(exc)):
        return
    raise startup_error(exc) or exc


async def drop_gateway(client: discord.Client, connection: asyncio.Future) -> None:
    """Close the gateway but keep the HTTP session, so this worker still sends DMs."""
    connection.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await connection
    ws = getattr(client, "ws", None)
    if ws is not None and ws.open:
        with suppress(Exception):
            await ws.close(code=1000)


async def keep_gateway(client: discord.Client, lock: SingletonLock, stop: asyncio.Event) -> None:
    """``hold_gateway``; a fatal error stops the whole worker (``stop``), to be reported."""
    try:
        await hold_gateway(client, lock, stop)
    except BaseException:
        stop.set()
        raise


# --- wiring ------------------------------------------------------------------------------


async def log_in(client: discord.Client, token: str) -> None:
    """HTTP only: enough to DM anyone. A refused token is one line, not a traceback."""
    try:
        await client.login(token)
    except Exception as exc:
        error = startup_error(exc)
        if error is None:
            raise
        raise error from None


@asynccontextmanager
async def discord_route(settings: Settings, worker: Worker,
                        stop: asyncio.Event | None) -> AsyncIterator[DiscordSurface]:
    """Discord for every enrolled owner while the block runs: the surface to route
    ``discord:`` owners to, and (unless ``stop`` is None: ``--once``) the gateway
    whenever this worker wins it."""
    client = WorkerDiscordClient(settings, worker)
    gateway: asyncio.Task | None = None
    async with client:
        await log_in(client, secret(settings.discord_token))
        if stop is not None:
            lock = SingletonLock(worker.engine, GATEWAY_LOCK)
            gateway = asyncio.create_task(keep_gateway(client, lock, stop))
        try:
            yield DiscordSurface(client)
        finally:
            if gateway is not None:
                await finish(gateway)


async def finish(gateway: asyncio.Task) -> None:
    """Stop the gateway task; a fatal error it met (see ``keep_gateway``) is raised."""
    if not gateway.done():
        gateway.cancel()
    with suppress(asyncio.CancelledError):
        await gateway
