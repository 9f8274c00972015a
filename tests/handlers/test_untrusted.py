"""Hostile profiles on the live path: one unreadable profile costs nobody else, and no
character in a name or bio reaches storage, drafts or the owner's screen unchanged.

Real Mastodon.py polls a fake instance that serves the recorded Account shape."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.adapters.mastodon.adapter import build_source
from bot.app import App, open_database
from handlers import profiles
from storage.models import Account, Contact, Draft, Handle
from tests.conftest import make_settings
from tests.support.fake_mastodon import RunningMastodon, make_account
from tests.support.fakes import FakeSleep

TEACHER = "Maths teacher at Oak Primary. #mathchat"
HOSTILE = ("\x1b]8;;https://evil.example\x1b\\Ivy\x1b]8;;\x1b\\ \x1b[31mRed\x07\u202eevil"
           "\u2066x\u2069\x00")


@pytest.fixture
def app(settings, database_url, clock, surface) -> App:
    """On SQLite and on PostgreSQL (where a NUL byte used to fail the whole insert)."""
    return App(settings=settings, engine=open_database(settings, database_url),
               surface=surface, clock=clock)


@pytest.fixture
def fake():
    with RunningMastodon() as server:
        yield server


@pytest.fixture
def source(fake, clock):
    config = make_settings(MASTODON_BASE_URL=fake.url, MASTODON_ACCESS_TOKEN=fake.token)
    return build_source(config, clock=clock, sleep=FakeSleep(clock))


async def followed_by(app, fake, source, *accounts) -> list:
    fake.follow(make_account("ann", display_name="Ann Smith", note=TEACHER))
    await source.poll(app)  # the quiet baseline
    app.surface.pop()
    for account in accounts:
        fake.follow(account)
    await source.poll(app)
    return app.surface.pop()


def stored(app, model) -> list:
    with Session(app.engine) as session:
        return list(session.exec(select(model).order_by(model.id)))


def cursor(app) -> str | None:
    with Session(app.engine) as session:
        return session.exec(select(Account).where(Account.platform == "mastodon")).one().cursor


async def test_a_malformed_link_in_a_bio_costs_nobody_their_welcome(app, fake, source):
    """A bio with ``https://[fe80::1`` made profile reading raise: nobody after it was
    stored and the cursor moved on anyway."""
    ivy = make_account("ivy", display_name="Ivy Lee", note="Teacher https://[fe80::1 ok",
                       fields=[{"name": "Website", "value": "https://[fe80::1"}])
    kim = make_account("kim", display_name="Kim Park", note=TEACHER)
    messages = await followed_by(app, fake, source, ivy, kim)
    arrivals = [m for m in messages if m.kind == "new_connection"]
    assert [m.fields["contact"]["handle"] for m in arrivals] == [
        "ivy@school.social", "kim@school.social"]
    assert cursor(app) == fake.notifications[-1]["id"]


async def test_an_unreadable_profile_is_skipped_and_told_once(app, fake, source, monkeypatch):
    """Whatever else makes one profile unreadable: that person is skipped and counted in
    one message, everyone else is stored, the cursor moves past both."""
    understand = profiles.understand

    def fails_for_ivy(profile, **options):
        if profile.handle.startswith("ivy"):
            raise ValueError("Invalid IPv6 URL")
        return understand(profile, **options)

    monkeypatch.setattr(profiles, "understand", fails_for_ivy)
    ivy = make_account("ivy", display_name="Ivy Lee", note=TEACHER)
    kim = make_account("kim", display_name="Kim Park", note=TEACHER)
    messages = await followed_by(app, fake, source, ivy, kim)
    skipped = [m for m in messages if m.kind == "profiles_skipped"]
    assert [m.text for m in skipped] == [
        "1 profile could not be read and was skipped: @ivy@school.social — "
        "ValueError: Invalid IPv6 URL"]
    assert [m.fields["contact"]["handle"] for m in messages if m.kind == "new_connection"] == [
        "kim@school.social"]
    assert [h.handle for h in stored(app, Handle)] == ["ann@school.social", "kim@school.social"]
    assert cursor(app) == fake.notifications[-1]["id"]


async def test_control_and_bidi_characters_never_reach_storage_or_drafts(app, fake, source):
    """ESC sequences (colours, OSC 8 links), BEL, bidi overrides and NUL are removed from
    names and bios before anything is stored (NUL failed the insert on PostgreSQL)."""
    hostile = make_account("ivy", display_name=HOSTILE, note=f"<p>{HOSTILE} {TEACHER}</p>")
    messages = await followed_by(app, fake, source, hostile)
    [contact] = [c for c in stored(app, Contact) if c.name != "Ann Smith"]
    assert contact.name == "Ivy Redevilx"
    [draft] = stored(app, Draft)
    shown = "".join(m.text for m in messages) + contact.bio + draft.text + contact.name
    for character in "\x1b\x07\x00\u202e\u2066\u2069":
        assert character not in shown


async def test_names_and_bios_are_capped(app, fake, source):
    huge = make_account("ivy", display_name="Ivy " + "x" * 100_000, note="y" * 1_000_000)
    await followed_by(app, fake, source, huge)
    [contact] = [c for c in stored(app, Contact) if c.name != "Ann Smith"]
    [handle] = [h for h in stored(app, Handle) if h.handle.startswith("ivy")]
    assert len(contact.name) == 200
    assert len(contact.bio) <= 5_000
    assert len(handle.profile_json) < 40_000
