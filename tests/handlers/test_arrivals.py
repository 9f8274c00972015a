"""Arrivals written together read exactly as the same arrivals written one by one."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from bot.app import App, open_database
from storage.models import Connection, ConnectionEvent, Contact, Draft, Handle, OutboxMessage
from tests.support.factories import (
    arrival,
    bluesky_person,
    lose_the_only_connection,
    mastodon_person,
    x_person,
)
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


async def test_known_people_in_a_batch_take_the_one_by_one_way(app, surface, clock):
    """The same person twice, someone coming back, a bot, and newcomers, together."""
    back = x_person("Ravi Patel", description="Head of Maths")
    await app.handle(arrival(back))
    lose_the_only_connection(app.engine, clock())
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
