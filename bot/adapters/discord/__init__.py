"""Discord: the owner's chat surface, server members as connections, approved welcomes.

This package is the only place that imports discord.py, and this module imports none of
it: it declares the platform. The modules translate in both directions and decide
nothing themselves:

- ``client``: owner DMs, slash commands (``slash``) and the Send / Edit / Skip buttons
  (``buttons``) all become ``CommandReceived`` lines, so every way of asking runs the same
  command with the same replies; member joins, leaves and the member list seen on
  (re)connect become ``NewConnection`` / ``ConnectionLeft`` / ``SnapshotReceived``;
- ``surface``: ``DiscordSurface`` DMs the owner whatever the outbox delivers (split at
  Discord's 2,000 characters by ``text``, charts attached, the idempotency key as the
  message nonce);
- ``sender``: ``DiscordWelcomeSender`` posts an approved welcome in the welcome channel,
  or DMs the member when the owner chose that;
- ``run``: ``plnbot run`` with Discord (the app's lifecycle is ``App.start_work``).
"""

from __future__ import annotations

from bot.adapters.translate import discord_profile
from bot.platforms import Platform, Snapshot

PLATFORM_ID = "discord"
PLATFORM = Platform(
    id=PLATFORM_ID,
    name="Discord",
    message_limit=2_000,
    at_handles=False,
    connection_kind="member",
    by_hand="Post it yourself in your welcome channel, mentioning @{who}, "
            "or send them a message",
    send_choices=("dm", "channel"),
    snapshot=Snapshot(id_key="id", person_key="user", checksum_keys=("nick", "roles", "user")),
    translate=discord_profile,
    adapter="bot.adapters.discord.sender",
    order=4,
    secrets=("discord_token",),
    configured_by=("discord_guild_id",),  # a server is connected by ``connect discord-server``
    mentioned_by=("discord_token",),
)
