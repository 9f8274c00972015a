"""Every owner's chat-connected accounts are polled: the first poll is the quiet baseline,
arrivals reach only their own owner, a revoked token is said once and retried slowly,
and two pollers never poll one account twice. Real Mastodon.py / atproto over HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

import responses
from aioresponses import aioresponses
from sqlalchemy import event
from sqlmodel import Session, select

from bot.app import App, open_database
from bot.connected import AUTH_RETRY, ConnectedAccounts
from bot.vault import vault_from
from storage.models import Account
from tests.conftest import make_settings
from tests.support.cli import json_messages, run_plnbot
from tests.support.connected import KEY, owner_app
from tests.support.factories import command
from tests.support.fake_bluesky import HANDLE, PASSWORD, RunningBluesky, make_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeClock, FakeSurface
from tests.support.x_api import FakeXApi, recorded_followers
from tests.support.x_oauth import FakeXOAuth


async def connect_mastodon(app: App, fake) -> None:
    ref = app.settings.owner_ref
    await app.handle(command(f"connect mastodon {fake.url}", owner_ref=ref))
    (reply,) = app.surface.pop()
    client_id = parse_qs(urlparse(reply.fields["url"]).query)["client_id"][0]
    await app.handle(command(fake.authorize(client_id), owner_ref=ref))
    (done,) = app.surface.pop()
    assert done.text.startswith("Connected"), done.text


def poller(world, worker: str = "w1") -> ConnectedAccounts:
    clock, settings, engine, surface = world
    return ConnectedAccounts(settings=settings, engine=engine, surface=surface, clock=clock,
                             worker=worker)


def by_owner(surface: FakeSurface) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for message in surface.pop():
        seen.setdefault(message.owner_ref, []).append(message.kind)
    return seen


def accounts(world) -> list[Account]:
    with Session(world[2]) as session:
        return list(session.exec(select(Account).order_by(Account.id)))


async def test_each_owners_account_is_polled_for_that_owner(world):
    clock = world[0]
    ada, ben = owner_app(world, "ada"), owner_app(world, "ben")
    with RunningMastodon() as ada_server, RunningMastodon() as ben_server:
        for fake in (ada_server, ben_server):
            fake.follow(make_account("old", display_name="Old Follower"))
        await connect_mastodon(ada, ada_server)
        await connect_mastodon(ben, ben_server)

        assert await poller(world).poll_due() == 2
        assert by_owner(world[3]) == {"ada": ["reply"], "ben": ["reply"]}  # quiet baselines
        assert all(a.baseline_done and a.last_polled_at == clock() for a in accounts(world))
        assert await poller(world).poll_due() == 0  # nothing due until the next interval

        ada_server.follow(make_account("newt", display_name="Newt Scamander"))
        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 2
    messages = world[3].pop()
    assert [(m.owner_ref, m.kind) for m in messages] == [("ada", "new_connection")]
    assert messages[0].fields["contact"]["handle"] == "newt@school.social"


def writes(engine) -> list[str]:
    """Every statement that changes a row, as the engine sends them (a listener)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "WITH"):
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    return seen


async def test_a_quiet_poll_writes_only_the_account_handed_back(world):
    """A poll that finds nothing new stores nothing but the lease given back with the
    next poll time: no transaction for a check that changes nothing. A changed follower
    count, a new follower, a problem that went away are still stored."""
    clock, engine = world[0], world[2]
    ada = owner_app(world, "ada")
    with RunningMastodon() as fake:
        await connect_mastodon(ada, fake)
        await poller(world).poll_due()  # the quiet baseline
        world[3].pop()

        clock.advance(minutes=6)
        seen = writes(engine)
        assert await poller(world).poll_due() == 1
        claim, release, nothing_more = seen  # the claim, the account, an empty claim
        assert "SET lease_owner=" in claim and "SET lease_owner=" in nothing_more
        assert release.startswith("UPDATE account SET lease_owner=")
        assert world[3].pop() == []
        (account,) = accounts(world)
        assert account.lease_owner is None and account.next_poll_at > clock()

        fake.me["followers_count"] += 1
        fake.follow(make_account("newt", display_name="Newt Scamander"))
        with Session(engine) as session:
            row = session.get_one(Account, account.id)
            row.last_error = "network: the server did not answer"
            session.add(row)
            session.commit()
        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 1
        assert sorted(m.kind for m in world[3].pop()) == ["new_connection", "source_recovered"]
        (account,) = accounts(world)
        assert account.followers_count_seen == fake.me["followers_count"]
        assert account.last_error is None


async def test_a_mass_drop_on_a_connected_account_is_rechecked_after_15_minutes(world):
    """The claim reads when a mass drop wants its re-check: the poll after it makes the
    full follower list then, not at the next daily reconciliation."""
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningMastodon() as fake:
        for n in range(30):
            fake.followers.append(make_account(f"teacher{n}"))
        await connect_mastodon(ada, fake)
        await poller(world).poll_due()  # the quiet baseline: 30 followers
        world[3].pop()
        everyone = list(fake.followers)
        del fake.followers[5:]  # the instance answers with 5 of 30 for a while
        clock.advance(hours=25)
        assert await poller(world).poll_due() == 1
        assert [m.kind for m in world[3].pop()] == ["connections_vanished"]

        fake.followers[:] = everyone
        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 1
        assert world[3].pop() == []  # not yet: the re-check is 15 minutes after the drop
        clock.advance(minutes=10)
        assert await poller(world).poll_due() == 1
        (message,) = world[3].pop()
        assert message.kind == "connections_returned" and message.fields["returned"] == 25


async def test_a_revoked_token_is_said_once_and_retried_slowly(world):
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningMastodon() as fake:
        await connect_mastodon(ada, fake)
        await poller(world).poll_due()
        world[3].pop()
        fake.revoke(next(iter(fake.issued_tokens)))

        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 1
        (error,) = world[3].pop()
        assert error.kind == "source_error" and error.fields["problem"] == "auth"
        assert "connect mastodon <instance>" in error.text
        assert "MASTODON_ACCESS_TOKEN" not in error.text
        (account,) = accounts(world)
        assert account.next_poll_at == clock() + AUTH_RETRY

        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 0  # not every interval any more
        clock.advance(seconds=AUTH_RETRY.total_seconds())
        assert await poller(world).poll_due() == 1
        assert world[3].pop() == []  # said once


async def test_bluesky_connected_by_chat_is_polled(world):
    ada = owner_app(world, "ada")
    with RunningBluesky() as fake:
        fake.followers.append(make_profile("Old Friend"))
        await ada.handle(command(f"connect bluesky {HANDLE} {PASSWORD} {fake.url}",
                                 owner_ref="ada"))
        world[3].pop()
        assert await poller(world).poll_due() == 1
    (baseline,) = world[3].pop()
    assert baseline.kind == "reply" and baseline.owner_ref == "ada"
    assert accounts(world)[0].baseline_done


async def test_a_bluesky_account_connected_by_chat_logs_in_only_when_connected(world):
    """Bluesky allows 300 logins a day: the session made by ``connect`` is kept, encrypted
    with the app password, refreshed when due and used by every poll; an expired one
    leads to one quiet login, whose session is stored in its place."""
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningBluesky() as fake:
        fake.now = lambda: clock().timestamp()
        fake.followers.append(make_profile("Old Friend"))
        await ada.handle(command(f"connect bluesky {HANDLE} {PASSWORD} {fake.url}",
                                 owner_ref="ada"))
        for _ in range(30):  # 2.5 hours of polls: the access token is refreshed once
            assert await poller(world).poll_due() == 1
            clock.advance(minutes=5, seconds=30)
        assert fake.logins == {HANDLE: 1}
        assert sum("refreshSession" in path for _, path in fake.requests) == 1
        fake.expire_sessions(refresh=True)
        assert await poller(world).poll_due() == 1
        clock.advance(minutes=6)
        assert await poller(world).poll_due() == 1
        assert fake.logins == {HANDLE: 2}
        stored = vault_from(world[1]).decrypt(accounts(world)[0].credentials or "")
        assert fake.access_token in stored["session"]["session"]
        assert stored["app_password"] == PASSWORD
    assert [m.kind for m in world[3].pop()] == ["reply", "reply"]  # connected; baseline


async def test_disconnected_and_half_connected_accounts_are_not_polled(world):
    ada, ben = owner_app(world, "ada"), owner_app(world, "ben")
    with RunningMastodon() as fake, RunningBluesky() as sky:
        await ada.handle(command(f"connect mastodon {fake.url}", owner_ref="ada"))  # no code
        await ben.handle(command(f"connect bluesky {HANDLE} {PASSWORD} {sky.url}",
                                 owner_ref="ben"))
        await ben.handle(command("disconnect bluesky", owner_ref="ben"))
        world[3].pop()
        fake.requests.clear()
        sky.requests.clear()
        assert await poller(world).poll_due() == 0
        assert fake.requests == [] and sky.requests == []


async def connect_bluesky_owners(world, owners: list[App], fake) -> None:
    """Each owner connects their own account on ``fake`` by chat (replies dropped)."""
    for app in owners:
        await app.handle(command(f"connect bluesky {HANDLE} {PASSWORD} {fake.url}",
                                 owner_ref=app.settings.owner_ref))
    world[3].pop()


async def test_two_workers_poll_each_account_exactly_once(world):
    owners = [owner_app(world, f"owner{i}") for i in range(6)]
    with RunningBluesky() as fake:
        await connect_bluesky_owners(world, owners, fake)
        fake.requests.clear()
        first, second = poller(world, "w1"), poller(world, "w2")
        first.per_claim = second.per_claim = 2
        counts = await asyncio.gather(first.poll_due(), second.poll_due())
    assert sum(counts) == 6
    sessions = [path for _, path in fake.requests if "createSession" in path]
    assert sessions == [] and fake.logins == {HANDLE: 6}  # each connect's session reused
    assert sorted(m.owner_ref for m in world[3].pop()) == sorted(
        a.settings.owner_ref for a in owners)


async def test_a_slow_batch_keeps_its_leases_so_no_other_worker_polls_it_too(world):
    """Each poll of this batch takes 40 s (platforms answering slowly) against a 60 s
    lease: the worker renews the rest of its batch as it goes, so a second worker that
    looks meanwhile finds nothing to take, and every account is polled once."""
    clock = world[0]
    owners = [owner_app(world, f"owner{i}") for i in range(3)]
    with RunningBluesky() as fake:
        await connect_bluesky_owners(world, owners, fake)
        slow, other = poller(world, "w1"), poller(world, "w2")
        taken_meanwhile: list[int] = []
        polled_by_slow = slow._poll_claimed

        async def slowly(claimed):
            clock.advance(seconds=40)
            taken_meanwhile.extend(c.account.id for c in other.claim())
            return await polled_by_slow(claimed)

        slow._poll_claimed = slowly  # type: ignore[method-assign]
        assert await slow.poll_due() == 3
        assert taken_meanwhile == []
        assert await other.poll_due() == 0
    assert sorted(m.owner_ref for m in world[3].pop()) == sorted(
        a.settings.owner_ref for a in owners)


def test_plnbot_run_worker_once_polls_connected_accounts(tmp_path, db_url):
    """The public path: an owner connects by chat, `plnbot run --worker --once` makes the
    quiet baseline; without the key it stops with one line naming PLNBOT_SECRET_KEY."""
    settings = make_settings(PLNBOT_SECRET_KEY=KEY)
    app = App(settings=settings.model_copy(update={"owner_ref": "ada"}),
              engine=open_database(settings, db_url), surface=FakeSurface(), clock=FakeClock())
    env = {"PLNBOT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    with RunningMastodon() as fake:
        fake.follow(make_account("old", display_name="Old Follower"))
        asyncio.run(connect_mastodon(app, fake))
        missing = run_plnbot("run", "--worker", "--once", "--json", "--db", db_url, env=env,
                             cwd=tmp_path)
        result = run_plnbot("run", "--worker", "--once", "--json", "--db", db_url,
                            env={**env, "PLNBOT_SECRET_KEY": KEY}, cwd=tmp_path)
    assert missing.returncode == 2 and "PLNBOT_SECRET_KEY" in missing.stderr
    assert result.returncode == 0, result.stderr
    replies = [m for m in json_messages(result.stdout)
               if m.get("owner") == "ada" and m["kind"] != "digest"]  # the sweep's digest
    assert [m["kind"] for m in replies] == ["reply"]
    assert "1 existing connection" in replies[0]["text"]
    assert KEY not in result.stdout + result.stderr


async def test_an_x_token_near_expiry_is_refreshed_before_the_poll(world):
    """X rotates refresh tokens: the new pair is stored, and the poll uses the new one."""
    clock, settings, engine, _ = world
    oauth = FakeXOAuth(client_id="plnbot-client")
    x_settings = settings.model_copy(update={"x_client_id": "plnbot-client",
                                             "x_redirect_uri": "https://plnbot.example/cb"})
    ada = App(settings=x_settings.model_copy(update={"owner_ref": "ada"}), engine=engine,
              surface=world[3], clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock, \
            aioresponses() as mocked:
        oauth.install(mock)
        api = FakeXApi(mocked, clock, followers=recorded_followers()[:5])
        (link,) = [m for m in await said(ada, "connect x")]
        await said(ada, oauth.authorize(link.fields["url"]))
        (connected,) = accounts(world)
        first = vault_from(x_settings).decrypt(connected.credentials)

        clock.advance(hours=1, minutes=50)  # ten minutes before the token expires
        poller = ConnectedAccounts(settings=x_settings, engine=engine, surface=world[3],
                                   clock=clock, worker="w1")
        assert await poller.poll_due() == 1
    (polled,) = accounts(world)
    fresh = vault_from(x_settings).decrypt(polled.credentials)
    assert fresh["refresh_token"] != first["refresh_token"]
    assert first["refresh_token"] not in oauth.refresh_tokens  # retired by X
    assert api.authorizations() == {f"Bearer {fresh['access_token']}"}
    assert polled.baseline_done and [m.kind for m in world[3].pop()] == ["reply"]


async def said(app: App, line: str) -> list:
    await app.handle(command(line, owner_ref=app.settings.owner_ref))
    return app.surface.pop()


async def test_a_stopping_worker_ends_its_pass_and_gives_the_rest_back(world):
    """SIGTERM (``stop``) during a pass: the account being polled is finished, the rest
    of the claimed batch is free for another worker at once, not when its lease ends."""
    owners = [owner_app(world, f"owner{i}") for i in range(3)]
    with RunningBluesky() as fake:
        await connect_bluesky_owners(world, owners, fake)
        stopping = poller(world, "w1")
        stopping.stop = asyncio.Event()
        poll_one = stopping._poll_and_release

        async def poll_then_signal(claimed, giving_back) -> None:
            await poll_one(claimed, giving_back)
            stopping.stop.set()  # the signal arrives while the first account is polled

        stopping._poll_and_release = poll_then_signal  # type: ignore[method-assign]
        assert await stopping.poll_due() == 1
        assert all(a.lease_owner is None for a in accounts(world))
        assert await poller(world, "w2").poll_due() == 2
