"""Profile understanding: who is this person, from what their profile says.

Deterministic and offline. The rules are data (``data/profile_rules.json``) so they
can grow without growing the code. Unknown is a fine answer; a wrong guess is worse
than none, so every extractor returns ``None`` unless its evidence is clear.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from pathlib import Path

from bot.events import Profile

RULES_PATH = Path(__file__).parent / "data" / "profile_rules.json"
HASHTAG = re.compile(r"(?<![\w&])#(\w{2,50})", re.UNICODE)
TAG_RE = re.compile(r"<[^>]+>")


@dataclass
class Understanding:
    first_name: str | None = None
    role: str | None = None
    organisation: str | None = None
    location: str | None = None
    website: str | None = None
    field: str = "other"
    interests: list[str] = dataclass_field(default_factory=list)


@cache
def rules() -> dict:
    return json.loads(RULES_PATH.read_text(encoding="utf-8"))


def plain_text(html_or_text: str) -> str:
    """Bios arrive as HTML on Mastodon; keep the words only."""
    text = re.sub(r"<br\s*/?>|</p>\s*<p>", "\n", html_or_text or "")
    text = TAG_RE.sub("", text)
    from html import unescape

    return unescape(text).strip()


def first_name(display_name: str) -> str | None:
    """A likely first name, or None: "Jane Doe 🍎" → "Jane"; "Mr_Smith_Teach" → None."""
    import emoji

    words = emoji.replace_emoji(display_name or "", "").split()
    if not words:
        return None
    first = words[0].strip(".,;:!|·-")
    if re.fullmatch(r"(?i)(mr|mrs|ms|miss|mx|dr|prof)\.?", first):
        return None
    if "_" in first or any(ch.isdigit() for ch in first):
        return None
    if not first[:1].isupper() or not first.replace("-", "").replace("'", "").isalpha():
        return None
    return first if 1 < len(first) <= 30 else None


def _mentions(lowered_text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", lowered_text) is not None


def classify_field(text: str) -> str:
    lowered = text.lower()
    scores: dict[str, int] = {}
    for name, words in rules()["fields"].items():
        scores[name] = sum(1 for word in words if _mentions(lowered, word))
    best = max(scores.values(), default=0)
    if best == 0:
        return "other"
    tied = [name for name, score in scores.items() if score == best]
    for name in rules()["field_priority"]:
        if name in tied:
            return name
    return tied[0]


def find_role(text: str) -> str | None:
    for pattern in rules()["roles"]:
        match = re.search(rf"(?i)\b({pattern})\b", text)
        if match:
            return match.group(1)
    return None


def website_of(profile: Profile) -> str | None:
    if profile.url:
        return profile.url
    for _, value in profile.fields:
        match = re.search(r"https?://[^\s\"'<>]+", value)
        if match:
            return match.group(0)
    return None


def understand(profile: Profile) -> Understanding:
    bio = plain_text(profile.bio)
    text = " ".join([profile.name, bio, *(f"{k} {plain_text(v)}" for k, v in profile.fields)])
    return Understanding(
        first_name=first_name(profile.name),
        role=find_role(bio),
        location=profile.location or None,
        website=website_of(profile),
        field=classify_field(text),
        interests=list(dict.fromkeys(t.lower() for t in HASHTAG.findall(bio)))[:8],
    )
