"""The port through which chat commands connect an owner's platform accounts.

``handlers/commands/accounts.py`` decides *what* to do (which account, what to store,
what to tell the owner); an ``AccountConnector`` does the talking to the platform
(registering the bot's app, exchanging a pasted code, logging in to check a password).
The real one lives in ``bot/adapters/account_connector.py`` and is the only place with
the SDK calls; handlers get it as ``ctx.connector``.

Everything a connector returns for storing (``credentials``, ``pending``) is stored only
encrypted (bot/vault.py), and no connector puts a secret in an exception message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlparse

# Mastodon's out-of-band redirect: the instance shows the code for the owner to paste.
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
# What the bot asks each platform for (also listed in the README).
MASTODON_SCOPES = ("read:accounts", "read:follows", "read:notifications", "write:statuses")
X_SCOPES = ("tweet.read", "users.read", "follows.read", "offline.access")


class ConnectRefused(Exception):
    """The platform would not connect the account; the message says why and what to do
    (never a secret)."""


@dataclass(frozen=True)
class ConnectedAccount:
    """An account the platform confirmed: who it is and what to keep to poll it."""

    external_id: str
    handle: str
    credentials: dict[str, Any]
    # a Discord server's welcome channel (its id), checked to be one the bot may post in
    welcome_channel: str | None = None


@dataclass(frozen=True)
class Authorization:
    """The link the owner opens, and what to keep (encrypted) until they paste the code."""

    url: str
    pending: dict[str, Any] = field(default_factory=dict)


class AccountConnector(Protocol):
    """What connecting accounts by chat needs from the platforms."""

    async def mastodon_register(self, instance: str) -> dict[str, str]:
        """Register the bot's application on ``instance``: ``client_id``, ``client_secret``."""
        ...

    async def mastodon_authorization(self, instance: str, app: dict[str, str]) -> Authorization:
        ...

    async def mastodon_finish(self, instance: str, app: dict[str, str],
                              code: str) -> ConnectedAccount: ...

    async def bluesky_login(self, handle: str, password: str, server: str) -> ConnectedAccount:
        ...

    async def x_authorization(self) -> Authorization: ...

    async def x_finish(self, pending: dict[str, Any], code: str,
                       now: datetime) -> ConnectedAccount:
        """Exchange the code; ``now`` (the app's clock) dates the token's expiry."""
        ...

    async def discord_server(self, guild_id: int, owner_ref: str,
                             channel_id: int | None = None) -> ConnectedAccount:
        """The server, when the bot is in it and ``owner_ref`` may manage it; with
        ``channel_id``, also that channel as its welcome channel, when it is one of the
        server's text channels the bot may post in."""
        ...


def instance_url(text: str) -> str:
    """``mastodon.social`` or ``https://mastodon.social/`` → ``https://mastodon.social``."""
    text = text.strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        text = f"https://{text}"
    parsed = urlparse(text)
    if not parsed.hostname or "." not in parsed.hostname and parsed.hostname != "localhost" \
            or parsed.path or parsed.query or "@" in parsed.netloc:
        raise ConnectRefused(f"{text[:80]!r} is not a server address; write it as "
                             "mastodon.social or https://mastodon.social.")
    return text.lower()


class LazyConnector:
    """The real connector, whose platform SDKs are imported only when a ``connect``
    needs them (every event gets a Context; few of them connect anything)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._real: AccountConnector | None = None
        self.discord: Any = None  # the running discord.Client, set by the Discord adapter

    @property
    def real(self) -> AccountConnector:
        if self._real is None:
            from bot.adapters.account_connector import PlatformConnector

            self._real = PlatformConnector(self.settings, discord=lambda: self.discord)
        return self._real

    async def mastodon_register(self, instance: str) -> dict[str, str]:
        return await self.real.mastodon_register(instance)

    async def mastodon_authorization(self, instance: str, app: dict[str, str]) -> Authorization:
        return await self.real.mastodon_authorization(instance, app)

    async def mastodon_finish(self, instance: str, app: dict[str, str],
                              code: str) -> ConnectedAccount:
        return await self.real.mastodon_finish(instance, app, code)

    async def bluesky_login(self, handle: str, password: str, server: str) -> ConnectedAccount:
        return await self.real.bluesky_login(handle, password, server)

    async def x_authorization(self) -> Authorization:
        return await self.real.x_authorization()

    async def x_finish(self, pending: dict[str, Any], code: str,
                       now: datetime) -> ConnectedAccount:
        return await self.real.x_finish(pending, code, now)

    async def discord_server(self, guild_id: int, owner_ref: str,
                             channel_id: int | None = None) -> ConnectedAccount:
        return await self.real.discord_server(guild_id, owner_ref, channel_id)


def default_connector(settings: Any) -> LazyConnector:
    """The real connector, loaded on first use."""
    return LazyConnector(settings)
