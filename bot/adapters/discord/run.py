"""Starting the Discord client for ``plnbot run``: settings checks, the app wired to
Discord, and start-up failures as one line."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from sqlalchemy.engine import Engine

from bot.adapters.discord.client import PORTAL, PlnbotClient, SerialApp
from bot.adapters.discord.sender import DiscordWelcomeSender
from bot.adapters.discord.surface import DiscordSurface, describe
from bot.app import App
from bot.config import Settings, secret
from bot.errors import UserError

log = logging.getLogger(__name__)


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
    await serve(client, secret(settings.discord_token))


async def serve(client: PlnbotClient, token: str) -> None:
    """Run the client; a start-up failure becomes one ``UserError`` line."""
    try:
        async with client:
            client.main_task = asyncio.ensure_future(client.start(token))
            try:
                await client.main_task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
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
