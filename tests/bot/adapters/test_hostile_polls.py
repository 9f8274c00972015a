"""One bad person in a live poll costs nobody else: X, Mastodon and Bluesky through their
real client libraries against the fake servers, which serve the hostile JSON as given.

An entry that cannot be read (an id that is no id, a DID that is no DID, no handle,
not an object at all) is skipped on its own and told once; everyone else is stored and
welcomed; the cursor moves past it (fetching it again cannot help) but never past a
person who could have been stored; a reconciliation never counts it as gone.
"""

from __future__ import annotations

import pytest
from aioresponses import aioresponses
from sqlmodel import Session, select

from bot.adapters.bluesky.adapter import build_source as build_bluesky
from bot.adapters.mastodon.adapter import build_source as build_mastodon
from bot.adapters.x.adapter import XSource
from storage.models import Account, Connection, Handle
from tests.conftest import make_settings
from tests.support.cli import json_messages, run_plnbot
from tests.support.fake_bluesky import RunningBluesky, make_profile, recorded_profile
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeSleep
from tests.support.x_api import FakeXApi, recorded_followers

X_OWNER = "1072250532645998596"
X_BEARER = "AAAAAAAAAAAAAAAAAAAAAtest-bearer-0123456789"


@pytest.fixture
def sleep(clock) -> FakeSleep:
    return FakeSleep(clock)


def states(app, platform: str) -> dict[str, str]:
    """external id → connection state, for one platform."""
    with Session(app.engine) as session:
        rows = session.exec(select(Handle.external_id, Connection.state)
                            .join(Connection, Connection.handle_id == Handle.id)
                            .where(Handle.platform == platform))
        return dict(rows.all())


def account(app, platform: str) -> Account:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == platform)).one()


def skipped(messages) -> list:
    return [m for m in messages if m.kind == "profiles_skipped"]


# --- X ----------------------------------------------------------------------------------


def x_user(n: int) -> dict:
    return {"id": str(1600000000000000000 + n), "name": f"Teacher {n}",
            "username": f"teacher{n}", "description": "Year 6 teacher. #mathchat"}


X_HOSTILE = [
    {"id": "1600000000000000077\n", "username": "ivy", "name": "Ivy"},  # not 1–20 digits
    {"id": "１２３", "username": "wide"},  # digits, but not ASCII ones
    {"id": "1" * 21, "username": "long"},
    {"id": {"$oid": 1}, "username": "object"},
    {"username": "noid", "name": "No Id"},
    7,  # not a user object at all
    ["a", "list"],
]


@pytest.fixture
def x_api(clock):
    with aioresponses() as mocked:
        yield lambda **kw: FakeXApi(mocked, clock, **kw)


@pytest.fixture
def x_source(clock, sleep):
    settings = make_settings(X_BEARER_TOKEN=X_BEARER, X_USER_ID=X_OWNER)
    return XSource(settings, bearer_token=X_BEARER, clock=clock, sleep=sleep)


async def test_x_unreadable_followers_are_skipped_and_told_once(app, surface, x_source, x_api,
                                                               clock):
    api = x_api(followers=recorded_followers()[:30], page_size=20)
    await x_source.poll(app)
    surface.pop()
    api.requests.clear()
    api.followers[:0] = [x_user(2), *X_HOSTILE, x_user(1)]  # newest first

    await x_source.poll(app)

    messages = surface.pop()
    arrivals = [m.fields["contact"]["handle"] for m in messages if m.kind == "new_connection"]
    assert arrivals == ["teacher1", "teacher2"]  # the people around them, in order
    [told] = skipped(messages)
    assert told.fields["count"] == len(X_HOSTILE)
    assert told.text.startswith(f"{len(X_HOSTILE)} profiles could not be read and were "
                                "skipped: @ivy — its 'id' is not an X id (1–20 digits)")
    assert "@noid — it has no 'id'" in told.text
    assert "a follower without a readable id or handle — the follower sent is not a JSON " \
           "object" in told.text
    assert len(api.calls("followers")) == 1  # the count is explained: no reconciliation
    stored = states(app, "x")
    assert stored[x_user(1)["id"]] == stored[x_user(2)["id"]] == "active"
    assert not any(len(i) > 20 or not i.isascii() or not i.isdigit() for i in stored)

    clock.advance(minutes=5)
    await x_source.poll(app)  # they are still at the top of the list: not news, no resync
    assert surface.pop() == []
    assert len(api.calls("followers")) == 2
    assert account(app, "x").followers_count_seen == len(api.followers)


async def test_x_reconciliation_never_counts_an_unreadable_follower_as_gone(
        app, surface, x_source, x_api, clock):
    api = x_api(followers=[x_user(n) for n in range(1, 11)], page_size=4)
    await x_source.poll(app)
    surface.pop()
    # the platform garbles one stored follower's id (their username still reads), drops
    # the id of another (nothing of them reads), and someone really leaves
    garbled = api.followers[2] = {**api.followers[2], "id": api.followers[2]["id"] + "x"}
    api.followers[5] = 5
    left = api.followers.pop(8)
    clock.advance(days=2)  # the slow schedule: a full reconciliation

    await x_source.poll(app)

    stored = states(app, "x")
    assert stored[garbled["id"][:-1]] == "active"  # named by its handle: still there
    assert stored[left["id"]] == "lost"
    messages = surface.pop()
    [told] = skipped(messages)
    assert told.fields["count"] == 2 and "@teacher3 — its 'id' is not an X id" in told.text


async def test_x_a_page_that_is_not_a_list_of_users_is_a_passing_problem(app, surface,
                                                                         x_source, x_api):
    api = x_api(followers=[x_user(1)])
    api.fail("followers", 200, {"data": {"id": "1"}, "meta": {}}, times=1)
    await x_source.poll(app)
    [problem] = [m for m in surface.pop() if m.kind == "source_error"]
    assert "shape it does not document" in problem.text
    await x_source.poll(app)
    assert "source_recovered" in [m.kind for m in surface.pop()]


# --- Mastodon ---------------------------------------------------------------------------

TEACHER = "Maths teacher at Oak Primary. #mathchat"


def mastodon_hostile() -> list:
    """Accounts as a broken or hostile instance could send them."""
    no_id = make_account("noid", display_name="No Id")
    del no_id["id"]
    return [
        {**make_account("objid"), "id": {"nested": 1}},
        no_id,
        {**make_account("blank"), "id": "   "},
        {**make_account("nul"), "id": "12\x0034"},
        "not an account",
        42,
    ]


@pytest.fixture
def mastodon():
    with RunningMastodon() as server:
        yield server


@pytest.fixture
def mastodon_source(mastodon, clock, sleep):
    settings = make_settings(MASTODON_BASE_URL=mastodon.url,
                             MASTODON_ACCESS_TOKEN=mastodon.token)
    return build_mastodon(settings, clock=clock, sleep=sleep)


async def test_mastodon_unreadable_accounts_in_notifications_move_the_cursor_once(
        app, surface, mastodon, mastodon_source):
    mastodon.follow(make_account("ann", display_name="Ann", note=TEACHER))
    await mastodon_source.poll(app)
    surface.pop()
    mastodon.follow(make_account("bob", display_name="Bob", note=TEACHER))
    for bad in mastodon_hostile():
        mastodon.follow(bad)
    mastodon.notify("follow_request", 17)
    mastodon.notify("follow")["account"] = None  # "account": null
    mastodon.follow(make_account("cy", display_name="Cy", note=TEACHER))

    await mastodon_source.poll(app)

    messages = surface.pop()
    arrivals = [m.fields["contact"]["handle"] for m in messages if m.kind == "new_connection"]
    assert arrivals == ["bob@school.social", "cy@school.social"]
    told = skipped(messages)
    assert sum(m.fields["count"] for m in told) == len(mastodon_hostile()) + 2
    assert any("@noid@school.social — it has no 'id'" in m.text for m in told)
    assert account(app, "mastodon").cursor == mastodon.notifications[-1]["id"]

    await mastodon_source.poll(app)  # past all of them: nothing fetched again, nothing said
    assert surface.pop() == []


async def test_mastodon_a_poll_whose_last_entries_are_unreadable_still_moves_on(
        app, surface, mastodon, mastodon_source):
    mastodon.follow(make_account("ann", display_name="Ann", note=TEACHER))
    await mastodon_source.poll(app)
    surface.pop()
    mastodon.follow(42)
    await mastodon_source.poll(app)
    [told] = skipped(surface.pop())
    assert told.fields["count"] == 1
    assert account(app, "mastodon").cursor == mastodon.notifications[-1]["id"]


async def test_mastodon_notifications_without_a_readable_id_are_told_once(
        app, surface, mastodon, mastodon_source):
    """A notification that cannot be placed against the cursor is left out of the poll,
    as before, but the owner hears about it (the person in it, where readable) once."""
    mastodon.follow(make_account("ann", display_name="Ann", note=TEACHER))
    await mastodon_source.poll(app)
    surface.pop()
    hidden = mastodon.notify("follow", make_account("dee", display_name="Dee", note=TEACHER))
    mastodon.notifications.remove(hidden)
    mastodon.unplaceable += [{**hidden, "id": {"not": "an id"}}, {**hidden, "id": None,
                                                                   "account": 7}]
    mastodon.follow(make_account("cy", display_name="Cy", note=TEACHER))

    await mastodon_source.poll(app)

    messages = surface.pop()
    arrivals = [m.fields["contact"]["handle"] for m in messages if m.kind == "new_connection"]
    assert arrivals == ["cy@school.social"]
    [told] = skipped(messages)
    assert told.fields["count"] == 2
    assert "@dee@school.social — its notification has no readable id" in told.text
    assert "a notification without a readable id or handle — its notification" in told.text
    assert account(app, "mastodon").cursor == mastodon.notifications[-1]["id"]
    await mastodon_source.poll(app)  # fetched again with every page: said once
    assert surface.pop() == []


async def test_mastodon_reconciliation_skips_unreadable_followers_and_loses_none_of_them(
        app, surface, mastodon, mastodon_source, clock):
    people = [make_account(n, display_name=n.title(), note=TEACHER)
              for n in ("ann", "bob", "cy", "dee")]
    for person in people:
        mastodon.follow(person)
    for bad in mastodon_hostile():
        mastodon.followers.insert(1, bad)
    await mastodon_source.poll(app)  # the baseline reads the follower list
    messages = surface.pop()
    assert "4 existing connections" in [m for m in messages if m.kind == "reply"][0].text
    [told] = skipped(messages)
    assert told.fields["count"] == len(mastodon_hostile())
    # bob's entry stops being readable (his id turns into an object) but he is still there
    index = mastodon.followers.index(people[1])
    mastodon.followers[index] = {**people[1], "id": {"oops": people[1]["id"]}}
    clock.advance(days=2)

    await mastodon_source.poll(app)

    assert set(states(app, "mastodon").values()) == {"active"}
    [told] = skipped(surface.pop())  # only bob is news
    assert told.fields["count"] == 1 and "@bob@school.social" in told.text


# --- Bluesky ----------------------------------------------------------------------------


def bluesky_hostile() -> list:
    """Followers as a broken or hostile PDS could send them."""
    no_handle = make_profile("No Handle")
    del no_handle["handle"]
    return [
        {**make_profile("Not A Did"), "did": "not-a-did"},
        {**make_profile("Empty Did"), "did": ""},
        {**make_profile("Huge Did"), "did": "did:plc:" + "a" * 100_000},
        {**make_profile("Nul Did"), "did": "did:plc:abc\x00def"},
        {**make_profile("Number Did"), "did": 12},
        no_handle,
        "a follower",
        None,
    ]


@pytest.fixture
def bluesky():
    with RunningBluesky() as server:
        yield server


@pytest.fixture
def bluesky_source(bluesky, clock, sleep):
    settings = make_settings(BLUESKY_HANDLE=bluesky.handle,
                             BLUESKY_APP_PASSWORD=bluesky.password,
                             BLUESKY_BASE_URL=bluesky.url)
    return build_bluesky(settings, clock=clock, sleep=sleep)


async def test_bluesky_unreadable_followers_in_notifications_are_skipped_once(
        app, surface, bluesky, bluesky_source):
    for index in range(3):
        bluesky.follow(recorded_profile(index))
    await bluesky_source.poll(app)
    surface.pop()
    ada = bluesky.follow(make_profile("Ada Lovelace", description="Teacher"))["author"]
    for bad in bluesky_hostile():
        bluesky.follow(bad)
    ben = bluesky.follow(make_profile("Ben Okri", description="Teacher"))["author"]

    await bluesky_source.poll(app)

    messages = surface.pop()
    arrivals = [m.fields["contact"]["handle"] for m in messages if m.kind == "new_connection"]
    assert arrivals == [ada["handle"], ben["handle"]]
    [told] = skipped(messages)
    assert told.fields["count"] == len(bluesky_hostile())
    assert "its 'did' is not a DID" in told.text and "— it has no 'handle'" in told.text
    assert account(app, "bluesky").cursor == bluesky.notifications[0]["indexedAt"]
    stored = states(app, "bluesky")
    assert set(stored) >= {ada["did"], ben["did"]} and all(
        d.startswith("did:") and "\x00" not in d and len(d) < 200 for d in stored)

    await bluesky_source.poll(app)
    assert surface.pop() == []


async def test_bluesky_only_unreadable_arrivals_still_move_the_cursor(app, surface, bluesky,
                                                                      bluesky_source):
    bluesky.follow(recorded_profile(0))
    await bluesky_source.poll(app)
    surface.pop()
    bluesky.follow({**make_profile("Not A Did"), "did": "not-a-did"})
    await bluesky_source.poll(app)
    [told] = skipped(surface.pop())
    assert told.fields["count"] == 1
    assert account(app, "bluesky").cursor == bluesky.notifications[0]["indexedAt"]


async def test_bluesky_notifications_without_a_readable_time_are_told_once(
        app, surface, bluesky, bluesky_source):
    """A follow notification whose time cannot be read cannot be placed against the
    cursor: left out as before, and now told to the owner once, naming the person."""
    bluesky.follow(recorded_profile(0))
    await bluesky_source.poll(app)
    surface.pop()
    bluesky.follow(make_profile("Ada Lovelace", description="Teacher"))
    for when in ("not a time", None, "2026-" + "1" * 100):
        bluesky.follow(make_profile("Dee Undated", description="Teacher"))["indexedAt"] = when
    bluesky.notifications.insert(0, "not a notification")

    await bluesky_source.poll(app)

    messages = surface.pop()
    assert [m.fields["contact"]["name"] for m in messages
            if m.kind == "new_connection"] == ["Ada Lovelace"]
    [told] = skipped(messages)
    assert told.fields["count"] == 4
    assert told.text.count("— its notification has no readable time") == 4
    assert told.text.count("@dee") == 3 and "a notification without a readable id" in told.text
    await bluesky_source.poll(app)
    assert surface.pop() == []


async def test_bluesky_a_failed_arrival_keeps_the_cursor_before_it(app, surface, bluesky,
                                                                   bluesky_source, monkeypatch):
    """Never past a person who could have been stored and was not: the poll after a
    failed write fetches them again (and does not tell the unreadable twice)."""
    from handlers import welcome

    bluesky.follow(recorded_profile(0))
    await bluesky_source.poll(app)
    surface.pop()
    seen = account(app, "bluesky").cursor
    bluesky.follow({**make_profile("Not A Did"), "did": "not-a-did"})
    ada = bluesky.follow(make_profile("Ada Lovelace", description="Teacher"))["author"]
    real = welcome.record_arrival

    def failing(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(welcome, "record_arrival", failing)
    await bluesky_source.poll(app)
    assert account(app, "bluesky").cursor == seen
    assert [m.fields["count"] for m in skipped(surface.pop())] == [1]

    monkeypatch.setattr(welcome, "record_arrival", real)
    await bluesky_source.poll(app)
    messages = surface.pop()
    assert [m.fields["contact"]["handle"] for m in messages
            if m.kind == "new_connection"] == [ada["handle"]]
    assert skipped(messages) == []
    assert account(app, "bluesky").cursor == bluesky.notifications[0]["indexedAt"]


async def test_bluesky_reconciliation_keeps_a_follower_whose_entry_became_unreadable(
        app, surface, bluesky, bluesky_source, clock):
    people = [make_profile(n, description="Teacher") for n in ("Ada A", "Ben B", "Cy C")]
    for person in people:
        bluesky.follow(person)
    bluesky.followers[1:1] = bluesky_hostile()
    await bluesky_source.poll(app)
    messages = surface.pop()
    assert "3 existing connections" in [m for m in messages if m.kind == "reply"][0].text
    [told] = skipped(messages)
    assert told.fields["count"] == len(bluesky_hostile())
    # Ben's view loses its handle; he still follows (his DID reads), so he is not gone
    index = bluesky.followers.index(people[1])
    bluesky.followers[index] = {k: v for k, v in people[1].items() if k != "handle"}
    left = bluesky.followers.pop(bluesky.followers.index(people[0]))
    clock.advance(hours=25)

    await bluesky_source.poll(app)

    stored = states(app, "bluesky")
    assert stored[people[1]["did"]] == "active"
    assert stored[left["did"]] == "lost"
    assert stored[people[2]["did"]] == "active"


# --- plnbot run --once --json -----------------------------------------------------------


def test_run_once_json_stores_the_good_and_names_the_unreadable(bluesky, db_url):
    env = {"BLUESKY_HANDLE": bluesky.handle, "BLUESKY_APP_PASSWORD": bluesky.password,
           "BLUESKY_BASE_URL": bluesky.url}
    bluesky.follow(recorded_profile(0))
    first = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    assert first.returncode == 0, first.stderr
    ada = bluesky.follow(make_profile("Ada Lovelace", description="Teacher"))["author"]
    bluesky.follow({**make_profile("Mallory"), "did": "did:plc:evil\x00", "handle": "**x**"})
    bluesky.follow(["not", "a", "profile"])

    second = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)

    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    messages = json_messages(second.stdout)
    assert [m["contact"]["handle"] for m in messages if m["kind"] == "new_connection"] == [
        ada["handle"]]
    [told] = [m for m in messages if m["kind"] == "profiles_skipped"]
    assert told["count"] == 2 and "@**x** — its 'did' is not a DID" in told["text"]
    assert "**x**" in told["handles"]  # unchanged in --json; Discord escapes it
    third = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    assert [m["kind"] for m in json_messages(third.stdout)
            if m["kind"] != "source_recovered"] == []
