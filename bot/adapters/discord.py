"""Discord: the owner's chat surface, server members as connections, approved welcomes.

The only module that imports discord.py. It translates in both directions and
decides nothing itself:

- owner DMs, slash commands and the Send / Edit / Skip buttons on new-connection
  DMs all become ``CommandReceived`` lines, so every way of asking runs the same
  command with the same replies;
- member joins, leaves and the member list seen on (re)connect become
  ``NewConnection`` / ``ConnectionLeft`` / ``SnapshotReceived`` for the sync engine;
- ``DiscordSurface`` DMs the owner whatever the outbox delivers (split at Discord's
  2,000 characters, charts attached, the idempotency key as the message nonce);
- ``DiscordWelcomeSender`` posts an approved welcome in the welcome channel, or
  DMs the member when the owner chose that.

Events are handled one at a time (``SerialApp``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord import app_commands
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.adapters.console import LABELS
from bot.adapters.discord_markdown import escape_untrusted
from bot.adapters.translate import discord_profile
from bot.app import App
from bot.cli import UserError
from bot.config import Settings
from bot.context import OutgoingMessage, SendRefused
from bot.events import (
    CommandReceived,
    ConnectionLeft,
    Event,
    NewConnection,
    Profile,
    SnapshotReceived,
)
from bot.owners import discord_user_id
from bot.scheduler import build_scheduler
from handlers.commands import CommandSpec, unique_specs
from handlers.periodic import last_run, mark_run
from storage.db import session_scope
from storage.models import Account, Draft, Owner

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord's limit for a message's content
NONCE_LENGTH = 25  # Discord's limit for a message nonce
STARTUP_TIMEOUT = 90.0  # seconds to reach the gateway before giving up at start
CHUNK_TIMEOUT = 120.0  # seconds to fetch a large server's member list
CATCH_UP_LIMIT = 100  # DMs written while offline that are read on reconnect
DM_READ_JOB = "discord-dm-read"  # JobRun: when the last owner DM was handled
NOT_OWNER = "Sorry, I'm a personal assistant for one person, and only they can use me."
PORTAL = "https://discord.com/developers/applications"


# --- text going to Discord ------------------------------------------------------------


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into messages of at most ``limit`` characters.

    Cuts fall on a paragraph break, else a line break, else a space, so words and
    links stay whole; only a single token longer than ``limit`` has to be cut
    inside. A code block cut in two is closed and reopened so both halves render.
    """
    parts: list[str] = []
    rest = text.strip()
    while rest:
        room = limit - 4 if "```" in rest else limit
        if len(rest) <= limit and rest.count("```") % 2 == 0:
            parts.append(rest)
            break
        head, rest = _cut(rest, room)
        if head.count("```") % 2:
            head, rest = head + "\n```", "```\n" + rest
        parts.append(head)
    return parts


def _cut(text: str, room: int) -> tuple[str, str]:
    """The longest head up to ``room`` that ends at whitespace, and the rest."""
    if len(text) <= room:
        return text, ""
    window = text[: room + 1]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > room // 4 or (separator == " " and at > 0):
            return window[:at].rstrip(), text[at + len(separator):].lstrip("\n ")
    return text[:room], text[room:]


def nonce_for(key: str, part: int = 0) -> str:
    """A stable nonce (≤ 25 characters) per message part: Discord drops a repeat of it."""
    digest = hashlib.blake2b(f"{key}#{part}".encode(), digest_size=16).hexdigest()
    return digest[:NONCE_LENGTH]


def surface_text(message: OutgoingMessage) -> str:
    """The owner's DM for one outbox message: its label in bold, then the text."""
    label = LABELS.get(message.kind)
    text = escape_untrusted(message.text, message.fields)
    if label and message.kind != "new_connection":
        text = f"**{label}:** {text}"
    image = message.fields.get("image")
    if image and not Path(str(image)).is_file():
        text += f"\n(The chart {image} is missing, so it is not attached.)"
    return text


# --- discord.py objects → normalised events ---------------------------------------------


def member_payload(member: discord.Member | discord.User) -> dict[str, Any]:
    """The Discord API's own member shape, as ``plnbot sync --platform discord`` reads it."""
    roles = [role.name for role in getattr(member, "roles", None) or []]
    joined = getattr(member, "joined_at", None)
    return {
        "user": {
            "id": str(member.id),
            "username": member.name,
            "global_name": member.global_name,
            "bot": bool(member.bot),
        },
        "nick": getattr(member, "nick", None),
        "roles": roles,
        "joined_at": joined.isoformat() if joined else None,
    }


def member_profile(member: discord.Member | discord.User) -> Profile:
    return discord_profile(member_payload(member))


# --- the Send / Edit / Skip buttons ------------------------------------------------------

# A draft the owner can still send, edit or skip (an expired one too, as `drafts` shows
# it), and one that is done with, whose buttons are taken away.
OPEN_DRAFT = ("pending", "expired", "uncertain")
SETTLED_DRAFT = ("sent", "skipped")
DRAFT_BUTTON = r"plnbot:draft:(?P<action>send|senddm|edit|skip):(?P<draft_id>[0-9]{1,18})"
BUTTON_LOOKS = {
    "send": ("Send", discord.ButtonStyle.success),
    "senddm": ("Send as DM", discord.ButtonStyle.success),
    "edit": ("Edit", discord.ButtonStyle.primary),
    "skip": ("Skip", discord.ButtonStyle.secondary),
}
# The chat command each button runs (Discord members: "Send" posts in the welcome
# channel, "Send as DM" writes to them directly).
BUTTON_COMMANDS = {"send": "send {id}", "senddm": "send {id} dm", "skip": "skip {id}"}


class DraftButton(discord.ui.DynamicItem[discord.ui.Button], template=DRAFT_BUTTON):
    """A decision on one draft; the draft id lives in the custom id, so the button
    still works after a restart (registered with ``Client.add_dynamic_items``)."""

    def __init__(self, action: str, draft_id: int) -> None:
        label, style = BUTTON_LOOKS[action]
        button = discord.ui.Button(
            label=label, style=style, custom_id=f"plnbot:draft:{action}:{draft_id}"
        )
        super().__init__(button)
        self.action = action
        self.draft_id = draft_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /) -> DraftButton:
        return cls(match["action"], int(match["draft_id"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await interaction.client.owner_only(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.press_draft_button(interaction, self.action, self.draft_id)


def draft_view(draft_id: int, *, offer_dm: bool = False) -> discord.ui.View:
    """Send / Edit / Skip, and "Send as DM" where the owner has that choice."""
    view = discord.ui.View(timeout=None)
    for action in BUTTON_LOOKS:
        if action != "senddm" or offer_dm:
            view.add_item(DraftButton(action, draft_id))
    return view


class EditDraftModal(discord.ui.Modal):
    """The draft in a text box; submitting it is ``edit <id> <text>``."""

    def __init__(self, draft_id: int, text: str) -> None:
        super().__init__(title=f"Edit draft #{draft_id}", timeout=None)
        self.draft_id = draft_id
        self.text = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, default=text[:4000], max_length=4000
        )
        self.add_item(discord.ui.Label(text="Your welcome", component=self.text))

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        await interaction.client.submit_edit(interaction, self.draft_id, self.text.value)


# --- slash commands, generated from the command registry ----------------------------

SLASH_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
DM_ONLY = app_commands.AppCommandContext(guild=False, dm_channel=True, private_channel=False)
SlashRunner = Callable[[discord.Interaction, str], Awaitable[None]]


def clip(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slash_commands(run: SlashRunner) -> list[app_commands.Command]:
    """One slash command per chat command: its summary as description, usage as hint."""
    commands = []
    for spec in unique_specs():
        if SLASH_NAME.match(spec.name):
            commands.append(slash_command(spec, run))
        else:
            log.warning("chat command %r cannot be a Discord slash command name", spec.name)
    return commands


def slash_command(spec: CommandSpec, run: SlashRunner) -> app_commands.Command:
    return app_commands.Command(
        name=spec.name,
        description=clip(spec.summary or spec.usage),
        callback=_slash_callback(spec, run),
        allowed_contexts=DM_ONLY,
    )


def _slash_callback(spec: CommandSpec, run: SlashRunner):
    """A callback whose one optional/required ``arguments`` string mirrors the usage."""
    usage = spec.usage.strip()
    if usage == spec.name:

        async def bare(interaction: discord.Interaction) -> None:
            await run(interaction, spec.name)

        return bare
    if "<" in usage:

        async def required(interaction: discord.Interaction, arguments: str) -> None:
            await run(interaction, f"{spec.name} {arguments}")

        return app_commands.describe(arguments=clip(usage))(required)

    async def optional(interaction: discord.Interaction, arguments: str = "") -> None:
        await run(interaction, f"{spec.name} {arguments}".strip())

    return app_commands.describe(arguments=clip(usage))(optional)


def command_fingerprint(payloads: list[dict[str, Any]]) -> set[tuple]:
    """What matters of registered commands, to sync only when something changed."""
    return {
        (
            p["name"], p.get("description") or "",
            tuple((o["name"], o.get("description") or "", bool(o.get("required")))
                  for o in p.get("options") or []),
            tuple(sorted(p.get("contexts") or [])),
        )
        for p in payloads
    }


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
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        # plnbot never uses voice: its optional libraries are not worth a warning
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(intents=intents_for(settings),
                         allowed_mentions=discord.AllowedMentions.none())
        self.settings = settings
        self.owner_user_id = settings.discord_owner_id
        self.guild_id = settings.discord_guild_id
        self.once = once
        self.startup_timeout = startup_timeout
        self.app: App | None = None
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
        """Catch up (sources, due work, the outbox), then keep the timers running."""
        app = self.app
        await app.poll_sources()
        await app.catch_up()
        if self.once:
            self.finish()
            return
        self.scheduler = build_scheduler([
            ("sweep", app.sweep, self.settings.sweep_seconds),
            ("poll", app.poll_sources, self.settings.poll_minutes * 60),
        ])
        self.scheduler.start()

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
        with Session(self.app.engine) as session:
            account = session.exec(select(Account).where(
                Account.owner_id == self.app.owner_id, Account.platform == "discord",
            )).first()
            return account is not None and account.baseline_done

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
        owner_id = (owner or self.owner_of(self.owner_user_id)).id
        with session_scope(self.app.engine) as session:
            row = session.get(Owner, owner_id)
            return last_run(session, owner=row, job=DM_READ_JOB)

    def mark_read(self, at: datetime, owner: DiscordOwner | None = None) -> None:
        owner_id = (owner or self.owner_of(self.owner_user_id)).id
        with session_scope(self.app.engine) as session:
            row = session.get(Owner, owner_id)
            seen = last_run(session, owner=row, job=DM_READ_JOB)
            if seen is None or at > seen:
                mark_run(session, owner=row, job=DM_READ_JOB, at=at)

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
        owner_id = (owner or self.owner_of(self.owner_user_id)).id
        with Session(self.app.engine, expire_on_commit=False) as session:
            draft = session.get(Draft, draft_id)
            return draft if draft is not None and draft.owner_id == owner_id else None


def already_decided(draft_id: int, draft: Draft | None) -> str:
    if draft is None:
        return f"There is no draft #{draft_id} any more."
    if draft.status == "sending":
        return f"Draft #{draft_id} is being sent right now."
    return f"Draft #{draft_id} was already {draft.status}."


async def retire_buttons(message: discord.Message | None) -> None:
    if message is None:
        return
    with suppress(discord.HTTPException):
        await message.edit(view=None)


# --- the owner's chat surface ------------------------------------------------------------


class DiscordUnavailable(Exception):
    """The owner cannot be reached on Discord right now; the outbox will try again."""


async def open_dm(client: discord.Client, user_id: int) -> discord.DMChannel:
    user = client.get_user(user_id) or await client.fetch_user(user_id)
    return user.dm_channel or await user.create_dm()


class DiscordSurface:
    """Outbox messages as DMs. Raising leaves a message in the outbox.

    With ``owner_user_id`` every message goes to that one person (``plnbot run``);
    without it, each goes to the user its ``owner_ref`` names (``discord:<user id>``),
    so one surface serves every enrolled owner (``plnbot run --worker``).
    """

    def __init__(self, client: discord.Client, owner_user_id: int | None = None, *,
                 welcome_channel: bool = False) -> None:
        self.client = client
        self.owner_user_id = owner_user_id
        self.welcome_channel = welcome_channel  # member welcomes: channel post or DM
        self.channels: dict[int, discord.abc.Messageable] = {}  # user id → opened DM

    @property
    def channel(self) -> discord.abc.Messageable | None:
        """The single owner's DM channel, once opened."""
        return self.channels.get(self.owner_user_id)

    @channel.setter
    def channel(self, channel: discord.abc.Messageable) -> None:
        self.channels[self.owner_user_id] = channel

    async def send(self, message: OutgoingMessage) -> None:
        channel = await self.owner_channel(self.recipient(message))
        parts = split_message(surface_text(message)) or ["…"]
        for index, part in enumerate(parts):
            extras = self.attachments(message) if index == len(parts) - 1 else {}
            await self.post(channel, part, nonce=nonce_for(message.idempotency_key, index),
                            **extras)

    def recipient(self, message: OutgoingMessage) -> int:
        """Whom to DM: the one owner, or the Discord user the owner_ref names."""
        if self.owner_user_id is not None:
            return self.owner_user_id
        user_id = discord_user_id(message.owner_ref)
        if user_id is None:
            raise DiscordUnavailable(f"owner {message.owner_ref!r} is not a Discord user")
        return user_id

    async def owner_channel(self, user_id: int) -> discord.abc.Messageable:
        if user_id in self.channels:
            return self.channels[user_id]
        if self.client.user is None:
            raise DiscordUnavailable("not logged in to Discord yet")
        try:
            self.channels[user_id] = await open_dm(self.client, user_id)
        except discord.HTTPException as exc:
            raise DiscordUnavailable(f"cannot open a DM with {user_id}: {describe(exc)}") from exc
        return self.channels[user_id]

    async def post(self, channel, content: str, **kwargs: Any) -> None:
        try:
            await channel.send(content, **kwargs)
        except discord.Forbidden as exc:
            reason = (f"Discord will not let the bot DM you ({describe(exc)}): share a server "
                      "with the bot and allow direct messages from its members")
            log.warning("cannot DM the owner: %s", reason)
            raise DiscordUnavailable(reason) from exc

    def attachments(self, message: OutgoingMessage) -> dict[str, Any]:
        """The draft buttons and the chart, for the last part of a message."""
        extras: dict[str, Any] = {}
        draft_id = message.fields.get("draft_id")
        if message.kind == "new_connection" and isinstance(draft_id, int):
            offer_dm = self.welcome_channel and message.fields.get("platform") == "discord"
            extras["view"] = draft_view(draft_id, offer_dm=offer_dm)
        image = message.fields.get("image")
        if image and Path(str(image)).is_file():
            extras["file"] = discord.File(str(image), filename=Path(str(image)).name)
        return extras


def describe(exc: discord.HTTPException) -> str:
    return f"HTTP {exc.status}" + (f", {exc.text}" if exc.text else "")


# --- approved welcomes ---------------------------------------------------------------------


class DiscordWelcomeSender:
    """Delivers a welcome the owner approved: a post in the welcome channel that
    mentions the member, or a DM when the owner chose ``dm`` (or no channel is set).
    A member whose DMs are closed gets the channel post instead, and the owner is
    told; when nothing can take it, ``SendRefused`` says what to do."""

    platform = "discord"

    def __init__(self, client: discord.Client, channel_id: int | None) -> None:
        self.client = client
        self.channel_id = channel_id

    async def send_welcome(self, *, handle: Any, text: str, via: str | None = None) -> str:
        if via not in (None, "channel", "dm"):
            raise SendRefused(f"I can send Discord welcomes by `channel` or `dm`, not {via!r}.")
        if self.client.user is None:
            raise SendRefused("Discord is not connected right now; try again in a minute.")
        member_id, name = int(handle.external_id), handle.display_handle or handle.handle
        if via == "channel" or (via is None and self.channel_id is not None):
            where = await self.post_in_channel(member_id, text)
            return f"Posted your welcome to {name} in {where}."
        try:
            await self.direct_message(member_id, text)
        except discord.Forbidden:
            return await self.fall_back_to_channel(member_id, name, text)
        return f"Sent your welcome to {name} as a Discord DM."

    async def fall_back_to_channel(self, member_id: int, name: str, text: str) -> str:
        if self.channel_id is None:
            raise SendRefused(
                f"{name} does not accept DMs from the bot and no welcome channel is set "
                "(DISCORD_WELCOME_CHANNEL_ID), so nothing was sent; greet them in the server "
                "yourself, or set a welcome channel and send again."
            )
        where = await self.post_in_channel(member_id, text)
        return f"{name} does not accept DMs from the bot, so I posted your welcome in {where}."

    async def direct_message(self, member_id: int, text: str) -> None:
        try:
            user = self.client.get_user(member_id) or await self.client.fetch_user(member_id)
            for index, part in enumerate(split_message(text)):
                await user.send(part, nonce=nonce_for(f"welcome:{member_id}:{text}", index))
        except discord.Forbidden:
            raise
        except discord.HTTPException as exc:
            raise SendRefused(f"Discord did not take the DM ({describe(exc)}); "
                              "try again later.") from exc

    async def post_in_channel(self, member_id: int, text: str) -> str:
        mention = discord.AllowedMentions(
            users=[discord.Object(id=member_id)], everyone=False, roles=False
        )
        try:
            channel = self.client.get_channel(self.channel_id) or await self.client.fetch_channel(
                self.channel_id)
            for index, part in enumerate(split_message(f"<@{member_id}> {text}")):
                await channel.send(part, allowed_mentions=mention,
                                   nonce=nonce_for(f"welcome:{self.channel_id}:{text}", index))
        except discord.NotFound as exc:
            raise SendRefused(f"The welcome channel DISCORD_WELCOME_CHANNEL_ID={self.channel_id} "
                              "does not exist or the bot cannot see it.") from exc
        except discord.Forbidden as exc:
            raise SendRefused("The bot may not post in the welcome channel; give it the "
                              "View Channel and Send Messages permissions there.") from exc
        except discord.HTTPException as exc:
            raise SendRefused(f"Discord did not take the post ({describe(exc)}); "
                              "try again later.") from exc
        return f"#{getattr(channel, 'name', self.channel_id)}"


# --- running ---------------------------------------------------------------------------------


def startup_error(exc: BaseException) -> UserError | None:
    """The one line to print for a failure at start, or None for a real bug."""
    if isinstance(exc, discord.LoginFailure):
        return UserError(
            "Discord rejected DISCORD_TOKEN; copy the bot token again "
            f"({PORTAL} → your application → Bot → Reset Token) and set DISCORD_TOKEN"
        )
    if isinstance(exc, discord.PrivilegedIntentsRequired) or (
        isinstance(exc, discord.ConnectionClosed) and exc.code in (4013, 4014)
    ):
        return UserError(
            "Discord refused the Server Members Intent that DISCORD_GUILD_ID needs; enable it "
            f"({PORTAL} → your application → Bot → Privileged Gateway Intents → "
            "Server Members Intent) or unset DISCORD_GUILD_ID"
        )
    if isinstance(exc, discord.ConnectionClosed):
        return UserError(f"Discord closed the connection (code {exc.code}: {exc.reason}); "
                         "check DISCORD_TOKEN and run plnbot again")
    if isinstance(exc, discord.DiscordServerError):
        return UserError(f"Discord is having problems ({describe(exc)}); try again in a few "
                         "minutes")
    if isinstance(exc, discord.HTTPException):
        return UserError(f"Discord refused the login ({describe(exc)}); check DISCORD_TOKEN")
    if isinstance(exc, discord.GatewayNotFound | aiohttp.ClientError | OSError | TimeoutError):
        reason = str(exc) or type(exc).__name__
        return UserError(f"cannot reach Discord ({reason}); check the network connection and "
                         "run plnbot again")
    return None


def check_settings(settings: Settings) -> None:
    if settings.discord_owner_id is None:
        raise UserError(
            "DISCORD_TOKEN is set but DISCORD_OWNER_ID is not; set it to your own Discord user "
            "id (Developer Mode → right-click yourself → Copy User ID) — see config.example.env"
        )


def build_app(settings: Settings, engine: Engine, client: PlnbotClient, *,
              sources: list | tuple = ()) -> App:
    """The app with Discord as its chat surface and as the sender of Discord welcomes."""
    app = SerialApp(
        settings=settings, engine=engine,
        surface=DiscordSurface(
            client, settings.discord_owner_id,
            welcome_channel=settings.discord_welcome_channel_id is not None,
        ),
        senders={"discord": DiscordWelcomeSender(client, settings.discord_welcome_channel_id)},
        sources=sources,
    )
    client.app = app
    return app


async def run_discord(settings: Settings, engine: Engine, *, sources: list | tuple = (),
                      once: bool = False) -> None:
    """``plnbot run`` with Discord: until stopped, or (``once``) one catch-up."""
    check_settings(settings)
    client = PlnbotClient(settings, once=once)
    build_app(settings, engine, client, sources=sources)
    await serve(client, settings.discord_token.get_secret_value())


async def serve(client: PlnbotClient, token: str) -> None:
    """Run the client; a start-up failure becomes one ``UserError`` line."""
    try:
        async with client:
            client.main_task = asyncio.ensure_future(client.start(token))
            try:
                await client.main_task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # we were interrupted; ``finish`` only stops the client
    except Exception as exc:
        error = startup_error(exc)
        if error is None:
            raise
        raise error from None
    finally:
        if client.scheduler is not None:
            client.scheduler.shutdown(wait=False)
    if client.fatal is not None:
        raise client.fatal
