"""A fake of the part of Discord's REST API a welcome needs, for discord.py's real HTTP
client (``discord.http.Route.BASE`` pointed at it): log in, look up a user or a channel,
open a DM, post a message. Like Discord it answers 401 to a wrong token, 404 to unknown
ids and 400 to a message with unknown fields, an empty content or over 2,000 characters.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.servers import RunningFake, faulty_answer, take_fault

TOKEN = "discord-contract-token"
BOT_ID = "1100000000000000001"
GUILD_ID = "1200000000000000001"
MESSAGE_FIELDS = {"content", "nonce", "tts", "embeds", "allowed_mentions", "message_reference",
                  "components", "sticker_ids", "attachments", "flags", "enforce_nonce", "poll"}
_ids = itertools.count(1_300_000_000_000_000_000)


def user_json(user_id: str, username: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": username, "global_name": username.title(),
            "discriminator": "0", "avatar": None, "bot": bot, "public_flags": 0}


@dataclass
class FakeDiscord:
    token: str = TOKEN
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # with "channel_id"
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, int | str]] = field(default_factory=list)
    url: str = ""

    def add_user(self, username: str) -> str:
        user_id = str(next(_ids))
        self.users[user_id] = user_json(user_id, username)
        return user_id

    def add_text_channel(self, name: str) -> str:
        channel_id = str(next(_ids))
        self.channels[channel_id] = {"id": channel_id, "type": 0, "guild_id": GUILD_ID,
                                     "name": name, "position": 0, "permission_overwrites": [],
                                     "nsfw": False, "parent_id": None}
        return channel_id

    def fail(self, path_part: str, fault: int | str, times: int = 1) -> None:
        self.failures.extend([(path_part, fault)] * times)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/api/v10/users/{id}", self._user)
        app.router.add_post("/api/v10/users/@me/channels", self._open_dm)
        app.router.add_get("/api/v10/channels/{id}", self._channel)
        app.router.add_post("/api/v10/channels/{id}/messages", self._post)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        fault = take_fault(self.failures, request.path)
        if fault is not None:
            return await faulty_answer(fault, request, handler, self._error)
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return await handler(request)

    def _error(self, status: int) -> web.Response:
        messages = {403: (50007, "Cannot send messages to this user"),
                    429: (0, "You are being rate limited.")}
        code, message = messages.get(status, (0, f"{status}"))
        extra = {"retry_after": 0.0, "global": False} if status == 429 else {}
        return _json({"message": message, "code": code, **extra}, status=status)

    async def _me(self, request: web.Request) -> web.Response:
        return _json(user_json(BOT_ID, "plnbot", bot=True))

    async def _application(self, request: web.Request) -> web.Response:
        return _json({
            "id": BOT_ID, "name": "plnbot", "icon": None, "description": "", "summary": "",
            "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "owner": user_json("1000", "owner"), "flags": 0, "rpc_origins": []})

    async def _user(self, request: web.Request) -> web.Response:
        user = self.users.get(request.match_info["id"])
        if user is None:
            return _json({"message": "Unknown User", "code": 10013}, status=404)
        return _json(user)

    async def _open_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.users.get(str(body.get("recipient_id")))
        if user is None or set(body) != {"recipient_id"}:
            return _json({"message": "Invalid Form Body", "code": 50035},
                                     status=400)
        channel_id = f"dm-{user['id']}"
        channel = {"id": str(int(user["id"]) + 7), "type": 1, "recipients": [user],
                   "last_message_id": None}
        self.channels[channel["id"]] = dict(channel, dm_for=user["id"], name=channel_id)
        return _json(channel)

    async def _channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["id"])
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        return _json({k: v for k, v in channel.items() if k != "dm_for"})

    async def _post(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["id"]
        if channel_id not in self.channels:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        body = await request.json()
        content = body.get("content")
        if set(body) - MESSAGE_FIELDS or not content or len(content) > 2000:
            return _json({"message": "Invalid Form Body", "code": 50035},
                                     status=400)
        message_id = str(next(_ids))
        self.messages.append(dict(body, channel_id=channel_id))
        return _json({
            "id": message_id, "channel_id": channel_id, "type": 0, "content": content,
            "author": user_json(BOT_ID, "plnbot", bot=True), "attachments": [], "embeds": [],
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False,
            "tts": False, "timestamp": "2026-11-02T09:00:00.000000+00:00",
            "edited_timestamp": None, "flags": 0, "components": [],
            "nonce": body.get("nonce")})


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON as Discord sends it: ``Content-Type: application/json`` exactly, which is what
    discord.py checks before parsing a body."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class RunningDiscord(RunningFake):
    """``with RunningDiscord() as fake:`` Discord's REST API on 127.0.0.1."""

    fake_type = FakeDiscord
