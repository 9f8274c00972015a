"""The profile backlog: a first sync's profiles read later, in batches, exactly once."""

from collections import Counter

from sqlmodel import Session, select

from bot.adapters.translate import profiles_from_document
from bot.app import App, open_database
from bot.events import SnapshotReceived, Tick
from handlers import backlog, due, profiles
from storage.models import Contact, Owner
from tests.support.chat import say_one


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
