"""The first sync's shortcuts through cleaning give exactly what the long way gives.

A first sync translates and cleans every follower (a million of them), so the usual
case takes shortcuts: printable text that fits is kept without a call, ids of ASCII
digits are taken as they are, the ``Profile`` is built without the frozen dataclass's
per-field setattr, and handles' JSON comes from a C encoder made once. Every byte is
still hostile: each shortcut is checked here against the general code it skips (kept
as it was), on hand-picked tricky text and on whatever hypothesis makes up.
"""

from __future__ import annotations

import dataclasses
import json
import math
from itertools import islice
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.translate import (
    DIGITS_REFUSED,
    SnapshotError,
    _id,
    bluesky_profile,
    discord_profile,
    has_shape,
    mastodon_profile,
    x_profile,
)
from bot.events import Profile, built_profile
from handlers.untrusted import (
    CAPS,
    MAX_FIELDS,
    MAX_RAW_DEPTH,
    MAX_RAW_ITEMS,
    clean_id,
    clean_key,
    clean_raw,
    clean_text,
    cleaned_profile,
)
from storage.repo import PROFILE_ENCODER, encode_profile, profile_json

TRICKY = [
    "", " ", "Ivy", "  Ivy  ", "teacher", "Ms O'Neil \"Maths\"", "Zoë 🍎 教師",
    "\ud800", "a\udfffb", "\ud83d", "\x00", "a\x00b", "\x1b[31mred\x1b[0m",
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "\x9b31m", "\x07", "\x7f",
    "\x85next line", "\u202eevil", "\u2066iso\u2069", "\u200b", "line\nbreak", "tab\there",
    "\r\n", "\u2028", "\ufeff", "12", "12\n", " 12", "١٢٣", "²", "0" * 20, "1" * 21,
    "did:plc:abc", "x" * 199, "x" * 200, "x" * 201, "b" * 4_999, "b" * 5_000,
    "b" * 5_001, "é" * 20_001, ("\u202e" + "a" * 100) * 60, "\x1b" * 3_000,
]
# lone surrogates, controls, bidi and other format characters, line separators, letters,
# digits of other scripts and emoji, mixed
texts = st.one_of(st.sampled_from(TRICKY), st.text(), st.text(alphabet=st.characters(
    codec=None, categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Zs", "Lu", "Ll", "Nd", "No", "So")),
    max_size=300))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=20)


def slow_raw(value: Any, depth: int = 0) -> Any:
    """``clean_raw`` as it was before its dict shortcut: every text through clean_text."""
    if depth > MAX_RAW_DEPTH:
        return None
    kind = type(value)
    if kind is str:
        return clean_text(value, CAPS["bio"], multiline=True)
    if kind is dict and depth < MAX_RAW_DEPTH:
        return {clean_key(k): clean_text(v, CAPS["bio"], multiline=True) if type(v) is str
                else slow_raw(v, depth + 1) for k, v in islice(value.items(), MAX_RAW_ITEMS)}
    if isinstance(value, str):
        return clean_text(value, CAPS["bio"], multiline=True)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {clean_text(str(k), CAPS["field_name"]): slow_raw(v, depth + 1)
                for k, v in islice(value.items(), MAX_RAW_ITEMS)}
    if isinstance(value, list | tuple):
        return [slow_raw(v, depth + 1) for v in value[:MAX_RAW_ITEMS]]
    return clean_text(str(value), CAPS["bio"])


def slow_profile(**given_values: Any) -> Profile:
    """``cleaned_profile`` as it was: the dataclass's constructor, every field cleaned."""
    values = {"name": "", "bio": "", "location": "", "url": "", "fields": (),
              "accepts_dms": None, "is_bot": False, "raw": None, **given_values}
    return Profile(
        platform=values["platform"], external_id=values["external_id"],
        handle=clean_text(values["handle"], CAPS["handle"]) or values["external_id"],
        name=clean_text(values["name"], CAPS["name"]),
        bio=clean_text(values["bio"], CAPS["bio"], multiline=True),
        location=clean_text(values["location"], CAPS["location"]),
        url=clean_text(values["url"], CAPS["url"]),
        fields=tuple((clean_text(k, CAPS["field_name"]), clean_text(v, CAPS["field_value"]))
                     for k, v in values["fields"][:MAX_FIELDS]),
        accepts_dms=values["accepts_dms"], is_bot=values["is_bot"],
        raw=slow_raw(values["raw"]) if isinstance(values["raw"], dict) else {})


def slow_id(value: Any, platform: str) -> str | type[Exception]:
    """``_id`` the long way: clean_id, then the platform's shape."""
    if value is None or value == "":
        return KeyError
    external_id = clean_id(value)
    if external_id is None or not has_shape(platform, value, external_id):
        return SnapshotError
    return external_id


def outcome(call, *args) -> Any:
    try:
        return call(*args)
    except (KeyError, SnapshotError) as exc:
        return type(exc)


def same(a: Profile, b: Profile) -> None:
    """Equal in every field, the raw JSON included (which equality leaves out)."""
    assert a == b
    assert a.raw == b.raw and json.dumps(a.raw) == json.dumps(b.raw)
    assert repr(a) == repr(b) and hash(a) == hash(b)
    assert dataclasses.asdict(a) == dataclasses.asdict(b)


def test_built_profile_is_the_constructors_profile() -> None:
    values = ("x", "12", "ivy", "Ivy", "bio", "Leeds", "https://a.example",
              (("k", "v"),), True, False, {"id": "12"})
    built, constructed = built_profile(*values), Profile(*values)
    same(built, constructed)
    assert type(built) is Profile
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "changed"  # type: ignore[misc]
    assert dataclasses.replace(built, name="Ann").name == "Ann"


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_text_cleans_as_the_long_way(text: str) -> None:
    raw = {"id": "12", text: text, "nested": {"bio": text, "list": [text, 1.5]}}
    same(cleaned_profile(platform="x", external_id="12", handle=text, name=text, bio=text,
                         location=text, url=text, fields=((text, text),), raw=raw),
         slow_profile(platform="x", external_id="12", handle=text, name=text, bio=text,
                      location=text, url=text, fields=((text, text),), raw=raw))
    assert clean_raw(raw) == slow_raw(raw)
    for platform in ("x", "mastodon", "bluesky", "discord"):
        assert outcome(_id, text, "id", platform) == slow_id(text, platform)


@settings(max_examples=300, deadline=None)
@given(texts, texts, texts, texts, texts, st.lists(st.tuples(texts, texts), max_size=20),
       json_values)
def test_any_profile_cleans_as_the_long_way(handle, name, bio, location, url, fields,
                                            raw) -> None:
    values = {"platform": "mastodon", "external_id": "7", "handle": handle, "name": name,
              "bio": bio, "location": location, "url": url, "fields": tuple(fields),
              "raw": {"note": bio, "extra": raw}}
    same(cleaned_profile(**values), slow_profile(**values))
    assert clean_raw(raw) == slow_raw(raw)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, st.integers(), st.sampled_from(["0", "9" * 20, "9" * 21, "٣", "12 "])))
def test_any_id_reads_as_the_long_way(value) -> None:
    for platform in ("x", "mastodon", "bluesky", "discord"):
        assert outcome(_id, value, "id", platform) == slow_id(value, platform)
    assert DIGITS_REFUSED == {"bluesky"}


@pytest.mark.parametrize("text", TRICKY)
def test_translators_read_tricky_people_as_the_long_way(text: str) -> None:
    user = {"id": "1400000000000000001", "name": text, "username": text, "description": text,
            "location": text, "url": text}
    same(x_profile(user), slow_profile(
        platform="x", external_id="1400000000000000001", handle=text or "1400000000000000001",
        name=text, bio=text, location=text, url=text, raw=user))
    account = {"id": "7", "acct": text, "display_name": text, "note": text,
               "fields": [{"name": text, "value": text}]}
    same(mastodon_profile(account), slow_profile(
        platform="mastodon", external_id="7", handle=text or "7", name=text, bio=text,
        fields=((text, text),), raw=account))
    view = {"did": "did:plc:abc", "handle": text, "displayName": text, "description": text}
    same(bluesky_profile(view), slow_profile(platform="bluesky", external_id="did:plc:abc",
                                             handle=text or "did:plc:abc", name=text, bio=text,
                                             raw=view))
    member = {"user": {"id": "55", "username": text}, "nick": text}
    same(discord_profile(member), slow_profile(platform="discord", external_id="55",
                                               handle=text or "55", name=text, raw=member))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_handle_json_is_the_encoders(raw) -> None:
    cleaned = {"value": raw}
    assert encode_profile(cleaned) == PROFILE_ENCODER.encode(cleaned)
    assert encode_profile(raw) == PROFILE_ENCODER.encode(raw)


def test_handle_json_of_what_the_encoder_refuses_is_its_error() -> None:
    circular: list = []
    circular.append(circular)
    for _ in range(2):  # and the encoder made anew works as before
        with pytest.raises(ValueError, match="Circular reference"):
            encode_profile({"a": circular})
    assert encode_profile({"a": [1, "é", None]}) == '{"a": [1, "é", null]}'
    profile = x_profile({"id": "12", "username": "ivy", "name": "\ud800Ivy"})
    assert profile_json(profile) == PROFILE_ENCODER.encode(profile.raw)
