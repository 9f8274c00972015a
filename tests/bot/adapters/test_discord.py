"""The Discord adapter without the network: spec'd discord.py objects in, normalised
events out; outbox messages in, Discord calls out; callbacks called directly."""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

import bot.adapters.discord.buttons as discord_buttons
import bot.adapters.discord.client as discord_client
import bot.adapters.discord.run as discord_run
import bot.adapters.discord.slash as discord_slash
import bot.adapters.discord.surface as discord_surface
from bot.adapters.discord.buttons import DraftButton, EditDraftModal, draft_view
from bot.adapters.discord.client import PlnbotClient
from bot.adapters.discord.sender import DiscordWelcomeSender
from bot.adapters.discord.surface import DiscordSurface
from bot.adapters.discord.text import member_profile, nonce_for, split_message
from bot.app import App, open_database
from bot.context import OutgoingMessage, SendRefused
from bot.events import CommandReceived
from handlers.commands import unique_specs
from storage.models import Connection, Draft, Handle, OutboxMessage
from tests.conftest import make_settings
from tests.support.discord_mocks import (
    CHANNEL_ID,
    GUILD_ID,
    OWNER_ID,
    message_with_components,
    mock_dm_channel,
    mock_guild,
    mock_interaction,
    mock_member,
    mock_message,
    mock_user,
)
from tests.support.owner import set_owner

# --- fixtures ------------------------------------------------------------------------------


def discord_settings(**extra):
    values = {"DISCORD_TOKEN": "token-for-tests", "DISCORD_OWNER_ID": OWNER_ID,
              "DISCORD_GUILD_ID": GUILD_ID, "DISCORD_WELCOME_CHANNEL_ID": CHANNEL_ID}
    return make_settings(**{**values, **extra})


@pytest.fixture
def client(db_url, clock, surface):
    """A real client (never connected) driving a real app on SQLite; the owner's
    chat surface is the fake one so that replies are easy to read."""
    settings = discord_settings()
    client = PlnbotClient(settings)
    engine = open_database(settings, db_url)
    client.app = App(settings=settings, engine=engine, surface=surface, clock=clock,
                     senders={"discord": DiscordWelcomeSender(client, CHANNEL_ID)})
    return client


def record_commands(client) -> list[str]:
    """The command lines that reach the app (and still run)."""
    lines: list[str] = []
    handle = client.app.handle

    async def spy(event):
        if isinstance(event, CommandReceived):
            lines.append(event.text)
        await handle(event)

    client.app.handle = spy
    return lines


async def with_baseline(client, *members):
    await client.snapshot_members_of(mock_guild(list(members)))
    client.app.surface.pop()


async def joined(client, member):
    await client.on_member_join(member)
    return client.app.surface.pop()


async def pending_draft(client, name="ada"):
    await with_baseline(client)
    [message] = await joined(client, mock_member(name, global_name=name.title() + " Lovelace"))
    return message.fields["draft_id"]


def http_error(cls, status: int, code: int = 0, text: str = "refused"):
    response = SimpleNamespace(status=status, reason="error")
    return cls(response, {"code": code, "message": text})


def outgoing(kind="reply", text="hello", **fields) -> OutgoingMessage:
    return OutgoingMessage(kind=kind, text=text, fields=fields, idempotency_key="1:k:0",
                           owner_ref="local")


# --- message splitting -----------------------------------------------------------------


def test_a_short_message_is_one_part():
    assert split_message("hello there") == ["hello there"]


def test_parts_break_at_lines_before_spaces():
    text = ("word " * 300).strip() + "\n" + ("more " * 200).strip()
    parts = split_message(text, limit=2000)
    assert parts == [("word " * 300).strip(), ("more " * 200).strip()]


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéü0123456789#@", min_size=1, max_size=30)
links = st.builds(lambda path: f"https://example.org/{path}?q=1&r=2", words)
tokens = st.lists(st.one_of(words, links), min_size=1, max_size=400)
separators = st.sampled_from([" ", " ", " ", "\n", "\n\n"])


@settings(max_examples=60, deadline=None)
@given(tokens, st.data(), st.integers(min_value=60, max_value=2000))
def test_splitting_keeps_every_word_and_link_whole(parts, data, limit):
    text = "".join(t + data.draw(separators) for t in parts)
    chunks = split_message(text, limit=limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert [t for chunk in chunks for t in chunk.split()] == text.split()


def test_only_a_token_longer_than_the_limit_is_cut():
    link = "https://example.org/" + "a" * 2500
    parts = split_message(f"see {link} ok")
    assert parts == ["see", link[:2000], link[2000:] + " ok"]


def test_a_code_block_cut_in_two_is_closed_and_reopened():
    text = "```\n" + "\n".join(f"line {i}" for i in range(400)) + "\n```"
    parts = split_message(text, limit=500)
    assert len(parts) > 1
    assert all(p.count("```") % 2 == 0 and len(p) <= 500 for p in parts)


def test_nonces_are_short_stable_and_distinct_per_part():
    assert nonce_for("7:cmd:discord:1", 0) == nonce_for("7:cmd:discord:1", 0)
    assert nonce_for("7:cmd:discord:1", 0) != nonce_for("7:cmd:discord:1", 1)
    assert len(nonce_for("x" * 300, 12)) <= 25


# --- server members → connections ---------------------------------------------------------


def test_a_member_becomes_a_profile():
    member = mock_member("mrs_patel", global_name="Priya Patel", nick="Priya (Y5)",
                         roles=("@everyone", "Teachers", "Maths"))
    profile = member_profile(member)
    assert (profile.platform, profile.external_id) == ("discord", str(member.id))
    assert (profile.handle, profile.name) == ("mrs_patel", "Priya (Y5)")
    assert profile.bio == "Roles: Teachers, Maths" and not profile.is_bot
    assert member_profile(mock_member("helper", bot=True)).is_bot


async def test_first_member_list_is_a_quiet_baseline_then_joins_get_drafts(client):
    await client.snapshot_members_of(mock_guild([mock_member("ada"), mock_member("grace"),
                                                 mock_member("robot", bot=True),
                                                 mock_member("me", member_id=OWNER_ID)]))
    [baseline] = client.app.surface.pop()
    assert baseline.kind == "reply" and baseline.fields["count"] == 2

    [arrival] = await joined(client, mock_member("katherine", global_name="Katherine Johnson"))
    assert arrival.kind == "new_connection" and arrival.fields["platform"] == "discord"
    assert arrival.fields["draft_id"] and "Katherine" in arrival.text
    assert await joined(client, mock_member("bot2", bot=True)) == []
    assert await joined(client, mock_member("me", member_id=OWNER_ID)) == []
    assert await joined(client, mock_member("elsewhere", guild_id=999)) == []


def connection_state(client, member) -> str:
    with Session(client.app.engine) as session:
        return session.exec(
            select(Connection.state).join(Handle, Handle.id == Connection.handle_id)
            .where(Handle.external_id == str(member.id), Connection.kind == "member")
        ).one()


async def test_people_who_left_while_offline_are_lost_only_if_the_list_was_complete(client):
    ada, grace = mock_member("ada"), mock_member("grace")
    set_owner(client.app, report_losses="immediate")  # the default keeps them for the digest
    await with_baseline(client, ada, grace)

    await client.snapshot_members_of(mock_guild([ada], chunked=False))
    assert connection_state(client, grace) == "active"

    await client.snapshot_members_of(mock_guild([ada]))
    assert connection_state(client, grace) == "lost"
    assert connection_state(client, ada) == "active"


async def test_a_reconnect_with_no_changes_says_nothing(client):
    ada = mock_member("ada")
    await with_baseline(client, ada)
    await client.snapshot_members_of(mock_guild([ada]))
    assert client.app.surface.pop() == []


async def test_a_leaving_member_is_lost_and_a_rejoin_is_a_welcome_back(client, clock):
    ada = mock_member("ada", global_name="Ada Lovelace")
    set_owner(client.app, report_losses="immediate")  # the default keeps them for the digest
    await with_baseline(client, ada)

    await client.on_raw_member_remove(SimpleNamespace(guild_id=GUILD_ID, user=ada))
    [lost] = client.app.surface.pop()
    assert lost.kind == "connection_lost" and "Ada Lovelace" in lost.text

    clock.advance(days=3)
    ada.joined_at = clock.now
    [back] = await joined(client, ada)
    assert back.kind == "welcome_back" and "3 days away" in back.text


async def test_a_member_list_that_cannot_be_fetched_whole_is_partial(client):
    guild = mock_guild([mock_member("ada")], chunked=False)
    guild.chunk.side_effect = discord.ClientException("members intent missing")
    await client.snapshot_members_of(guild)
    [reply] = client.app.surface.pop()
    assert "partial" in reply.text


# --- the owner's DMs ----------------------------------------------------------------------


async def test_the_owners_dm_is_a_command_and_a_redelivery_is_not_answered_twice(client):
    owner = mock_user("me", user_id=OWNER_ID)
    message = mock_message(owner, "help")
    await client.on_message(message)
    await client.on_message(message)
    [reply] = client.app.surface.pop()
    assert reply.kind == "reply" and "Commands" in reply.text


async def test_a_multi_line_dm_reaches_the_command(client):
    lines = record_commands(client)
    await client.on_message(mock_message(mock_user(user_id=OWNER_ID), "/help\r\nwho"))
    assert lines == ["help\nwho"]
    [reply] = client.app.surface.pop()
    assert "control characters" not in reply.text


def history_of(*messages) -> MagicMock:
    """The owner's DM channel whose history (as Discord filters it) is ``messages``."""
    channel = mock_dm_channel()

    async def history(**kwargs):
        for message in messages:
            yield message

    channel.history = MagicMock(side_effect=history)
    return channel


def restart(client, surface, clock) -> PlnbotClient:
    again = PlnbotClient(discord_settings())
    again.app = App(settings=again.settings, engine=client.app.engine, surface=surface,
                    clock=clock)
    return again


async def test_dms_written_while_the_bot_was_offline_are_answered_on_reconnect(
        client, surface, clock):
    owner = mock_user("me", user_id=OWNER_ID)
    answered = mock_message(owner, "help")
    await client.on_message(answered)
    surface.pop()

    again = restart(client, surface, clock)
    missed = [mock_message(owner, "drafts"), mock_message(owner, "skip 99")]
    channel = history_of(*missed)
    owner.dm_channel = channel
    again.get_user = lambda user_id: owner
    await again.catch_up_on_dms()
    assert channel.history.call_args.kwargs["after"] == answered.created_at
    assert [m.kind for m in surface.pop()] == ["reply", "error"]

    await again.on_message(missed[1])  # the same DM again, live: handled once
    assert surface.pop() == []
    third = restart(again, surface, clock)
    third.get_user = lambda user_id: owner
    await third.catch_up_on_dms()
    assert channel.history.call_args.kwargs["after"] == missed[1].created_at


async def test_the_first_run_starts_the_dm_record_without_reading_history(client):
    client.get_user = MagicMock()
    await client.catch_up_on_dms()
    client.get_user.assert_not_called()
    assert client.last_read() is not None


async def test_events_are_handled_one_at_a_time(db_url, clock):
    settings = discord_settings()
    gate, entered = asyncio.Event(), asyncio.Event()

    class SlowSurface:
        sent: list[str] = []

        async def send(self, message):
            entered.set()
            await gate.wait()
            self.sent.append(message.text)

    app = discord_client.SerialApp(settings=settings, engine=open_database(settings, db_url),
                            surface=SlowSurface(), clock=clock)
    first = asyncio.ensure_future(app.handle(CommandReceived(owner_ref="local", text="help")))
    await entered.wait()
    second = asyncio.ensure_future(app.sweep())
    await asyncio.sleep(0)
    assert app.lock.locked() and not second.done()
    gate.set()
    await asyncio.gather(first, second)
    assert len(SlowSurface.sent) == 1


async def test_strangers_get_one_polite_note_and_nothing_happens(client):
    lines = record_commands(client)
    stranger = mock_user("stranger")
    first, second = mock_message(stranger, "help"), mock_message(stranger, "who ada")
    await client.on_message(first)
    await client.on_message(second)
    first.channel.send.assert_awaited_once_with(discord_client.NOT_OWNER)
    second.channel.send.assert_not_awaited()
    assert lines == [] and client.app.surface.pop() == []


async def test_server_messages_and_bots_are_ignored(client):
    lines = record_commands(client)
    await client.on_message(mock_message(mock_user(user_id=OWNER_ID), "help", in_guild=True))
    await client.on_message(mock_message(mock_user("bot", bot=True), "help"))
    assert lines == []


# --- slash commands ---------------------------------------------------------------------------


def test_there_is_one_slash_command_per_chat_command(client):
    commands = {c.name: c for c in client.tree.get_commands()}
    specs = {s.name: s for s in unique_specs()}
    assert commands.keys() == specs.keys()
    for name, spec in specs.items():
        payload = commands[name].to_dict(client.tree)
        assert payload["description"] == discord_slash.clip(spec.summary or spec.usage)
        assert payload["contexts"] == [1]  # the bot's DMs only
        if spec.usage.strip() == name:
            assert payload["options"] == []
        else:
            [option] = payload["options"]
            assert option["description"] == discord_slash.clip(spec.usage)
            assert option["required"] == ("<" in spec.usage)


async def test_a_slash_command_runs_the_same_command(client):
    lines = record_commands(client)
    interaction = mock_interaction(client)
    await client.tree.get_command("help").callback(interaction, "skip")
    assert lines == ["help skip"]
    interaction.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    interaction.delete_original_response.assert_awaited_once()
    [reply] = client.app.surface.pop()
    assert reply.text.startswith("Usage: skip")


async def test_slash_commands_refuse_anyone_but_the_owner(client):
    lines = record_commands(client)
    interaction = mock_interaction(client, user_id=42)
    await client.tree.get_command("drafts").callback(interaction)
    interaction.response.send_message.assert_awaited_once_with(
        discord_client.NOT_OWNER, ephemeral=True)
    assert lines == []


def test_slash_commands_sync_only_when_they_changed(client):
    local = [c.to_dict(client.tree) for c in client.tree.get_commands()]
    remote = [{**p, "id": "1", "application_id": "2", "options": [
        {**o, "type": 3} for o in p["options"]]} for p in local]
    assert discord_slash.command_fingerprint(remote) == discord_slash.command_fingerprint(local)
    remote[0]["description"] = "old text"
    assert discord_slash.command_fingerprint(remote) != discord_slash.command_fingerprint(local)


# --- the Send / Edit / Skip buttons --------------------------------------------------------


async def test_the_skip_button_skips_the_draft_and_retires_the_buttons(client):
    draft_id = await pending_draft(client)
    message = message_with_components(draft_view(draft_id))
    interaction = mock_interaction(client, message=message)
    await DraftButton("skip", draft_id).callback(interaction)
    interaction.response.defer.assert_awaited_once()
    [reply] = client.app.surface.pop()
    assert reply.text.startswith(f"Skipped the welcome for Ada Lovelace (draft #{draft_id})")
    message.edit.assert_awaited_once_with(view=None)


async def test_send_and_edit_buttons_run_the_send_and_edit_commands(client):
    draft_id = await pending_draft(client)
    lines = record_commands(client)
    await DraftButton("send", draft_id).callback(mock_interaction(client))
    await DraftButton("senddm", draft_id).callback(mock_interaction(client))

    interaction = mock_interaction(client)
    await DraftButton("edit", draft_id).callback(interaction)
    [modal] = interaction.response.send_modal.await_args.args
    assert isinstance(modal, EditDraftModal) and "Ada" in modal.text.default

    modal.text._value = "Hi Ada,\nwelcome!"
    await modal.on_submit(mock_interaction(client))
    assert lines == [f"send {draft_id}", f"send {draft_id} dm",
                     f"edit {draft_id} Hi Ada,\nwelcome!"]


async def test_a_button_for_a_decided_draft_says_so(client):
    draft_id = await pending_draft(client)
    await DraftButton("skip", draft_id).callback(mock_interaction(client))
    client.app.surface.pop()
    lines = record_commands(client)
    for action in ("send", "edit", "skip"):
        message = message_with_components(draft_view(draft_id))
        interaction = mock_interaction(client, message=message)
        await DraftButton(action, draft_id).callback(interaction)
        interaction.response.send_message.assert_awaited_once_with(
            f"Draft #{draft_id} was already skipped.", ephemeral=True)
        message.edit.assert_awaited_once_with(view=None)
    assert lines == []


def set_draft_status(client, draft_id: int, status: str) -> None:
    with Session(client.app.engine) as session:
        draft = session.get(Draft, draft_id)
        draft.status = status
        session.add(draft)
        session.commit()


async def test_an_expired_draft_can_still_be_edited_and_one_being_sent_waits(client):
    draft_id = await pending_draft(client)
    set_draft_status(client, draft_id, "expired")
    interaction = mock_interaction(client)
    await DraftButton("edit", draft_id).callback(interaction)
    interaction.response.send_modal.assert_awaited_once()

    set_draft_status(client, draft_id, "sending")
    message = message_with_components(draft_view(draft_id))
    interaction = mock_interaction(client, message=message)
    await DraftButton("send", draft_id).callback(interaction)
    interaction.response.send_message.assert_awaited_once_with(
        f"Draft #{draft_id} is being sent right now.", ephemeral=True)
    message.edit.assert_not_awaited()


async def test_only_the_owner_can_press_the_buttons(client):
    draft_id = await pending_draft(client)
    interaction = mock_interaction(client, user_id=42)
    assert await DraftButton("send", draft_id).interaction_check(interaction) is False
    interaction.response.send_message.assert_awaited_once_with(
        discord_client.NOT_OWNER, ephemeral=True)
    assert await DraftButton("send", draft_id).interaction_check(mock_interaction(client))


async def test_buttons_from_before_a_restart_still_work(client, db_url, clock, surface):
    draft_id = await pending_draft(client)
    old_message = message_with_components(draft_view(draft_id))

    restarted = PlnbotClient(discord_settings())
    restarted.app = App(settings=restarted.settings, engine=open_database(
        restarted.settings, db_url), surface=surface, clock=clock)
    restarted.register_components()
    lines = record_commands(restarted)
    custom_id = f"plnbot:draft:skip:{draft_id}"
    interaction = mock_interaction(restarted, message=old_message)
    interaction.data = {"custom_id": custom_id, "component_type": 2}
    restarted._connection._view_store.dispatch_view(2, custom_id, interaction)
    await asyncio.gather(*[t for t in asyncio.all_tasks()
                           if t.get_name().startswith("discord-ui-dynamic-item")])
    assert lines == [f"skip {draft_id}"]
    assert surface.pop()[0].text.startswith("Skipped the welcome")


def test_button_ids_fit_discord_and_carry_the_draft():
    for action in ("send", "senddm", "edit", "skip"):
        custom_id = DraftButton(action, 123456789).custom_id
        assert len(custom_id) <= 100
        assert re.fullmatch(discord_buttons.DRAFT_BUTTON, custom_id)["draft_id"] == "123456789"


# --- the owner's chat surface ---------------------------------------------------------------


def surface_for(client) -> tuple[DiscordSurface, MagicMock]:
    surface = DiscordSurface(client, OWNER_ID)
    surface.channel = mock_dm_channel()
    return surface, surface.channel


async def test_a_long_dm_is_split_with_a_nonce_per_part(client):
    surface, channel = surface_for(client)
    await surface.send(outgoing(text="word " * 1000))
    calls = channel.send.await_args_list
    assert len(calls) == 3 and all(len(c.args[0]) <= 2000 for c in calls)
    assert [c.kwargs["nonce"] for c in calls] == [nonce_for("1:k:0", i) for i in range(3)]


async def test_new_connection_dms_carry_the_buttons_and_digests_their_chart(client, tmp_path):
    surface, channel = surface_for(client)
    await surface.send(outgoing("new_connection", "New connection on Mastodon", draft_id=7,
                                platform="mastodon"))
    view = channel.send.await_args.kwargs["view"]
    assert [item.custom_id for item in view.children] == [
        "plnbot:draft:send:7", "plnbot:draft:edit:7", "plnbot:draft:skip:7"]

    surface.welcome_channel = True  # a server member: post in the channel, or DM them
    await surface.send(outgoing("new_connection", "New connection on Discord", draft_id=8,
                                platform="discord"))
    view = channel.send.await_args.kwargs["view"]
    assert [item.item.label for item in view.children] == ["Send", "Send as DM", "Edit", "Skip"]

    chart = tmp_path / "digest.png"
    chart.write_bytes(b"\x89PNG\r\n")
    await surface.send(outgoing("digest", "Your week", image=str(chart)))
    assert channel.send.await_args.kwargs["file"].filename == "digest.png"
    assert channel.send.await_args.args[0].startswith("**Weekly digest:** Your week")

    await surface.send(outgoing("digest", "Your week", image=str(tmp_path / "gone.png")))
    assert "file" not in channel.send.await_args.kwargs
    assert "is missing" in channel.send.await_args.args[0]


async def test_the_owners_dm_channel_is_opened_once(client):
    owner = mock_user(user_id=OWNER_ID)
    owner.dm_channel, owner.create_dm = None, AsyncMock(return_value=mock_dm_channel())
    client._connection.user = MagicMock(spec=discord.ClientUser)
    client.get_user = lambda user_id: owner if user_id == OWNER_ID else None
    surface = DiscordSurface(client, OWNER_ID)
    await surface.send(outgoing())
    await surface.send(outgoing())
    owner.create_dm.assert_awaited_once()
    assert surface.channel.send.await_count == 2


async def test_before_login_a_dm_waits_in_the_outbox(client):
    with pytest.raises(discord_surface.DiscordUnavailable):
        await DiscordSurface(client, OWNER_ID).send(outgoing())


async def test_a_dm_the_owner_cannot_receive_stays_in_the_outbox_and_is_retried(
        db_url, clock):
    settings = discord_settings()
    client = PlnbotClient(settings)
    app = discord_run.build_app(settings, open_database(settings, db_url), client)
    app.clock = clock
    app.surface.channel = channel = mock_dm_channel()
    channel.send.side_effect = http_error(discord.Forbidden, 403, 50007,
                                          "Cannot send messages to this user")
    await client.submit(CommandReceived(owner_ref="local", text="drafts", message_id="d:1"))
    with Session(app.engine) as session:
        [row] = session.exec(select(OutboxMessage)).all()
        assert (row.status, row.attempts) == ("pending", 1)
        assert "Cannot send messages to this user" in row.last_error

    channel.send.side_effect = None
    clock.advance(minutes=5)
    assert await app.flush() == 1
    assert await app.flush() == 0
    assert channel.send.await_count == 2


# --- approved welcomes --------------------------------------------------------------------


def handle_of(member_id: int, name: str = "ada"):
    return SimpleNamespace(external_id=str(member_id), handle=name, display_handle=name)


@pytest.fixture
def sender(client):
    client._connection.user = MagicMock(spec=discord.ClientUser)
    channel = MagicMock(spec=discord.TextChannel)
    channel.name, channel.send = "welcome", AsyncMock()
    member = mock_user("ada", user_id=5)
    client.get_channel = lambda channel_id: channel if channel_id == CHANNEL_ID else None
    client.get_user = lambda user_id: member if user_id == 5 else None
    sender = DiscordWelcomeSender(client, CHANNEL_ID)
    return SimpleNamespace(sender=sender, channel=channel, member=member)


async def test_a_welcome_is_posted_in_the_welcome_channel_mentioning_only_the_member(sender):
    said = await sender.sender.send_welcome(handle=handle_of(5), text="Hi Ada!")
    assert said == "Posted your welcome to ada in #welcome."
    call = sender.channel.send.await_args
    assert call.args[0] == "<@5> Hi Ada!"
    mentions = call.kwargs["allowed_mentions"].to_dict()
    assert mentions["users"] == [5] and mentions["parse"] == []
    sender.member.send.assert_not_awaited()


async def test_a_welcome_goes_by_dm_when_the_owner_chose_dm(sender):
    said = await sender.sender.send_welcome(handle=handle_of(5), text="Hi Ada!", via="dm")
    assert said == "Sent your welcome to ada as a Discord DM."
    assert sender.member.send.await_args.args[0] == "Hi Ada!"
    sender.channel.send.assert_not_awaited()


async def test_closed_dms_fall_back_to_the_channel_and_the_owner_is_told(sender):
    sender.member.send.side_effect = http_error(discord.Forbidden, 403, 50007)
    said = await sender.sender.send_welcome(handle=handle_of(5), text="Hi Ada!", via="dm")
    assert said == "ada does not accept DMs from the bot, so I posted your welcome in #welcome."
    assert sender.channel.send.await_args.args[0] == "<@5> Hi Ada!"


async def test_closed_dms_without_a_welcome_channel_are_refused(sender):
    sender.sender.channel_id = None
    sender.member.send.side_effect = http_error(discord.Forbidden, 403, 50007)
    with pytest.raises(SendRefused, match="does not accept DMs.*DISCORD_WELCOME_CHANNEL_ID"):
        await sender.sender.send_welcome(handle=handle_of(5), text="Hi Ada!")


@pytest.mark.parametrize("error, reason", [
    (http_error(discord.Forbidden, 403, 50013), "Send Messages permissions"),
    (http_error(discord.NotFound, 404, 10003), "does not exist"),
    (http_error(discord.HTTPException, 429, 0, "rate limited"), "HTTP 429, rate limited"),
])
async def test_a_channel_that_refuses_is_reported(sender, error, reason):
    sender.channel.send.side_effect = error
    with pytest.raises(SendRefused, match=reason):
        await sender.sender.send_welcome(handle=handle_of(5), text="Hi Ada!")


async def test_welcomes_wait_for_a_connection_and_a_known_route(client):
    sender = DiscordWelcomeSender(client, CHANNEL_ID)
    with pytest.raises(SendRefused, match="not connected"):
        await sender.send_welcome(handle=handle_of(5), text="Hi")
    client._connection.user = MagicMock(spec=discord.ClientUser)
    with pytest.raises(SendRefused, match="`channel` or `dm`"):
        await sender.send_welcome(handle=handle_of(5), text="Hi", via="pigeon")


def needs_send_command():
    from handlers.commands import command_specs

    if "send" not in command_specs():
        pytest.skip("the send command (welcome drafts) is not on this branch")


@pytest.fixture
def member_app(client, sender):
    """The app sending Discord welcomes through the fake channel and member."""
    client.app.senders["discord"] = sender.sender
    return client


async def test_the_send_button_posts_the_welcome_and_settles_the_draft(member_app, sender):
    needs_send_command()
    client = member_app
    await with_baseline(client)
    [arrival] = await joined(client, mock_member("ada", global_name="Ada Lovelace",
                                                 member_id=5))
    draft_id = arrival.fields["draft_id"]
    message = message_with_components(draft_view(draft_id))
    await DraftButton("send", draft_id).callback(mock_interaction(client, message=message))
    assert sender.channel.send.await_args.args[0].startswith("<@5> ")
    assert client.find_draft(draft_id).status == "sent"
    assert "in #welcome" in client.app.surface.pop()[-1].text
    message.edit.assert_awaited_once_with(view=None)


async def test_send_as_dm_to_a_member_with_closed_dms_posts_in_the_channel(member_app, sender):
    needs_send_command()
    client = member_app
    await with_baseline(client)
    [arrival] = await joined(client, mock_member("ada", member_id=5))
    draft_id = arrival.fields["draft_id"]
    sender.member.send.side_effect = http_error(discord.Forbidden, 403, 50007)
    await DraftButton("senddm", draft_id).callback(mock_interaction(client))
    sender.member.send.assert_awaited()
    assert sender.channel.send.await_args.args[0].startswith("<@5> ")
    assert client.find_draft(draft_id).status == "sent"
    assert "does not accept DMs" in client.app.surface.pop()[-1].text


# --- start-up and failure -----------------------------------------------------------------


@pytest.mark.parametrize("error, says", [
    (discord.LoginFailure("Improper token has been passed."), "rejected DISCORD_TOKEN"),
    (discord.PrivilegedIntentsRequired(None), "Server Members Intent"),
    (discord.GatewayNotFound(), "cannot reach Discord"),
    (OSError("Network is unreachable"), "cannot reach Discord (Network is unreachable)"),
    (http_error(discord.DiscordServerError, 503), "Discord is having problems (HTTP 503"),
])
def test_start_up_failures_name_what_to_fix(error, says):
    problem = discord_run.startup_error(error)
    assert says in str(problem) and "\n" not in str(problem)


def test_a_bug_is_not_disguised_as_a_start_up_problem():
    assert discord_run.startup_error(KeyError("x")) is None


def run_cli(monkeypatch, tmp_path, env: dict):
    from click.testing import CliRunner

    from bot.cli import main

    monkeypatch.setattr("bot.logs.setup_logging", lambda *args: None)
    for name in ("DATABASE_URL", "DISCORD_GUILD_ID", "DISCORD_WELCOME_CHANNEL_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'run.sqlite3'}"
    return CliRunner().invoke(main, ["run", "--db", db], env=env)


@pytest.mark.parametrize("error, says", [
    (discord.LoginFailure("Improper token has been passed."), "rejected DISCORD_TOKEN"),
    (discord.PrivilegedIntentsRequired(None), "Privileged Gateway Intents"),
])
def test_plnbot_run_with_a_bad_token_or_intent_is_one_line_and_exit_2(
        monkeypatch, tmp_path, error, says):
    monkeypatch.setattr(PlnbotClient, "start", AsyncMock(side_effect=error))
    result = run_cli(monkeypatch, tmp_path, {"DISCORD_TOKEN": "bad", "DISCORD_OWNER_ID": "1"})
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("plnbot: ") and says in line and "bad" not in line


def test_plnbot_run_when_discord_is_unreachable_is_one_line_and_exit_2(monkeypatch, tmp_path):
    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")
    result = run_cli(monkeypatch, tmp_path, {"DISCORD_TOKEN": "tok", "DISCORD_OWNER_ID": "1"})
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("plnbot: cannot reach Discord")


def test_plnbot_run_without_an_owner_id_says_so(tmp_path):
    from tests.support.cli import run_plnbot

    result = run_plnbot("run", "--db", f"sqlite:///{tmp_path / 'r.sqlite3'}",
                        env={"DISCORD_TOKEN": "tok", "HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "DISCORD_OWNER_ID" in line


async def test_a_gateway_that_never_answers_ends_the_start(client):
    client.main_task = asyncio.ensure_future(asyncio.Event().wait())
    await client.expect_connection(0)
    assert "gateway" in str(client.fatal)
    with pytest.raises(asyncio.CancelledError):
        await client.main_task


async def test_a_wrong_owner_or_server_id_is_named(client):
    client.fetch_user = AsyncMock(side_effect=http_error(discord.NotFound, 404, 10013))
    assert "DISCORD_OWNER_ID" in str(await client.setup_problem())
    client.fetch_user = AsyncMock(return_value=mock_user(user_id=OWNER_ID))
    client.get_guild = lambda guild_id: None
    assert "DISCORD_GUILD_ID" in str(await client.setup_problem())


async def test_a_failed_catch_up_does_not_stop_the_bot(client):
    client.fetch_user = AsyncMock(side_effect=http_error(discord.DiscordServerError, 503))
    client.get_guild = lambda guild_id: mock_guild([])
    client.snapshot_members = AsyncMock(side_effect=RuntimeError("boom"))
    client.start_work = AsyncMock()
    await client.on_ready()
    assert client.fatal is None
    client.start_work.assert_awaited_once()


async def test_once_catches_up_on_the_first_ready_and_stops(client):
    client.once = True
    client.fetch_user = AsyncMock(return_value=mock_user(user_id=OWNER_ID))
    guild = mock_guild([mock_member("ada")])
    client.get_guild = lambda guild_id: guild if guild_id == GUILD_ID else None
    client.main_task = asyncio.ensure_future(asyncio.Event().wait())
    await client.on_ready()
    assert client.fatal is None and client.scheduler is None
    with pytest.raises(asyncio.CancelledError):
        await client.main_task
    [baseline] = client.app.surface.pop()
    assert baseline.fields["count"] == 1


async def test_the_draft_fields_survive_json(client):
    await pending_draft(client)
    with Session(client.app.engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "new_connection"))
        payload = json.loads(rows.one().payload_json)
        draft = session.get(Draft, payload["draft_id"])
    assert isinstance(payload["draft_id"], int) and draft.status == "pending"
