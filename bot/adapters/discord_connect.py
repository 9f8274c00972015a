"""``connect discord-server <id>``: only a server the bot is in, and only for an owner
who may manage it (Discord's Manage Server permission), as discord.py sees them."""

from __future__ import annotations

import discord

from bot.connecting import ConnectedAccount, ConnectRefused


async def check_server(client: discord.Client, guild_id: int, owner_ref: str) -> ConnectedAccount:
    """The server as a connectable account, or ConnectRefused saying why not."""
    scheme, _, user = owner_ref.partition(":")
    if scheme != "discord" or not user.isdigit():
        raise ConnectRefused("Only an owner who talks to the bot on Discord can connect a "
                             "Discord server.")
    guild = client.get_guild(guild_id)
    if guild is None:
        try:  # a worker without the gateway has no guild cache; ask over HTTP
            guild = await client.fetch_guild(guild_id)
        except discord.HTTPException:
            raise ConnectRefused(f"The bot is not in a server with the id {guild_id}. Invite "
                                 "it first (see the README, Discord), then try "
                                 "again.") from None
    try:
        member = guild.get_member(int(user)) or await guild.fetch_member(int(user))
    except discord.NotFound:
        raise ConnectRefused(f"You are not a member of {guild.name}.") from None
    except discord.HTTPException:
        raise ConnectRefused("Discord did not answer; try again in a moment.") from None
    if not member.guild_permissions.manage_guild:
        raise ConnectRefused(f"You need the Manage Server permission in {guild.name} to "
                             "connect it.")
    return ConnectedAccount(external_id=str(guild.id), handle=guild.name, credentials={})
