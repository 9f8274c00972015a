"""The sync diff engine on real recorded platform payloads."""

import json

import yaml
from sqlalchemy import text
from sqlmodel import Session, select

from bot.adapters.translate import profiles_from_document, x_profile
from bot.app import App, open_database
from bot.events import SnapshotReceived
from handlers import profiles, welcome
from storage import search
from storage.models import Connection, Contact, Draft, Handle
from tests.conftest import RECORDED
from tests.support.chat import say_one
from tests.support.factories import x_person


def recorded_x_followers() -> list[dict]:
    cassette = yaml.safe_load((RECORDED / "x" / "test_asyncclient_get_users_followers.yaml")
                              .read_text())
    users = []
    for interaction in cassette["interactions"]:
        users += json.loads(interaction["response"]["body"]["string"])["data"]
    return users


def recorded_bluesky_follows() -> list[dict]:
    return json.loads((RECORDED / "bluesky" / "get_follows.json").read_text())["follows"]


def snapshot(platform, profiles, complete=True):
    return SnapshotReceived(owner_ref="local", platform=platform, profiles=profiles,
                            complete=complete)


async def test_first_sync_is_a_quiet_baseline(app, surface):
    users = recorded_x_followers()
    await app.handle(snapshot("x", profiles_from_document("x", {"data": users})))
    [message] = surface.pop()
    assert message.kind == "reply" and f"{len(users)} existing connections" in message.text
    with Session(app.engine) as session:
        assert session.exec(select(Draft)).all() == []
        assert len(session.exec(select(Connection)).all()) == len(users)


async def test_later_syncs_report_arrivals_and_losses(app, surface):
    views = recorded_bluesky_follows()
    profiles = profiles_from_document("bluesky", views)
    await app.handle(snapshot("bluesky", profiles))
    surface.pop()
    newcomer = profiles_from_document("bluesky", [{
        "did": "did:plc:newperson", "handle": "new.bsky.social", "displayName": "New Person",
        "description": "Primary teacher"}])[0]
    await app.handle(snapshot("bluesky", profiles[1:] + [newcomer]))
    kinds = [m.kind for m in surface.pop()]
    assert kinds == ["new_connection", "reply"]


async def test_a_partial_list_never_removes_anyone(app, surface):
    people = [x_person(f"Person {i}") for i in range(5)]
    await app.handle(snapshot("x", people))
    surface.pop()
    await app.handle(snapshot("x", people[:2], complete=False))
    assert [m.kind for m in surface.pop()] == ["reply"]
    with Session(app.engine) as session:
        states = {c.state for c in session.exec(select(Connection))}
    assert states == {"active"}


async def test_mastodon_recorded_account_translates(app, surface):
    cassette = yaml.safe_load((RECORDED / "mastodon" / "test_account_followers.yaml").read_text())
    account = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    [profile] = profiles_from_document("mastodon", [account])
    assert profile.platform == "mastodon" and profile.handle == account["acct"]


async def test_a_sync_refreshes_only_changed_profiles(app, surface):
    people = [x_person(f"Person {i}", description="Teacher") for i in range(3)]
    await app.handle(snapshot("x", people))
    changed = x_profile({**people[1].raw, "description": "Head of science",
                         "username": "renamed"})
    with Session(app.engine) as session:
        before = {h.external_id: h.profile_hash for h in session.exec(select(Handle))}
    await app.handle(snapshot("x", [people[0], changed, people[2]]))
    assert [m.text for m in surface.pop()][-1] == "X: no changes since the last sync."
    with Session(app.engine) as session:
        after = {h.external_id: h for h in session.exec(select(Handle))}
    assert "Head of science" in after[changed.external_id].profile_json
    assert after[changed.external_id].handle == "renamed"
    unchanged = [people[0].external_id, people[2].external_id]
    assert [after[e].profile_hash for e in unchanged] == [before[e] for e in unchanged]
    assert after[changed.external_id].profile_hash != before[changed.external_id]


BASELINE_USERS = [
    {"id": "101", "name": "Zoë Ångström 🍎", "username": "Zoe_Teaches", "location": "Leeds",
     "description": "Year 5 teacher at Riverside Primary School. #edtech and Desmos fan"},
    {"id": "102", "name": "Follower Two", "username": "follower_2", "description": "historian"},
    {"id": "103", "name": "DM for promo", "username": "dm_for_promo",
     "description": "Follow back 💰 crypto giveaway, dm for promo &amp; more: promo.example.com"},
    {"id": "104", "name": "Sam", "username": "sam", "description": ""},
]


def index_rows(engine) -> list[tuple]:
    """The search index as stored, in a form both engines can compare."""
    with engine.connect() as conn:
        sql = ("SELECT rowid, owner_id, name, handles, bio, tags, notes FROM contact_search "
               "ORDER BY rowid" if conn.dialect.name == "sqlite" else
               "SELECT contact_id, owner_id, document::text FROM contact_search "
               "ORDER BY contact_id")
        return [tuple(row) for row in conn.execute(text(sql))]


async def test_a_baseline_is_understood_and_indexed_like_anyone_else(database_url, settings,
                                                                     clock, surface):
    """The first sync stores profiles unread and the sweep's backlog reads them (in
    batches, later): what it stores must be what understanding each profile on its own
    gives, and what the index holds what re-indexing the contacts one by one writes."""
    app = App(settings=settings, engine=open_database(settings, database_url), surface=surface,
              clock=clock)
    people = profiles_from_document("x", {"data": BASELINE_USERS})
    await app.handle(snapshot("x", people))
    [message] = surface.pop()
    assert "4 existing connections recorded quietly" in message.text
    with Session(app.engine) as session:
        pending = {c.name for c in session.exec(select(Contact)) if c.profile_pending}
    assert pending == {p.name for p in people if p.bio}
    assert len(index_rows(app.engine)) == 1  # Sam, with no bio to read, is indexed at once
    await app.sweep()
    with Session(app.engine) as session:
        contacts = {c.name: c for c in session.exec(select(Contact)).all()}
        for profile in people:
            stored = contacts[profile.name].model_dump()
            if profile.bio:
                understood = welcome.understood_values(profiles.understand(profile), profile.bio)
                assert {k: stored[k] for k in understood} == understood
        assert contacts["Zoë Ångström 🍎"].role == "Year 5 teacher"
        assert contacts["Zoë Ångström 🍎"].organisation == "Riverside Primary School"
    indexed = index_rows(app.engine)
    assert len(indexed) == len(people)
    with Session(app.engine) as session:
        search.rebuild(session.connection())
        session.commit()
    assert index_rows(app.engine) == indexed
    for query, name in [("find riverside", "Zoë Ångström 🍎"), ("find zoe", "Zoë Ångström 🍎"),
                        ("find desmos", "Zoë Ångström 🍎"), ("find historian", "Follower Two"),
                        ("find promo", "DM for promo"), ("find sam", "Sam")]:
        reply = await say_one(app, query)
        assert [c["name"] for c in reply.fields["contacts"]] == [name], query
    app.engine.dispose()
