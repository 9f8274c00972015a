"""Resolving <person>: handles, instances, name fragments, #ids, quotes, ambiguity."""

import pytest

from tests.conftest import make_settings
from tests.support.chat import say_one
from tests.support.network import make_app, seed_network


@pytest.fixture
async def network(db_url):
    app = await seed_network(make_app(make_settings(), db_url))
    yield app
    app.engine.dispose()


async def who(app, person: str):
    return await say_one(app, f"who {person}")


@pytest.mark.parametrize("person, name", [
    ("@MrPatel_Maths", "Ravi Patel"),
    ("@mrpatel_maths", "Ravi Patel"),
    ("mrpatel_maths", "Ravi Patel"),
    ("amara@mastodon.education", "Amara Okafor"),
    ("@amara@mastodon.education", "Amara Okafor"),
    ("@amara", "Amara Okafor"),
    ("zoe.bsky.social", "Zoë Ångström"),
    ("ravi", "Ravi Patel"),
    ("RAVI PATEL", "Ravi Patel"),
    ("zoe", "Zoë Ångström"),
    ("Ångström", "Zoë Ångström"),
    ("angst", "Zoë Ångström"),
    ("okafor", "Amara Okafor"),
    ('"Amara Smith"', "Amara Smith"),
    ("Jane Doe", "Jane Doe"),
    ("doe-smith", "Jane Doe-Smith"),
    ("#2", "Ravi Patel"),
])
async def test_each_form_finds_the_one_person(network, person, name):
    reply = await who(network, person)
    assert reply.kind == "reply", reply.text
    assert reply.text.splitlines()[0].startswith(name + " (#")


@pytest.mark.parametrize("person, count", [("amara", 2), ("@jane", 2), ("jane", 2)])
async def test_ambiguous_names_list_numbered_candidates(network, person, count):
    reply = await who(network, person)
    assert reply.kind == "error"
    assert f"{count} people match" in reply.text
    assert "  1. " in reply.text and f"  {count}. " in reply.text and "#" in reply.text


@pytest.mark.parametrize("person, hint", [
    ("nobody", "Try `find nobody`"),
    ("@nobody", "Try `find"),
    ("#999", "nobody with id #999"),
    ("#abc", "not a contact id"),
])
async def test_unknown_people_suggest_find(network, person, hint):
    reply = await who(network, person)
    assert reply.kind == "error" and hint in reply.text
    assert reply.fields["usage"] == "who <person>"


async def test_quoted_names_can_be_followed_by_text(network):
    reply = await say_one(network, 'log "Amara Smith" talked about #reading')
    assert reply.kind == "reply" and "Amara Smith" in reply.text
    reply = await say_one(network, "log \u201cAmara Okafor\u201d curly quotes work too")
    assert reply.kind == "reply" and "Amara Okafor" in reply.text
    reply = await say_one(network, 'log "Amara Smith talked')
    assert reply.kind == "error" and "closing quote" in reply.text


async def test_an_old_id_still_names_the_linked_person(network):
    assert (await say_one(network, "link #1 #4")).kind == "reply"
    assert (await say_one(network, "yes")).kind == "reply"
    reply = await who(network, "#4")
    assert reply.text.startswith("Amara Okafor (#1)")
    reply = await who(network, "amara")
    assert reply.kind == "reply" and reply.text.startswith("Amara Okafor (#1)")
