"""The profile backlog: a first sync's profiles read later, in batches, exactly once."""

from collections import Counter

import pytest
from sqlmodel import Session, select

from bot.adapters.translate import profiles_from_document
from bot.app import App, open_database
from bot.events import SnapshotReceived, Tick
from handlers import backlog, due, profiles
from storage import search
from storage.db import refresh_statistics
from storage.models import Contact, Owner
from tests.support.chat import say, say_one


def followers(count: int) -> list[dict]:
    return [{"id": str(500 + n), "name": f"Pat Number{n}", "username": f"pat{n}",
             "description": f"Chemistry teacher at Hill{n} Academy"} for n in range(count)]


async def first_sync(app: App, count: int) -> None:
    await app.handle(SnapshotReceived(owner_ref="local", platform="x",
                                      profiles=profiles_from_document("x", {"data": followers(
                                          count)})))
    app.surface.pop()


def counting_calls(read, counts: list[int]):
    def counted(*args, **kwargs):
        counts.append(read(*args, **kwargs))
        return counts[-1]
    return counted


def pending_names(app: App) -> set[str]:
    with Session(app.engine) as session:
        return {c.name for c in session.exec(select(Contact)) if c.profile_pending}


async def test_a_command_right_after_a_first_sync_sees_every_profile_read(app):
    await first_sync(app, 12)
    assert len(pending_names(app)) == 12
    reply = await say_one(app, "find hill7")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Pat Number7"]
    reply = await say_one(app, "who Pat Number3")
    assert "Hill3 Academy" in reply.text and "chemistry teacher" in reply.text.lower()
    assert pending_names(app) == set()


async def test_a_killed_batch_is_read_again_and_nobody_is_read_twice(app, monkeypatch):
    """A batch commits with the flags it clears; one cut short (the process killed
    before its commit) leaves its people pending, and they are read once, later."""
    await first_sync(app, 25)
    read = Counter()
    understand = profiles.understand_safely

    def counting(profile, **options):
        read[profile.name] += 1
        return understand(profile, **options)

    monkeypatch.setattr(profiles, "understand_safely", counting)
    with Session(app.engine) as session:
        assert backlog.read(session, owner_id=app.owner_id, limit=10) == 10
        session.rollback()  # killed before the commit
    assert len(pending_names(app)) == 25
    read.clear()
    with Session(app.engine) as session:
        assert backlog.read(session, owner_id=app.owner_id, limit=10) == 10
        session.commit()
    assert len(pending_names(app)) == 15
    monkeypatch.setattr(backlog, "BATCH", 4)
    await app.sweep()  # the rest, four at a time
    assert pending_names(app) == set()
    assert sorted(read.values()) == [1] * 25 and len(read) == 25
    await app.sweep()  # nothing left: nobody read again
    assert len(read) == 25 and set(read.values()) == {1}


async def test_a_workers_sweep_reads_a_bounded_round_and_comes_back_at_once(app, clock,
                                                                            monkeypatch):
    """A worker's sweep reads for at most ``SWEEP_SECONDS``; while people are left the
    owner stays due, so it is swept again at once (not after hours of idling). The
    single-owner bot reads the rest a batch per transaction after its sweep."""
    await first_sync(app, 9)
    monkeypatch.setattr(backlog, "BATCH", 2)
    monkeypatch.setattr(backlog, "SWEEP_SECONDS", 0.0)  # one batch a sweep
    await app.dispatch(Tick(owner_ref="local", name="sweep"))  # as bot.worker sends it
    assert len(pending_names(app)) == 7
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        assert due.next_due(session, owner=owner, now=clock(), followup_days=3,
                            give_up_days=7) == clock()
    batches = []
    monkeypatch.setattr(backlog, "read", counting_calls(backlog.read, batches))
    await app.sweep()
    assert pending_names(app) == set()
    assert batches == [2, 2, 2, 1]  # the sweep's round, then one transaction a batch
    with Session(app.engine) as session:
        owner = session.get(Owner, app.owner_id)
        assert due.next_due(session, owner=owner, now=clock(), followup_days=3,
                            give_up_days=7) > clock()


async def test_a_profile_that_cannot_be_read_back_leaves_the_person_stored(database_url,
                                                                          settings, clock,
                                                                          surface):
    app = App(settings=settings, engine=open_database(settings, database_url),
              surface=surface, clock=clock)
    await first_sync(app, 3)
    with Session(app.engine) as session:
        session.connection().exec_driver_sql(
            "UPDATE handle SET profile_json = 'not json' WHERE external_id = '501'")
        session.commit()
    await app.sweep()
    assert pending_names(app) == set()
    reply = await say_one(app, "find hill2")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Pat Number2"]
    app.engine.dispose()


# --- commands while profiles are still being read --------------------------------------


@pytest.fixture
def both(database_url, settings, clock, surface):
    """The app on a SQLite file and on PostgreSQL (where TEST_DATABASE_URL is set)."""
    app = App(settings=settings, engine=open_database(settings, database_url),
              surface=surface, clock=clock)
    yield app
    app.engine.dispose()


def counting_understanding(monkeypatch) -> Counter:
    read: Counter = Counter()
    understand = profiles.understand_safely

    def counting(profile, **options):
        read[profile.name] += 1
        return understand(profile, **options)

    monkeypatch.setattr(profiles, "understand_safely", counting)
    return read


async def test_a_command_about_one_person_reads_only_them_and_answers_at_once(both,
                                                                           monkeypatch):
    """``log`` right after a first sync finds the pending person by name, reads their
    profile on the spot, and leaves everyone else to the background; the sweep then
    reads the rest, nobody twice."""
    await first_sync(both, 30)
    read = counting_understanding(monkeypatch)
    reply = await say_one(both, "log Pat Number7 coffee chat about #phonics")
    assert "Conversation with Pat Number7" in reply.text
    assert reply.fields["contact"]["role"] and "Hill7" in reply.fields["contact"]["organisation"]
    assert read == Counter({"Pat Number7": 1})
    assert len(pending_names(both)) == 29
    reply = await say_one(both, "who @pat12")  # by handle
    assert "Hill12 Academy" in reply.text
    reply = await say_one(both, "history pat number3")  # by name, any case
    assert "Pat Number3" in reply.text
    assert set(read) == {"Pat Number7", "Pat Number12", "Pat Number3"}
    assert len(pending_names(both)) == 27
    await both.sweep()
    assert pending_names(both) == set()
    assert len(read) == 30 and set(read.values()) == {1}
    reply = await say_one(both, "find phonics")  # the conversation logged meanwhile counts
    assert [c["name"] for c in reply.fields["contacts"]] == ["Pat Number7"]


async def test_commands_that_need_no_profile_do_not_wait(both, monkeypatch):
    await first_sync(both, 12)
    read = counting_understanding(monkeypatch)
    for line in ("help", "settings", "reminders", "drafts", "due", "accounts", "stats",
                 "people", "remind me tomorrow call the office"):
        await say_one(both, line)
    assert read == Counter() and len(pending_names(both)) == 12


@pytest.mark.parametrize("line", ["find chemistry", "people field education", "digest",
                                  "export json"])
async def test_commands_about_everyone_read_everyone_first(app, line):
    """``find``, ``people field …``, ``digest`` and ``export`` answer from every
    profile: they read what is left before answering."""
    await first_sync(app, 6)
    assert len(pending_names(app)) == 6
    replies = await say(app, line)
    assert replies and all(m.kind != "error" for m in replies), [m.text for m in replies]
    assert pending_names(app) == set()


async def test_a_pending_person_is_found_as_the_index_finds_them(both, monkeypatch):
    """Accents, case, whole words before word starts, handles: the same person before
    their profile is read as after, and a name that is nobody's is still an error."""
    people = [{"id": "900", "name": "Zoë Ångström", "username": "zoe_a",
               "description": "Physics teacher"},
              {"id": "901", "name": "Zoe Angus-Smith", "username": "zangus",
               "description": "Librarian"},
              {"id": "902", "name": "Amara Okafor", "username": "amara",
               "description": "Head of maths"}]

    async def answers() -> list[str]:
        found = []
        for line in ("who Ångström", "who zoë ang", "who angus", "who okafor",
                     "who zangus", "who ama", "who @zoe_a", "who nobody-here"):
            found.append((await say_one(both, line)).text.splitlines()[0])
        return found

    await both.handle(SnapshotReceived(owner_ref="local", platform="x",
                                       profiles=profiles_from_document("x", {"data": people})))
    both.surface.pop()
    monkeypatch.setattr(backlog, "read_these", lambda session, ids: [])  # look, don't read
    before = await answers()
    assert len(pending_names(both)) == 3
    monkeypatch.undo()
    await both.sweep()
    assert pending_names(both) == set()
    assert await answers() == before
    assert before == ["Zoë Ångström (#1)", "2 people match 'zoë ang'; say which one:",
                      "Zoe Angus-Smith (#2)", "Amara Okafor (#3)", "Zoe Angus-Smith (#2)",
                      "Amara Okafor (#3)", "Zoë Ångström (#1)",
                      "I don't know anyone matching 'nobody-here'. Try `find nobody-here`."]


async def test_a_command_that_fails_leaves_the_person_pending(both, monkeypatch):
    """The on-the-spot reading is part of the command: refused, it is undone with the
    rest, and the person is read later, once."""
    await first_sync(both, 5)
    read = counting_understanding(monkeypatch)
    reply = await say_one(both, "log Pat Number2")  # no text: refused
    assert reply.kind == "error"
    assert "Pat Number2" in pending_names(both)
    await both.sweep()
    assert pending_names(both) == set() and read["Pat Number2"] == 2  # read, undone, read
    reply = await say_one(both, "who Pat Number2")
    assert "Hill2 Academy" in reply.text


async def test_the_index_merges_wider_while_a_backlog_is_read_and_as_usual_after(app,
                                                                             monkeypatch):
    """FTS5 keeps its merge settings in the table: bulk ones while profiles are left
    to read, FTS5's own once nobody's are (and ``find`` answers the same throughout)."""

    def settings() -> dict:
        with app.engine.connect() as conn:
            return {table: dict(conn.exec_driver_sql(f"SELECT k, v FROM {table}_config"
                                                     " WHERE k <> 'rank'").all())
                    for table in ("contact_search", "contact_search_names")}

    await first_sync(app, 9)
    monkeypatch.setattr(backlog, "BATCH", 4)
    with Session(app.engine) as session:
        backlog.read(session, owner_id=app.owner_id)
        session.commit()
    bulk = {"automerge": 16, "hashsize": 8 * 2**20, "version": 4}
    assert settings() == {"contact_search": bulk, "contact_search_names": bulk}
    await app.sweep()
    assert pending_names(app) == set()
    usual = {"automerge": 4, "hashsize": 2**20, "version": 4}
    assert settings() == {"contact_search": usual, "contact_search_names": usual}
    reply = await say_one(app, "find hill5")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Pat Number5"]


async def test_each_batch_starts_at_the_first_unread_whatever_the_statistics(app):
    """SQLite's sampled statistics rate the pending contacts' partial index like the
    owner's name index (which starts with owner_id); through that, every batch walked
    past everyone read before it."""
    await first_sync(app, 40)
    with Session(app.engine) as session:
        backlog.read(session, owner_id=app.owner_id, limit=20)
        session.commit()
    refresh_statistics(app.engine)
    with Session(app.engine) as session:  # what a sampled ANALYZE said at 1,000,000
        conn = session.connection()
        for index, stat in (("ix_contact_profile_pending", "1239648 1001 1"),
                            ("ix_contact_owner_lower_name", "1043072 1001 1")):
            conn.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE idx = ?", (index,))
            conn.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES ('contact', ?, ?)",
                                 (index, stat))
        session.commit()
        conn = session.connection()
        conn.exec_driver_sql("ANALYZE sqlite_schema")  # reload them
        sql = f"{backlog.pending_sql(session)} ORDER BY id LIMIT 5"
        plan = " ".join(str(row) for row in session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql.replace(':owner', str(app.owner_id))}"))
    assert "ix_contact_profile_pending" in plan


async def test_sweeps_after_a_bulk_reading_merge_the_index_it_left(app, monkeypatch):
    """Wide merges leave more segments (each looked in by every search); the sweeps
    after the last batch merge them as FTS5 usually would, and ``find`` answers the
    same before and after."""

    def segments() -> int:
        with app.engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT count(DISTINCT segid) FROM contact_search_idx").scalar_one()

    await first_sync(app, 60)
    monkeypatch.setattr(backlog, "BATCH", 4)
    monkeypatch.setattr(backlog, "SWEEP_SECONDS", 0.0)  # reading only: no time to merge
    while pending_names(app):
        await app.sweep()
    left = segments()
    before = (await say_one(app, "find teacher")).fields["contacts"]
    assert left >= 10
    monkeypatch.setattr(backlog, "SWEEP_SECONDS", 5.0)
    await app.sweep()
    assert segments() < left / 3
    assert (await say_one(app, "find teacher")).fields["contacts"] == before
    with Session(app.engine) as session:
        assert not search.merge_some(session.connection())  # nothing left to merge


@pytest.mark.parametrize("kept", [2_000, 3, 0])
async def test_a_name_many_share_is_still_found_among_the_unread(app, monkeypatch, kept):
    """However many unread names share its first word (more than a scan keeps, here
    3 or none), the person is found and nobody else is read."""
    await first_sync(app, 30)
    monkeypatch.setattr(backlog, "CANDIDATES_KEPT", kept)
    reply = await say_one(app, "log Pat Number17 coffee chat")
    assert "Conversation with Pat Number17" in reply.text
    reply = await say_one(app, "who number2")
    assert reply.text.startswith("Pat Number2 (#")
    assert len(pending_names(app)) == 28
