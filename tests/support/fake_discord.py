"""A fake of the part of Discord's REST API a welcome needs, for discord.py's real HTTP
client (``discord.http.Route.BASE`` pointed at it): log in, look up a user or a channel,
open a DM, post a message. Like Discord it answers 401 to a wrong token, 404 to unknown
ids and 400 to a message with unknown fields, an empty content or over 2,000 characters.

It also speaks the gateway (``/gateway``, for ``DiscordWebSocket.DEFAULT_GATEWAY``) as
discord.py's real websocket client needs it: HELLO, heartbeats, IDENTIFY answered by
READY and a GUILD_CREATE per server (with its members, channels and roles), member
joins and leaves, DMs from users, and a dropped connection (``drop``) after which a
RESUME is refused, so the client identifies again. Like Discord it closes with 4004
for a wrong token and 4014 when the bot asks for the Server Members Intent without
being granted it (``members_intent = False``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.servers import RunningFake, faulty_answer, take_fault

TOKEN = "discord-contract-token"
BOT_ID = "1100000000000000001"
GUILD_ID = "1200000000000000001"
MEMBERS_INTENT = 1 << 1
EVERYONE_MAY = (1 << 10) | (1 << 11)  # View Channel, Send Messages
MESSAGE_FIELDS = {"content", "nonce", "tts", "embeds", "allowed_mentions", "message_reference",
                  "components", "sticker_ids", "attachments", "flags", "enforce_nonce", "poll"}
_ids = itertools.count(1_300_000_000_000_000_000)
# a user's DM channel: its own id range, so it never takes the id of a guild channel or
# a user made later (they come from ``_ids``, one after another)
DM_OFFSET = 100_000_000_000_000_000


def dm_channel_id(user_id: str) -> str:
    return str(int(user_id) + DM_OFFSET)


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
    # the gateway: servers by id ({"name", "owner_id", "members": {user id: joined}})
    guilds: dict[str, dict[str, Any]] = field(default_factory=dict)
    members_intent: bool = True  # granted to the bot in the developer portal
    identified: list[int] = field(default_factory=list)  # the intents of each IDENTIFY
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    sequence: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    def add_user(self, username: str) -> str:
        user_id = str(next(_ids))
        self.users[user_id] = user_json(user_id, username)
        return user_id

    def add_text_channel(self, name: str, guild_id: str = GUILD_ID) -> str:
        channel_id = str(next(_ids))
        self.channels[channel_id] = {"id": channel_id, "type": 0, "guild_id": guild_id,
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
        app.router.add_get("/gateway", self._gateway)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        if request.path == "/gateway":  # authenticated by IDENTIFY
            return await handler(request)
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
        channel = {"id": dm_channel_id(user["id"]), "type": 1, "recipients": [user],
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


    # -- the gateway ------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"{self.url.replace('http://', 'ws://')}/gateway"

    def add_guild(self, name: str, *, owner_id: str, guild_id: str | None = None) -> str:
        """A server the bot is in (the bot and ``owner_id`` are members)."""
        guild_id = guild_id or str(next(_ids))
        self.guilds[guild_id] = {"name": name, "owner_id": owner_id, "members": {}}
        self.add_member(guild_id, BOT_ID, user_json(BOT_ID, "plnbot", bot=True))
        self.add_member(guild_id, owner_id)
        return guild_id

    def add_member(self, guild_id: str, user_id: str,
                   user: dict[str, Any] | None = None) -> dict[str, Any]:
        """``user_id`` is a member already (no event: as if they joined while the bot
        was not connected)."""
        user = user or self.users.get(user_id) or user_json(user_id, f"user{user_id[-4:]}")
        member = {"user": user, "roles": [], "joined_at": "2026-11-02T08:30:00+00:00",
                  "deaf": False, "mute": False, "flags": 0, "nick": None}
        self.guilds[guild_id]["members"][user_id] = member
        return member

    def join(self, guild_id: str, user_id: str) -> None:
        """``user_id`` joins the server; a connected bot hears GUILD_MEMBER_ADD."""
        member = self.add_member(guild_id, user_id)
        self._dispatch("GUILD_MEMBER_ADD", {**member, "guild_id": guild_id})

    def leave(self, guild_id: str, user_id: str) -> None:
        """``user_id`` leaves; a connected bot hears GUILD_MEMBER_REMOVE."""
        member = self.guilds[guild_id]["members"].pop(user_id)
        self._dispatch("GUILD_MEMBER_REMOVE", {"guild_id": guild_id, "user": member["user"]})

    def send_dm(self, user_id: str, content: str) -> None:
        """``user_id`` writes the bot a DM (MESSAGE_CREATE without a guild)."""
        author = self.users[user_id]
        self._dispatch("MESSAGE_CREATE", {
            "id": str(next(_ids)), "channel_id": dm_channel_id(user_id), "author": author,
            "content": content, "type": 0, "timestamp": "2026-11-02T09:00:00.000000+00:00",
            "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": False, "flags": 0, "components": []})

    def drop(self) -> None:
        """The connection drops (close code 4000: the client reconnects)."""
        self._in_loop(self._close_all(4000), wait=False)  # the close needs the client

    def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._in_loop(self._send_all(event, data))

    def _in_loop(self, coro, *, wait: bool = True) -> None:
        """Run ``coro`` in the fake's own loop; ``wait`` for it when it needs nothing
        from the client (whose loop is the caller's)."""
        if self.loop is None:
            coro.close()
            return
        done = asyncio.run_coroutine_threadsafe(coro, self.loop)
        if wait:
            done.result(5)

    async def _send_all(self, event: str, data: dict[str, Any]) -> None:
        for ws in [ws for ws in self.sockets if not ws.closed]:
            await self._event(ws, event, data)

    async def _close_all(self, code: int) -> None:
        for ws in list(self.sockets):
            await ws.close(code=code)

    async def _event(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        self.sequence += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self.sequence, "d": data}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45_000}}))
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            payload = json.loads(message.data)
            if payload["op"] == 1:  # heartbeat
                await ws.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 6:  # resume: this fake keeps no sessions
                await ws.send_str(json.dumps({"op": 9, "d": False}))
            elif payload["op"] == 2:
                await self._identify(ws, payload["d"])
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, identify: dict[str, Any]) -> None:
        self.identified.append(identify["intents"])
        if identify["token"] != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if identify["intents"] & MEMBERS_INTENT and not self.members_intent:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.sockets.append(ws)
        await self._event(ws, "READY", {
            "v": 10, "user": user_json(BOT_ID, "plnbot", bot=True),
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": f"session-{len(self.identified)}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": BOT_ID, "flags": 0}})
        for guild_id in self.guilds:
            await self._event(ws, "GUILD_CREATE", self.guild_json(guild_id, identify["intents"]))

    def guild_json(self, guild_id: str, intents: int) -> dict[str, Any]:
        """The server as GUILD_CREATE gives it: its members only with the members
        intent (otherwise just the bot, as Discord does)."""
        guild = self.guilds[guild_id]
        members = list(guild["members"].values())
        if not intents & MEMBERS_INTENT:
            members = [m for m in members if m["user"]["id"] == BOT_ID]
        everyone = {"id": guild_id, "name": "@everyone", "permissions": str(EVERYONE_MAY),
                    "position": 0, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0}
        return {"id": guild_id, "name": guild["name"], "owner_id": guild["owner_id"],
                "unavailable": False, "member_count": len(guild["members"]),
                "members": members, "roles": [everyone], "emojis": [], "stickers": [],
                "features": [], "threads": [], "presences": [], "voice_states": [],
                "stage_instances": [], "guild_scheduled_events": [], "large": False,
                "joined_at": "2026-11-01T08:00:00+00:00", "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0,
                "mfa_level": 0, "premium_tier": 0, "nsfw_level": 0,
                "channels": [{k: v for k, v in c.items() if k != "guild_id"}
                             for c in self.channels.values() if c.get("guild_id") == guild_id]}


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON as Discord sends it: ``Content-Type: application/json`` exactly, which is what
    discord.py checks before parsing a body."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class RunningDiscord(RunningFake):
    """``with RunningDiscord() as fake:`` Discord's REST API and gateway on 127.0.0.1."""

    fake_type = FakeDiscord

    def __enter__(self):
        fake = super().__enter__()
        fake.loop = self.server.loop
        return fake
