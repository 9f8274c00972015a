"""Arrivals handed over together are written together, in order, and none is lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from bot.events import ArrivalsReceived, NewConnection
from handlers import arrivals as bulk
from handlers import profiles
from storage.models import Contact, OutboxMessage
from tests.support.factories import arrival, mastodon_person, x_person


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

    def fussy(profile, **options):
        if profile.name == "Unreadable Person":
            raise ValueError("cannot read this profile")
        return understand(profile, **options)

    monkeypatch.setattr(profiles, "understand", fussy)
    people = [x_person("Amara Okafor"), x_person("Unreadable Person"), x_person("Kwame Mensah")]
    await app.handle_arrivals([arrival(person) for person in people])
    told = surface.pop()
    assert [m.fields["contact"]["name"] for m in told if m.kind == "new_connection"] == [
        "Amara Okafor", "Kwame Mensah"]
    assert [m.text for m in told if m.kind == "profiles_skipped"] == [
        f"1 profile could not be read and was skipped: @{people[1].handle} — "
        "ValueError: cannot read this profile"]
    assert "could not read the profile" in caplog.text  # with its traceback, for a fix


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
