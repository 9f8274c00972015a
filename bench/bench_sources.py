"""How much the Mastodon and Bluesky sources add to reading a follower list.

A full reconciliation (the first sync, then every PLNBOT_RECONCILE_HOURS) pages through
every follower. This measures it end to end against the fake servers on 127.0.0.1
(real Mastodon.py / atproto clients over real HTTP, the real sync engine on SQLite)
and compares it with a plain baseline in the same run: the same client library
fetching the same pages and doing nothing with them. The ratio is the cost of our
layer (rate-limit bookkeeping, translation, the database baseline).

    python -m bench.bench_sources [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile

from atproto_client import AsyncClient
from mastodon import Mastodon

from bench.common import parse_args, peak_rss_mb, report, timed
from bot.adapters.bluesky import adapter as bluesky
from bot.adapters.mastodon import adapter as mastodon
from bot.app import App, open_database
from bot.config import Settings
from tests.support.fake_bluesky import RunningBluesky, make_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeClock, FakeSleep, FakeSurface


def new_app(settings: Settings, folder: str) -> App:
    engine = open_database(settings, f"sqlite:///{folder}/bench.sqlite3")
    return App(settings=settings, engine=engine, surface=FakeSurface(), clock=FakeClock())


def mastodon_baseline(fake) -> int:
    api = Mastodon(access_token=fake.token, api_base_url=fake.url, ratelimit_method="throw")
    me = api.account_verify_credentials()
    page, count = api.account_followers(me["id"], limit=80), 0
    while page:
        count += len(page)
        page = api.fetch_next(page) if getattr(page, "_pagination_next", None) else None
    return count


async def mastodon_ours(fake, folder: str) -> int:
    settings = Settings(_env_file=None, MASTODON_BASE_URL=fake.url,
                        MASTODON_ACCESS_TOKEN=fake.token)
    app = new_app(settings, folder)
    source = mastodon.build_source(settings, clock=app.clock, sleep=FakeSleep(app.clock))
    await source.poll(app)
    return int(app.surface.pop()[0].fields["count"])


async def bluesky_baseline(fake) -> int:
    client = AsyncClient(base_url=fake.url)
    await client.login(fake.handle, fake.password, fetch_bsky_profile=False)
    cursor, count = None, 0
    while True:
        params = {"actor": fake.did, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await client.app.bsky.graph.get_followers(params=params)
        count += len(page.followers)
        cursor = page.cursor
        if not cursor:
            return count


async def bluesky_ours(fake, folder: str) -> int:
    settings = Settings(_env_file=None, BLUESKY_HANDLE=fake.handle,
                        BLUESKY_APP_PASSWORD=fake.password, BLUESKY_BASE_URL=fake.url)
    app = new_app(settings, folder)
    source = bluesky.build_source(settings, clock=app.clock, sleep=FakeSleep(app.clock))
    await source.poll(app)
    return int(app.surface.pop()[0].fields["count"])


def run(followers: int) -> dict:
    figures: dict = {"followers": followers}
    with RunningMastodon() as fake, tempfile.TemporaryDirectory() as folder:
        for index in range(followers):
            fake.followers.append(make_account(f"user{index}", display_name=f"User {index}",
                                               note="Teacher of maths and science"))
        base, n1 = timed(lambda: mastodon_baseline(fake))
        ours, n2 = timed(lambda: asyncio.run(mastodon_ours(fake, folder)))
        assert n1 == n2 == followers, (n1, n2)
        figures.update(mastodon_baseline_s=round(base, 3), mastodon_ours_s=round(ours, 3),
                       mastodon_ratio=round(ours / base, 2))
    with RunningBluesky() as fake, tempfile.TemporaryDirectory() as folder:
        for index in range(followers):
            fake.followers.append(make_profile(f"User{index}", description="Teacher"))
        base, n1 = timed(lambda: asyncio.run(bluesky_baseline(fake)))
        ours, n2 = timed(lambda: asyncio.run(bluesky_ours(fake, folder)))
        assert n1 == n2 == followers, (n1, n2)
        figures.update(bluesky_baseline_s=round(base, 3), bluesky_ours_s=round(ours, 3),
                       bluesky_ratio=round(ours / base, 2))
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    report("sources", run(400 if args.quick else 3000))


if __name__ == "__main__":
    main()
