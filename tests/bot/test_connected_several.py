"""Several accounts of one owner on one platform (a personal and a school Mastodon
account, two Bluesky accounts), connected by chat: each is polled under its own lease
with its own cursor, baseline and kept session; connecting one again refreshes it and
never duplicates it; ``disconnect`` names one. Real Mastodon.py / atproto over HTTP
against the fake servers, on SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import responses
from sqlmodel import Session, select

from bot.app import App
from bot.connected import ConnectedAccounts
from bot.vault import vault_from
from storage.models import Account, Connection, Handle
from tests.support.connected import owner_app
from tests.support.factories import command
from tests.support.fake_bluesky import HANDLE, PASSWORD, RunningBluesky, make_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.x_api import recorded_me
from tests.support.x_oauth import FakeXOAuth


async def say(app: App, line: str) -> list:
    await app.handle(command(line, owner_ref=app.settings.owner_ref))
    return app.surface.pop()


async def connect_mastodon(app: App, fake) -> str:
    """Connect the account ``fake`` serves (link, approval, pasted code): the answer."""
    (reply,) = await say(app, f"connect mastodon {fake.url}")
    client_id = parse_qs(urlparse(reply.fields["url"]).query)["client_id"][0]
    (done,) = await say(app, fake.authorize(client_id))
    return done.text


def poll(world) -> int:
    clock, settings, engine, surface = world
    return ConnectedAccounts(settings=settings, engine=engine, surface=surface,
                             clock=clock, worker="w1").poll_due()


def accounts(world, platform: str) -> list[Account]:
    with Session(world[2]) as session:
        return list(session.exec(select(Account).where(Account.platform == platform)
                                 .order_by(Account.id)))


def followers(world) -> dict[tuple[str, str], str]:
    """(account handle, follower handle) → state, for every owner."""
    with Session(world[2]) as session:
        rows = session.exec(select(Account.handle, Handle.handle, Connection.state)
                            .join(Connection, Connection.account_id == Account.id)
                            .join(Handle, Handle.id == Connection.handle_id)).all()
    return {(account, person): state for account, person, state in rows}


def hostport(url: str) -> str:
    return urlparse(url).netloc


async def test_a_personal_and_a_school_mastodon_account_are_watched_each_on_its_own(world):
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningMastodon() as personal, RunningMastodon() as school:
        school.me = make_account("ada", domain=None, display_name="Ada at school")
        personal.follow(make_account("old", display_name="Old Friend"))
        school.follow(make_account("colleague", display_name="Cole League"))
        first = await connect_mastodon(ada, personal)
        assert first.startswith(f"Connected owner@{hostport(personal.url)} on Mastodon")
        assert await poll(world) == 1  # the personal account's quiet baseline
        ada.surface.pop()
        [mine] = [a.handle for a in accounts(world, "mastodon")]  # as its profile says

        # the second one waits for its code while the first is still polled
        (link,) = await say(ada, f"connect mastodon {school.url}")
        clock.advance(minutes=6)
        assert await poll(world) == 1
        client_id = parse_qs(urlparse(link.fields["url"]).query)["client_id"][0]
        (done,) = await say(ada, school.authorize(client_id))
        assert done.text.startswith(f"Connected ada@{hostport(school.url)} on Mastodon")
        assert await poll(world) == 1  # the school account's own quiet baseline
        _, theirs = [a.handle for a in accounts(world, "mastodon")]
        (baseline,) = ada.surface.pop()
        assert baseline.kind == "reply" and "recorded quietly" in baseline.text
        assert followers(world) == {(mine, "old@school.social"): "active",
                                    (theirs, "colleague@school.social"): "active"}

        (listed,) = await say(ada, "accounts")
        assert f"- Mastodon: @{mine} (last looked" in listed.text
        assert f"- Mastodon: @{theirs} (last looked" in listed.text

        school.follow(make_account("newt", display_name="Newt Scamander"))
        clock.advance(minutes=6)
        assert await poll(world) == 2
        (news,) = ada.surface.pop()
        assert news.kind == "new_connection"
        assert followers(world)[(theirs, "newt@school.social")] == "active"

        # connecting the personal account again refreshes it: no second row, no new
        # baseline, its followers as they were
        ids = [a.id for a in accounts(world, "mastodon")]
        again = await connect_mastodon(ada, personal)
        assert again == (f"owner@{hostport(personal.url)} on Mastodon was already connected: "
                         "I refreshed its access, and its followers and history stay as "
                         "they were.")
        assert [a.id for a in accounts(world, "mastodon")] == ids
        assert all(a.baseline_done for a in accounts(world, "mastodon"))
        clock.advance(minutes=6)
        assert await poll(world) == 2
        assert ada.surface.pop() == []
        assert [a.handle for a in accounts(world, "mastodon")] == [mine, theirs]

        (which,) = await say(ada, "disconnect mastodon")
        assert which.kind == "error" and which.text.startswith(
            f"You have 2 Mastodon accounts connected: @{mine}, @{theirs}. Say which, e.g. "
            f"`disconnect mastodon @{mine}`.")
        (unknown,) = await say(ada, "disconnect mastodon @someone@else.social")
        assert unknown.kind == "error" and f"@{mine}, @{theirs}" in unknown.text
        (gone,) = await say(ada, f"disconnect mastodon @{theirs}")
        assert gone.text.startswith(f"Disconnected {theirs} on Mastodon")
        school.requests.clear()
        clock.advance(minutes=6)
        assert await poll(world) == 1  # only the personal account
        assert school.requests == []
        (last,) = await say(ada, "disconnect mastodon")  # the one left: no name needed
        assert last.text.startswith(f"Disconnected {mine} on Mastodon")
    # disconnecting lost nobody
    assert set(followers(world).values()) == {"active"}
    assert len(accounts(world, "mastodon")) == 2


async def test_two_bluesky_accounts_each_keep_their_own_session(world):
    """Each account's poll uses the session its own ``connect`` made (Bluesky allows 30
    logins in 5 minutes): one login per account, never the other's token."""
    clock = world[0]
    ada = owner_app(world, "ada")
    with RunningBluesky() as home, RunningBluesky() as school:
        school.handle, school.did = "ada.school.example", "did:plc:school000000000000000001"
        for fake in (home, school):
            fake.now = lambda: clock().timestamp()
        home.followers.append(make_profile("Old Friend"))
        school.followers.append(make_profile("Cole League"))
        await say(ada, f"connect bluesky {HANDLE} {PASSWORD} {home.url}")
        (second,) = await say(ada, f"connect bluesky {school.handle} {PASSWORD} {school.url}")
        assert second.text.startswith("Connected @ada.school.example on Bluesky")
        for _ in range(3):
            assert await poll(world) == 2
            clock.advance(minutes=6)
        assert home.logins == {HANDLE: 1} and school.logins == {school.handle: 1}
        assert [m.kind for m in ada.surface.pop()] == ["reply", "reply"]  # two baselines
        vault = vault_from(world[1])
        sessions = {a.handle: vault.decrypt(a.credentials or "")["session"]
                    for a in accounts(world, "bluesky")}
        assert school.did in str(sessions["ada.school.example"])
        assert school.did not in str(sessions[HANDLE])

        school.clock = clock()  # the fake's notifications are dated by its own clock
        school.follow(make_profile("Newt Scamander"))
        assert await poll(world) == 2
        (news,) = ada.surface.pop()
        assert news.kind == "new_connection"
        (same,) = await say(ada, f"connect bluesky @{HANDLE} {PASSWORD} {home.url}")
        assert "was already connected" in same.text
        assert len(accounts(world, "bluesky")) == 2


async def test_a_second_x_account_is_added_and_the_same_one_is_refreshed(world):
    clock, settings, engine, surface = world
    oauth = FakeXOAuth(client_id="plnbot-client")
    x_settings = settings.model_copy(update={"x_client_id": "plnbot-client",
                                             "x_redirect_uri": "https://plnbot.example/cb",
                                             "owner_ref": "ada"})
    ada = App(settings=x_settings, engine=engine, surface=surface, clock=clock)
    me = recorded_me()

    async def connect_x() -> str:
        (link,) = await say(ada, "connect x")
        (done,) = await say(ada, oauth.authorize(link.fields["url"]))
        return done.text

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        oauth.install(mock)
        assert (await connect_x()).startswith(f"Connected {me['username']} on X")
        oauth.me = {**me, "id": "4242424242", "username": "ada_school"}
        assert (await connect_x()).startswith("Connected ada_school on X")
        oauth.me = me
        assert "was already connected" in await connect_x()
    stored = accounts(world, "x")
    assert [(a.external_id, a.connected_at is not None) for a in stored] == [
        (me["id"], True), ("4242424242", True)]
    tokens = [vault_from(x_settings).decrypt(a.credentials or "")["access_token"]
              for a in stored]
    assert [oauth.users_by_token[t]["id"] for t in tokens] == [me["id"], "4242424242"]
    assert tokens[0] == list(oauth.users_by_token)[-1]  # the refreshed one is the newest
    (listed,) = await say(ada, "accounts")
    assert listed.text.count("- X: @") == 2
