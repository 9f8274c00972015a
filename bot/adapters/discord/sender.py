"""Approved welcomes on Discord: a welcome-channel post, or a DM."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.adapters.discord.surface import describe
from bot.adapters.discord.text import nonce_for, split_message
from bot.ports import SendRefused, SendUncertain

if TYPE_CHECKING:
    from bot.config import Settings
    from storage.models import Handle

log = logging.getLogger(__name__)


# --- approved welcomes ---------------------------------------------------------------------


class DiscordWelcomeSender:
    """Delivers a welcome the owner approved: a post in the welcome channel that
    mentions the member, or a DM when the owner chose ``dm`` (or no channel is set).
    A member whose DMs are closed gets the channel post instead, and the owner is
    told; when nothing can take it, ``SendRefused`` says what to do."""

    platform = "discord"

    def __init__(self, client: discord.Client, channel_id: int | None, *,
                 set_by: str = "DISCORD_WELCOME_CHANNEL_ID") -> None:
        self.client = client
        self.channel_id = channel_id
        self.set_by = set_by  # how the owner names a welcome channel, for the refusals

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        """Post or DM ``text``; a connection that drops once a request is out is
        ``SendUncertain`` (Discord may have posted it), one never made is refused."""
        try:
            return await self._send(handle=handle, text=text, via=via)
        except aiohttp.ClientConnectorError as exc:
            raise SendRefused(f"I cannot reach Discord ({exc.os_error or type(exc).__name__}). "
                              "Try `send` again later.") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientOSError, TimeoutError) as exc:
            raise SendUncertain(f"{type(exc).__name__} from Discord") from None

    async def _send(self, *, handle: Handle, text: str, via: str | None) -> str:
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
                f"({self.set_by}); greet them in the server yourself, or set a "
                "welcome channel and send again."
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
        if self.channel_id is None:
            raise SendRefused(f"No welcome channel is set ({self.set_by}); "
                              "send it by `dm`, or set one.")
        try:
            channel = self.client.get_channel(self.channel_id) or await self.client.fetch_channel(
                self.channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                raise SendRefused(f"The welcome channel {self.channel_id} is not a channel "
                                  f"the bot can post in; give a text channel's id "
                                  f"({self.set_by}).")
            for index, part in enumerate(split_message(f"<@{member_id}> {text}")):
                await channel.send(part, allowed_mentions=mention,
                                   nonce=nonce_for(f"welcome:{self.channel_id}:{text}", index))
        except discord.NotFound as exc:
            raise SendRefused(f"The welcome channel {self.channel_id} ({self.set_by}) "
                              "does not exist or the bot cannot see it.") from exc
        except discord.Forbidden as exc:
            raise SendRefused("The bot may not post in the welcome channel; give it the "
                              "View Channel and Send Messages permissions there.") from exc
        except discord.HTTPException as exc:
            raise SendRefused(f"Discord did not take the post ({describe(exc)}); "
                              "try again later.") from exc
        return f"#{getattr(channel, 'name', self.channel_id)}"


class ConsoleDiscordSender(DiscordWelcomeSender):
    """The Discord sender for a process without the gateway (``plnbot console``): it
    logs in over HTTP on the first welcome, which is all a post or a DM needs."""

    def __init__(self, token: str, channel_id: int | None) -> None:
        super().__init__(discord.Client(intents=discord.Intents.none(),
                                        allowed_mentions=discord.AllowedMentions.none()),
                         channel_id)
        self._token = token

    async def _send(self, *, handle: Handle, text: str, via: str | None) -> str:
        if self.client.user is None:
            try:
                await self.client.login(self._token)
            except discord.LoginFailure:
                raise SendRefused("Discord rejected DISCORD_TOKEN; copy the bot token again "
                                  "and set DISCORD_TOKEN.") from None
            except discord.HTTPException as exc:
                raise SendRefused(f"Discord refused the login ({describe(exc)}). Try `send` "
                                  "again later.") from None
        return await super()._send(handle=handle, text=text, via=via)


def build_sender(settings: Settings) -> DiscordWelcomeSender | None:
    """The sender ``plnbot console`` uses when DISCORD_TOKEN is set (``plnbot run``
    builds its own over the connected client: ``run.build_app``)."""
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    if not token.strip():
        return None
    return ConsoleDiscordSender(token.strip(), settings.discord_welcome_channel_id)
