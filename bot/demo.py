"""``plnbot demo``: the bot on its embedded default with simulated arrivals.

Bundled, realistic profiles in each platform's own JSON shape arrive over about a
minute (``--fast`` compresses that), through the same translators and handlers as
live sources. Nothing leaves the machine: approved welcomes go to ``DemoSender``,
which only says what would have been sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot import platforms
from bot.adapters.translate import TRANSLATORS
from bot.app import App
from bot.events import NewConnection, Profile
from storage import repo
from storage.db import session_scope
from storage.models import Handle

DEMO_PROFILES = Path(__file__).parent / "data" / "demo_profiles.json"
ARRIVAL_SECONDS = 6.0
FAST_ARRIVAL_SECONDS = 0.05


class DemoSender:
    """Stands in for a platform in the demo: nothing is sent anywhere."""

    def __init__(self, platform: str) -> None:
        self.platform = platform

    async def send_welcome(self, *, handle: Handle, text: str, via: str | None = None) -> str:
        who = handle.display_handle or handle.handle
        return f"(Demo: in real use it would now reach {who}; nothing left this machine.)"


def demo_profiles() -> list[Profile]:
    entries = json.loads(DEMO_PROFILES.read_text(encoding="utf-8"))
    return [TRANSLATORS[e["platform"]](e["object"]) for e in entries]


def demo_senders() -> dict[str, DemoSender]:
    """A stand-in for every platform whose welcomes the bot sends itself."""
    return {p.id: DemoSender(p.id) for p in platforms.registry().values()
            if p.sends_by == "api" and p.snapshot is not None}


def prepare_accounts(app: App, profiles: list[Profile]) -> None:
    """The demo's accounts start with an empty baseline, so every arrival is new."""
    with session_scope(app.engine) as session:
        owner = repo.get_or_create_owner(
            session, external_ref=app.settings.owner_ref, settings=app.settings, now=app.clock()
        )
        for platform in sorted({p.platform for p in profiles}):
            account = repo.get_or_create_account(
                session, owner=owner, platform=platform, handle="you"
            )
            account.baseline_done = True
            session.add(account)


async def simulate_arrivals(app: App, profiles: list[Profile], *, fast: bool) -> None:
    delay = FAST_ARRIVAL_SECONDS if fast else ARRIVAL_SECONDS
    for profile in profiles:
        await asyncio.sleep(delay)
        await app.handle(NewConnection(owner_ref=app.settings.owner_ref, profile=profile))


async def run_demo(app: App, *, fast: bool) -> None:
    """Interactive on a TTY (arrivals and typing interleave); scripted otherwise.

    Either way reminders and nudges are delivered as they come due, as in ``run``."""
    from bot.runner import answer_owner, greet_new_owner, live

    profiles = demo_profiles()
    prepare_accounts(app, profiles)
    await app.sweep()
    await greet_new_owner(app)
    async with live(app):
        if not sys.stdin.isatty():
            await simulate_arrivals(app, profiles, fast=fast)
            await answer_owner(app)
            return
        arrivals = asyncio.create_task(simulate_arrivals(app, profiles, fast=fast))
        try:
            await answer_owner(app)
        finally:
            arrivals.cancel()
