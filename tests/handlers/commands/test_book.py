"""undo, link/yes/unlink, names with spaces, numbered answers, people, history, draft,
tag/untag, add, rename, and editing or deleting log entries: through the chat
dispatcher with the fake surface, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.app import App
from handlers.commands import book
from storage.models import (
    Cadence,
    Contact,
    Draft,
    Handle,
    Interaction,
    Owner,
    PendingPrompt,
    Reminder,
    UndoEntry,
)
from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.factories import arrival, command, mastodon_person
from tests.support.fakes import FakeSurface
from tests.support.network import make_app, seed_network


@pytest.fixture
async def network(database_url, clock):
    app = await seed_network(make_app(make_settings(), database_url, clock))
    yield app
    app.engine.dispose()


def restart(app, clock):
    """A new process on the same database: nothing carried over in memory."""
    app.engine.dispose()
    return make_app(make_settings(), app.engine.url.render_as_string(hide_password=False),
                    clock)


def entries(app, contact_id=None):
    with Session(app.engine) as session:
        query = select(Interaction).order_by(Interaction.id)
        if contact_id is not None:
            query = query.where(Interaction.contact_id == contact_id)
        return [(i.contact_id, i.kind, i.text) for i in session.exec(query)]


def contact(app, contact_id):
    with Session(app.engine) as session:
        return session.get(Contact, contact_id)


# --- names with spaces -----------------------------------------------------------------


async def test_the_longest_known_name_wins_without_quotes(network):
    await say_one(network, "add Jo Whitfield")
    await say_one(network, "add Dr Nadia Rahman")
    reply = await say_one(network, "log Jo Whitfield met at the gallery late opening")
    assert reply.kind == "reply"
    assert "\u201cmet at the gallery late opening\u201d" in reply.text
    reply = await say_one(network, "note dr nadia rahman great demo idea")
    assert "Nadia Rahman (#8)" in reply.text and "\u201cgreat demo idea\u201d" in reply.text
    reply = await say_one(network, "log Amara Okafor loved the trip #outdoors")
    assert "Amara Okafor (#1)" in reply.text
    assert "\u201cloved the trip #outdoors\u201d" in reply.text
    assert entries(network) == [(7, "conversation", "met at the gallery late opening"),
                                (8, "note", "great demo idea"),
                                (1, "conversation", "loved the trip #outdoors")]
    reply = await say_one(network, "remind Jo Whitfield tomorrow send the catalogue")
    assert reply.kind == "reply" and "send the catalogue" in reply.text
    with Session(network.engine) as session:
        assert session.exec(select(Reminder)).one().contact_id == 7
    reply = await say_one(network, "cadence Jane Doe-Smith every 3 weeks")
    with Session(network.engine) as session:
        assert session.exec(select(Cadence)).one().contact_id == 6


async def test_an_ambiguous_split_asks_and_the_number_answers(network):
    await say_one(network, "add Jo")
    await say_one(network, "add Jo Whitfield Brown")
    reply = await say_one(network, "log jo whitfield met at the gallery")
    assert reply.kind == "error" and "two ways" in reply.text
    assert "1. Jo Whitfield Brown (#8), storing 'met at the gallery'" in reply.text
    assert "2. Jo (#7), storing 'whitfield met at the gallery'" in reply.text
    assert entries(network) == []
    reply = await say_one(network, "2")
    assert reply.kind == "reply" and "\u201cwhitfield met at the gallery\u201d" in reply.text
    assert entries(network) == [(7, "conversation", "whitfield met at the gallery")]


async def test_a_numbered_choice_survives_a_restart_and_anything_else_drops_it(network, clock):
    reply = await say_one(network, "who amara")
    assert reply.kind == "error" and "Reply with its number" in reply.text
    [smith] = [line.split(".")[0].strip() for line in reply.text.splitlines()
               if "Amara Smith (@asmith, #4)" in line]
    app = restart(network, clock)
    reply = await say_one(app, smith)
    assert reply.kind == "reply" and reply.text.startswith("Amara Smith (#4)")
    await say_one(app, "log amara coffee")  # ambiguous again: a new question
    await say_one(app, "find leeds")  # anything else drops it
    reply = await say_one(app, "1")
    assert reply.kind == "error" and "don't know the command '1'" in reply.text
    with Session(app.engine) as session:
        assert session.exec(select(PendingPrompt)).all() == []
    app.engine.dispose()


# --- link, yes, unlink -------------------------------------------------------------------


async def test_link_shows_both_asks_and_yes_after_a_restart_links(network, clock):
    await say_one(network, "log @asmith met at the library conference")
    reply = await say_one(network, "link Amara Okafor Amara Smith")
    assert "1. Amara Okafor (#1): Mastodon @amara@mastodon.education" in reply.text
    assert "2. Amara Smith (#4): X @asmith" in reply.text and "`yes`" in reply.text
    assert contact(network, 4).merged_into_id is None
    app = restart(network, clock)
    reply = await say_one(app, "yes")
    assert "#4 now means #1" in reply.text and contact(app, 4).merged_into_id == 1
    reply = await say_one(app, "yes")
    assert reply.kind == "error" and "nothing waiting for a yes" in reply.text
    app.engine.dispose()


async def test_anything_but_yes_cancels_a_link(network):
    await say_one(network, "link ravi zoe")
    await say_one(network, "who ravi")
    reply = await say_one(network, "yes")
    assert reply.kind == "error" and contact(network, 3).merged_into_id is None


async def test_unlink_splits_a_link_and_keeps_what_came_later(network):
    await say_one(network, "log @asmith met at the library conference")
    await say_one(network, "link #1 #4")
    await say_one(network, "yes")
    await say_one(network, "log #4 after the link")  # #4 now means #1
    reply = await say_one(network, "unlink Amara Okafor")
    assert reply.kind == "reply" and "Amara Smith (#4) is separate" in reply.text
    assert contact(network, 4).merged_into_id is None
    assert entries(network) == [(4, "conversation", "met at the library conference"),
                                (1, "conversation", "after the link")]
    with Session(network.engine) as session:
        assert session.exec(select(Handle).where(Handle.handle == "asmith")).one().contact_id == 4
    assert (await say_one(network, "who asmith")).text.startswith("Amara Smith (#4)")
    reply = await say_one(network, "unlink ravi")
    assert reply.kind == "error" and "not linked with anyone" in reply.text


# --- undo --------------------------------------------------------------------------------


async def test_undo_reverses_the_last_change_and_says_what_it_was(network, clock):
    await say_one(network, "log ravi coffee and #quokkas")
    assert (await say_one(network, "find #quokkas")).fields["contacts"] != []
    reply = await say_one(network, "undo")
    assert reply.text.startswith("Undone: `log ravi coffee and #quokkas`.")
    assert "coffee and #quokkas" in reply.text
    assert entries(network) == [] and contact(network, 2).last_conversation_at is None
    assert (await say_one(network, "find #quokkas")).fields["contacts"] == []
    reply = await say_one(network, "undo")
    assert reply.kind == "error" and "nothing to undo" in reply.text


async def test_undo_goes_back_one_change_at_a_time(network, clock):
    with Session(network.engine) as session:
        session.add(Reminder(owner_id=network.owner_id, contact_id=2, text="slides",
                             due_at=clock() + timedelta(days=1), created_at=clock()))
        session.commit()
    for line in ("note zoe loves #physics", "tag ravi #maths", "skip 1", "done 1",
                 "settings tone formal", "link ravi zoe", "yes"):
        assert (await say_one(network, line)).kind == "reply", line
    with Session(network.engine) as session:
        assert session.get(Contact, 3).merged_into_id == 2
    expected = ["link #2 #3", "settings tone formal", "done 1", "skip 1",
                "tag ravi #maths", "note zoe loves #physics"]
    said = [(await say_one(network, "undo")).text for _ in expected]
    assert [t.split("`")[1] for t in said] == expected
    with Session(network.engine) as session:
        assert session.get(Contact, 3).merged_into_id is None
        assert session.exec(select(Owner)).one().tone == "warm"
        assert session.get(Reminder, 1).status == "open"
        assert session.get(Draft, 1).status == "pending"
        assert session.exec(select(Interaction)).all() == []
        assert {h.contact_id for h in session.exec(select(Handle))} == {1, 2, 3, 4, 5, 6}


async def test_undo_brings_back_snooze_and_cancel(network, clock):
    await say_one(network, "remind me tomorrow 9am water the plants")
    with Session(network.engine) as session:
        due = session.get(Reminder, 1).due_at
    await say_one(network, "snooze 1 in 3 days")
    await say_one(network, "undo")
    with Session(network.engine) as session:
        assert session.get(Reminder, 1).due_at == due
    await say_one(network, "cancel 1")
    await say_one(network, "undo")
    with Session(network.engine) as session:
        assert session.get(Reminder, 1).status == "open"


async def test_undo_touches_only_the_owners_own_changes(network, clock):
    await say_one(network, "log ravi lunch")
    other = App(settings=make_settings(PLNBOT_OWNER="other"), engine=network.engine,
                surface=FakeSurface(), clock=clock)
    await other.handle(command("undo", owner_ref="other"))
    [reply] = other.surface.pop()
    assert reply.kind == "error" and "nothing to undo" in reply.text
    assert entries(network) == [(2, "conversation", "lunch")]


async def test_the_sweep_prunes_what_undo_no_longer_reaches(network, clock, monkeypatch):
    """The undo log keeps every change of the last 30 days and the owner's last
    KEEP_LAST (3 here, 100 in use) whatever their age; the sweep lets go of the rest.
    ``undo`` still reverses every kept change, then says why there is no more."""
    from storage import undo

    monkeypatch.setattr(undo, "KEEP_LAST", 3)
    for n in range(1, 6):
        await say_one(network, f"log ravi old chat {n}")
    clock.advance(days=10)
    await say_one(network, "log ravi recent chat")
    await network.sweep()
    assert undo_log(network) == 6  # all younger than 30 days
    clock.advance(days=25)  # the five are 35 days old, the recent one 25
    await network.sweep()
    network.surface.pop()  # reminders and the digest the sweeps brought
    assert undo_log(network) == 4  # the last 3, and the marker where pruning began
    said = [(await say_one(network, "undo")).text for _ in range(3)]
    assert [t.split("`")[1] for t in said] == [
        "log ravi recent chat", "log ravi old chat 5", "log ravi old chat 4"]
    refusal = await say_one(network, "undo")
    assert refusal.kind == "error" and "nothing more to undo" in refusal.text
    assert "30 days" in refusal.text and "last 3 changes" in refusal.text
    assert [text for _, _, text in entries(network, 2)] == [
        "old chat 1", "old chat 2", "old chat 3"]  # pruned changes are never reversed
    await say_one(network, "log ravi new chat")  # a new change is undoable as ever
    assert (await say_one(network, "undo")).text.startswith("Undone: `log ravi new chat`")
    assert "nothing more to undo" in (await say_one(network, "undo")).text


async def test_a_long_undo_log_is_pruned_in_bounded_batches(network, clock):
    """1,300 changes older than 30 days: each sweep deletes at most 500 (one short
    transaction), until the last 100 and the marker are left; then nothing is written."""
    from storage import undo

    with Session(network.engine) as session:
        session.add_all(UndoEntry(owner_id=network.owner_id, command=f"log ravi {n}",
                                  summary="Logged.", at=clock() - timedelta(days=60),
                                  changes_json='{"rows": [], "contacts": []}')
                        for n in range(1300))
        session.commit()
    left = []
    for _ in range(4):
        await network.sweep()
        left.append(undo_log(network))
        clock.advance(minutes=5)
    network.surface.pop()
    assert left == [800, 300, 101, 101]
    assert undo.PRUNE_BATCH == 500 and undo.KEEP_LAST == 100
    reply = await say_one(network, "undo")
    assert reply.text.startswith("Undone: `log ravi 1299`")


def undo_log(app) -> int:
    with Session(app.engine) as session:
        return len(session.exec(select(UndoEntry.id)).all())


async def test_a_failed_command_leaves_nothing_to_undo(network):
    assert (await say_one(network, "log nobody-at-all hello")).kind == "error"
    with Session(network.engine) as session:
        assert session.exec(select(UndoEntry)).all() == []


# --- log entries ---------------------------------------------------------------------------


async def test_history_is_complete_numbered_and_entries_can_be_edited_and_deleted(network):
    long_text = "a long conversation about " + "retrieval practice " * 20
    await say_one(network, f"log ravi {long_text}")
    for n in range(6):
        await say_one(network, f"note ravi thing {n}")
    reply = await say_one(network, "history Ravi Patel")
    lines = reply.text.splitlines()
    assert lines[0] == "History of Ravi Patel (#2), 7 entries:"
    assert lines[1].startswith("  1. ") and long_text.strip() in lines[1]
    assert lines[7].startswith("  7. ") and lines[7].endswith("note: thing 5")
    reply = await say_one(network, "edit log 2 thing zero, corrected #fixed")
    assert "now reads: \u201cthing zero, corrected #fixed\u201d" in reply.text
    reply = await say_one(network, "delete log 1")
    assert reply.kind == "reply" and "Deleted conversation 1" in reply.text
    assert contact(network, 2).last_conversation_at is None
    assert [t for _, _, t in entries(network)][:1] == ["thing zero, corrected #fixed"]
    await say_one(network, "undo")
    assert entries(network)[0] == (2, "conversation", long_text.strip())
    assert contact(network, 2).last_conversation_at is not None
    await say_one(network, "undo")
    assert entries(network)[1] == (2, "note", "thing 0")


async def test_who_points_to_history_and_does_not_cut_words(network):
    await say_one(network, "log ravi " + "retrieval practice " * 20)
    text = (await say_one(network, "who ravi")).text
    recent = [line for line in text.splitlines() if "conversation: retrieval" in line][0]
    assert recent.endswith(" …") and recent.split()[-2] in ("retrieval", "practice")
    assert "`history #2`" in text


# --- views ---------------------------------------------------------------------------------


async def test_people_lists_are_paged_and_say_how_to_see_more(network, monkeypatch):
    monkeypatch.setattr(book, "PAGE", 2)
    await say_one(network, "log ravi lunch")
    await say_one(network, "tag zoe #physics")
    await say_one(network, "note jane doe runs the #physics club")
    reply = await say_one(network, "people")
    assert reply.text.splitlines()[0] == "6 people in your network (page 1 of 3):"
    assert "More: `people page 2`." in reply.text
    reply = await say_one(network, "people page 3")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Ravi Patel", "Zoë Ångström"]
    reply = await say_one(network, "people never page 2")
    assert reply.fields["total"] == 5 and "More: `people never page 3`." in reply.text
    reply = await say_one(network, "people #physics")
    assert [c["name"] for c in reply.fields["contacts"]] == ["Jane Doe", "Zoë Ångström"]
    reply = await say_one(network, "people field arts & culture")
    assert reply.text == "Nobody in arts & culture." and reply.fields["total"] == 0
    reply = await say_one(network, "people lost")
    assert reply.text == "Nobody who left and did not come back."


async def test_draft_shows_one_draft_in_full(network):
    with Session(network.engine) as session:
        full = session.get(Draft, 1).text
    reply = await say_one(network, "draft 1")
    assert reply.text.startswith("Draft #1 for Amara Okafor (Mastodon @amara@mastodon.education)")
    assert full.splitlines()[-1] in reply.text and "`send 1`" in reply.text
    assert reply.fields["draft"] == full


async def test_tag_and_untag(network):
    reply = await say_one(network, "tag Jane Doe #teachmeet #leeds")
    assert reply.text == "Tagged Jane Doe (#5): #teachmeet #leeds."
    await say_one(network, "note jane doe spoke at #teachmeet")
    reply = await say_one(network, "untag jane doe #teachmeet")
    assert reply.kind == "reply"
    assert [c["name"] for c in (await say_one(network, "people #leeds")).fields["contacts"]] == [
        "Jane Doe"]
    assert (await say_one(network, "people #teachmeet")).fields["total"] == 0
    assert entries(network) == [(5, "tag", "tagged #teachmeet #leeds"),
                                (5, "note", "spoke at #teachmeet")]


async def test_add_creates_a_contact_a_later_follow_joins(network):
    reply = await say_one(network, "add Jo Whitfield @jo@art.social @jowhit — met at the "
                                   "gallery late opening")
    assert reply.text.startswith("Added Jo Whitfield (#7): Mastodon @jo@art.social, X @jowhit.")
    assert "How you met: met at the gallery late opening" in reply.text
    reply = await say_one(network, "rename jo whitfield Joanna Whitfield")
    assert reply.text == "Renamed: Jo Whitfield (#7) is now Joanna Whitfield."
    assert (await say_one(network, "who joanna")).text.startswith("Joanna Whitfield (#7)")
    with Session(network.engine) as session:
        assert contact(network, 7).first_name == "Joanna"
        assert {h.handle for h in session.exec(select(Handle).where(
            Handle.contact_id == 7))} == {"jo@art.social", "jowhit"}


@pytest.mark.parametrize("line, message", [
    ("add", "name first"),
    ("add @jo", "name first"),
    ("add Jo @jo Whitfield", "name first, then the handles"),
    ("add Jo @asmith", "already Amara Smith (#4)"),
    ("add Jo @jo@@x", "which platform"),
    ("rename ravi", "new name"),
    ("tag ravi", "which #tags"),
    ("tag ravi maths", "not a #tag"),
    ("untag ravi #nothere", "has no #nothere"),
    ("people lots", "I can't list"),
    ("people field astrology", "Say a field"),
    ("history", "Say who"),
    ("history ravi soon", "only `page <n>` fits"),
    ("people page 0", "numbered from 1"),
    ("add 1 hello", "starts with a letter"),
    ("add #1 hello", "starts with a letter"),
    ("rename ravi #2", "starts with a letter"),
    ("draft x", "draft's number"),
    ("draft 99", "no draft #99"),
    ("delete log", "delete log <n>"),
    ("delete log 99", "no log entry or note 99"),
    ("edit log 99 new", "no log entry or note 99"),
    ("edit log 1", "new text"),
    ("unlink", "Say who"),
    ("undo now", "takes nothing"),
    ("yes", "nothing waiting"),
])
async def test_bad_input_is_one_error_with_usage_and_changes_nothing(network, line, message):
    before = entries(network)
    reply = await say_one(network, line)
    assert reply.kind == "error" and message in reply.text, reply.text
    assert "Usage:" in reply.text
    assert entries(network) == before
    with Session(network.engine) as session:
        assert len(session.exec(select(Contact)).all()) == 6
        assert session.exec(select(UndoEntry)).all() == []


async def test_undo_puts_back_only_what_the_command_changed(network, clock):
    await say_one(network, "settings tone formal")
    with Session(network.engine) as session:  # a worker takes the owner meanwhile
        owner = session.exec(select(Owner)).one()
        owner.lease_owner, owner.lease_until = "worker-2", clock() + timedelta(minutes=5)
        session.add(owner)
        session.commit()
    await say_one(network, "undo")
    with Session(network.engine) as session:
        owner = session.exec(select(Owner)).one()
        assert (owner.tone, owner.lease_owner) == ("warm", "worker-2")


async def test_undo_refuses_what_has_been_built_on_and_changes_nothing(network):
    await say_one(network, "add Nia Mensah @nia@edu.social")
    await network.handle(arrival(mastodon_person("Nia Mensah", acct="nia@edu.social",
                                                 id="900")))
    network.surface.pop()
    reply = await say_one(network, "undo")
    assert reply.kind == "error" and "built on since" in reply.text
    assert contact(network, 7).name == "Nia Mensah"
    with Session(network.engine) as session:
        [handle] = session.exec(select(Handle).where(Handle.contact_id == 7)).all()
        assert handle.external_id == "900"  # the follow joined the contact added by hand
