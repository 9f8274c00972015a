"""Spec'd stand-ins for discord.py objects (as python-discord's bot does in its
tests/helpers.py): a misspelt attribute fails, coroutine methods are AsyncMocks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from unittest.mock import AsyncMock, MagicMock

import discord

OWNER_ID = 111_111_111_111_111_111
GUILD_ID = 222_222_222_222_222_222
CHANNEL_ID = 333_333_333_333_333_333
_ids = itertools.count(900_000_000_000_000_001, 1 << 32)  # about a second apart


def mock_role(name: str) -> MagicMock:
    role = MagicMock(spec=discord.Role)
    role.name = name
    return role


def mock_user(name: str = "jane", *, global_name: str | None = "Jane Doe", bot: bool = False,
              user_id: int | None = None) -> MagicMock:
    user = MagicMock(spec=discord.User)
    user.id = user_id or next(_ids)
    user.name, user.global_name, user.bot = name, global_name, bot
    user.send = AsyncMock()
    return user


def mock_member(name: str = "jane", *, global_name: str | None = "Jane Doe",
                nick: str | None = None, roles: tuple[str, ...] = ("@everyone",),
                bot: bool = False, guild_id: int = GUILD_ID,
                member_id: int | None = None) -> MagicMock:
    member = MagicMock(spec=discord.Member)
    member.id = member_id or next(_ids)
    member.name, member.global_name, member.nick, member.bot = name, global_name, nick, bot
    member.roles = [mock_role(r) for r in roles]
    member.joined_at = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    member.guild = MagicMock(spec=discord.Guild)
    member.guild.id = guild_id
    return member


def mock_guild(members: list, *, chunked: bool = True, guild_id: int = GUILD_ID) -> MagicMock:
    guild = MagicMock(spec=discord.Guild)
    guild.id, guild.name, guild.members, guild.chunked = guild_id, "Staffroom", members, chunked
    guild.chunk = AsyncMock(return_value=members)
    return guild


def mock_dm_channel() -> MagicMock:
    channel = MagicMock(spec=discord.DMChannel)
    channel.send = AsyncMock()
    return channel


def mock_message(author, content: str, *, in_guild: bool = False) -> MagicMock:
    message = MagicMock(spec=discord.Message)
    message.id = next(_ids)
    message.author, message.content = author, content
    message.created_at = discord.utils.snowflake_time(message.id)
    message.guild = MagicMock(spec=discord.Guild) if in_guild else None
    message.channel = mock_dm_channel()
    return message


def mock_interaction(client, *, user_id: int = OWNER_ID, message=None) -> MagicMock:
    interaction = MagicMock(spec=discord.Interaction)
    interaction.id = next(_ids)
    interaction.client = client
    interaction.user = mock_user(user_id=user_id)
    interaction.response = MagicMock(spec=discord.InteractionResponse)
    interaction.message = message
    return interaction


def message_with_components(view: discord.ui.View) -> MagicMock:
    """A message as Discord would hand it back: real component objects, no view."""
    from discord.components import _component_factory

    message = MagicMock(spec=discord.Message)
    message.id = next(_ids)
    message.flags = discord.MessageFlags()
    message.components = [_component_factory(row) for row in view.to_components()]
    message.edit = AsyncMock()
    return message
