"""The real ``AccountConnector`` (bot/connecting.py): SDK calls for ``connect …``.

- Mastodon (Mastodon.py): ``create_app`` once per instance with the out-of-band
  redirect, ``auth_request_url`` for the link, ``log_in(code=…)`` for the token, then
  ``account_verify_credentials`` for who it is.
- Bluesky (atproto): ``login`` with the handle and app password on the named server
  (Bluesky's own by default) to check them.
- X: see bot/adapters/x_oauth.py.
- Discord: the running bot's client (set by the Discord adapter when there is one).

Messages for the owner never contain a token, a password or a client secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import requests
from atproto_client import AsyncClient
from atproto_client.exceptions import AtProtocolError, NetworkError
from atproto_client.request import AsyncRequest
from mastodon import Mastodon
from mastodon.errors import MastodonError, MastodonIllegalArgumentError, MastodonNetworkError

from bot.adapters import x_oauth
from bot.adapters.bluesky.adapter import kept_session
from bot.adapters.state import SESSION_KEY
from bot.config import Settings
from bot.connecting import (
    MASTODON_SCOPES,
    OOB_REDIRECT,
    Authorization,
    ConnectedAccount,
    ConnectRefused,
)

log = logging.getLogger(__name__)

APP_NAME = "plnbot"
APP_WEBSITE = "https://github.com/plnbot/plnbot"
REQUEST_TIMEOUT = 30.0
BLUESKY_SERVER = "https://bsky.social"


class PlatformConnector:
    """Talks to the platforms for ``connect …`` (one per process)."""

    def __init__(self, settings: Settings, *,
                 discord: Callable[[], Any] = lambda: None) -> None:
        self.settings = settings
        self.discord = discord  # the running discord.Client, when there is one

    # -- Mastodon ----------------------------------------------------------------------
    async def mastodon_register(self, instance: str) -> dict[str, str]:
        try:
            client_id, client_secret = await asyncio.to_thread(
                Mastodon.create_app, APP_NAME, scopes=list(MASTODON_SCOPES),
                redirect_uris=OOB_REDIRECT, website=APP_WEBSITE, api_base_url=instance,
                request_timeout=REQUEST_TIMEOUT, session=requests.Session())
        except (MastodonError, KeyError, ValueError) as exc:
            raise ConnectRefused(f"{instance} did not register the bot's application "
                                 f"({_reason(exc)}): is it a Mastodon instance?") from None
        return {"client_id": client_id, "client_secret": client_secret}

    def _mastodon(self, instance: str, app: dict[str, str], token: str | None = None):
        return Mastodon(client_id=app["client_id"], client_secret=app["client_secret"],
                        access_token=token, api_base_url=instance, version_check_mode="none",
                        request_timeout=REQUEST_TIMEOUT, user_agent=APP_NAME)

    async def mastodon_authorization(self, instance: str, app: dict[str, str]) -> Authorization:
        api = self._mastodon(instance, app)
        url = await asyncio.to_thread(api.auth_request_url, redirect_uris=OOB_REDIRECT,
                                      scopes=list(MASTODON_SCOPES), skip_server_info=True)
        return Authorization(url=url)

    async def mastodon_finish(self, instance: str, app: dict[str, str],
                              code: str) -> ConnectedAccount:
        api = self._mastodon(instance, app)
        try:
            token = await asyncio.to_thread(api.log_in, code=code.strip(),
                                            redirect_uri=OOB_REDIRECT,
                                            scopes=list(MASTODON_SCOPES))
            me = await asyncio.to_thread(api.account_verify_credentials)
        except MastodonNetworkError:
            raise ConnectRefused(f"Cannot reach {instance} right now; paste the code again "
                                 "in a moment.") from None
        except (MastodonIllegalArgumentError, MastodonError):
            raise ConnectRefused(f"{instance} did not accept that code. A code works once: "
                                 "open the link again, approve, and paste the new "
                                 "code.") from None
        acct = str(me["acct"])
        handle = acct if "@" in acct else f"{acct}@{urlparse(instance).netloc}"
        return ConnectedAccount(external_id=str(me["id"]), handle=handle,
                                credentials={"instance": instance, "access_token": token})

    # -- Bluesky -----------------------------------------------------------------------
    async def bluesky_login(self, handle: str, password: str, server: str) -> ConnectedAccount:
        client = AsyncClient(base_url=server, request=AsyncRequest(timeout=REQUEST_TIMEOUT))
        try:
            await client.login(handle, password, fetch_bsky_profile=False)
        except NetworkError:
            raise ConnectRefused(f"Cannot reach {server}: check the server URL, or try again "
                                 "in a moment.") from None
        except (AtProtocolError, ValueError) as exc:
            raise ConnectRefused(f"{server} did not accept that handle and app password "
                                 f"({_reason(exc)}). Check the handle, and create an app "
                                 "password in Settings → Privacy and security → App "
                                 "passwords.") from None
        session = client._session
        # the login's session is kept: the first poll uses it instead of logging in again
        # (Bluesky allows 30 logins in 5 minutes, 300 a day)
        return ConnectedAccount(external_id=session.did, handle=session.handle,
                                credentials={"handle": handle, "app_password": password,
                                             "server": server, SESSION_KEY:
                                             kept_session(handle, server, session)})

    # -- X -----------------------------------------------------------------------------
    async def x_authorization(self) -> Authorization:
        return x_oauth.authorization(self.settings)

    async def x_finish(self, pending: dict[str, Any], code: str,
                       now: datetime) -> ConnectedAccount:
        return await x_oauth.finish(self.settings, pending, code, now=now)

    # -- Discord -----------------------------------------------------------------------
    async def discord_server(self, guild_id: int, owner_ref: str,
                             channel_id: int | None = None) -> ConnectedAccount:
        from bot.adapters.discord_connect import check_server

        client = self.discord()
        if client is None:
            raise ConnectRefused("Connecting a Discord server needs the bot running on "
                                 "Discord (DISCORD_TOKEN); write it to the bot by DM.")
        return await check_server(client, guild_id, owner_ref, channel_id)


def _reason(exc: Exception) -> str:
    """A short, secret-free reason: the exception's type, or an HTTP status."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__
