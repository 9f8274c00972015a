"""A new connection becomes a contact, a draft and one message to the owner."""

from urllib.parse import unquote

import pytest
from sqlmodel import Session, select

from storage.models import Contact, Draft, OutboxMessage
from tests.support.factories import arrival, lose_the_only_connection, mastodon_person, x_person


async def test_new_follower_gets_a_draft_and_one_message(app, surface):
    person = mastodon_person("Amara Okafor 🌱", note="<p>Year 5 teacher in Leeds #edtech</p>")
    await app.handle(arrival(person))
    [message] = surface.pop()
    assert message.kind == "new_connection"
    assert message.fields["platform"] == "mastodon"
    assert message.fields["contact"]["name"] == "Amara Okafor 🌱"
    assert message.fields["contact"]["handle"] == person.handle
    assert "Amara" in message.fields["draft"]
    with Session(app.engine) as session:
        draft = session.get(Draft, message.fields["draft_id"])
        assert draft.status == "pending" and draft.text == message.fields["draft"]
        contact = session.exec(select(Contact)).one()
        assert contact.field == "education" and "edtech" in contact.interests
        assert "<p>" not in contact.bio


async def test_the_same_follow_twice_makes_one_draft(app, surface):
    person = x_person("Ravi Patel", description="Head of Maths #mathchat")
    await app.handle(arrival(person))
    await app.handle(arrival(person))
    assert surface.kinds() == ["new_connection"]
    with Session(app.engine) as session:
        assert len(session.exec(select(Draft)).all()) == 1
        assert len(session.exec(select(OutboxMessage)).all()) == 1


async def test_x_drafts_come_with_a_compose_link(app, surface):
    await app.handle(arrival(x_person("Ravi Patel", id="42")))
    [message] = surface.pop()
    url = message.fields["send_url"]
    assert url.startswith("https://x.com/messages/compose?recipient_id=42&text=")
    assert unquote(url.split("&text=", 1)[1]) == message.fields["draft"]
    assert "Ravi" in message.fields["draft"]


async def test_someone_who_left_and_returns_gets_welcome_back(app, surface, clock):
    person = x_person("Ravi Patel")
    await app.handle(arrival(person))
    lose_the_only_connection(app.engine, clock())
    surface.pop()
    clock.advance(days=3)
    await app.handle(arrival(person))
    [message] = surface.pop()
    assert message.kind == "welcome_back"
    assert "3 days away" in message.text
    with Session(app.engine) as session:
        assert len(session.exec(select(Draft)).all()) == 1


async def test_a_failing_surface_keeps_the_message_for_later(app, surface, clock):
    surface.fail_next = 1
    await app.handle(arrival(x_person("Ravi Patel")))
    assert surface.pop() == []
    clock.advance(minutes=5)
    await app.flush()
    assert [m.kind for m in surface.pop()] == ["new_connection"]
    await app.flush()
    assert surface.pop() == []


@pytest.mark.parametrize(("gap", "said"), [
    ({"seconds": 10}, "after 10 seconds away"), ({"minutes": 12}, "after 12 minutes away"),
    ({"minutes": 61}, "after 1 hour away"), ({"hours": 30}, "after 30 hours away"),
])
async def test_a_short_gap_is_told_in_the_unit_that_fits(app, surface, clock, gap, said):
    person = x_person("Ravi Patel")
    await app.handle(arrival(person))
    lose_the_only_connection(app.engine, clock())
    surface.pop()
    clock.advance(**gap)
    await app.handle(arrival(person))
    [message] = surface.pop()
    assert message.kind == "welcome_back" and said in message.text, message.text
