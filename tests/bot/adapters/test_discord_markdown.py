"""Strangers' names and bios in the owner's Discord DMs show as the text they are: no
masked link, no bold, no @everyone, while the bot's own formatting stays."""

from __future__ import annotations

from sqlmodel import Session, select

from bot.adapters.discord.client import PlnbotClient
from bot.adapters.discord.markdown import escape
from bot.adapters.discord.surface import DiscordSurface
from bot.adapters.discord.text import surface_text
from bot.context import QUOTED_KEY
from bot.events import ConnectionLeft, FollowRequested, ProfilesUnreadable, Unreadable
from storage.models import Owner
from tests.conftest import make_settings
from tests.support.chat import say
from tests.support.discord_mocks import CHANNEL_ID, GUILD_ID, OWNER_ID, mock_dm_channel
from tests.support.factories import arrival, mastodon_person, x_person

PHISH = "[Your account is locked](https://evil.example/login)"


async def test_profile_markdown_is_escaped_in_the_welcome_dm(app):
    person = mastodon_person(f"**URGENT** {PHISH} @everyone",
                             note="<p>Teacher at __Oak__ Primary School</p>",
                             acct="ivy_lee@school.social")
    await app.handle(arrival(person))
    [message] = [m for m in app.surface.pop() if m.kind == "new_connection"]
    assert PHISH in message.text  # plain text everywhere else (console, --json)

    settings = make_settings(DISCORD_TOKEN="token-for-tests", DISCORD_OWNER_ID=OWNER_ID,
                             DISCORD_GUILD_ID=GUILD_ID, DISCORD_WELCOME_CHANNEL_ID=CHANNEL_ID)
    surface = DiscordSurface(PlnbotClient(settings), OWNER_ID)
    surface.channel = mock_dm_channel()
    await surface.send(message)
    shown = "".join(call.args[0] for call in surface.channel.send.await_args_list)

    assert r"\[Your account is locked](https://evil.example/login)" in shown
    assert f" {PHISH}" not in shown
    assert "**URGENT**" not in shown and r"\*\*URGENT\*\*" in shown
    assert "@everyone" not in shown
    assert r"ivy\_lee@school.social" in shown
    assert r"Bio: Teacher at \_\_Oak\_\_ Primary School" in shown
    assert f"send {message.fields['draft_id']}" in shown  # the bot's own words unchanged


# --- every message that quotes a stranger ---------------------------------------------

HOSTILE_NAME = ("Mal **bold** ||spoiler|| `tick` [x](http://evil.example) @everyone "
                "<@123456789012345678>")
HOSTILE_BIO = ("Maths teacher at **Evil** Academy. [click](http://evil.example/a) @here "
               "<@&223456789012345678> ||hidden|| `code` #edtech")
HOSTILE_PLACE = "**Leeds** @everyone"
LIVE_MARKUP = ["**bold**", "||spoiler||", "`tick`", "[x](http://evil.example)", "@everyone",
               "<@123456789012345678>", "**Evil**", "[click](http://evil.example/a)", "@here",
               "<@&223456789012345678>", "||hidden||", "`code`", "**Leeds**"]


def live_markup(shown: str) -> list[str]:
    """Markup from the stranger's profile that Discord would still render in ``shown``:
    found as written once its escaped form (``\\[x](…)``, ``@\u200beveryone``) is taken out."""
    return [fragment for fragment in LIVE_MARKUP
            if fragment in shown.replace(escape(fragment), "")]


async def test_every_message_quoting_a_stranger_is_inert_on_discord(app, clock):
    """new_connection, who/find/people replies, connection_lost, welcome_back,
    follow_request, profiles_skipped and the digest: a profile's Markdown, mentions,
    spoilers, code and masked links show as text on Discord; ``--json`` keeps them."""
    person = x_person(HOSTILE_NAME, username="mal_x", description=HOSTILE_BIO,
                      location=HOSTILE_PLACE)
    asking = x_person(HOSTILE_NAME, username="mal_ask", description=HOSTILE_BIO,
                      location=HOSTILE_PLACE)
    messages = []
    await app.handle(arrival(person))
    messages += app.surface.pop()
    for line in ("who mal_x", "who #1", "find Evil", "people", "history #1"):
        messages += await say(app, line)
    with Session(app.engine) as session:
        owner = session.exec(select(Owner)).one()
        owner.report_losses = "immediate"
        session.add(owner)
        session.commit()
    await app.handle(ConnectionLeft(owner_ref="local", profile=person, kind="follower"))
    messages += app.surface.pop()
    messages += await say(app, "lost")
    clock.advance(days=2)
    await app.handle(arrival(person))
    await app.handle(FollowRequested(owner_ref="local", profile=asking))
    await app.handle(ProfilesUnreadable(owner_ref="local", platform="x", entries=[Unreadable(
        platform="x", label="@**x** [y](http://evil.example) @everyone", reason="its 'id' …",
        key="x:1", handle="**x** [y](http://evil.example) @everyone")]))
    messages += app.surface.pop()
    clock.advance(days=8)
    await app.sweep()
    messages += app.surface.pop()

    kinds = {m.kind for m in messages}
    assert {"new_connection", "reply", "connection_lost", "welcome_back", "follow_request",
            "profiles_skipped", "digest"} <= kinds, kinds
    quoting = [m for m in messages if live_markup(m.text)]
    assert {m.kind for m in quoting} >= {"new_connection", "follow_request", "welcome_back"}
    # plain text and --json keep the stranger's words as written; Discord shows them inert
    live = {(m.kind, m.text.split("\n")[0][:60]): live_markup(surface_text(m)) for m in quoting}
    [request] = [m for m in messages if m.kind == "follow_request"]
    assert request.fields["contact"]["bio"].startswith("Maths teacher at **Evil** Academy.")
    failing = sorted(f"{kind} «{start}»: {found}" for (kind, start), found in live.items()
                     if found)
    assert not failing, "\n".join(failing)


async def test_every_reply_about_a_hostile_profile_is_inert_on_discord(app, clock):
    """Issue #16, one reply at a time: ``drafts``, ``due``, nudges, reminders, the
    digest, ``people`` lists, ``find`` and the other commands that name a person show a
    profile's Markdown, mentions, spoilers, code and masked links as text on Discord,
    while ``--json`` (the message itself) keeps the words exactly as written."""
    person = x_person(HOSTILE_NAME, username="mal_x", description=HOSTILE_BIO,
                      location=HOSTILE_PLACE)
    await app.handle(arrival(person))
    [arrived] = [m for m in app.surface.pop() if m.kind == "new_connection"]
    draft = arrived.fields["draft_id"]
    said: list[tuple[str, object]] = [("arrival", arrived)]
    lines = ["drafts", f"draft {draft}", "people", "people never", "people field location",
             "find Evil", "find Mal", "who #1", "tag #1 #maths", "people #maths",
             "untag #1 #maths", "note #1 met at the maths conference", "log #1 chatted",
             "history #1", "cadence #1 every 1 week", "remind #1 tomorrow ask about robots",
             "remind me tomorrow ask Mal about robots", "reminders", "due", "stats",
             "digest", f"edit {draft} Hello there, welcome!", f"sent {draft}", "history #1",
             "undo", "drafts", "lost", "delete note 1", "undo"]
    for line in lines:
        said += [(line, m) for m in await say(app, line)]
    for days in (2, 8, 8):  # the reminder, then a nudge (cadence) and the digest
        clock.advance(days=days)
        await app.sweep()
        said += [("sweep", m) for m in app.surface.pop()]
    said += [(line, m) for line in ("due", "reminders", "people") for m in await say(app, line)]

    kinds = {m.kind for _, m in said}
    assert {"reminder", "nudge", "digest", "reply"} <= kinds, kinds
    quoting = [(line, m) for line, m in said if live_markup(m.text)]
    quoted_by = {line for line, _ in quoting}
    assert {"drafts", "people", "find Evil", "due", "reminders", "sweep"} <= quoted_by, \
        sorted(quoted_by)
    failing = [f"{line} → {m.kind} «{m.text.splitlines()[0][:50]}»: {live_markup(surface_text(m))}"
               for line, m in quoting if live_markup(surface_text(m))]
    assert not failing, "\n".join(failing)
    # --json is the message as the handler wrote it: the words as written, nothing added
    for _, message in said:
        assert QUOTED_KEY not in message.as_json() and "\\*" not in message.text
    [drafts_listing, *_] = [m for line, m in quoting if line == "drafts"]
    assert HOSTILE_NAME in drafts_listing.as_json()["text"] and drafts_listing.quoted
