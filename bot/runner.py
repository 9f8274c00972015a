"""Long-running modes: the console session and the real bot (``plnbot run``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.adapters.console import calm_prompt_possible, owner_lines
from bot.app import App
from bot.events import CommandReceived

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Hide what start-up loaded from the garbage collector for good.

    Modules, the ORM's mappings, templates and rules live as long as the process, yet
    every full collection walked them all again: a pause of about 60 ms that landed on
    one command in fifty. Frozen, a full collection walks only what came later.
    """
    gc.collect()
    gc.freeze()


async def run_console(app: App) -> None:
    """Catch up on anything due, then answer the owner line by line until EOF, while
    reminders, nudges and arrivals (from a ``sync`` or ``import`` in another process)
    keep arriving as they come due."""
    freeze_startup_objects()
    async with live(app):
        await greet_new_owner(app)
        await answer_owner(app)


async def greet_new_owner(app: App) -> None:
    """A first run at a terminal starts with ``hello``: the settings worth setting
    first and how (scripts and ``--json`` see exactly what they saw before)."""
    if app.new_owner and calm_prompt_possible(json_mode=json_mode_of(app)):
        await app.handle(CommandReceived(owner_ref=app.settings.owner_ref, text="hello"))


def json_mode_of(app: App) -> bool:
    return bool(getattr(app.surface, "json_mode", True))


async def answer_owner(app: App) -> None:
    """Hand each line the owner writes to the app, until EOF (or Ctrl-D)."""
    async for line in owner_lines(json_mode=json_mode_of(app)):
        await app.handle(CommandReceived(owner_ref=app.settings.owner_ref, text=line))


@asynccontextmanager
async def live(app: App) -> AsyncIterator[None]:
    """The app's one lifecycle (``App.start_work``: poll its sources, catch up on what
    came due, then poll and sweep on timers) for as long as the block runs, so a reminder,
    a nudge, the digest or a message another process left in the outbox reaches the owner
    of a console or demo as it comes due, as in ``plnbot run``."""
    scheduler = await app.start_work(once=False)
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def configured_sources(settings) -> list:
    """Every connection source whose configuration is present (see config.example.env).

    Each registered platform's adapter may offer ``build_source(settings)``, returning a
    source or None when its platform is not configured.
    """
    from bot import platforms

    sources = []
    for platform in platforms.registry().values():
        source = platform.build_source(settings)
        if source is not None:
            sources.append(source)
    return sources


def configured_senders(settings) -> dict:
    """The welcome senders of every configured platform, built as ``plnbot run`` builds
    them, for ``plnbot console`` (which answers drafts but polls nothing)."""
    from bot import platforms
    from bot.ports import senders_of

    senders = senders_of(configured_sources(settings))
    for platform in platforms.registry().values():
        if platform.id not in senders:
            sender = platform.build_sender(settings)
            if sender is not None:
                senders[platform.id] = sender
    return senders


def close_sources(sources) -> None:
    """Stop what sources run in the background (e.g. the Mastodon stream)."""
    for source in sources:
        close = getattr(source, "close", None)
        if close is not None:
            close()


async def run_bot(settings, db_url: str | None, *, once: bool, as_json: bool) -> None:
    """The owner's chat surface is Discord DMs when ``DISCORD_TOKEN`` is set, else the
    console (stdin/stdout)."""
    from bot.adapters.console import ConsoleSurface
    from bot.app import open_database

    engine = open_database(settings, db_url)
    sources = configured_sources(settings)
    try:
        if settings.discord_token is not None and settings.discord_token.get_secret_value():
            from bot.adapters.discord.run import run_discord

            freeze_startup_objects()
            await run_discord(settings, engine, sources=sources, once=once)
            return
        app = App(settings=settings, engine=engine, surface=ConsoleSurface(json_mode=as_json),
                  sources=sources)
        await _run_app(app, settings, once=once)
    finally:
        close_sources(sources)


async def _run_app(app: App, settings, *, once: bool) -> None:
    freeze_startup_objects()
    connected = connected_accounts(settings, app.engine, app.surface, app.worker)
    scheduler = await app.start_work(once=once, also=[
        ("poll connected", connected.poll_due, CONNECTED_POLL_SECONDS)])
    if scheduler is None:
        return
    try:
        if sys.stdin.isatty():
            await answer_owner(app)
        else:
            await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)


async def run_worker(settings, db_url: str | None, *, once: bool, as_json: bool) -> None:
    """Serve every owner on the database, sharing the work with any other workers.

    Owners enrolled as ``discord:<user id>`` talk to the bot by Discord DM when
    ``DISCORD_TOKEN`` is set; every other owner's messages go to the console. The
    configured sources (the ``PLNBOT_OWNER``'s accounts) are polled too, under account
    leases, so several identical workers never poll one account twice.
    """
    from bot.adapters.console import ConsoleSurface
    from bot.app import open_database
    from bot.worker import RoutingSurface, Worker

    engine = open_database(settings, db_url)
    surface = RoutingSurface(default=ConsoleSurface(json_mode=as_json, show_owner=True))
    worker = Worker(settings=settings, engine=engine, surface=surface)
    log.info("worker %s serving every owner on the database", worker.id)
    freeze_startup_objects()
    stop = None if once else stop_on_signals()
    async with discord_for_workers(settings, worker, stop) as discord_surface:
        if discord_surface is not None:
            surface.routes["discord"] = discord_surface
        await _serve_all(settings, worker, surface, stop)


@asynccontextmanager
async def discord_for_workers(settings, worker, stop):
    """The ``discord`` route while the block runs (None without DISCORD_TOKEN)."""
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        yield None
        return
    from bot.adapters.discord_worker import ServerWelcomeSender, discord_route

    async with discord_route(settings, worker, stop) as discord_surface:
        # ``connect discord-server`` checks the server with this client, and members of
        # connected servers get their approved welcomes through it
        worker.dispatcher.connector.discord = discord_surface.client
        worker.dispatcher.senders.setdefault(
            "discord", ServerWelcomeSender(discord_surface.client, worker.engine))
        yield discord_surface


async def _serve_all(settings, worker, surface, stop) -> None:
    """Poll the configured sources and serve owners: one pass (``stop`` None) or until
    ``stop`` is set."""
    from bot.scheduler import build_scheduler

    connected = connected_accounts(settings, worker.engine, surface, worker.id)
    connected.stop = stop
    await connected.poll_due()
    jobs: list[tuple[str, Callable[[], Awaitable[object]], int]] = [
        ("poll connected", connected.poll_due, CONNECTED_POLL_SECONDS)]
    sources = configured_sources(settings)
    if sources:  # only then is PLNBOT_OWNER one of the owners here
        app = App(settings=settings, engine=worker.engine, surface=surface, sources=sources,
                  worker=worker.id)
        await app.poll_sources()
        jobs.append(("poll", app.poll_sources, settings.poll_minutes * 60))
    if stop is None:
        await worker.drain()
        return
    scheduler = build_scheduler(jobs)
    scheduler.start()
    try:
        # Idle no longer than a lease, so a dead worker's owners are picked up promptly.
        idle = min(settings.sweep_seconds, settings.lease_seconds, 5)
        await worker.run_forever(stop, idle_seconds=idle)
    finally:
        scheduler.shutdown(wait=False)


# How often a process looks for chat-connected accounts whose poll is due (each one is
# polled every PLNBOT_POLL_MINUTES; this only bounds how late a poll may start).
CONNECTED_POLL_SECONDS = 30


def connected_accounts(settings, engine, surface, worker: str):
    """Polls every owner's accounts connected by chat (bot/connected.py)."""
    from bot.connected import ConnectedAccounts

    return ConnectedAccounts(settings=settings, engine=engine, surface=surface, worker=worker)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT, so a stopping worker finishes the owner it is
    serving and gives its leases back instead of leaving them to expire."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
