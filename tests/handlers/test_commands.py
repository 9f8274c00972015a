"""The foundation's commands through the fake surface, against a real SQLite file."""

import pytest
from sqlmodel import Session, func, select

from storage.models import Draft, Interaction, OutboxMessage
from tests.support.chat import say, say_one
from tests.support.factories import arrival, bluesky_person, mastodon_person, x_person


@pytest.fixture
async def network(app, surface):
    for person in (
        mastodon_person("Amara Okafor", acct="amara@mastodon.education",
                        note="Year 5 teacher #edtech"),
        x_person("Ravi Patel", username="MrPatel_Maths", description="Head of Maths"),
        bluesky_person("Zoë Ångström", handle="zoe.bsky.social", description="Nurse"),
        x_person("Amara Smith", username="asmith", description="Librarian"),
    ):
        await app.handle(arrival(person))
    surface.pop()
    return app


def table_counts(app) -> dict[str, int]:
    with Session(app.engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Interaction, Draft)
        } | {"pending": len(session.exec(select(Draft).where(Draft.status == "pending")).all())}


async def test_help_lists_commands_from_their_definitions(network):
    reply = await say_one(network, "help")
    assert reply.kind == "reply"
    assert "log <person> <text…>" in reply.text
    detail = await say_one(network, "help log")
    assert "Log a conversation" in detail.text and "Example" in detail.text


async def test_log_stores_a_conversation_with_tags(network):
    reply = await say_one(network, "log @MrPatel_Maths talked about retrieval practice #mathchat")
    assert reply.kind == "reply" and "#mathchat" in reply.text
    with Session(network.engine) as session:
        interaction = session.exec(select(Interaction)).one()
        assert interaction.kind == "conversation" and interaction.tags == "mathchat"


async def test_note_and_who_show_history(network):
    await say(network, "note amara@mastodon.education runs the county network #outdoors")
    reply = await say_one(network, "who amara@mastodon.education")
    assert "Amara Okafor" in reply.text and "runs the county network" in reply.text
    assert "No conversations logged yet." in reply.text


async def test_names_resolve_without_case_or_accents(network):
    reply = await say_one(network, "who zoe")
    assert "Zoë Ångström" in reply.text
    reply = await say_one(network, "who ANGSTROM")
    assert "Zoë Ångström" in reply.text


async def test_ambiguous_person_lists_candidates_and_changes_nothing(network):
    before = table_counts(network)
    reply = await say_one(network, "log amara we talked")
    assert reply.kind == "error"
    assert "2 people match" in reply.text and "Amara Okafor" in reply.text
    assert "Amara Smith" in reply.text and reply.fields["usage"] == "log <person> <text…>"
    assert table_counts(network) == before


async def test_drafts_and_skip(network):
    reply = await say_one(network, "drafts")
    assert len(reply.fields["drafts"]) == 4
    draft_id = reply.fields["drafts"][0]["id"]
    assert (await say_one(network, f"skip {draft_id}")).kind == "reply"
    again = await say_one(network, f"skip {draft_id}")
    assert again.kind == "error" and "already skipped" in again.text
    assert len((await say_one(network, "drafts")).fields["drafts"]) == 3


@pytest.mark.parametrize("line", [
    "frobnicate", "who", "who nobody-like-this", "log", "log @MrPatel_Maths",
    "note #999 hello", "skip", "skip abc", "skip 999", "drafts extra",
    "log @MrPatel_Maths " + "x" * 10_000, "log @MrPatel_Maths \x07bell",
    "log @MrPatel_Maths'; DROP TABLE contact; --",
])
async def test_bad_input_is_one_error_and_changes_nothing(network, line):
    before = table_counts(network)
    reply = await say_one(network, line)
    assert reply.kind == "error", reply.text
    assert "Usage:" in reply.text and reply.fields["usage"]
    assert table_counts(network) == before


async def test_command_replies_are_not_duplicated_by_a_retried_message_id(app, surface):
    from tests.support.factories import command

    await app.handle(command("help", message_id="m1"))
    await app.handle(command("help", message_id="m1"))
    assert surface.kinds() == ["reply"]
    with Session(app.engine) as session:
        assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 1
