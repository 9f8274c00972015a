"""Strangers' names and bios in the owner's Discord DMs show as the text they are: no
masked link, no bold, no @everyone, while the bot's own formatting stays."""

from __future__ import annotations

from bot.adapters.discord.client import PlnbotClient
from bot.adapters.discord.surface import DiscordSurface
from tests.conftest import make_settings
from tests.support.discord_mocks import CHANNEL_ID, GUILD_ID, OWNER_ID, mock_dm_channel
from tests.support.factories import arrival, mastodon_person

PHISH = "[Your account is locked](https://evil.example/login)"


async def test_profile_markdown_is_escaped_in_the_welcome_dm(app):
    person = mastodon_person(f"**URGENT** {PHISH} @everyone",
                             note="<p>Teacher at __Oak__ Primary School</p>",
                             acct="ivy_lee@school.social")
    await app.handle(arrival(person))
    [message] = [m for m in app.surface.pop() if m.kind == "new_connection"]
    assert PHISH in message.text  # plain text everywhere else (console, --json)

    settings = make_settings(DISCORD_TOKEN="token-for-tests", DISCORD_OWNER_ID=OWNER_ID,
                             DISCORD_GUILD_ID=GUILD_ID, DISCORD_WELCOME_CHANNEL_ID=CHANNEL_ID)
    surface = DiscordSurface(PlnbotClient(settings), OWNER_ID)
    surface.channel = mock_dm_channel()
    await surface.send(message)
    shown = "".join(call.args[0] for call in surface.channel.send.await_args_list)

    assert r"\[Your account is locked](https://evil.example/login)" in shown
    assert f" {PHISH}" not in shown
    assert "**URGENT**" not in shown and r"\*\*URGENT\*\*" in shown
    assert "@everyone" not in shown
    assert r"ivy\_lee@school.social" in shown
    assert r"Bio: Teacher at \_\_Oak\_\_ Primary School" in shown
    assert f"send {message.fields['draft_id']}" in shown  # the bot's own words unchanged
