"""who, find, log, note and link, in-process against a real SQLite file."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from storage.models import Contact, Draft, Handle, Interaction, Reminder
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.network import make_app, seed_network


@pytest.fixture
async def network(db_url, clock):
    app = await seed_network(make_app(make_settings(), db_url, clock))
    yield app
    app.engine.dispose()


async def test_who_shows_handles_details_history_and_reminders(network, clock):
    await say_one(network, "log @MrPatel_Maths talked about retrieval practice #mathchat")
    with Session(network.engine) as session:
        session.add(Reminder(owner_id=network.owner_id, contact_id=2, text="send the slides",
                             due_at=clock() + timedelta(days=2), created_at=clock()))
        session.commit()
    reply = await say_one(network, "who ravi")
    text = reply.text
    assert text.startswith("Ravi Patel (#2)")
    assert "X: @MrPatel_Maths" in text and "How you met: followed you on X" in text
    assert "You talked once" in text and "Last conversation: 2026-11-02 09:00" in text
    assert "send the slides" in text and "retrieval practice" in text
    assert reply.fields["contact"]["handles"] == [{"platform": "x", "handle": "MrPatel_Maths"}]


async def test_who_shows_times_in_the_owners_time_zone(network):
    await say_one(network, "settings tz America/New_York")
    await say_one(network, "log ravi coffee")
    assert "Last conversation: 2026-11-02 04:00" in (await say_one(network, "who ravi")).text


async def test_find_ranks_and_reports_nothing_found(network):
    reply = await say_one(network, "find maths")
    assert reply.kind == "reply"
    assert [c["name"] for c in reply.fields["contacts"]][:1] == ["Ravi Patel"]
    assert "Jane Doe-Smith" in reply.text
    reply = await say_one(network, "find quantum")
    assert reply.kind == "reply" and reply.fields["contacts"] == []
    assert (await say_one(network, "find   ")).kind == "error"
    assert (await say_one(network, "find ?!")).kind == "error"


async def test_find_searches_notes_and_tags(network):
    await say_one(network, "note jane@school.social organises #teachmeet in Leeds")
    reply = await say_one(network, "find #teachmeet")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Jane Doe"]
    reply = await say_one(network, "find leeds")
    assert {c["name"] for c in reply.fields["contacts"]} == {"Jane Doe", "Amara Okafor"}


async def test_find_says_when_only_the_newest_matches_were_ranked(network, monkeypatch):
    from storage import search

    for contact_id in range(1, 7):
        await say_one(network, f"note #{contact_id} runs the #bookclub")
    reply = await say_one(network, "find bookclub")
    assert len(reply.fields["contacts"]) == 6 and "more match" not in reply.text
    monkeypatch.setattr(search, "RANK_WINDOW", 2)
    reply = await say_one(network, "find bookclub")
    assert {c["name"] for c in reply.fields["contacts"]} == {"Jane Doe", "Jane Doe-Smith"}
    assert "over 2 match: I ranked the 2 you added most recently" in reply.text


async def test_log_counts_as_a_conversation_and_note_does_not(network, clock):
    reply = await say_one(network, "note ravi likes #chess and #go")
    assert reply.fields["tags"] == ["chess", "go"]
    await say_one(network, "log ravi lunch")
    with Session(network.engine) as session:
        kinds = [i.kind for i in session.exec(select(Interaction).order_by(Interaction.id))]
        assert kinds == ["note", "conversation"]
        assert session.get(Contact, 2).last_conversation_at == clock()


async def test_link_merges_histories_and_keeps_the_first_id(network, clock):
    await say_one(network, "log @asmith met at the library conference")
    with Session(network.engine) as session:
        session.add(Reminder(owner_id=network.owner_id, contact_id=4, text="book list",
                             due_at=clock() + timedelta(days=1), created_at=clock()))
        session.commit()
    reply = await say_one(network, "link amara@mastodon.education @asmith")
    assert reply.kind == "reply" and "Reply `yes` to link them" in reply.text
    with Session(network.engine) as session:
        assert session.get(Contact, 4).merged_into_id is None  # nothing yet: it asks
    reply = await say_one(network, "yes")
    assert reply.kind == "reply" and "#4 now means #1" in reply.text
    with Session(network.engine) as session:
        assert session.get(Contact, 4).merged_into_id == 1
        assert {h.contact_id for h in session.exec(select(Handle).where(
            Handle.handle.in_(["asmith", "amara@mastodon.education"])))} == {1}
        assert {i.contact_id for i in session.exec(select(Interaction))} == {1}
        assert session.exec(select(Reminder)).one().contact_id == 1
        assert {d.contact_id for d in session.exec(select(Draft))} == {1, 2, 3, 5, 6}
        assert session.get(Contact, 1).last_conversation_at == clock()
    who = (await say_one(network, "who #1")).text
    assert "X: @asmith" in who and "Mastodon: @amara@mastodon.education" in who
    assert "library conference" in who and "book list" in who


@pytest.mark.parametrize("line, message", [
    ("link ravi", "Name two people"),
    ("link ravi ravi", "already one person"),
    ("link ravi zoe jane", "I don't know anyone matching 'zoe jane'"),
    ("link ravi amara", "2 people match"),
    ("link ravi #99", "nobody with id #99"),
])
async def test_link_refuses_what_it_cannot_do(network, line, message):
    reply = await say_one(network, line)
    assert reply.kind == "error" and message in reply.text
    assert reply.fields["usage"] == "link <person> <person>"
    with Session(network.engine) as session:
        assert session.exec(select(Contact).where(Contact.merged_into_id != None)).all() == []  # noqa: E711


async def test_linking_twice_follows_the_chain(network):
    await say_one(network, "link ravi @asmith")
    await say_one(network, "yes")
    await say_one(network, "link zoe ravi")
    await say_one(network, "yes")
    with Session(network.engine) as session:
        assert session.get(Contact, 4).merged_into_id == 3
        assert session.get(Contact, 2).merged_into_id == 3
    assert (await say_one(network, "who #4")).text.startswith("Zoë Ångström (#3)")
    assert (await say_one(network, "link #4 #2")).kind == "error"
