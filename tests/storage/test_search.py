"""The contact search index keeps itself current and answers the same on both engines."""

import pytest
from sqlmodel import Session

from storage import search
from storage.models import Contact
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.network import make_app, seed_network


@pytest.fixture(params=["sqlite", "postgresql"])
async def network(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'search.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    app = await seed_network(make_app(make_settings(), url))
    yield app
    app.engine.dispose()


def names(app, query: str, **kwargs) -> list[str]:
    with Session(app.engine) as session:
        ids = search.search(session.connection(), owner_id=app.owner_id, query=query, **kwargs)
        return [session.get(Contact, i).name for i in ids]


def test_words_fold_case_and_accents_and_split_handles():
    assert search.words("Zoë ÅNGSTRÖM") == ["zoe", "angstrom"]
    assert search.words("@MrPatel_Maths jane@school.social") == [
        "mrpatel", "maths", "jane", "school", "social"]


async def test_names_bios_and_handles_are_searchable_without_accents(network):
    assert names(network, "angstrom") == ["Zoë Ångström"]
    assert names(network, "ANGS") == ["Zoë Ångström"]
    assert names(network, "malmo") == ["Zoë Ångström"]
    assert names(network, "mrpatel") == ["Ravi Patel"]
    assert set(names(network, "amara")) == {"Amara Okafor", "Amara Smith"}
    assert names(network, "nobody-like-this") == []


async def test_name_matches_rank_above_bio_matches(network):
    await say_one(network, "note #1 we met at a maths conference")
    found = names(network, "maths")
    assert found.index("Ravi Patel") < found.index("Amara Okafor")
    assert set(found) >= {"Ravi Patel", "Jane Doe-Smith", "Amara Okafor"}


async def test_notes_and_tags_are_indexed_when_logged(network):
    assert names(network, "forestschool") == []
    reply = await say_one(network, "log @MrPatel_Maths planning a trip #forestschool")
    assert reply.kind == "reply"
    assert names(network, "forestschool") == ["Ravi Patel"]
    assert names(network, "trip", columns=("notes",)) == ["Ravi Patel"]


async def test_linked_contacts_leave_the_index_and_bring_their_words(network):
    await say_one(network, "note @asmith runs the book club")
    await say_one(network, "link amara@mastodon.education @asmith")
    reply = await say_one(network, "yes")
    assert reply.kind == "reply" and "Linked" in reply.text
    assert names(network, "book club") == ["Amara Okafor"]
    assert names(network, "asmith") == ["Amara Okafor"]


async def test_rebuild_restores_a_lost_index(network):
    with Session(network.engine) as session:
        conn = session.connection()
        search._delete(conn, list(range(1, 100)))
        assert search.search(conn, owner_id=network.owner_id, query="ravi") == []
        assert search.rebuild(conn, owner_id=network.owner_id) == 6
        assert search.search(conn, owner_id=network.owner_id, query="ravi") != []


async def test_queries_with_search_syntax_are_just_words(network):
    for query in ('"', "a*", "NEAR(x y)", "x:* & !y", "'; DROP TABLE contact; --", "-", "*"):
        names(network, query)  # never a syntax error
    assert names(network, 'ravi" OR "amara') == []


async def test_people_from_a_bulk_sync_are_findable(network):
    from bot.events import SnapshotReceived
    from tests.support.factories import mastodon_person

    people = [mastodon_person(f"Bulk Person{n}", acct=f"bulk{n}@edu.social",
                              note="Chemistry teacher") for n in range(30)]
    for profile in people[:20], people:  # the baseline, then ten arrivals in bulk
        await network.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                              profiles=list(profile), complete=False))
    await network.sweep()  # reads the baseline's profiles (handlers.backlog)
    assert len(names(network, "chemistry", limit=50)) == 30
    assert names(network, "person29") == ["Bulk Person29"]


async def test_bulk_written_people_are_indexed_once_and_keep_up(network):
    """Contacts a bulk write just inserted have no index rows to delete first (looking
    for them dominated a million-follower first sync); later changes still replace
    their rows."""
    from sqlalchemy import event, func, select, text

    from bot.events import SnapshotReceived
    from tests.support.factories import mastodon_person

    deletes = []

    def count_deletes(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith(f"DELETE FROM {search.TABLE.upper()}"):
            deletes.append(statement)

    people = [mastodon_person(f"Fresh Person{n}", acct=f"fresh{n}@edu.social",
                              note="Drama teacher") for n in range(12)]
    event.listen(network.engine, "before_cursor_execute", count_deletes)
    await network.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                          profiles=people, complete=False))
    await network.sweep()  # reads the baseline's profiles (handlers.backlog)
    event.remove(network.engine, "before_cursor_execute", count_deletes)
    assert deletes == []
    with Session(network.engine) as session:
        contacts = session.exec(select(func.count()).select_from(Contact)).one()[0]
        key = "rowid" if network.engine.dialect.name == "sqlite" else "contact_id"
        rows = session.exec(text(f"SELECT count(DISTINCT {key}), count(*) "
                                 f"FROM {search.TABLE}")).one()
        assert tuple(rows) == (contacts, contacts)
        fresh = session.exec(select(Contact).where(Contact.name == "Fresh Person3")).one()[0]
        fresh.name = "Renamed Someone"
        session.commit()
    assert names(network, "person3") == []
    assert names(network, "renamed") == ["Renamed Someone"]


async def test_sqlite_ranks_by_the_column_weights(tmp_path):
    """``ORDER BY rank`` relies on the rank function migration 0006 configures."""
    app = make_app(make_settings(), f"sqlite:///{tmp_path / 'rank.sqlite3'}")
    with app.engine.connect() as conn:
        configured = conn.exec_driver_sql(
            "SELECT v FROM contact_search_config WHERE k = 'rank'").scalar()
    app.engine.dispose()
    assert configured == search.sqlite_rank() == "bm25(0.0, 10.0, 8.0, 3.0, 4.0, 1.0)"


async def test_people_named_so_come_before_people_only_mentioned(network):
    """A name or handle match outranks any number of mentions in notes and tags (by the
    column weights alone, Ravi came before Jane Doe-Smith on SQLite)."""
    for _ in range(3):
        await say_one(network, "note #2 smith #smith")
    assert names(network, "smith") == ["Amara Smith", "Jane Doe-Smith", "Ravi Patel"]


async def test_when_very_many_match_only_the_newest_are_ranked(network):
    for contact_id in range(1, 7):
        await say_one(network, f"note #{contact_id} runs the #bookclub")
    with Session(network.engine) as session:
        found = search.ranked(session.connection(), owner_id=network.owner_id,
                              query="bookclub", window=2)
        everyone = search.ranked(session.connection(), owner_id=network.owner_id,
                                 query="bookclub", window=6)
    assert sorted(found.ids) == [5, 6] and found.partial
    assert sorted(everyone.ids) == [1, 2, 3, 4, 5, 6] and not everyone.partial


async def test_name_matches_are_ranked_however_old_they_are(network):
    """Amara Okafor is the oldest contact, yet comes first though only the newest two
    of the people whose notes mention Amara are ranked."""
    for contact_id in (2, 3, 5, 6):
        await say_one(network, f"note #{contact_id} met amara")
    with Session(network.engine) as session:
        found = search.ranked(session.connection(), owner_id=network.owner_id,
                              query="amara", window=2)
    assert sorted(found.ids[:2]) == [1, 4] and sorted(found.ids[2:]) == [5, 6]
    assert found.partial


async def test_the_window_counts_only_the_owners_own_matches(network):
    """Another owner's newer matches never push this owner's out of the window."""
    from tests.support.factories import arrival, command, x_person

    bob = make_app(make_settings(PLNBOT_OWNER="bob"), str(network.engine.url))
    for n in range(5):
        await bob.handle(arrival(x_person(f"Bob Friend{n}", username=f"bf{n}",
                                          description="Physics teacher"), owner_ref="bob"))
    await bob.handle(command("find teacher", owner_ref="bob"))
    bob.engine.dispose()
    with Session(network.engine) as session:
        found = search.ranked(session.connection(), owner_id=network.owner_id,
                              query="teacher", window=2)
    assert sorted(found.ids) == [1, 3] and not found.partial


async def test_renamed_people_are_found_by_their_new_name(network):
    with Session(network.engine) as session:
        session.get(Contact, 2).name = "Ravindra Patel-Kumar"
        session.commit()
    assert names(network, "ravindra", columns=("name",)) == ["Ravindra Patel-Kumar"]
    assert names(network, "kumar") == ["Ravindra Patel-Kumar"]
    assert names(network, "ravi", columns=("name",), prefix=False) == []
