"""The platform contract, over every platform in the registry, through the public path.

A follow arrives → the owner gets ``new_connection`` with a draft → ``send <draft>``
(from the running bot, and from ``plnbot console`` in its own process) → the platform's
server received exactly one message, with the draft's text, to that person, as private
as the platform allows; X gets nothing and the owner a compose link. A refusal says why
once and gives the text once; a request whose answer never came is ``welcome_uncertain``;
a bug of ours before the request is an error and the draft stays pending.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session

from bot import platforms
from bot.app import App, open_database
from bot.events import ArrivalsReceived, CommandReceived, NewConnection
from storage.models import Draft
from tests.conftest import make_settings
from tests.contract.harnesses import compose_recipient, harness_for
from tests.support.cli import json_messages, run_plnbot

# Every platform that connects people (the console has no accounts to connect).
CONNECTING = [p.id for p in platforms.registry().values() if p.snapshot is not None]
VISIBILITY = {"mastodon": "direct", "bluesky": "chat", "discord": "channel"}


@pytest.fixture(params=CONNECTING)
def harness(request):
    with harness_for(request.param)() as running:
        yield running


@pytest.fixture
async def bot(harness, db_url, surface, tmp_path):
    """``plnbot run`` in this process, as the harness builds it for its platform."""
    config = make_settings(PLNBOT_DATA_DIR=str(tmp_path / "data"), **harness.env)
    app = await harness.build_app(config, open_database(config, db_url), surface)
    yield app
    await harness.close()


async def say(app: App, line: str) -> list:
    await app.handle(CommandReceived(owner_ref=app.settings.owner_ref, text=line))
    return app.surface.pop()


async def arrival(app: App, harness, name: str):
    """A quiet baseline, then ``name`` follows: the owner's ``new_connection``."""
    await harness.baseline(app)
    app.surface.pop()
    await harness.arrival(app, name)
    [message] = [m for m in app.surface.pop() if m.kind == "new_connection"]
    assert message.fields["platform"] == harness.platform
    assert message.fields["contact"]["name"] == name
    return message


def status_of(app: App, draft_id: int) -> str:
    with Session(app.engine) as session:
        return session.get(Draft, draft_id).status


async def test_a_follow_becomes_a_draft_sent_exactly_once(bot, harness):
    message = await arrival(bot, harness, "Ada Lovelace")
    draft_id, text = message.fields["draft_id"], message.fields["draft"]
    [reply] = await say(bot, f"send {draft_id}")
    if not harness.sends:
        assert compose_recipient(reply.fields["send_url"]) == harness.recipient_of("Ada Lovelace")
        assert harness.received() == [] and status_of(bot, draft_id) == "pending"
        return
    assert reply.kind == "reply" and reply.fields["status"] == "sent", reply.text
    [got] = harness.received()
    assert (got.recipient, got.text) == (harness.recipient_of("Ada Lovelace"), text)
    assert got.visibility == VISIBILITY[harness.platform]
    assert (await say(bot, f"send {draft_id}"))[0].kind == "error"  # never twice
    assert len(harness.received()) == 1


async def test_a_refusal_says_why_once_and_gives_the_text_once(bot, harness):
    if not harness.sends:
        pytest.skip(f"{harness.platform}: the owner sends by link; nothing can refuse")
    message = await arrival(bot, harness, "Ada Lovelace")
    draft_id, text = message.fields["draft_id"], message.fields["draft"]
    words = harness.refuse_next_send()
    [error] = await say(bot, f"send {draft_id}")
    assert error.kind == "error" and words in error.text
    first_line, _, rest = error.text.partition("\n")
    assert first_line.endswith(f"Nothing was sent; draft #{draft_id} is still waiting.")
    assert ".." not in first_line and "?." not in first_line
    assert error.text.count(text.splitlines()[0]) == 1 and text.splitlines()[0] in rest
    assert harness.received() == [] and status_of(bot, draft_id) == "pending"


async def test_an_answer_that_never_came_is_uncertain_and_not_resent(bot, harness):
    if not harness.sends:
        pytest.skip(f"{harness.platform}: the owner sends by link")
    message = await arrival(bot, harness, "Ada Lovelace")
    draft_id = message.fields["draft_id"]
    harness.drop_next_send()
    [uncertain] = await say(bot, f"send {draft_id}")
    assert uncertain.kind == "welcome_uncertain", uncertain.text
    assert uncertain.fields["draft_id"] == draft_id
    assert status_of(bot, draft_id) == "uncertain"
    assert len(harness.received()) == 1  # it did arrive; the bot could not know


async def test_a_bug_before_the_request_is_an_error_and_the_draft_waits(bot, harness,
                                                                        monkeypatch):
    if not harness.sends:
        pytest.skip(f"{harness.platform}: the owner sends by link")
    message = await arrival(bot, harness, "Ada Lovelace")
    draft_id = message.fields["draft_id"]
    sender = bot.senders[harness.platform]

    async def broken(**kwargs):
        raise TypeError("send_welcome() got an unexpected keyword argument 'via'")

    monkeypatch.setattr(sender, "send_welcome", broken)
    [error] = await say(bot, f"send {draft_id}")
    assert error.kind == "error" and "bug" in error.text and "may or may not" not in error.text
    assert status_of(bot, draft_id) == "pending" and harness.received() == []


def test_the_console_in_its_own_process_sends_like_the_running_bot(harness, db_url):
    """``plnbot run --once`` from cron finds the arrival; ``plnbot console`` sends it."""
    if not harness.over_http:
        pytest.skip(f"{harness.platform}: its fake lives in the test process")
    env = harness.env
    first = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    assert first.returncode == 0, first.stderr
    harness.arrive("Ada Lovelace")
    second = run_plnbot("run", "--once", "--json", "--db", db_url, env=env)
    [message] = [m for m in json_messages(second.stdout) if m["kind"] == "new_connection"]
    console = run_plnbot("console", "--json", "--db", db_url, env=env,
                         stdin=f"send {message['draft_id']}\n")
    assert console.returncode == 0, console.stderr
    replies = [m for m in json_messages(console.stdout) if m.get("draft_id")]
    assert [m["kind"] for m in replies] == ["reply"], console.stdout
    [got] = harness.received()
    assert got.text == message["draft"]
    assert got.recipient == harness.recipient_of("Ada Lovelace")


def test_every_platform_declares_its_secrets_as_secret_settings():
    from pydantic import SecretStr

    config = make_settings(**{f.upper(): "s3cret-value" for p in platforms.registry().values()
                              for f in p.secrets if f.upper() in ("X_BEARER_TOKEN",)})
    fields = type(config).model_fields
    for platform in platforms.registry().values():
        for name in platform.secrets:
            assert name in fields, f"{platform.id}: no setting {name}"
            assert fields[name].annotation in (SecretStr, SecretStr | None), name


async def test_a_failed_write_leaves_the_source_where_it_was(bot, harness, monkeypatch):
    """The cursor moves in the transaction that stores the arrivals: when that fails,
    the next poll fetches the same person again instead of skipping them."""
    if not harness.polls:
        pytest.skip(f"{harness.platform}: arrivals come as live events, not by polling")
    await harness.baseline(bot)
    bot.surface.pop()
    original, failed = bot.dispatcher.handlers_for, []

    def handlers_for(event):
        found = original(event)
        if isinstance(event, NewConnection | ArrivalsReceived) and not failed:
            failed.append(event)

            async def database_went_away(event, ctx):
                raise RuntimeError("the database went away")

            return [*found, database_went_away]
        return found

    monkeypatch.setattr(bot.dispatcher, "handlers_for", handlers_for)
    await harness.arrival(bot, "Ada Lovelace")
    assert failed and not [m for m in bot.surface.pop() if m.kind == "new_connection"]
    await bot.poll_sources()
    [message] = [m for m in bot.surface.pop() if m.kind == "new_connection"]
    assert message.fields["contact"]["name"] == "Ada Lovelace"
