"""The owner's chat surface on Discord: outbox messages as DMs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import discord

from bot.adapters.discord.buttons import draft_view
from bot.adapters.discord.text import nonce_for, split_message, surface_text
from bot.context import OutgoingMessage
from bot.owners import discord_user_id

log = logging.getLogger(__name__)


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
        return self.channels.get(self.owner_user_id) if self.owner_user_id else None

    @channel.setter
    def channel(self, channel: discord.abc.Messageable) -> None:
        if self.owner_user_id is None:
            raise DiscordUnavailable("a surface serving many owners has no one channel")
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
