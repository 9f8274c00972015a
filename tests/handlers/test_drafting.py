"""Welcome drafts over every table profile, each platform's limits, tones and templates.

The profiles arrive through the real pipeline (translate → NewConnection → handler →
SQLite), so the uniqueness guarantee is the database-backed one the bot uses.
"""

from __future__ import annotations

import asyncio

import pytest
import regex

from bot.adapters.translate import TRANSLATORS
from bot.app import App, open_database
from handlers import drafting
from handlers.profiles import display_url, understand
from storage.models import Owner
from tests.conftest import make_settings
from tests.support.factories import arrival, bluesky_person, mastodon_person, x_person
from tests.support.fakes import FakeClock, FakeSurface
from tests.support.owner import set_owner
from tests.support.profiles import PLATFORMS, table

SPECIFIC = ("role", "organisation", "website")


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


async def arrive_all(app, rows_by_platform):
    messages = {}
    for platform, rows in rows_by_platform.items():
        for row in rows:
            profile = TRANSLATORS[platform](row["object"])
            if profile.is_bot:
                continue
            await app.handle(arrival(profile))
            [message] = app.surface.pop()
            messages[(platform, profile.external_id)] = (profile, row["expect"], message)
    return messages


async def arrive_table(folder) -> dict:
    settings = make_settings(PLNBOT_DATA_DIR=str(folder / "data"))
    engine = open_database(settings, f"sqlite:///{folder / 'plnbot.sqlite3'}")
    app = App(settings=settings, engine=engine, surface=FakeSurface(), clock=FakeClock())
    set_owner(app, interests="edtech, outdoor learning, #mathchat",
              bio="Primary teacher who loves Desmos and reading for pleasure.")
    try:
        return await arrive_all(app, {p: table(p) for p in PLATFORMS})
    finally:
        app.engine.dispose()


@pytest.fixture(scope="module")
def table_drafts(tmp_path_factory):
    """Every table profile arrives once per module (~120 arrivals; the tests only read)."""
    return asyncio.run(arrive_table(tmp_path_factory.mktemp("drafting")))


async def test_every_person_gets_a_distinct_draft(table_drafts):
    drafts = [m.fields["draft"] for _, _, m in table_drafts.values()]
    assert len(drafts) >= 120
    assert len(set(drafts)) == len(drafts)


async def test_drafts_use_the_first_name_or_a_salutation_and_never_a_guess(table_drafts):
    for profile, expect, message in table_drafts.values():
        draft = message.fields["draft"]
        greeting = draft.split(",", 1)[0]
        if expect["first_name"]:
            assert expect["first_name"] in greeting, draft
        elif expect.get("salutation"):
            assert expect["salutation"] in greeting, draft
        else:  # no name: "there", or their handle when it had to be made unique
            assert greeting.split()[-1] in ("there", f"@{profile.handle}"), draft


async def test_drafts_mention_something_specific_when_the_profile_says_something(table_drafts):
    for profile, expect, message in table_drafts.values():
        draft, person = message.fields["draft"], understand(profile)
        if expect.get("detail"):
            assert expect["detail"] in draft
        if person.spammy:
            continue
        details = [person.role, person.organisation, *person.topics,
                   *(f"#{h}" for h in person.hashtags)]
        if person.website:
            details.append(display_url(person.website))
        if any(details):
            assert any(d and d in draft for d in details), draft


async def test_drafts_ask_one_open_question_and_fit_the_platform(table_drafts):
    for profile, _, message in table_drafts.values():
        draft = message.fields["draft"]
        assert draft.count("?") == 1, draft
        assert drafting.fits(draft, platform=profile.platform, handle=profile.handle)
        assert message.fields["limit"] == drafting.limit_for(profile.platform, profile.handle)


async def test_spammy_profiles_get_a_plain_draft_and_a_warning(table_drafts):
    spam = [m for _, e, m in table_drafts.values() if e["spam"]]
    assert len(spam) >= 8
    for message in spam:
        assert "looks promotional or spammy" in message.text
        assert message.fields["spam"]
        assert len(message.fields["draft"]) < 120, message.fields["draft"]


async def test_a_shared_interest_with_the_owner_is_mentioned(table_drafts):
    ravi = next(m for p, _, m in table_drafts.values() if p.handle == "MrPatel_Maths")
    amara = next(m for p, _, m in table_drafts.values() if p.handle.startswith("amara@"))
    assert "#mathchat" in ravi.fields["draft"] or "Desmos" in ravi.fields["draft"]
    assert "#edtech" in amara.fields["draft"] or "outdoor learning" in amara.fields["draft"]


async def test_the_owners_message_shows_summary_field_how_met_and_the_draft(table_drafts):
    _, _, message = next(v for v in table_drafts.values() if v[0].handle == "MrPatel_Maths")
    text = message.text
    assert "Head of Maths at Kingsbridge Academy · Birmingham, UK · field: education" in text
    assert "How you met: followed you on X · Mon 2 Nov 2026 · spotted as it happened" in text
    assert f"Draft #{message.fields['draft_id']}" in text
    assert message.fields["send_url"].startswith("https://x.com/messages/compose?recipient_id=")
    assert {"platform", "contact", "draft_id", "draft"} <= set(message.fields)
    assert {"handle", "name"} <= set(message.fields["contact"])


async def test_forty_bare_profiles_still_get_forty_different_honest_drafts(app, surface):
    drafts = []
    for index in range(40):
        await app.handle(arrival(bluesky_person("", handle=f"anon{index}.bsky.social")))
        [message] = surface.pop()
        drafts.append(message.fields["draft"])
        assert "their profile says very little" in message.text.lower()
    assert len(set(drafts)) == 40
    assert all(d.startswith(("Hi there", "Hello there", "Hey there", "Hi @", "Hello @", "Hey @"))
               for d in drafts)


async def test_the_same_person_with_the_same_name_on_another_platform_is_pointed_out(app, surface):
    await app.handle(arrival(x_person("Amara Okafor", description="Year 5 teacher")))
    surface.pop()
    await app.handle(arrival(mastodon_person("Amara Okafor")))
    [message] = surface.pop()
    assert any("Possibly the same person as Amara Okafor" in n for n in message.fields["mutual"])
    assert "`link #2 #1`" in message.text


@pytest.mark.parametrize(("tone", "greeting"), [
    ("warm", "Kwame"), ("brief", "Kwame"), ("formal", "Dear Dr Mensah"),
])
async def test_the_owners_tone_and_signature_shape_the_draft(app, surface, tone, greeting):
    set_owner(app, tone=tone, signature="— Sam (Year 4, Hillside)")
    person = x_person("Dr Kwame Mensah", description="Researcher at UCL Institute of Education.")
    await app.handle(arrival(person))
    draft = surface.pop()[0].fields["draft"]
    assert greeting in draft.split(",")[0]
    assert draft.endswith("\n\n— Sam (Year 4, Hillside)")
    if tone == "brief":
        assert len(draft) < 200


async def test_mastodon_drafts_leave_room_for_the_mention(app, surface):
    set_owner(app, signature="x" * 200)
    long_bio = "<p>" + "Head of Science at Riverside Primary School. " * 10 + "</p>"
    person = mastodon_person("Amara Okafor", acct="a" * 30 + "@" + "b" * 30 + ".social",
                             note=long_bio)
    await app.handle(arrival(person))
    draft = surface.pop()[0].fields["draft"]
    assert len(f"@{person.handle} {draft}") <= 500
    assert draft.endswith("x" * 200)


def test_bluesky_counts_graphemes_not_code_points():
    family = "👨‍👩‍👧"  # one grapheme, five code points
    text = "Hi " + family * 999
    fitted = drafting.fit_to_limit(text, platform="bluesky", handle="a.bsky.social")
    assert graphemes(fitted) <= 1000 and len(fitted) > 1000
    assert drafting.fits(family * 1000, platform="bluesky", handle="a.bsky.social")
    assert not drafting.fits("é" * 501, platform="mastodon", handle="a@b.c")


async def test_a_users_template_is_used(tmp_path, db_url, clock, surface):
    (tmp_path / "welcome.j2").write_text(
        "Kia ora {{ greeting_name or 'e hoa' }}! {{ question }}", encoding="utf-8")
    app = make_app(db_url, clock, surface, PLNBOT_TEMPLATES_DIR=str(tmp_path))
    await app.handle(arrival(x_person("Aroha Ngata")))
    message = surface.pop()[0]
    assert message.fields["draft"].startswith("Kia ora Aroha! ")
    assert "template_warning" not in message.fields


@pytest.mark.parametrize(("content", "problem"), [
    ("Hello {{ greeting_name ", "TemplateSyntaxError (line 1)"),
    ("Hello {{ no_such_thing }}", "'no_such_thing' is undefined"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("   ", "empty message"),
])
async def test_a_broken_template_falls_back_and_says_why(tmp_path, db_url, clock, surface,
                                                         content, problem):
    (tmp_path / "welcome.j2").write_text(content, encoding="utf-8")
    app = make_app(db_url, clock, surface, PLNBOT_TEMPLATES_DIR=str(tmp_path))
    await app.handle(arrival(x_person("Aroha Ngata", description="Primary teacher")))
    message = surface.pop()[0]
    assert message.kind == "new_connection"
    assert message.fields["draft"].startswith(("Hi Aroha", "Hello Aroha", "Hey Aroha"))
    assert problem in message.fields["template_warning"]
    assert "welcome template could not be used" in message.text


async def test_a_missing_templates_folder_is_reported(tmp_path, db_url, clock, surface):
    app = make_app(db_url, clock, surface, PLNBOT_TEMPLATES_DIR=str(tmp_path / "nope"))
    await app.handle(arrival(x_person("Aroha Ngata")))
    message = surface.pop()[0]
    assert "does not exist" in message.fields["template_warning"]


def make_app(db_url, clock, surface, **env) -> App:
    settings = make_settings(**env)
    return App(settings=settings, engine=open_database(settings, db_url), surface=surface,
               clock=clock)


def test_article_handles_vowels_and_acronyms():
    assert drafting.article("English teacher") == "an English teacher"
    assert drafting.article("Year 5 teacher") == "a Year 5 teacher"
    assert drafting.article("SEN teacher") == "an SEN teacher"
    assert drafting.article("UX designer") == "a UX designer"


def test_owner_model_has_the_tone_and_signature_the_templates_use():
    assert {"tone", "signature", "interests", "bio"} <= set(Owner.model_fields)
