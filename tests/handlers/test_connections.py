"""The sync diff engine on real recorded platform payloads."""

import json

import yaml
from sqlmodel import Session, select

from bot.adapters.translate import profiles_from_document, x_profile
from bot.events import SnapshotReceived
from storage.models import Connection, Draft, Handle
from tests.conftest import RECORDED
from tests.support.factories import x_person


def recorded_x_followers() -> list[dict]:
    cassette = yaml.safe_load((RECORDED / "x" / "test_asyncclient_get_users_followers.yaml")
                              .read_text())
    users = []
    for interaction in cassette["interactions"]:
        users += json.loads(interaction["response"]["body"]["string"])["data"]
    return users


def recorded_bluesky_follows() -> list[dict]:
    return json.loads((RECORDED / "bluesky" / "get_follows.json").read_text())["follows"]


def snapshot(platform, profiles, complete=True):
    return SnapshotReceived(owner_ref="local", platform=platform, profiles=profiles,
                            complete=complete)


async def test_first_sync_is_a_quiet_baseline(app, surface):
    users = recorded_x_followers()
    await app.handle(snapshot("x", profiles_from_document("x", {"data": users})))
    [message] = surface.pop()
    assert message.kind == "reply" and f"{len(users)} existing connections" in message.text
    with Session(app.engine) as session:
        assert session.exec(select(Draft)).all() == []
        assert len(session.exec(select(Connection)).all()) == len(users)


async def test_later_syncs_report_arrivals_and_losses(app, surface):
    views = recorded_bluesky_follows()
    profiles = profiles_from_document("bluesky", views)
    await app.handle(snapshot("bluesky", profiles))
    surface.pop()
    newcomer = profiles_from_document("bluesky", [{
        "did": "did:plc:newperson", "handle": "new.bsky.social", "displayName": "New Person",
        "description": "Primary teacher"}])[0]
    await app.handle(snapshot("bluesky", profiles[1:] + [newcomer]))
    kinds = [m.kind for m in surface.pop()]
    assert kinds == ["new_connection", "reply"]


async def test_a_partial_list_never_removes_anyone(app, surface):
    people = [x_person(f"Person {i}") for i in range(5)]
    await app.handle(snapshot("x", people))
    surface.pop()
    await app.handle(snapshot("x", people[:2], complete=False))
    assert [m.kind for m in surface.pop()] == ["reply"]
    with Session(app.engine) as session:
        states = {c.state for c in session.exec(select(Connection))}
    assert states == {"active"}


async def test_mastodon_recorded_account_translates(app, surface):
    cassette = yaml.safe_load((RECORDED / "mastodon" / "test_account_followers.yaml").read_text())
    account = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    [profile] = profiles_from_document("mastodon", [account])
    assert profile.platform == "mastodon" and profile.handle == account["acct"]


async def test_a_sync_refreshes_only_changed_profiles(app, surface):
    people = [x_person(f"Person {i}", description="Teacher") for i in range(3)]
    await app.handle(snapshot("x", people))
    changed = x_profile({**people[1].raw, "description": "Head of science",
                         "username": "renamed"})
    with Session(app.engine) as session:
        before = {h.external_id: h.profile_hash for h in session.exec(select(Handle))}
    await app.handle(snapshot("x", [people[0], changed, people[2]]))
    assert [m.text for m in surface.pop()][-1] == "X: no changes since the last sync."
    with Session(app.engine) as session:
        after = {h.external_id: h for h in session.exec(select(Handle))}
    assert "Head of science" in after[changed.external_id].profile_json
    assert after[changed.external_id].handle == "renamed"
    unchanged = [people[0].external_id, people[2].external_id]
    assert [after[e].profile_hash for e in unchanged] == [before[e] for e in unchanged]
    assert after[changed.external_id].profile_hash != before[changed.external_id]
