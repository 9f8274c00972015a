"""``connect discord-server <id> [<channel id>]``: only a server the bot is in, only for
an owner who may manage it (Discord's Manage Server permission), and only a welcome
channel that is one of its text channels the bot may post in, as discord.py sees them."""

from __future__ import annotations

import discord

from bot.connecting import ConnectedAccount, ConnectRefused

MEMBERS_INTENT = ("The bot cannot see server members yet: whoever runs it has to enable "
                  "the Server Members Intent (Discord developer portal → the application "
                  "→ Bot → Privileged Gateway Intents) and restart it. Then connect the "
                  "server again.")


async def check_server(client: discord.Client, guild_id: int, owner_ref: str,
                       channel_id: int | None = None) -> ConnectedAccount:
    """The server as a connectable account, or ConnectRefused saying why not."""
    scheme, _, user = owner_ref.partition(":")
    if scheme != "discord" or not user.isdigit():
        raise ConnectRefused("Only an owner who talks to the bot on Discord can connect a "
                             "Discord server.")
    if getattr(client, "members_refused", False):
        raise ConnectRefused(MEMBERS_INTENT)
    guild = await _guild(client, guild_id)
    try:
        member = guild.get_member(int(user)) or await guild.fetch_member(int(user))
    except discord.NotFound:
        raise ConnectRefused(f"You are not a member of {guild.name}.") from None
    except discord.HTTPException:
        raise ConnectRefused("Discord did not answer; try again in a moment.") from None
    if not member.guild_permissions.manage_guild:
        raise ConnectRefused(f"You need the Manage Server permission in {guild.name} to "
                             "connect it.")
    channel = None if channel_id is None else await welcome_channel(client, guild, channel_id)
    return ConnectedAccount(external_id=str(guild.id), handle=guild.name, credentials={},
                            welcome_channel=channel)


async def _guild(client: discord.Client, guild_id: int) -> discord.Guild:
    guild = client.get_guild(guild_id)
    if guild is not None:
        return guild
    try:  # a worker without the gateway has no guild cache; ask over HTTP
        return await client.fetch_guild(guild_id)
    except discord.HTTPException:
        raise ConnectRefused(f"The bot is not in a server with the id {guild_id}. Invite "
                             "it first (see the README, Discord), then try again.") from None


async def welcome_channel(client: discord.Client, guild: discord.Guild, channel_id: int) -> str:
    """``channel_id`` when it is a text channel of ``guild`` the bot may post in."""
    try:
        channel = guild.get_channel(channel_id) or await client.fetch_channel(channel_id)
    except discord.HTTPException:
        channel = None
    if channel is None or getattr(getattr(channel, "guild", None), "id", None) != guild.id:
        raise ConnectRefused(f"There is no channel {channel_id} in {guild.name} that the bot "
                             "can see; copy the welcome channel's id (right-click it → Copy "
                             "Channel ID), or leave it out to send welcomes as DMs.")
    if not isinstance(channel, discord.TextChannel):
        raise ConnectRefused(f"#{getattr(channel, 'name', channel_id)} is not a text "
                             "channel; name a text channel "
                             "for welcomes, or leave it out to send them as DMs.")
    me = guild.me
    if me is not None and not channel.permissions_for(me).send_messages:
        raise ConnectRefused(f"The bot may not post in #{channel.name}; give it the View "
                             "Channel and Send Messages permissions there, then try again.")
    return str(channel.id)
