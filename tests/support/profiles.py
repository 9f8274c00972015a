"""Loading the profile tables (tests/fixtures/profiles/*.json) and recorded payloads."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bot.adapters.translate import TRANSLATORS
from bot.events import Profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TABLES = FIXTURES / "profiles"
RECORDED = FIXTURES / "recorded"
PLATFORMS = ("x", "mastodon", "bluesky", "discord")


def table(platform: str) -> list[dict]:
    """Rows of ``{"object": <platform JSON>, "expect": {...}}``."""
    return json.loads((TABLES / f"{platform}.json").read_text(encoding="utf-8"))


def table_profiles(platform: str) -> list[tuple[Profile, dict]]:
    return [(TRANSLATORS[platform](row["object"]), row["expect"]) for row in table(platform)]


def all_table_profiles() -> list[Profile]:
    return [profile for p in PLATFORMS for profile, _ in table_profiles(p)]


def cassette_bodies(path: Path) -> list:
    """The JSON bodies a vcrpy cassette recorded (skipping compressed or non-JSON ones)."""
    bodies = []
    for interaction in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
        body = interaction["response"]["body"]["string"]
        try:
            bodies.append(json.loads(body))
        except (ValueError, TypeError):
            continue
    return bodies


def recorded_profiles() -> list[Profile]:
    """Every person in the recorded X, Mastodon and Bluesky payloads, translated."""
    found: dict[tuple[str, str], Profile] = {}
    for path in sorted((RECORDED / "x").glob("*followers*.yaml")):
        for body in cassette_bodies(path):
            for user in body.get("data") or [] if isinstance(body, dict) else []:
                found.setdefault(("x", user["id"]), TRANSLATORS["x"](user))
    for path in sorted((RECORDED / "mastodon").glob("*.yaml")):
        for body in cassette_bodies(path):
            for account in _mastodon_accounts(body):
                found.setdefault(("mastodon", account["id"]), TRANSLATORS["mastodon"](account))
    follows = json.loads((RECORDED / "bluesky" / "get_follows.json").read_text(encoding="utf-8"))
    for view in follows["follows"]:
        found.setdefault(("bluesky", view["did"]), TRANSLATORS["bluesky"](view))
    return list(found.values())


def _mastodon_accounts(body) -> list[dict]:
    items = body if isinstance(body, list) else [body]
    accounts = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("account"), dict):
            accounts.append(item["account"])
        elif isinstance(item, dict) and "acct" in item and "note" in item:
            accounts.append(item)
    return accounts
