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
from bot.adapters.discord.client import DiscordOwner, PlnbotClient
from bot.adapters.discord.run import startup_error
from bot.adapters.discord.surface import DiscordSurface
from bot.config import Settings, secret
from bot.events import Event
from bot.owners import discord_ref, discord_user_id
from bot.worker import Worker
from storage.singleton import SingletonLock

log = logging.getLogger(__name__)

GATEWAY_LOCK = "discord-gateway"
RETRY_SECONDS = 5.0  # how often a worker without the gateway tries to take it
CHECK_SECONDS = 5.0  # how often the holder checks it still holds the lock
NOT_ENROLLED = ("Sorry, I only work for people enrolled on this bot; ask whoever runs it "
                "to run `plnbot owner add discord:{user_id}`.")


class WorkerDiscordClient(PlnbotClient):
    """The Discord client of a worker: any enrolled owner, no server members.

    ``app`` is the ``Worker``: events go to ``Worker.handle``, which answers at once.
    Server members as connections stay a single-owner (``plnbot run``) feature.
    """

    def __init__(self, settings: Settings, worker: Worker) -> None:
        super().__init__(settings.model_copy(
            update={"discord_guild_id": None, "discord_owner_id": None}))
        self.worker = worker
        self.inbound = asyncio.Lock()

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
        try:
            await self.catch_up_on_dms()
        except Exception:  # a failed catch-up must not stop the live DMs
            log.exception("reading the DMs written while offline failed; continuing")

    async def submit(self, event: Event) -> None:
        """One inbound event at a time, so an owner's DMs are answered in order."""
        async with self.inbound:
            await self.worker.handle(event)

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
    if exc is not None:
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
