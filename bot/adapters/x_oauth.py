"""X's OAuth 2.0 Authorization Code flow with PKCE (tweepy's ``OAuth2UserHandler``).

The operator registers one X app (``X_CLIENT_ID``, ``X_CLIENT_SECRET`` for a confidential
client, ``X_REDIRECT_URI``: the callback URL registered with it). ``connect x`` gives
the owner the authorization link; X sends them to the callback with ``?code=…`` in the
address, and they paste that code (or the whole address) back to the bot.

Access tokens live two hours; with ``offline.access`` X also gives a refresh token,
which X rotates: each refresh returns a new one and the old one stops working. The
poller refreshes a token ``REFRESH_MARGIN`` before it expires and stores both at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import tweepy
from oauthlib.oauth2 import OAuth2Error
from requests import RequestException

from bot.config import Settings
from bot.connecting import X_SCOPES, Authorization, ConnectedAccount, ConnectRefused

TOKEN_URL = "https://api.twitter.com/2/oauth2/token"
REFRESH_MARGIN = timedelta(minutes=15)


def _handler(settings: Settings) -> tweepy.OAuth2UserHandler:
    if not settings.x_client_id or not settings.x_redirect_uri:
        raise ConnectRefused("Connecting X needs the operator's X app: set X_CLIENT_ID and "
                             "X_REDIRECT_URI (see config.example.env).")
    secret = settings.x_client_secret.get_secret_value() if settings.x_client_secret else None
    return tweepy.OAuth2UserHandler(client_id=settings.x_client_id,
                                    redirect_uri=settings.x_redirect_uri,
                                    scope=list(X_SCOPES), client_secret=secret or None)


def authorization(settings: Settings) -> Authorization:
    """The link to X's consent page, with a fresh PKCE verifier and state kept for later."""
    handler = _handler(settings)
    url = handler.get_authorization_url()
    return Authorization(url=url, pending={"state": handler._state,
                                           "verifier": handler._client.code_verifier})


def pasted_code(text: str) -> str:
    """The code from what the owner pasted: the code itself or the whole callback URL."""
    text = text.strip()
    if "code=" in text:
        return (parse_qs(urlparse(text).query).get("code") or [""])[0]
    return text


async def finish(settings: Settings, pending: dict[str, Any], code: str, *,
                 now: datetime) -> ConnectedAccount:
    """Exchange the pasted code for tokens, then ask X whose they are."""
    handler = _handler(settings)
    handler._state = pending.get("state")
    handler._client.code_verifier = pending.get("verifier")
    query = urlencode({"state": pending.get("state"), "code": pasted_code(code)})
    response = f"{settings.x_redirect_uri}?{query}"
    try:
        token = await asyncio.to_thread(handler.fetch_token, response)
    except (OAuth2Error, RequestException, ValueError) as exc:
        raise ConnectRefused(f"X did not accept that code ({_reason(exc)}). Codes work once "
                             f"and only for a few minutes: write `connect x` again.") from None
    credentials = token_credentials(token, now)
    user = await asyncio.to_thread(_me, credentials["access_token"])
    return ConnectedAccount(external_id=str(user.id), handle=str(user.username),
                            credentials=credentials)


def _me(access_token: str) -> Any:
    try:
        return tweepy.Client(bearer_token=access_token).get_me(user_auth=False).data
    except tweepy.TweepyException as exc:
        raise ConnectRefused(f"X gave a token but would not say whose it is "
                             f"({type(exc).__name__}); write `connect x` again.") from None


def token_credentials(token: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What is stored (encrypted) of an X token response."""
    expires_in = int(token.get("expires_in") or 7200)
    return {"access_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "expires_at": (now + timedelta(seconds=expires_in)).isoformat()}


def needs_refresh(credentials: dict[str, Any], now: datetime) -> bool:
    expires = credentials.get("expires_at")
    if not expires or not credentials.get("refresh_token"):
        return False
    return datetime.fromisoformat(expires) - REFRESH_MARGIN <= now


async def refresh(settings: Settings, credentials: dict[str, Any], *,
                  now: datetime) -> dict[str, Any]:
    """New access and refresh tokens (X rotates the refresh token on every use)."""
    handler = _handler(settings)
    try:
        token = await asyncio.to_thread(
            handler.refresh_token, TOKEN_URL, refresh_token=credentials["refresh_token"],
            auth=handler.auth, client_id=settings.x_client_id)
    except (OAuth2Error, RequestException, ValueError) as exc:
        raise ConnectRefused(f"X no longer accepts the bot's access ({_reason(exc)}); write "
                             f"`connect x` to connect it again.") from None
    return token_credentials(token, now)


async def refreshed(settings: Settings, credentials: dict[str, Any], *,
                    now: datetime) -> dict[str, Any] | None:
    """New credentials when the access token is near its expiry, else None (the
    platform registry's refresh hook: ``Platform.refreshed``)."""
    if not needs_refresh(credentials, now):
        return None
    return await refresh(settings, credentials, now=now)


def _reason(exc: Exception) -> str:
    return getattr(exc, "error", None) or type(exc).__name__
