"""Push a line to the bot, pop what it said (errbot-style)."""

from __future__ import annotations

from bot.app import App
from bot.context import OutgoingMessage
from tests.support.factories import command


async def say(app: App, text: str) -> list[OutgoingMessage]:
    await app.handle(command(text))
    return app.surface.pop()


async def say_one(app: App, text: str) -> OutgoingMessage:
    replies = await say(app, text)
    assert len(replies) == 1, [m.text for m in replies]
    return replies[0]
