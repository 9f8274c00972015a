"""Arrivals written together read exactly as the same arrivals written one by one."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlmodel import Session, select

from bot.app import App, open_database
from bot.events import ArrivalsReceived, NewConnection
from handlers import arrivals as bulk
from handlers import profiles
from storage.models import Connection, ConnectionEvent, Contact, Draft, Handle, OutboxMessage
from tests.support.factories import arrival, bluesky_person, mastodon_person, x_person
from tests.support.fakes import FakeClock, FakeSurface


def make_app(settings, url: str) -> tuple[App, FakeSurface]:
    surface = FakeSurface()
    return App(settings=settings, engine=open_database(settings, url), surface=surface,
               clock=FakeClock()), surface


def newcomers() -> list:
    """Different platforms and profiles, two look-alikes of each other and one of an
    earlier contact, a spammy bio, a name with no first name, an empty profile."""
    return [
        x_person("Amara Okafor", description="Year 5 teacher at Riverside Primary #edtech"),
        mastodon_person("Jane Doe", note="<p>Head of Science, Kingsbridge Academy</p>"),
        x_person("Jane Doe", description="Paediatric nurse. Health education in schools."),
        bluesky_person("Ravi Patel", description="Software engineer, Python, open source"),
        x_person("mr_smith_teach", description="Follow back! DM for promo 💰💰 #followback"),
        x_person("Kwame Mensah", description=""),
        mastodon_person("Zoë Ångström", note="<p>Museum educator 🎨 https://zoe.blog</p>"),
    ]


async def history(app: App, surface: FakeSurface) -> tuple[list, dict]:
    """What the owner was told, and every row the arrivals wrote (ids included)."""
    told = [(m.kind, m.text, m.fields, m.idempotency_key) for m in surface.pop()]
    with Session(app.engine) as session:
        rows = {model.__name__: [row.model_dump() for row in session.exec(
            select(model).order_by(model.id))]
            for model in (Contact, Handle, Connection, ConnectionEvent, Draft)}
        rows["OutboxMessage"] = [(m.kind, m.text, json.loads(m.payload_json), m.status)
                                 for m in session.exec(select(OutboxMessage)
                                                       .order_by(OutboxMessage.id))]
    return told, rows


async def test_newcomers_written_together_read_as_one_by_one(settings, database_url, tmp_path):
    earlier = x_person("Ravi Patel", description="Maths teacher")
    one_by_one, one_surface = make_app(settings, f"sqlite:///{tmp_path / 'one.sqlite3'}")
    together, together_surface = make_app(settings, database_url)
    people = newcomers()
    for app in (one_by_one, together):
        await app.handle(arrival(earlier))
    for person in people:
        await one_by_one.handle(arrival(person))
    await together.handle_arrivals([arrival(person) for person in people])

    expected, got = await history(one_by_one, one_surface), await history(
        together, together_surface)
    assert got == expected
    told = [text for kind, text, *_ in got[0]]
    assert any("Possibly the same person as Jane Doe (#3)" in text for text in told)
    assert any("Possibly the same person as Ravi Patel (#1)" in text for text in told)
    assert len({draft["text"] for draft in got[1]["Draft"]}) == len(people) + 1


async def test_concurrent_arrivals_share_one_transaction(app, surface, monkeypatch):
    seen = []
    dispatch = app.dispatcher.dispatch

    async def spy(event):
        seen.append(event)
        return await dispatch(event)

    monkeypatch.setattr(app.arrivals, "dispatch", spy)
    people = [x_person(f"Teacher {n} Example", description="Maths teacher") for n in range(40)]
    await asyncio.gather(*(app.handle(arrival(person)) for person in people))

    [batch] = seen
    assert isinstance(batch, ArrivalsReceived) and len(batch.arrivals) == 40
    assert [m.fields["contact"]["name"] for m in surface.pop()] == [p.name for p in people]


async def test_batches_are_bounded_and_keep_arrival_order(app, surface, monkeypatch):
    sizes = []
    dispatch = app.dispatcher.dispatch

    async def spy(event):
        sizes.append(len(getattr(event, "arrivals", [event])))
        return await dispatch(event)

    monkeypatch.setattr(app.arrivals, "dispatch", spy)
    app.arrivals.max_batch = 3
    people = [mastodon_person(f"Person {n} Example") for n in range(7)]
    await app.handle_arrivals([arrival(person) for person in people])
    assert sizes == [3, 3, 1]
    assert [m.fields["contact"]["name"] for m in surface.pop()] == [p.name for p in people]


async def test_known_people_in_a_batch_take_the_one_by_one_way(app, surface, clock):
    """The same person twice, someone coming back, a bot, and newcomers, together."""
    back = x_person("Ravi Patel", description="Head of Maths")
    await app.handle(arrival(back))
    with Session(app.engine) as session:
        connection = session.exec(select(Connection)).one()
        connection.state, connection.lost_at = "lost", clock()
        session.add(connection)
        session.commit()
    surface.pop()
    clock.advance(days=3)
    twice = mastodon_person("Amara Okafor", note="<p>Year 5 teacher</p>")
    bot = mastodon_person("News Bot", bot=True)
    fresh = x_person("Kwame Mensah", description="Drama teacher")
    await app.handle_arrivals([arrival(p) for p in (twice, back, bot, twice, fresh)])

    told = surface.pop()
    assert sorted(m.kind for m in told) == ["new_connection", "new_connection", "welcome_back"]
    assert "3 days away" in next(m.text for m in told if m.kind == "welcome_back")
    with Session(app.engine) as session:
        names = sorted(c.name for c in session.exec(select(Contact)))
        assert names == ["Amara Okafor", "Kwame Mensah", "Ravi Patel"]
        assert len(session.exec(select(Draft)).all()) == 3  # Ravi's first, Amara, Kwame
        assert all(c.state == "active" for c in session.exec(select(Connection)))


async def test_a_batch_that_fails_is_written_one_by_one(app, surface, monkeypatch):
    def broken(ctx, newcomers):
        raise RuntimeError("bulk path broken")

    monkeypatch.setattr(bulk, "tell_owner", broken)
    people = [x_person(f"Person {n} Example") for n in range(3)]
    await app.handle_arrivals([arrival(person) for person in people])
    assert surface.kinds() == ["new_connection"] * 3
    with Session(app.engine) as session:
        assert len(session.exec(select(Contact)).all()) == 3
        assert len(session.exec(select(OutboxMessage)).all()) == 3


async def test_one_unreadable_profile_loses_only_itself(app, surface, monkeypatch, caplog):
    understand = profiles.understand

    def fussy(profile):
        if profile.name == "Unreadable Person":
            raise ValueError("cannot read this profile")
        return understand(profile)

    monkeypatch.setattr(profiles, "understand", fussy)
    people = [x_person("Amara Okafor"), x_person("Unreadable Person"), x_person("Kwame Mensah")]
    await app.handle_arrivals([arrival(person) for person in people])
    assert [m.fields["contact"]["name"] for m in surface.pop()] == ["Amara Okafor",
                                                                     "Kwame Mensah"]
    assert "writing 3 arrivals together failed" in caplog.text


async def test_a_caller_that_stops_waiting_strands_nobody(app, surface):
    people = [x_person(f"Person {n} Example") for n in range(5)]
    callers = [asyncio.create_task(app.handle(arrival(person))) for person in people]
    await asyncio.sleep(0)  # every arrival has been handed over
    callers[0].cancel()
    await asyncio.gather(*callers[1:])
    with pytest.raises(asyncio.CancelledError):
        await callers[0]
    assert len(surface.pop()) == 5  # handed over is written, waited for or not


async def test_arrivals_for_different_owners_stay_apart(app, surface):
    other = "discord:123456789012345678"
    names = {"Amara Okafor": "local", "Jane Doe": "local", "Kwame Mensah": other,
             "Zoë Ångström": other, "Ravi Patel": "local"}
    await app.handle_arrivals([NewConnection(owner_ref=owner, profile=x_person(name))
                               for name, owner in names.items()])
    with Session(app.engine) as session:
        owners = {c.name: c.owner_id for c in session.exec(select(Contact))}
    assert owners["Amara Okafor"] == owners["Jane Doe"] == owners["Ravi Patel"]
    assert owners["Kwame Mensah"] == owners["Zoë Ångström"] != owners["Amara Okafor"]
