"""discord.py's client: its events become ``CommandReceived``, ``NewConnection``,
``ConnectionLeft`` and ``SnapshotReceived`` for the app; it decides nothing itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from sqlalchemy.engine import Engine

from bot import queries
from bot.adapters.discord import PLATFORM_ID as PLATFORM
from bot.adapters.discord.buttons import (
    BUTTON_COMMANDS,
    OPEN_DRAFT,
    SETTLED_DRAFT,
    DraftButton,
    EditDraftModal,
    already_decided,
    retire_buttons,
)
from bot.adapters.discord.slash import command_fingerprint, slash_commands
from bot.adapters.discord.surface import describe, open_dm
from bot.adapters.discord.text import member_profile
from bot.app import App
from bot.config import Settings
from bot.errors import UserError
from bot.events import (
    CommandReceived,
    ConnectionLeft,
    Event,
    NewConnection,
    SnapshotReceived,
)
from storage.models import Draft

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 90.0  # seconds to reach the gateway before giving up at start
CHUNK_TIMEOUT = 120.0  # seconds to fetch a large server's member list
CATCH_UP_LIMIT = 100  # DMs written while offline that are read on reconnect
DM_READ_JOB = "discord-dm-read"  # JobRun: when the last owner DM was handled
NOT_OWNER = "Sorry, I'm a personal assistant for one person, and only they can use me."
PORTAL = "https://discord.com/developers/applications"


@dataclass(frozen=True)
class DiscordOwner:
    """A Discord user who is an owner: their user id, owner_ref and owner row id."""

    user_id: int
    ref: str
    id: int


# --- the client ------------------------------------------------------------------------


class SerialApp(App):
    """The app, taking one event at a time.

    Discord events, button presses and the scheduler's sweeps arrive concurrently on
    one event loop; a handler may await the network (a welcome, a DM) and SQLite has
    one writer, so events are handled in turn. Source polls wait on the network
    without the lock, and only hand their results in through ``handle``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lock = asyncio.Lock()

    async def handle(self, event: Event) -> None:
        async with self.lock:
            await super().handle(event)

    async def sweep(self) -> int:
        async with self.lock:
            return await super().sweep()



def intents_for(settings: Settings) -> discord.Intents:
    """DMs need no privileged intent; members (privileged) only with a server to watch."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    intents.members = settings.discord_guild_id is not None
    return intents


class PlnbotClient(discord.Client):
    """discord.py's client, translating its events for ``App`` (set as ``client.app``)."""

    def __init__(self, settings: Settings, *, once: bool = False,
                 startup_timeout: float = STARTUP_TIMEOUT,
                 intents: discord.Intents | None = None, **options: Any) -> None:
        # plnbot never uses voice: its optional libraries are not worth a warning
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(intents=intents or intents_for(settings),
                         allowed_mentions=discord.AllowedMentions.none(), **options)
        self.settings = settings
        self.owner_user_id: int = settings.discord_owner_id or 0  # 0: none (workers)
        self.guild_id = settings.discord_guild_id
        self.once = once
        self.startup_timeout = startup_timeout
        self._app: App | None = None
        self.tree = app_commands.CommandTree(self)
        for command in slash_commands(self.run_slash):
            self.tree.add_command(command)
        self.fatal: UserError | None = None
        self.main_task: asyncio.Task | None = None
        self.scheduler = None
        self.declined: set[int] = set()
        self.seen: deque[int] = deque(maxlen=500)  # DMs handled, live or caught up
        self.watchdog: asyncio.Task | None = None
        self._connected = asyncio.Event()
        self._started = False

    @property
    def app(self) -> App:
        """The app this client hands its events to (set before it runs)."""
        if self._app is None:
            raise RuntimeError("the Discord client has no app yet")
        return self._app

    @app.setter
    def app(self, app: App) -> None:
        self._app = app

    @property
    def engine(self) -> Engine:
        return self.app.engine

    # lifecycle

    async def setup_hook(self) -> None:
        self.register_components()
        self.watchdog = asyncio.create_task(self.expect_connection(self.startup_timeout))
        await self.sync_commands()

    def register_components(self) -> None:
        """Buttons sent by any earlier run resolve again: their custom ids match."""
        self.add_dynamic_items(DraftButton)

    async def expect_connection(self, timeout: float) -> None:
        """discord.py retries an unreachable gateway forever; at start, give up clearly."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            self.finish(UserError(
                f"cannot reach Discord's gateway (no connection within {timeout:.0f} s); "
                "check the network or firewall (wss://gateway.discord.gg) and run plnbot again"
            ))

    async def on_connect(self) -> None:
        self._connected.set()

    def finish(self, error: UserError | None = None) -> None:
        """Stop running: ``serve`` returns, or raises ``error`` as the one line to print."""
        self.fatal = error
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()

    async def sync_commands(self) -> None:
        """Register the slash commands, only when they differ from Discord's copy."""
        local = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        try:
            remote = [command.to_dict() for command in await self.tree.fetch_commands()]
            if command_fingerprint(remote) != command_fingerprint(local):
                await self.tree.sync()
                log.info("registered %d slash commands with Discord", len(local))
        except discord.HTTPException as exc:
            log.warning("could not register slash commands (%s); DM commands still work",
                        exc.text or exc.status)

    async def on_ready(self) -> None:
        """First ready: check the setup, catch up, start the timers. Every ready (also
        after a reconnect that could not resume): re-read the member list."""
        first, self._started = not self._started, True
        if first:
            problem = await self.setup_problem()
            if problem is not None:
                self.finish(problem)
                return
        for catch_up in (self.snapshot_members, self.catch_up_on_dms):
            try:
                await catch_up()
            except Exception:  # one failed catch-up must not keep the bot from working
                log.exception("%s failed after connecting; continuing", catch_up.__name__)
        if first:
            await self.start_work()

    async def setup_problem(self) -> UserError | None:
        try:
            await self.fetch_user(self.owner_user_id)
        except discord.NotFound:
            return UserError(
                f"DISCORD_OWNER_ID={self.owner_user_id} is not a Discord user; copy your own "
                "id (Settings → Advanced → Developer Mode; right-click yourself → Copy User ID)"
            )
        except discord.HTTPException as exc:  # Discord hiccup: the outbox will retry DMs
            log.warning("could not look up DISCORD_OWNER_ID (%s)", describe(exc))
        if self.guild_id is not None and self.get_guild(self.guild_id) is None:
            return UserError(
                f"the bot is not in the server DISCORD_GUILD_ID={self.guild_id}; invite it "
                f"({PORTAL} → your application → OAuth2 → URL Generator, scopes "
                "bot + applications.commands) or correct the id"
            )
        return None

    async def start_work(self) -> None:
        """The app's lifecycle (sources, catch-up, timers); ``once`` stops after it."""
        self.scheduler = await self.app.start_work(once=self.once)
        if self.once:
            self.finish()

    async def submit(self, event: Event) -> None:
        await self.app.handle(event)

    # server members

    async def snapshot_members(self) -> None:
        guild = self.get_guild(self.guild_id) if self.guild_id else None
        if guild is not None:
            await self.snapshot_members_of(guild)

    async def snapshot_members_of(self, guild: discord.Guild) -> None:
        """The whole member list; "complete" only if Discord gave us every member, so
        that people who left while the bot was offline are found and nobody else."""
        if not guild.chunked:
            with suppress(TimeoutError, discord.HTTPException, discord.ClientException):
                await asyncio.wait_for(guild.chunk(), CHUNK_TIMEOUT)
        await self.submit(SnapshotReceived(
            owner_ref=self.settings.owner_ref, platform="discord", kind="member",
            profiles=[member_profile(m) for m in guild.members if self.is_person(m)],
            complete=guild.chunked, account_external_id=str(guild.id), account_handle=guild.name,
            summary=not self.baseline_recorded(),
        ))

    def baseline_recorded(self) -> bool:
        """After the first member list, a reconnect's re-read is silent unless
        something changed (no "no changes" DM on every reconnect)."""
        return queries.baseline_done(self.engine, owner_id=self.app.owner_id,
                                      platform=PLATFORM)

    def is_person(self, member: discord.Member | discord.User) -> bool:
        """A connection: not a bot, and not the owner in their own server."""
        return not member.bot and member.id != self.owner_user_id

    async def on_member_join(self, member: discord.Member) -> None:
        if member.guild.id != self.guild_id or not self.is_person(member):
            return
        await self.submit(NewConnection(
            owner_ref=self.settings.owner_ref, profile=member_profile(member), kind="member",
            at=member.joined_at,
        ))

    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        if payload.guild_id != self.guild_id or not self.is_person(payload.user):
            return
        await self.submit(ConnectionLeft(
            owner_ref=self.settings.owner_ref, profile=member_profile(payload.user), kind="member",
        ))

    # the owner talking

    def owner_of(self, user_id: int) -> DiscordOwner | None:
        """The owner this Discord user is, or None: here only DISCORD_OWNER_ID is."""
        if user_id != self.owner_user_id:
            return None
        return DiscordOwner(user_id=user_id, ref=self.settings.owner_ref, id=self.app.owner_id)

    def owner_id(self, owner: DiscordOwner | None) -> int:
        """The owner row of ``owner``, or of DISCORD_OWNER_ID when None."""
        found = owner or self.owner_of(self.owner_user_id)
        if found is None:
            raise LookupError("no owner for this Discord user")
        return found.id

    def dm_owners(self) -> list[DiscordOwner]:
        """Whose DMs to catch up on after (re)connecting."""
        owner = self.owner_of(self.owner_user_id)
        return [owner] if owner is not None else []

    def not_owner_text(self, user_id: int) -> str:
        """What a Discord user who is not an owner is told."""
        return NOT_OWNER

    async def on_message(self, message: discord.Message) -> None:
        """The owner's DMs are commands; other people's DMs get one polite note."""
        if message.author.bot or message.guild is not None or message.id in self.seen:
            return
        self.seen.append(message.id)
        owner = self.owner_of(message.author.id)
        if owner is None:
            await self.decline(message)
            return
        text = message.content.replace("\r\n", "\n").strip()
        if text.startswith("/"):
            text = text[1:]
        if text:
            await self.submit(CommandReceived(
                owner_ref=owner.ref, text=text, message_id=f"discord:{message.id}"
            ))
        self.mark_read(message.created_at, owner)

    async def catch_up_on_dms(self) -> None:
        """Discord does not replay DMs written while the bot was offline: read them now,
        oldest first, from the last one answered (the first run starts the record)."""
        for owner in self.dm_owners():
            await self.catch_up_with(owner)

    async def catch_up_with(self, owner: DiscordOwner) -> None:
        since = self.last_read(owner)
        if since is None:
            self.mark_read(discord.utils.utcnow(), owner)
            return
        try:
            channel = await open_dm(self, owner.user_id)
            missed = [m async for m in channel.history(
                after=since, oldest_first=True, limit=CATCH_UP_LIMIT)]
        except discord.HTTPException as exc:
            log.warning("could not read the DMs %s sent while offline (%s)", owner.ref,
                        describe(exc))
            return
        for message in missed:
            await self.on_message(message)

    def last_read(self, owner: DiscordOwner | None = None) -> datetime | None:
        owner_id = self.owner_id(owner)
        return queries.last_run(self.engine, owner_id=owner_id, job=DM_READ_JOB)

    def mark_read(self, at: datetime, owner: DiscordOwner | None = None) -> None:
        owner_id = self.owner_id(owner)
        queries.mark_run(self.engine, owner_id=owner_id, job=DM_READ_JOB, at=at)

    async def decline(self, message: discord.Message) -> None:
        """Say once per person (per run) that this bot is not theirs to use."""
        if message.author.id in self.declined:
            return
        self.declined.add(message.author.id)
        with suppress(discord.HTTPException):
            await message.channel.send(self.not_owner_text(message.author.id))

    async def interaction_owner(self, interaction: discord.Interaction) -> DiscordOwner | None:
        """The owner pressing or typing this; anyone else is told why not (None)."""
        owner = self.owner_of(interaction.user.id)
        if owner is None:
            await interaction.response.send_message(
                self.not_owner_text(interaction.user.id), ephemeral=True)
        return owner

    async def owner_only(self, interaction: discord.Interaction) -> bool:
        return await self.interaction_owner(interaction) is not None

    async def run_slash(self, interaction: discord.Interaction, line: str) -> None:
        """A slash command is the same line typed in the DM; the answer arrives there."""
        owner = await self.interaction_owner(interaction)
        if owner is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.submit(CommandReceived(
            owner_ref=owner.ref, text=line, message_id=f"discord:{interaction.id}"
        ))
        with suppress(discord.HTTPException):
            await interaction.delete_original_response()

    async def press_draft_button(
        self, interaction: discord.Interaction, action: str, draft_id: int
    ) -> None:
        """Only the presser's own draft is acted on; anyone else's reads as gone."""
        owner = await self.interaction_owner(interaction)
        if owner is None:
            return
        draft = self.find_draft(draft_id, owner)
        if draft is None or draft.status not in OPEN_DRAFT:
            await interaction.response.send_message(already_decided(draft_id, draft),
                                                    ephemeral=True)
            if draft is None or draft.status in SETTLED_DRAFT:
                await retire_buttons(interaction.message)
            return
        if action == "edit":
            await interaction.response.send_modal(EditDraftModal(draft_id, draft.text))
            return
        await interaction.response.defer()
        await self.decide(interaction, BUTTON_COMMANDS[action].format(id=draft_id), draft_id,
                          owner)

    async def submit_edit(self, interaction: discord.Interaction, draft_id: int, text: str) -> None:
        owner = await self.interaction_owner(interaction)
        if owner is None:
            return
        await interaction.response.defer()
        await self.decide(interaction, f"edit {draft_id} {text.strip()}", draft_id, owner)

    async def decide(self, interaction: discord.Interaction, line: str, draft_id: int,
                     owner: DiscordOwner) -> None:
        """Run the decision as a command; once the draft is settled, its buttons go."""
        await self.submit(CommandReceived(
            owner_ref=owner.ref, text=line, message_id=f"discord:{interaction.id}"
        ))
        draft = self.find_draft(draft_id, owner)
        if draft is None or draft.status in SETTLED_DRAFT:
            await retire_buttons(interaction.message)

    def find_draft(self, draft_id: int, owner: DiscordOwner | None = None) -> Draft | None:
        owner_id = self.owner_id(owner)
        return queries.draft_of(self.engine, owner_id=owner_id, draft_id=draft_id)
