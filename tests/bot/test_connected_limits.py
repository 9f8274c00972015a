"""A platform's rate limit holds back only the account it was announced for, across
polls and workers: the poll stops instead of sleeping, the reset is kept on the account
row, no worker polls that account before it, and the other accounts go on. Real
Mastodon.py / atproto against fakes that answer 429 once the budget is spent."""

from __future__ import annotations

from datetime import timedelta

import responses
from aioresponses import aioresponses
from sqlmodel import Session, select

from bot.app import App
from bot.connected import ConnectedAccounts
from storage.models import Account, Owner
from tests.bot.test_connected import connect_mastodon, poller, said
from tests.support.connected import owner_app
from tests.support.factories import command
from tests.support.fake_bluesky import HANDLE, PASSWORD, RunningBluesky, make_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.x_api import FakeXApi, recorded_followers
from tests.support.x_oauth import FakeXOAuth


def account_of(world, owner_ref: str) -> Account:
    with Session(world[2]) as session:
        return session.exec(select(Account).join(Owner, Owner.id == Account.owner_id)
                            .where(Owner.external_ref == owner_ref)).one()


def new_connection_owners(world) -> list[str]:
    return [m.owner_ref for m in world[3].pop() if m.kind == "new_connection"]


async def test_a_429_defers_that_account_until_the_reset_for_every_worker(world):
    clock = world[0]
    ada, ben = owner_app(world, "ada"), owner_app(world, "ben")
    with RunningMastodon() as ada_server, RunningMastodon() as ben_server:
        ada_server.limit_clock = ben_server.limit_clock = clock
        await connect_mastodon(ada, ada_server)
        await connect_mastodon(ben, ben_server)
        assert await poller(world, "w1").poll_due() == 2  # the quiet baselines
        world[3].pop()

        clock.advance(minutes=6)
        reset = clock() + timedelta(minutes=10)
        ada_server.ratelimit_remaining, ada_server.ratelimit_reset = 0, reset  # spent
        ada_server.follow(make_account("newt", display_name="Newt Scamander"))
        ben_server.follow(make_account("luna", display_name="Luna Lovegood"))
        ada_server.requests.clear()
        assert await poller(world, "w1").poll_due() == 2
        assert len(ada_server.requests) == 1  # one 429, then no waiting and no retry
        assert new_connection_owners(world) == ["ben"]
        assert account_of(world, "ada").rate_limited_until == reset
        assert account_of(world, "ben").rate_limited_until is None

        # another worker, both accounts due again: ben is polled, ada is left alone
        clock.advance(minutes=6)
        ada_server.requests.clear()
        assert await poller(world, "w2").poll_due() == 1
        assert ada_server.requests == []

        clock.advance(minutes=4)  # past the reset
        assert await poller(world, "w2").poll_due() == 1
        assert new_connection_owners(world) == ["ada"]
        account = account_of(world, "ada")
        assert account.rate_limited_until is None and account.last_polled_at == clock()


async def test_headers_saying_the_budget_is_spent_hold_the_next_poll(world):
    """Bluesky's ``ratelimit-remaining: 0`` on an ordinary answer: the poll stops before
    the request that would be refused."""
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningBluesky() as fake:
        fake.limit_clock = clock
        fake.followers.append(make_profile("Old Friend"))
        await ada.handle(command(f"connect bluesky {HANDLE} {PASSWORD} {fake.url}",
                                 owner_ref="ada"))
        world[3].pop()
        reset = (clock() + timedelta(minutes=8)).replace(microsecond=0)
        fake.ratelimit_remaining, fake.ratelimit_reset = 1, reset  # the first call spends it
        fake.requests.clear()
        assert await poller(world).poll_due() == 1
        assert [path for _, path in fake.requests] == [  # connect's session is reused
            "/xrpc/app.bsky.notification.listNotifications?limit=1&reasons=follow"]
        account = account_of(world, "ada")
        assert account.rate_limited_until == reset and not account.baseline_done
        assert account.next_poll_at == reset  # the rest as soon as the window opens

        clock.advance(minutes=7)
        assert await poller(world).poll_due() == 0
        clock.advance(minutes=1)
        assert await poller(world).poll_due() == 1
        assert account_of(world, "ada").baseline_done
        assert [m.kind for m in world[3].pop()] == ["reply"]  # the quiet baseline's


async def test_a_budget_spent_by_a_complete_poll_holds_the_next_one(world):
    """The poll finished, but its last answer said nothing is left: the next poll waits
    for the reset even when its interval has come (X, Mastodon and Bluesky all count a
    window per account)."""
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningMastodon() as fake:
        fake.limit_clock = clock
        await connect_mastodon(ada, fake)
        assert await poller(world).poll_due() == 1
        world[3].pop()
        clock.advance(minutes=6)
        fake.requests.clear()
        assert await poller(world).poll_due() == 1
        per_poll = len(fake.requests)  # what an ordinary poll asks for

        clock.advance(minutes=6)
        reset = clock() + timedelta(minutes=12)
        fake.ratelimit_remaining, fake.ratelimit_reset = per_poll, reset  # just enough
        fake.follow(make_account("newt", display_name="Newt Scamander"))
        assert await poller(world).poll_due() == 1
        assert new_connection_owners(world) == ["ada"]  # the poll was complete
        assert account_of(world, "ada").rate_limited_until == reset
        clock.advance(minutes=6)  # the interval has come, the window has not
        fake.requests.clear()
        assert await ConnectedAccounts(settings=world[1], engine=world[2], surface=world[3],
                                       clock=clock, worker="w2").poll_due() == 0
        assert fake.requests == []
        clock.advance(minutes=6)
        assert await poller(world, "w2").poll_due() == 1


async def test_an_x_window_spent_by_a_poll_holds_the_next_one_without_a_429(world):
    """X counts each endpoint's window per token: a poll that used the last follower-list
    request keeps the reset on the account row, and no poll asks X before it."""
    clock, settings, engine, surface = world
    oauth = FakeXOAuth(client_id="plnbot-client")
    x_settings = settings.model_copy(update={"x_client_id": "plnbot-client",
                                             "x_redirect_uri": "https://plnbot.example/cb"})
    ada = App(settings=x_settings.model_copy(update={"owner_ref": "ada"}), engine=engine,
              surface=surface, clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock, \
            aioresponses() as mocked:
        oauth.install(mock)
        api = FakeXApi(mocked, clock, followers=recorded_followers()[:5], followers_limit=1)
        (link,) = [m for m in await said(ada, "connect x")]
        await said(ada, oauth.authorize(link.fields["url"]))

        def x_poller(worker: str) -> ConnectedAccounts:
            return ConnectedAccounts(settings=x_settings, engine=engine, surface=surface,
                                     clock=clock, worker=worker)

        assert await x_poller("w1").poll_due() == 1  # the baseline spends the window
        reset = account_of(world, "ada").rate_limited_until
        assert reset is not None and clock() < reset <= clock() + timedelta(minutes=15, seconds=1)

        clock.advance(minutes=6)  # the poll interval has come, X's window has not
        api.requests.clear()
        assert await x_poller("w2").poll_due() == 0
        assert api.requests == []

        clock.advance(minutes=10)  # past the reset
        assert await x_poller("w2").poll_due() == 1
        assert api.calls("followers") and api.over_limit == 0  # never a 429
        assert account_of(world, "ada").rate_limited_until > reset  # its one request: spent
