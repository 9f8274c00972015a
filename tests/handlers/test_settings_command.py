"""settings: show, change, validate — all or nothing."""

import pytest
from sqlmodel import Session

from storage.models import Owner
from tests.support.chat import say_one


def owner(app) -> Owner:
    with Session(app.engine) as session:
        return session.get(Owner, app.owner_id)


async def test_no_arguments_shows_the_current_settings(app):
    reply = await say_one(app, "settings")
    assert reply.kind == "reply" and "Time zone (tz): UTC" in reply.text
    assert reply.fields["settings"] == {"tz": "UTC", "quiet": None, "tone": "warm",
                                        "signature": None, "digest": "monday 09:00",
                                        "losses": "digest", "field": "education",
                                        "interests": None, "dates": "day-first"}
    assert "Weekly digest (digest): Monday 09:00" in reply.text


async def test_everything_at_once_with_a_signature_last(app):
    reply = await say_one(app, "settings TZ asia/kolkata quiet 21:30-7:00 tone Formal "
                               "signature Best wishes,  Sam")
    assert reply.kind == "reply", reply.text
    saved = owner(app)
    assert (saved.tz, saved.quiet_start, saved.quiet_end, saved.tone, saved.signature) == (
        "Asia/Kolkata", "21:30", "07:00", "formal", "Best wishes,  Sam")
    await say_one(app, "settings quiet off signature off")
    saved = owner(app)
    assert (saved.quiet_start, saved.quiet_end, saved.signature) == (None, None, "")


@pytest.mark.parametrize("line, message", [
    ("settings tz Mars/Base", "Area/City"),
    ("settings tz", "Give a value after 'tz'"),
    ("settings quiet 25:00-07:00", "HH:MM-HH:MM"),
    ("settings quiet 22:00-22:00", "different times"),
    ("settings tone grumpy", "warm, brief, formal"),
    ("settings colour blue", "no setting 'colour'"),
    ("settings tone brief tone warm", "given twice"),
    ("settings signature " + "x" * 201, "limit is 200"),
    ("settings tone brief tz Nowhere", "Area/City"),
    ("settings digest someday", "not a day of the week"),
    ("settings digest", "Give a value after 'digest'"),
    ("settings digest t 10:00", "not a day of the week"),  # tuesday or thursday?
    ("settings losses never", "not digest or immediate"),
    ("settings digest friday 16:00 losses sometimes", "not digest or immediate"),
])
async def test_bad_values_change_nothing(app, line, message):
    reply = await say_one(app, line)
    assert reply.kind == "error" and message in reply.text
    assert reply.fields["usage"].startswith("settings [tz <Area/City>]")
    assert owner(app).tone == "warm" and owner(app).tz == "UTC"


async def test_digest_day_and_time_and_how_losses_are_reported(app):
    reply = await say_one(app, "settings digest Fri 16:30 losses immediate")
    assert reply.kind == "reply", reply.text
    saved = owner(app)
    assert (saved.digest_weekday, saved.digest_time, saved.report_losses) == (
        4, "16:30", "immediate")
    assert reply.fields["settings"]["digest"] == "friday 16:30"
    assert "Lost connections (losses): immediate, as soon as I notice" in reply.text
    await say_one(app, "settings digest sunday losses digest")  # the time stays
    saved = owner(app)
    assert (saved.digest_weekday, saved.digest_time, saved.report_losses) == (
        6, "16:30", "digest")


async def test_field_and_interests_are_set_by_chat(app):
    """The owner's field and interests steer the diversity nudge and the drafts; they
    were only environment variables before."""
    reply = await say_one(app, "settings field Arts interests #maths, project based learning,"
                               " AI tz Europe/London")
    assert reply.kind == "reply", reply.text
    saved = owner(app)
    assert (saved.field, saved.interests, saved.tz) == (
        "arts & culture", "maths,project based learning,AI", "Europe/London")
    assert "Your interests (interests): maths, project based learning, AI" in reply.text
    spaced = await say_one(app, "settings interests robotics  #edtech")
    assert spaced.fields["settings"]["interests"] == "robotics,edtech"
    await say_one(app, "settings interests off")
    assert owner(app).interests == ""


@pytest.mark.parametrize(("line", "message"), [
    ("settings field astrology", "not a field I sort people into"),
    ("settings interests", "Give a value after 'interests'"),
    ("settings interests " + "x" * 1001, "limit is 1000"),
])
async def test_bad_field_or_interests_change_nothing(app, line, message):
    reply = await say_one(app, line)
    assert reply.kind == "error" and message in reply.text, reply.text
    assert owner(app).field == "education" and owner(app).interests == ""
