"""Profile understanding over tables of real-looking profiles (tests/fixtures/profiles).

Each row is a platform's own JSON and what a careful human would read from it. The
main parts are checked exactly (a wrong guess is a failure, not just a miss); the
optional ones only where the row states them.
"""

from __future__ import annotations

import pytest

from handlers.profiles import understand
from tests.support.profiles import PLATFORMS, recorded_profiles, table, table_profiles

EXACT = ("first_name", "role", "organisation", "field")
OPTIONAL = ("location", "website", "former_role", "salutation")


def rows() -> list:
    return [
        pytest.param(profile, expect, id=f"{platform}-{index}-{profile.handle}")
        for platform in PLATFORMS
        for index, (profile, expect) in enumerate(table_profiles(platform))
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_table_has_at_least_30_varied_profiles(platform):
    rows = table(platform)
    assert len(rows) >= 30
    assert any(row["expect"]["spam"] for row in rows)
    assert any(not row["expect"]["first_name"] for row in rows)


@pytest.mark.parametrize(("profile", "expect"), rows())
def test_understanding_matches_what_a_person_would_read(profile, expect):
    person = understand(profile)
    got = {name: getattr(person, name) for name in EXACT}
    assert got == {name: expect[name] for name in EXACT}
    assert person.spammy == expect["spam"], person.spam_reasons
    for name in OPTIONAL:
        if name in expect:
            assert getattr(person, name) == expect[name], name
    assert set(expect.get("interests", [])) <= set(person.interests)


def test_recorded_payloads_give_no_wrong_names():
    """The recorded real accounts: names only where they clearly are names."""
    people = {p.name: understand(p) for p in recorded_profiles()}
    expected = {
        "DANIEL BRIGHT": "Daniel", "Libby": "Libby", "Alan Li": "Alan", "Jay 🦋": "Jay",
        "devin ivy 🐋": "Devin", "Ilya (Marshal)": "Ilya", "BORO Issouf": "Issouf",
        "Claudio Vallan 💙💛": "Claudio", "Trevor J Harding": "Trevor", "احمد سلام": "احمد",
        "Why": None, "Bluesky": None, "Vercel": None, "vk.cos": None, "Wizzy1122": None,
        "@blessingdino90": None, "JORD@N_73": None, "MusicCrazy": None, "Just A Green Guy": None,
        "i love satan from obey me (az)": None, "_d_r_a_c_o_s_h_a _": None,
        "たまごっちょ25＠くすぐりtickle (tamagotcho25)": None, "Loludontknowme": None,
    }
    assert len(people) >= 90
    assert {name: people[name].first_name for name in expected} == expected
    assert people["Ilya (Marshal)"].website == "https://marshal.dev"
    assert people["Jay 🦋"].role == "CEO" and people["Jay 🦋"].organisation == "Bluesky"
