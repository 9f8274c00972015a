"""Lost connections: single losses, returns, mass drops, give-up, severed, reporting."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.events import ConnectionsSevered, SnapshotReceived
from handlers import connections
from handlers.lost import mark_losses_reported, unreported_losses
from storage import connections as store
from storage import repo
from storage.models import Account, Connection, ConnectionEvent, Contact, MassDrop, Owner
from tests.support.chat import say, say_one
from tests.support.factories import arrival, mastodon_person, x_person


def snapshot(platform, profiles, complete=True):
    return SnapshotReceived(owner_ref="local", platform=platform, profiles=list(profiles),
                            complete=complete)


def crowd(count, make=x_person):
    return [make(f"Person {i}") for i in range(count)]


async def baseline(app, people, platform="x"):
    await app.handle(snapshot(platform, people))
    [reply] = app.surface.pop()
    assert "baseline" in reply.text


def states(app, platform="x"):
    with Session(app.engine) as session:
        account = session.exec(select(Account).where(Account.platform == platform)).one()
        rows = session.exec(select(Connection).where(Connection.account_id == account.id))
        return sorted(c.state for c in rows)


def set_owner(app, **values):
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        for name, value in values.items():
            setattr(owner, name, value)
        session.add(owner)
        session.commit()


async def test_a_single_unfollow_is_kept_quietly_for_the_digest(app, surface, clock):
    people = crowd(10)
    await baseline(app, people)
    clock.advance(hours=1)
    await app.handle(snapshot("x", people[1:]))
    [reply] = surface.pop()
    assert reply.kind == "reply" and "1 connection ended; kept for your digest" in reply.text
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        [loss] = unreported_losses(session, owner=owner)
        assert loss.name == "Person 0" and loss.at == clock.now
        assert loss.history == "No conversations logged yet."
        assert "@person" in loss.line()
        mark_losses_reported(session, owner=owner, losses=[loss])
        session.commit()
        assert unreported_losses(session, owner=owner) == []
        lost = session.exec(select(Connection).where(Connection.state == "lost")).one()
        assert lost.lost_at == clock.now and lost.lost_cause is None


async def test_losses_are_told_at_once_with_history_when_the_owner_asks(app, surface, clock):
    people = crowd(10)
    await baseline(app, people)
    await say(app, "log #1 talked about phonics")
    await say(app, "log #1 met at the conference")
    set_owner(app, report_losses="immediate")
    await app.handle(snapshot("x", people[1:]))
    [message] = surface.pop()
    assert message.kind == "connection_lost"
    [person] = message.fields["contacts"]
    assert person["name"] == "Person 0" and person["handle"] == people[0].handle
    assert person["history"] == "You talked twice; last in November 2026."
    assert "You talked twice" in message.text
    with Session(app.engine) as session:
        assert unreported_losses(session, owner=session.exec(select(Owner)).one()) == []


async def test_a_refollow_is_welcomed_back_with_the_gap_and_keeps_history(app, surface, clock):
    people = crowd(10)
    await baseline(app, people)
    await app.handle(snapshot("x", people[1:]))
    surface.pop()
    clock.advance(days=3)
    await app.handle(snapshot("x", people))
    [back] = surface.pop()
    assert back.kind == "welcome_back" and "3 days away" in back.text
    assert back.fields["contact"]["name"] == "Person 0"
    with Session(app.engine) as session:
        assert len(session.exec(select(Contact)).all()) == 10
        kinds = [e.kind for e in session.exec(select(ConnectionEvent).order_by(
            ConnectionEvent.id)) if e.kind != "gained"]
        assert kinds == ["lost", "returned"]
    assert states(app) == ["active"] * 10


async def test_a_partial_list_adds_but_never_removes(app, surface):
    people = crowd(30)
    await baseline(app, people)
    newcomer = x_person("New Person", description="Maths teacher")
    await app.handle(snapshot("x", [newcomer], complete=False))
    kinds = [m.kind for m in surface.pop()]
    assert kinds == ["new_connection"]
    assert states(app) == ["active"] * 31


async def test_a_partial_first_sync_is_not_the_whole_baseline(app, surface):
    people = crowd(6)
    await app.handle(snapshot("x", people[:3], complete=False))
    [reply] = surface.pop()
    assert "partial" in reply.text
    await app.handle(snapshot("x", people))
    [reply] = surface.pop()
    assert "baseline" in reply.text and "6 existing" in reply.text
    with Session(app.engine) as session:
        assert session.exec(select(Account)).one().baseline_done


async def test_mass_drop_is_held_rechecked_and_reported_as_people_return(app, surface, clock):
    people = crowd(100)
    await baseline(app, people)
    clock.advance(hours=1)
    await app.handle(snapshot("x", people[30:]))
    [vanished] = surface.pop()
    assert vanished.kind == "connections_vanished" and vanished.fields["count"] == 30
    assert "30 connections vanished at once" in vanished.text and "re-check" in vanished.text
    assert states(app).count("vanished") == 30
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        account = session.exec(select(Account)).one()
        assert unreported_losses(session, owner=owner) == []
        assert not store.recheck_due(session, owner=owner, account=account, now=clock.now)
        later = clock.now + timedelta(minutes=15)
        assert store.recheck_due(session, owner=owner, account=account, now=later)
        assert store.accounts_due_for_recheck(session, owner=owner, now=later) == [account]

    clock.advance(minutes=20)
    await app.handle(snapshot("x", people[10:]))
    [partly] = surface.pop()
    assert partly.kind == "connections_returned"
    assert (partly.fields["returned"], partly.fields["still_missing"]) == (20, 10)
    assert sorted(c["name"] for c in partly.fields["contacts"]) == sorted(
        p.name for p in people[:10])

    clock.advance(hours=1)
    await app.handle(snapshot("x", people[10:]))
    [quiet] = surface.pop()
    assert quiet.kind == "reply" and "no changes" in quiet.text

    clock.advance(hours=4)
    await app.handle(snapshot("x", people))
    [done] = surface.pop()
    assert done.kind == "connections_returned" and done.fields["still_missing"] == 0
    assert "nobody left" in done.text
    assert states(app) == ["active"] * 100
    with Session(app.engine) as session:
        drop = session.exec(select(MassDrop)).one()
        assert drop.status == "resolved" and drop.checks == 3


async def test_a_mass_drop_that_turns_out_real_becomes_lost_once(app, surface, clock):
    people = crowd(100)
    await baseline(app, people)
    await app.handle(snapshot("x", people[25:]))
    surface.pop()
    clock.advance(days=2)
    await app.handle(snapshot("x", people[5:]))
    [partly] = surface.pop()
    assert partly.fields["still_missing"] == 5
    clock.advance(days=5, minutes=1)
    await app.sweep()
    [gave_up] = [m for m in surface.pop() if m.kind != "digest"]  # Monday: the digest too
    assert gave_up.kind == "connection_lost" and len(gave_up.fields["contacts"]) == 5
    assert "did not come back" in gave_up.text and "7 days" in gave_up.text
    await app.sweep()
    await app.handle(snapshot("x", people[5:]))
    assert [m.kind for m in surface.pop()] == ["reply"]
    assert states(app).count("lost") == 5
    with Session(app.engine) as session:
        drop = session.exec(select(MassDrop)).one()
        assert drop.status == "given_up" and drop.still_missing == 5
        assert unreported_losses(session, owner=session.exec(select(Owner)).one()) == []


async def test_a_give_up_also_happens_in_a_sync_when_no_sweep_ran(app, surface, clock):
    people = crowd(40)
    await baseline(app, people)
    await app.handle(snapshot("x", people[20:]))
    surface.pop()
    clock.advance(days=8)
    await app.handle(snapshot("x", people[20:]))
    assert [m.kind for m in surface.pop()] == ["connection_lost"]
    assert states(app).count("lost") == 20


async def test_a_small_drop_below_the_minimum_is_ordinary_losses(app, surface):
    people = crowd(30)
    await baseline(app, people)
    await app.handle(snapshot("x", people[19:]))  # 19 gone: > 5% but fewer than 20
    [reply] = surface.pop()
    assert "19 connections ended" in reply.text
    assert states(app).count("lost") == 19


async def test_a_vanished_person_seen_live_is_not_welcomed_back(app, surface, clock):
    people = crowd(40)
    await baseline(app, people)
    await app.handle(snapshot("x", people[20:]))
    surface.pop()
    await app.handle(arrival(people[0]))
    assert surface.pop() == []
    clock.advance(hours=1)
    await app.handle(snapshot("x", people[20:] + people[:1]))
    [report] = surface.pop()
    assert report.kind == "connections_returned"
    assert (report.fields["returned"], report.fields["still_missing"]) == (1, 19)


async def test_vanished_people_in_a_partial_list_come_back(app, surface):
    people = crowd(40)
    await baseline(app, people)
    await app.handle(snapshot("x", people[20:]))
    surface.pop()
    await app.handle(snapshot("x", people[:5], complete=False))
    [report] = surface.pop()
    assert report.kind == "connections_returned" and report.fields["still_missing"] == 15
    with Session(app.engine) as session:
        assert session.exec(select(MassDrop)).one().checks == 0  # a partial list is no re-check


async def test_severed_relationships_are_platform_caused(app, surface, clock):
    people = crowd(10, make=mastodon_person)
    await baseline(app, people, platform="mastodon")
    await app.handle(ConnectionsSevered(
        owner_ref="local", platform="mastodon", cause="domain_block:school.social",
        external_ids=[people[0].external_id, people[1].external_id, "unknown-id"]))
    [message] = surface.pop()
    assert message.kind == "connection_lost" and message.fields["platform_caused"] is True
    assert "your server blocked school.social" in message.text
    assert "did not unfollow you" in message.text
    assert len(message.fields["contacts"]) == 2
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        assert unreported_losses(session, owner=owner) == []
        causes = {c.lost_cause for c in session.exec(select(Connection)) if c.state == "lost"}
        assert causes == {"domain_block:school.social"}
    reply = await say_one(app, "lost")
    assert "cut by the platform (your server blocked school.social)" in reply.text


async def test_a_loss_seen_by_a_sync_is_re_explained_by_a_later_severed_notice(app, surface):
    people = crowd(10, make=mastodon_person)
    await baseline(app, people, platform="mastodon")
    await app.handle(snapshot("mastodon", people[1:]))
    surface.pop()
    await app.handle(ConnectionsSevered(
        owner_ref="local", platform="mastodon", cause="account_suspension:bad.example",
        external_ids=[people[0].external_id]))
    [message] = surface.pop()
    assert "bad.example was suspended" in message.text
    with Session(app.engine) as session:
        assert unreported_losses(session, owner=session.exec(select(Owner)).one()) == []


async def test_two_platforms_are_tracked_apart(app, surface):
    on_x, on_mastodon = crowd(40), crowd(40, make=mastodon_person)
    await baseline(app, on_x)
    await baseline(app, on_mastodon, platform="mastodon")
    await app.handle(snapshot("x", on_x[25:]))
    [vanished] = surface.pop()
    assert vanished.fields == {"platform": "x", "count": 25,
                               "mass_drop_id": vanished.fields["mass_drop_id"]}
    await app.handle(snapshot("mastodon", on_mastodon[1:]))
    [reply] = surface.pop()
    assert reply.text.startswith("Mastodon: 1 connection ended")
    assert states(app, "mastodon").count("lost") == 1
    assert states(app, "x").count("vanished") == 25


async def test_a_flood_of_newcomers_gets_a_few_drafts_and_a_summary(app, surface, monkeypatch):
    monkeypatch.setattr(connections, "WELCOMES_PER_SYNC", 3)
    people = crowd(5)
    await baseline(app, people)
    newcomers = crowd(8)
    await app.handle(snapshot("x", people + newcomers))
    messages = surface.pop()
    assert [m.kind for m in messages] == ["new_connection"] * 3 + ["reply"]
    assert "5 more new connections recorded without welcome drafts" in messages[-1].text
    assert states(app) == ["active"] * 13


async def test_the_lost_command_lists_newest_first(app, surface, clock):
    people = crowd(40)
    await baseline(app, people)
    await app.handle(snapshot("x", people[1:]))
    clock.advance(days=1)
    await app.handle(snapshot("x", people[1:]))
    clock.advance(days=1)
    await app.handle(snapshot("x", people[21:]))
    clock.advance(hours=1)
    await app.handle(snapshot("x", people[11:]))
    surface.pop()
    reply = await say_one(app, "lost")
    lines = reply.text.splitlines()
    assert lines[0] == "Lost, vanished and returned connections, last 30 days:"
    assert "20 vanished at once on X" in lines[1] and "10 back, 10 still missing" in lines[1]
    assert "lost · Person 0" in lines[2] and "No conversations logged yet." in lines[2]
    assert len(lines) == 3
    assert (await say_one(app, "lost 1")).text.count("\n") == 1


@pytest.mark.parametrize("args", ["lots", "0", "-3", "99999"])
async def test_the_lost_command_refuses_bad_days(app, args):
    reply = await say_one(app, f"lost {args}")
    assert reply.kind == "error" and reply.fields["usage"] == "lost [days]"


async def test_lost_with_nothing_to_show(app):
    reply = await say_one(app, "lost")
    assert reply.text == "No connections lost, vanished or back again in the last 30 days."


async def test_a_person_already_known_keeps_their_contact(app, surface):
    """A handle known before (an import, another kind) is reused, never duplicated."""
    person = x_person("Ada Lovelace")
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        repo.upsert_handle(session, owner=owner, profile=person, now=owner.created_at)
        session.commit()
    await baseline(app, [person, *crowd(3)])
    with Session(app.engine) as session:
        assert len(session.exec(select(Contact)).all()) == 4


async def test_the_engine_on_postgresql(pg_url, settings, clock, surface):
    """Bulk inserts reserve ids from the sequence; the same story holds on PostgreSQL."""
    from bot.app import App, open_database

    app = App(settings=settings, engine=open_database(settings, pg_url), surface=surface,
              clock=clock)
    people = crowd(60)
    await baseline(app, people)
    await app.handle(snapshot("x", people[1:] + crowd(2)))
    assert [m.kind for m in surface.pop()] == ["new_connection"] * 2 + ["reply"]
    await app.handle(snapshot("x", people[30:]))
    assert [m.kind for m in surface.pop()] == ["connections_vanished"]
    clock.advance(hours=1)
    await app.handle(snapshot("x", people))
    kinds = [m.kind for m in surface.pop()]
    assert kinds == ["welcome_back", "connections_returned"]
    app.engine.dispose()
