"""Fake Mastodon and Bluesky servers for many accounts at once (``bench_accounts``).

The test fakes (tests/support/fake_mastodon.py, fake_bluesky.py) are one account each;
10,000 of them would be 10,000 servers. These serve any number of accounts from one
server per platform, with the same answers (the same recorded account and instance
JSON, atproto sessions whose JWT the client reads), only the steady-state calls of a
poll: Mastodon ``verify_credentials``, ``instance``, ``notifications``, ``followers``;
Bluesky ``createSession``, ``listNotifications``, ``getFollowers``. They refuse what the
platforms refuse: an unknown token (401), a wrong password (401), and requests beyond an
account's budget (Mastodon 300 per 5 minutes per token, Bluesky 3,000 per 5 minutes and
30 ``createSession`` per 5 minutes per account: 429, with ``X-RateLimit-*`` /
``ratelimit-*`` headers on every answer).

Every request is counted per account and platform, with its time, so a benchmark can
tell how often and when each account was polled: ``GET /_fleet/polls`` (Mastodon's
``verify_credentials`` and Bluesky's ``createSession``, once per poll) and
``POST /_fleet/reset``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from aiohttp import web

from tests.support.fake_bluesky import _xrpc_error, jwt, recorded_profile
from tests.support.fake_mastodon import make_account, recorded_json

WINDOW = timedelta(minutes=5)


def mastodon_token(number: int) -> str:
    return f"fleet-token-{number:06d}"


def bluesky_handle(number: int) -> str:
    return f"teacher{number:06d}.fleet.social"


def bluesky_password(number: int) -> str:
    return f"app-pass-{number:06d}"


class Budget:
    """One account's rate-limit window: ``limit`` requests per ``WINDOW``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.remaining, self.reset = limit, limit, datetime.now(UTC) + WINDOW

    def spend(self) -> bool:
        """Count one request; False when the window's budget was already spent."""
        now = datetime.now(UTC)
        if now >= self.reset:
            self.remaining, self.reset = self.limit, now + WINDOW
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class Fleet:
    """Both fake platforms, and the count of polls per account."""

    def __init__(self) -> None:
        self.polls: dict[str, list[float]] = defaultdict(list)  # "m:12" → poll times
        self.requests = 0
        self.budgets: dict[str, Budget] = {}
        self.sessions: dict[str, Budget] = {}
        self.mastodon_url = self.bluesky_url = ""
        self.instance = recorded_json("test_stream_user_direct", "/api/v1/instance/")
        self.instance["uri"] = "fleet.social"
        self.template = make_account("template", domain=None)

    # -- Mastodon ------------------------------------------------------------------------
    def mastodon_app(self) -> web.Application:
        app = web.Application(middlewares=[self._mastodon_auth])
        app.router.add_get("/api/v1/accounts/verify_credentials", self._verify_credentials)
        app.router.add_get("/api/v1/instance", self._instance)
        app.router.add_get("/api/v1/instance/", self._instance)
        app.router.add_get("/api/v1/notifications", self._empty_list)
        app.router.add_get("/api/v1/accounts/{id}/followers", self._empty_list)
        self._control(app)
        return app

    @web.middleware
    async def _mastodon_auth(self, request: web.Request, handler):
        if request.path.startswith("/_fleet/"):
            return await handler(request)
        self.requests += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token.startswith("fleet-token-") or not token[12:].isdigit():
            return web.json_response({"error": "The access token is invalid"}, status=401)
        number = int(token[12:])
        budget = self.budgets.setdefault(f"m:{number}", Budget(300))
        if not budget.spend():
            response = web.json_response({"error": "Too many requests"}, status=429)
        else:
            request["account"] = number
            response = await handler(request)
        response.headers["X-RateLimit-Limit"] = str(budget.limit)
        response.headers["X-RateLimit-Remaining"] = str(budget.remaining)
        response.headers["X-RateLimit-Reset"] = (
            budget.reset.isoformat(timespec="microseconds").replace("+00:00", "Z"))
        return response

    async def _verify_credentials(self, request: web.Request) -> web.Response:
        number = request["account"]
        self.polls[f"m:{number}"].append(time.time())
        account = dict(self.template, id=str(1_000_000 + number),
                       username=f"teacher{number:06d}", acct=f"teacher{number:06d}",
                       display_name=f"Teacher {number}")
        return web.json_response(account)

    async def _instance(self, request: web.Request) -> web.Response:
        return web.json_response(self.instance)

    async def _empty_list(self, request: web.Request) -> web.Response:
        return web.json_response([])

    # -- Bluesky -------------------------------------------------------------------------
    def bluesky_app(self) -> web.Application:
        app = web.Application(middlewares=[self._bluesky_limits])
        app.router.add_post("/xrpc/com.atproto.server.createSession", self._create_session)
        app.router.add_get("/xrpc/app.bsky.notification.listNotifications",
                           self._list_notifications)
        app.router.add_get("/xrpc/app.bsky.graph.getFollowers", self._get_followers)
        self._control(app)
        return app

    @web.middleware
    async def _bluesky_limits(self, request: web.Request, handler):
        if request.path.startswith("/_fleet/"):
            return await handler(request)
        self.requests += 1
        if request.path.endswith("createSession"):
            return await handler(request)  # limited per account once the body is read
        number = _did_number(request.headers.get("Authorization", ""))
        if number is None:
            return _xrpc_error(401, "AuthenticationRequired", "Invalid token")
        request["account"] = number
        return self._limited(self.budgets.setdefault(f"b:{number}", Budget(3000)),
                             await handler(request))

    def _limited(self, budget: Budget, response: web.Response) -> web.Response:
        response.headers["ratelimit-limit"] = str(budget.limit)
        response.headers["ratelimit-remaining"] = str(budget.remaining)
        response.headers["ratelimit-reset"] = str(int(budget.reset.timestamp()))
        response.headers["ratelimit-policy"] = f"{budget.limit};w=300"
        return response

    async def _create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        handle = str(body.get("identifier", ""))
        number = _handle_number(handle)
        if number is None or body.get("password") != bluesky_password(number):
            return _xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        budget = self.sessions.setdefault(f"b:{number}", Budget(30))
        if not budget.spend():
            return self._limited(budget, _xrpc_error(429, "RateLimitExceeded",
                                                     "Rate Limit Exceeded"))
        self.polls[f"b:{number}"].append(time.time())
        did = _did(number)
        now = int(time.time())
        access = jwt({"scope": "com.atproto.appPassPrivileged", "sub": did, "iat": now,
                      "exp": now + 7200, "aud": "did:web:fleet.pds"})
        did_doc = {"@context": ["https://www.w3.org/ns/did/v1"], "id": did,
                   "alsoKnownAs": [f"at://{handle}"],
                   "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                                "serviceEndpoint": self.bluesky_url}]}
        return self._limited(budget, web.json_response({
            "accessJwt": access, "refreshJwt": jwt({"sub": did, "exp": 2**31}),
            "handle": handle, "did": did, "didDoc": did_doc, "active": True}))

    async def _list_notifications(self, request: web.Request) -> web.Response:
        return web.json_response({"notifications": []})

    async def _get_followers(self, request: web.Request) -> web.Response:
        subject = recorded_profile(1)
        subject.update(did=_did(request["account"]),
                       handle=bluesky_handle(request["account"]))
        return web.json_response({"subject": subject, "followers": []})

    # -- control -------------------------------------------------------------------------
    def _control(self, app: web.Application) -> None:
        app.router.add_get("/_fleet/polls", self._polls)
        app.router.add_post("/_fleet/reset", self._reset)

    async def _polls(self, request: web.Request) -> web.Response:
        return web.json_response({"polls": self.polls, "requests": self.requests,
                                  "cpu_s": time.process_time()})

    async def _reset(self, request: web.Request) -> web.Response:
        self.polls.clear()
        self.budgets.clear()
        self.sessions.clear()
        self.requests = 0
        return web.json_response({})


def _did(number: int) -> str:
    return f"did:plc:fleet{number:019d}"


def _did_number(authorization: str) -> int | None:
    """The account behind an access JWT the fleet issued (its ``sub``)."""
    try:
        payload = authorization.removeprefix("Bearer ").split(".")[1]
        sub = json.loads(_b64(payload))["sub"]
        return int(sub.removeprefix("did:plc:fleet"))
    except (IndexError, KeyError, ValueError, TypeError):
        return None


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _handle_number(handle: str) -> int | None:
    name = handle.removeprefix("teacher").removesuffix(".fleet.social")
    return int(name) if name.isdigit() and handle == bluesky_handle(int(name)) else None


def serve(ready, stop) -> None:
    """Run both servers on 127.0.0.1 (in their own process) until ``stop`` is set;
    ``ready`` gets their two URLs."""
    asyncio.run(_serve(ready, stop))


async def _serve(ready, stop) -> None:
    fleet = Fleet()
    runners = []
    for make in (fleet.mastodon_app, fleet.bluesky_app):
        runner = web.AppRunner(make(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        runners.append(runner)
    mastodon, bluesky = (f"http://127.0.0.1:{r.addresses[0][1]}" for r in runners)
    fleet.mastodon_url, fleet.bluesky_url = mastodon, bluesky
    ready.put((mastodon, bluesky))
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for runner in runners:
        await runner.cleanup()
