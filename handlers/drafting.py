"""Welcome drafts rendered from Jinja2 templates the owner can override.

The bot only drafts; the owner approves each message before anything reaches the
person (platform rules forbid automated welcome DMs, and it is the product's point).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from bot.events import Profile
from handlers.profiles import Understanding
from storage.models import Owner

TEMPLATES_DIR = Path(__file__).parent / "templates"
PLATFORM_NAMES = {
    "x": "X",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "discord": "Discord",
    "console": "here",
}
# Platform limits for a direct message (Mastodon's includes the @mention).
LIMITS = {"x": 10_000, "bluesky": 1_000, "mastodon": 500, "discord": 2_000, "console": 2_000}
QUESTIONS = {
    "education": [
        "What are you working on with your classes this term?",
        "What's been the best thing in your classroom lately?",
        "What are you hoping to learn from your network this year?",
    ],
    "other": [
        "What brought you here?",
        "What are you working on at the moment?",
        "What kind of conversations are you hoping to find here?",
    ],
}


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


@cache
def environment(user_dir: str | None) -> Environment:
    loaders = [FileSystemLoader(str(TEMPLATES_DIR))]
    if user_dir:
        loaders.insert(0, FileSystemLoader(user_dir))
    env = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["article"] = _article
    return env


def pick_question(person: Understanding, profile: Profile) -> str:
    """A stable choice per person, so drafts for different people differ."""
    options = QUESTIONS.get(person.field, QUESTIONS["other"])
    digest = hashlib.sha256(f"{profile.platform}:{profile.external_id}".encode()).digest()
    return options[digest[0] % len(options)]


def shared_interest(person: Understanding, owner: Owner) -> str | None:
    mine = {i.strip().lstrip("#").lower() for i in owner.interests.split(",") if i.strip()}
    return next((i for i in person.interests if i in mine), None)


def compose_welcome(
    *, person: Understanding, profile: Profile, owner: Owner, templates_dir: str | None = None
) -> str:
    template = environment(templates_dir).get_template("welcome.j2")
    text = template.render(
        person=person,
        platform=profile.platform,
        platform_name=PLATFORM_NAMES.get(profile.platform, profile.platform),
        shared_interest=shared_interest(person, owner),
        question=pick_question(person, profile),
        tone=owner.tone,
        signature=owner.signature,
    ).strip()
    return fit_to_limit(text, platform=profile.platform, handle=profile.handle)


def fit_to_limit(text: str, *, platform: str, handle: str) -> str:
    limit = LIMITS.get(platform, 2_000)
    if platform == "mastodon":
        limit -= len(f"@{handle.lstrip('@')} ")
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def compose_link(*, platform: str, external_id: str, text: str) -> str | None:
    """Where a platform forbids sending by API (X), the owner sends through a link."""
    if platform != "x":
        return None
    return (
        "https://x.com/messages/compose?recipient_id="
        f"{quote(external_id, safe='')}&text={quote(text, safe='')}"
    )
