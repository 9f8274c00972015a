"""Random command lines never crash the bot, get one reply each, and an error changes
nothing (property test with hypothesis, in-process against a real SQLite file)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session, SQLModel

from handlers.commands import command_specs
from tests.conftest import make_settings
from tests.support.factories import command
from tests.support.network import make_app, seed_network

# The error message itself is the one row an error adds; an error that lists people to
# choose from also leaves that question pending (answered by its number, dropped by
# anything else), which is the conversation, not the contact book.
NOT_STATE = {"outboxmessage", "pendingprompt"}
PEOPLE = ["ravi", "@MrPatel_Maths", "amara", "@asmith", "#1", "#3", "#999", "#x",
          '"Jane Doe"', "'Amara Smith", "zoë", "jane@school.social", "@", "me"]
WORDS = ["tz", "quiet", "tone", "signature", "Europe/London", "Mars/Base", "22:00-07:00",
         "25:99-1", "brief", "warm", "json", "csv", "off", "in 3 days", "tomorrow",
         "every 2 weeks", "#edtech", "per", "week", "3", "-1", "0", "99999999999999"]
NASTY = ["'; DROP TABLE contact; --", "\" OR 1=1 --", "NEAR(a b)", "a* OR b", "%", "_",
         "x" * 10_000, "\x00", "\x07bell", "\x1b[31m", "🙂" * 50, "\u202e", "\t"]
# Console lines never contain line breaks; everything else is fair game.
free_text = st.text(st.characters(blacklist_characters="\n\r\x85\u2028\u2029"), max_size=40)
argument = st.one_of(st.sampled_from(PEOPLE), st.sampled_from(WORDS),
                     st.sampled_from(NASTY), free_text)
name = st.one_of(st.sampled_from(sorted(command_specs())), st.sampled_from(["", "frob", "WHO"]))
line = st.builds(lambda n, a: " ".join([n, *a]), name, st.lists(argument, max_size=4))


def dump(engine) -> dict[str, list[tuple]]:
    """Every row of every table (but the outbox), in primary-key order."""
    with Session(engine) as session:
        return {
            table.name: [tuple(row) for row in session.execute(
                select(table).order_by(*table.primary_key.columns))]
            for table in SQLModel.metadata.sorted_tables if table.name not in NOT_STATE
        }


@pytest.fixture
def bot(tmp_path):
    app = make_app(make_settings(PLNBOT_DATA_DIR=str(tmp_path / "data")),
                   f"sqlite:///{tmp_path / 'property.sqlite3'}")
    asyncio.run(seed_network(app))
    yield app
    app.engine.dispose()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(line, min_size=1, max_size=4))
def test_random_command_lines(bot, lines):
    for text in lines:
        before = dump(bot.engine)
        asyncio.run(bot.handle(command(text)))
        replies = bot.surface.pop()
        if not text.strip():
            assert replies == []
            continue
        assert len(replies) == 1, (text, [r.text for r in replies])
        reply = replies[0]
        assert "went wrong on my side" not in reply.text, text  # a crash, caught
        if reply.kind == "error":
            assert reply.fields.get("usage"), text
            assert dump(bot.engine) == before, text
