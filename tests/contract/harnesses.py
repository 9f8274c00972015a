"""One harness per registered platform: its fake server, how someone new connects on it,
and what the platform received. The contract suite (``test_platforms.py``) runs over
every platform in the registry; a platform without a harness here fails the suite with
the reason, so a new platform is proven end to end by registering it and adding one.

The clients are the real libraries (Mastodon.py, atproto, tweepy) talking HTTP to the
fakes in ``tests/support``; only their servers are fake.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aioresponses import aioresponses

from bot.app import App
from bot.runner import configured_sources
from tests.support import discord_mocks, fake_bluesky, fake_discord, fake_mastodon, x_api
from tests.support.fakes import FakeClock
from tests.support.servers import DROPPED

TEACHER = "Maths teacher at Oak Primary. #mathchat"


@dataclass
class Received:
    """One message the platform took: to whom, what, and how visible."""

    recipient: str
    text: str
    visibility: str


@dataclass
class Harness:
    """The fake of one platform while a test runs."""

    platform: str
    env: dict[str, str]
    # whether ``plnbot`` in another process can reach the fake (an HTTP server, not a
    # patch of this process's HTTP client)
    over_http: bool = True
    sends: bool = True  # False: the owner sends it by link; the platform gets nothing
    polls: bool = True  # False: arrivals are live events (a gateway), never fetched again
    fake: Any = None
    people: dict[str, str] = field(default_factory=dict)  # name → id on the platform

    def arrive(self, name: str) -> None:
        raise NotImplementedError

    # -- the running bot: how it is built and how it notices people ----------------------
    async def build_app(self, config, engine, surface) -> App:
        """``plnbot run`` in this process: every configured source and its senders."""
        sources = configured_sources(config)
        assert [s.platform for s in sources] == [self.platform]
        return App(settings=config, engine=engine, surface=surface, sources=sources)

    async def baseline(self, app: App) -> None:
        await app.poll_sources()

    async def arrival(self, app: App, name: str) -> None:
        self.arrive(name)
        await app.poll_sources()

    async def close(self) -> None:
        """Stop what ``build_app`` started."""

    def received(self) -> list[Received]:
        raise NotImplementedError

    def refuse_next_send(self) -> str:
        """Make the next send be refused; returns words the refusal must show."""
        raise NotImplementedError

    def drop_next_send(self) -> None:
        """The next send reaches the platform, but its answer never comes back."""
        raise NotImplementedError

    def recipient_of(self, name: str) -> str:
        return self.people[name]


class MastodonHarness(Harness):
    def arrive(self, name: str) -> None:
        username = name.split()[0].lower()
        account = fake_mastodon.make_account(username, display_name=name, note=TEACHER)
        self.people[name] = f"@{account['acct']}"
        self.fake.follow(account)

    def received(self) -> list[Received]:
        out = []
        for form in self.fake.statuses:
            mention, _, text = str(form.get("status", "")).partition(" ")
            out.append(Received(mention, text, str(form.get("visibility", "public"))))
        return out

    def refuse_next_send(self) -> str:
        self.fake.fail("/api/v1/statuses", 403)
        return "MASTODON_ACCESS_TOKEN"

    def drop_next_send(self) -> None:
        self.fake.fail("/api/v1/statuses", DROPPED)


class BlueskyHarness(Harness):
    def arrive(self, name: str) -> None:
        profile = fake_bluesky.make_profile(name.split()[0], description=TEACHER, allow="all")
        profile["displayName"] = name
        self.people[name] = profile["did"]
        self.fake.follow(profile)

    def received(self) -> list[Received]:
        convos = {f"convo-{did[-6:]}": did for did in self.people.values()}
        return [Received(convos.get(m["convoId"], m["convoId"]), m["message"]["text"], "chat")
                for m in self.fake.messages]

    def refuse_next_send(self) -> str:
        self.fake.fail("chat.bsky.convo.sendMessage", 429, times=3)
        return "rate limiting"

    def drop_next_send(self) -> None:
        self.fake.fail("chat.bsky.convo.sendMessage", DROPPED)


class XHarness(Harness):
    def arrive(self, name: str) -> None:
        user_id = str(1_600_000_000_000_000_000 + len(self.people) + 1)
        username = name.split()[0].lower()
        self.people[name] = user_id
        self.fake.followers.insert(0, {"id": user_id, "name": name, "username": username,
                                       "description": TEACHER})

    def received(self) -> list[Received]:
        # X never gets a message from plnbot: any request other than reading followers
        # and users would be a message sent behind the owner's back
        return [Received("?", str(query), name) for name, query, _ in self.fake.requests
                if name not in ("followers", "user", "me")]


class DiscordHarness(Harness):
    """Discord's REST API is faked (the welcome goes through discord.py's real HTTP
    client, logged in); members joining come through the gateway, which is not: they
    are discord.py ``Member`` doubles handed to the client's ``on_member_join``."""

    client: Any = None

    def arrive(self, name: str) -> None:
        self.people[name] = self.fake.add_user(name.split()[0].lower())

    async def build_app(self, config, engine, surface) -> App:
        from bot.adapters.discord.client import PlnbotClient
        from bot.adapters.discord.sender import DiscordWelcomeSender

        self.client = PlnbotClient(config)
        app = App(settings=config, engine=engine, surface=surface, senders={
            "discord": DiscordWelcomeSender(self.client, config.discord_welcome_channel_id)})
        self.client.app = app
        await self.client.login(config.discord_token.get_secret_value())
        return app

    async def baseline(self, app: App) -> None:
        await self.client.snapshot_members_of(discord_mocks.mock_guild([]))

    async def arrival(self, app: App, name: str) -> None:
        self.arrive(name)
        username = name.split()[0].lower()
        await self.client.on_member_join(discord_mocks.mock_member(
            username, global_name=name, member_id=int(self.people[name])))

    async def close(self) -> None:
        if self.client is not None:
            if self.client.watchdog is not None:
                self.client.watchdog.cancel()
            await self.client.close()

    def recipient_of(self, name: str) -> str:
        return f"<@{self.people[name]}>"

    def received(self) -> list[Received]:
        out = []
        for message in self.fake.messages:
            channel = self.fake.channels[message["channel_id"]]
            if "dm_for" in channel:
                out.append(Received(f"<@{channel['dm_for']}>", message["content"], "dm"))
            else:
                mention, _, text = message["content"].partition(" ")
                out.append(Received(mention, text, "channel"))
        return out

    def refuse_next_send(self) -> str:
        self.fake.fail("/messages", 403)
        return "Send Messages"

    def drop_next_send(self) -> None:
        self.fake.fail("/messages", DROPPED)


@contextlib.contextmanager
def mastodon() -> Iterator[Harness]:
    with fake_mastodon.RunningMastodon() as fake:
        yield MastodonHarness("mastodon", {"MASTODON_BASE_URL": fake.url,
                                           "MASTODON_ACCESS_TOKEN": fake.token}, fake=fake)


@contextlib.contextmanager
def bluesky() -> Iterator[Harness]:
    with fake_bluesky.RunningBluesky() as fake:
        fake.clock = datetime.now(UTC)  # follows are newer than the bot's first look
        yield BlueskyHarness("bluesky", {"BLUESKY_HANDLE": fake.handle,
                                         "BLUESKY_APP_PASSWORD": fake.password,
                                         "BLUESKY_BASE_URL": fake.url}, fake=fake)


@contextlib.contextmanager
def x() -> Iterator[Harness]:
    with aioresponses() as mocked:
        api = x_api.FakeXApi(mocked, FakeClock(), followers=x_api.recorded_followers()[:5])
        owner = str(api.me["id"])
        yield XHarness("x", {"X_BEARER_TOKEN": "AAAA-contract-bearer", "X_USER_ID": owner},
                       over_http=False, sends=False, fake=api)


@contextlib.contextmanager
def discord() -> Iterator[Harness]:
    import discord as discord_py

    with fake_discord.RunningDiscord() as fake:
        channel = fake.add_text_channel("welcome")
        saved, discord_py.http.Route.BASE = discord_py.http.Route.BASE, f"{fake.url}/api/v10"
        try:
            yield DiscordHarness("discord", {
                "DISCORD_TOKEN": fake.token, "DISCORD_OWNER_ID": str(discord_mocks.OWNER_ID),
                "DISCORD_GUILD_ID": str(discord_mocks.GUILD_ID),
                "DISCORD_WELCOME_CHANNEL_ID": channel}, over_http=False, polls=False, fake=fake)
        finally:
            discord_py.http.Route.BASE = saved


HARNESSES = {"mastodon": mastodon, "bluesky": bluesky, "x": x, "discord": discord}


def harness_for(platform: str):
    """The harness of ``platform``; a registered platform without one is a failure."""
    if platform not in HARNESSES:
        raise LookupError(
            f"platform {platform!r} is registered but has no contract harness: add one to "
            f"tests/contract/harnesses.py (its fake server, an arrival, what it received)")
    return HARNESSES[platform]


def compose_recipient(url: str) -> str:
    found = re.search(r"recipient_id=([^&]+)", url)
    return found.group(1) if found else ""
