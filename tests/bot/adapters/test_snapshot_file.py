"""Snapshot files read lean: the same people as the plain reader, profiles on demand."""

import json

import pytest
import yaml

from bot.adapters.snapshot_file import SnapshotFile, load_snapshot_file
from bot.adapters.translate import SnapshotError, load_snapshot, profiles_from_document
from handlers.connections import ProfileSnapshot
from tests.conftest import RECORDED
from tests.support.factories import bluesky_view, mastodon_account, x_user


def x_pages() -> list[dict]:
    cassette = yaml.safe_load(
        (RECORDED / "x" / "test_asyncclient_get_users_followers.yaml").read_text())
    return [json.loads(i["response"]["body"]["string"]) for i in cassette["interactions"]]


DOCUMENTS = {
    "x pages": ("x", x_pages()),
    "x one page": ("x", x_pages()[0]),
    "x users": ("x", [x_user("Ada Lovelace"), x_user("Grace Hopper")]),
    "bluesky follows": ("bluesky", json.loads((RECORDED / "bluesky" / "get_follows.json")
                                              .read_text())),
    "bluesky pages": ("bluesky", [{"followers": [bluesky_view("A")]},
                                  {"followers": [bluesky_view("B")]}]),
    "mastodon with a bot": ("mastodon", [mastodon_account("Ada"),
                                         mastodon_account("Beep", bot=True)]),
    "discord members": ("discord", [{"user": {"id": "7", "username": "ada"}, "nick": "Ada"},
                                    {"user": {"id": "8", "username": "bot", "bot": True}}]),
}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_same_people_as_the_plain_reader(name, tmp_path):
    platform, document = DOCUMENTS[name]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document, indent=1))
    lean = load_snapshot_file(platform, path)
    plain = ProfileSnapshot(load_snapshot(platform, path))
    assert lean.fingerprints() == plain.fingerprints()
    ids = set(lean.fingerprints())
    assert list(lean.profiles(ids)) == list(plain.profiles(ids))
    some = set(list(ids)[-2:])
    assert [p.external_id for p in lean.profiles(some)] == [
        p.external_id for p in plain.profiles(some)]


def test_a_changed_profile_changes_its_checksum():
    before, after = x_user("Ada", id="5"), x_user("Ada", id="5", description="Now a teacher")
    [one] = SnapshotFile("x", json.dumps([before])).fingerprints().values()
    [two] = SnapshotFile("x", json.dumps([after])).fingerprints().values()
    assert one != two


def test_repeated_people_count_once():
    user = x_user("Ada")
    snapshot = SnapshotFile("x", json.dumps([{"data": [user]}, {"data": [user]}]))
    assert len(snapshot) == 1 and len(list(snapshot)) == 1


@pytest.mark.parametrize("text, problem", [
    ("[", "not valid JSON"),
    ('[{"id": "1"} {"id": "2"}]', "not valid JSON"),
    ('[{"id": "1"},', "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('[{"name": "no id"}]', "no 'id' field"),
    ('{"unexpected": 1}', "a page with 'data'"),
    ('"text"', "expected a list"),
])
def test_broken_files_are_one_clear_error(text, problem, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(SnapshotError, match=problem) as caught:
        load_snapshot_file("x", path)
    assert str(caught.value).startswith(str(path))


def test_an_empty_list_is_an_empty_snapshot():
    assert SnapshotFile("x", " [ ] ").fingerprints() == {}
    assert profiles_from_document("x", []) == []
