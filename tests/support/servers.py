"""Run an ``aiohttp.web`` application on 127.0.0.1 in its own thread.

The platform clients under test are real (Mastodon.py over ``requests`` in worker
threads, atproto over ``httpx``), so the fake servers must answer real HTTP while
the test's event loop is busy awaiting them: a thread with its own loop does that.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

# What a fake platform can do instead of answering: besides an HTTP status code, the
# faults a real server or proxy produces (``fake.fail(path, fault)``).
MALFORMED, TRUNCATED, HANG = "malformed JSON", "truncated page", "no answer"
# The request takes effect, then the connection drops before the answer (a welcome that
# may or may not have gone out, as far as the client can tell).
DROPPED = "dropped after the request took effect"
HANG_SECONDS = 3.0  # longer than the request timeout the fault tests give the clients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """``with ServerThread(app) as server: server.url`` — stopped on exit."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        # bound here and kept: a port picked then released could be taken by a parallel
        # test (pytest-xdist) before the server binds it
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class RunningFake:
    """``with RunningX() as fake:`` a fake platform (anything with ``application()`` and a
    ``url`` attribute) serving HTTP on 127.0.0.1; ``fake.url`` is set while it runs.

    Subclasses name their fake with ``fake_type``.
    """

    fake_type: type

    def __init__(self, fake=None) -> None:
        self.fake = fake or self.fake_type()
        self.server = ServerThread(self.fake.application())

    def __enter__(self):
        self.server.__enter__()
        self.fake.url = self.server.url
        return self.fake

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


def take_fault(failures: list[tuple[str, int | str]], path: str) -> int | str | None:
    """The first queued ``(path part, fault)`` matching ``path``, removed; None if none."""
    for index, (part, fault) in enumerate(failures):
        if part in path:
            del failures[index]
            return fault
    return None


async def faulty_answer(fault: int | str, request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                        error: Callable[[int], web.Response]) -> web.StreamResponse:
    """The response of a fake told to fail a request with ``fault``: an HTTP error
    (``error(status)``), a 200 whose body is not JSON, the real page cut in half, or
    the real page after longer than any client waits."""
    if isinstance(fault, int):
        return error(fault)
    if fault == MALFORMED:
        return web.Response(status=200, text="<html><body>Service Unavailable</body></html>",
                            content_type="application/json")
    if fault == HANG:
        await asyncio.sleep(HANG_SECONDS)
        return await handler(request)
    if fault == DROPPED:
        await handler(request)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing is written: the client sees the drop
    if fault == TRUNCATED:
        page = await handler(request)
        body = page.body.decode() if isinstance(page.body, bytes) else str(page.text)
        return web.Response(status=200, text=body[: len(body) // 2],
                            content_type="application/json")
    raise ValueError(f"unknown fault {fault!r}")
