"""The sync diff engine on real recorded platform payloads."""

import json

import yaml
from sqlalchemy import bindparam, text
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


BULK_TABLES = ("contact", "handle", "connection", "connectionevent")


def bulk_followers(count: int) -> list[dict]:
    """Followers as a snapshot file holds them: bios or none, places, links, a repeat."""
    users = [{"id": str(9000 + n), "name": f"Pat Number{n}" if n % 5 else "",
              "username": f"Pat_{n}", "description": ["", "Maths teacher", "parent"][n % 3],
              **({"location": f"Town {n}"} if n % 4 == 0 else {}),
              **({"url": f"https://pat{n}.example"} if n % 6 == 0 else {})}
             for n in range(count)]
    return users + users[:3]


def stored_rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(
            f"SELECT * FROM {table} ORDER BY id"))] for table in BULK_TABLES}


def index_definitions(engine) -> list[tuple]:
    """Every index of the tables a first sync fills, as the database defines it."""
    sql = ("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' "
           "AND tbl_name IN :tables ORDER BY name" if engine.dialect.name == "sqlite" else
           "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename IN :tables "
           "ORDER BY indexname")
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            text(sql).bindparams(bindparam("tables", expanding=True)),
            {"tables": list(BULK_TABLES)})]


async def first_sync_of_file(database_url, settings, clock, surface, path) -> App:
    from bot.adapters.snapshot_file import load_snapshot_file

    app = App(settings=settings, engine=open_database(settings, database_url),
              surface=surface, clock=clock)
    await app.handle(snapshot("x", load_snapshot_file("x", path)))
    return app


async def test_a_big_first_sync_stores_what_a_small_one_does(database_url, settings, clock,
                                                             surface, tmp_path, monkeypatch):
    """A first sync big enough to build its tables' indexes once at the end (made "big"
    here by lowering the threshold, in batches of 7) stores the very rows, index
    entries and search index that updating the indexes row by row stores."""
    from handlers import connections
    from storage import connections as store

    path = tmp_path / "followers.json"
    path.write_text(json.dumps([{"data": bulk_followers(40)}]))
    monkeypatch.setattr(connections, "BATCH", 7)
    results = []
    for rebuild_at in (10 ** 9, 1):
        monkeypatch.setattr(store, "REBUILD_AT", rebuild_at)
        app = await first_sync_of_file(database_url, settings, clock, surface, path)
        assert "40 existing connections recorded quietly" in surface.pop()[-1].text
        results.append((stored_rows(app.engine), index_definitions(app.engine),
                        index_rows(app.engine)))
        if app.engine.dialect.name == "sqlite":
            with app.engine.connect() as conn:  # every index holds exactly its table's rows
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        await app.sweep()  # the backlog reads them back through the rebuilt indexes
        assert len(index_rows(app.engine)) == 40
        reply = await say_one(app, "find maths")
        assert len(reply.fields["contacts"]) > 0
        app.engine.dispose()
        if app.engine.dialect.name == "sqlite":
            (tmp_path / "plnbot.sqlite3").unlink()
        else:
            with app.engine.begin() as conn:
                conn.execute(text("TRUNCATE contact, handle, connection, connectionevent, "
                                  "account, contact_search RESTART IDENTITY CASCADE"))
    small, big = results
    assert len(big[0]["contact"]) == 40 and big == small


async def test_a_first_sync_that_fails_midway_keeps_every_index(settings, db_url, clock,
                                                               surface, tmp_path, monkeypatch):
    """The indexes dropped for a big first sync come back with the rollback of a sync
    that fails halfway: nothing of it is stored, and the next sync stores everyone."""
    from handlers import connections
    from storage import connections as store

    path = tmp_path / "followers.json"
    path.write_text(json.dumps({"data": bulk_followers(30)}))
    monkeypatch.setattr(connections, "BATCH", 7)
    monkeypatch.setattr(store, "REBUILD_AT", 1)
    app = App(settings=settings, engine=open_database(settings, db_url), surface=surface,
              clock=clock)
    indexes = index_definitions(app.engine)
    assert len(indexes) > 10
    real, calls = store.add_events, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        real(*args, **kwargs)

    monkeypatch.setattr(store, "add_events", failing)
    from bot.adapters.snapshot_file import load_snapshot_file

    assert not await app.handle(snapshot("x", load_snapshot_file("x", path)))
    surface.pop()
    assert index_definitions(app.engine) == indexes
    assert all(rows == [] for rows in stored_rows(app.engine).values())
    monkeypatch.setattr(store, "add_events", real)
    await app.handle(snapshot("x", load_snapshot_file("x", path)))
    assert "30 existing connections recorded quietly" in surface.pop()[-1].text
    assert index_definitions(app.engine) == indexes
    assert len(stored_rows(app.engine)["connectionevent"]) == 30
    app.engine.dispose()
