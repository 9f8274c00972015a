"""Welcome drafts rendered from Jinja2 templates the owner can override.

The bot only drafts; the owner approves each message before anything reaches the
person (platform rules forbid automated welcome DMs, and it is the product's point).
Python decides *what* to mention (at most two specific details, one open question);
the template (``templates/welcome.j2``, or the owner's copy in PLNBOT_TEMPLATES_DIR)
decides how to say it in the owner's tone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import regex
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from bot.events import Profile
from handlers.profiles import Understanding, display_url, rules
from storage.models import Owner

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "welcome.j2"
QUESTIONS_PATH = Path(__file__).parent / "data" / "welcome_questions.json"
PLATFORM_NAMES = {
    "x": "X",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "discord": "Discord",
    "console": "here",
}
# Platform limits for one direct message. Bluesky counts graphemes; Mastodon's limit
# includes the "@person " mention the sender puts in front of the text.
LIMITS = {"x": 10_000, "bluesky": 1_000, "mastodon": 500, "discord": 2_000, "console": 2_000}
VARIANTS = 6
# compiled once: every welcome is tidied and measured several times
LINE_JOIN = regex.compile(r"[ \t]*\n[ \t]*(?!\n)|[ \t]{2,}")
PARAGRAPH_BREAK = regex.compile(r"\n[ \t]*\n")
GRAPHEME = regex.compile(r"\X")
ACRONYM_AN = "AEFHILMNORSX"


class TemplateProblem(Exception):
    """The owner's template could not be used; the message says why."""


@dataclass
class Composed:
    text: str
    warning: str | None = None  # set when the owner's template failed and we fell back


def article(phrase: str) -> str:
    """ "a Year 5 teacher", "an English teacher", "an SEN teacher"."""
    first = phrase.split(" ", 1)[0]
    if len(first) > 1 and first.isupper():
        vowel_sound = first[0] in ACRONYM_AN
    else:
        vowel_sound = first[:1].lower() in "aeiou"
    return ("an " if vowel_sound else "a ") + phrase


@cache
def environment(user_dir: str | None) -> SandboxedEnvironment:
    loaders = [FileSystemLoader(str(TEMPLATES_DIR))]
    if user_dir:
        loaders.insert(0, FileSystemLoader(user_dir))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # the owner's own template is re-read when they change it; the built-in one
        # cannot change while the bot runs, so it is not checked on disk every welcome
        auto_reload=bool(user_dir),
    )
    env.filters["article"] = article
    return env


@cache
def questions() -> dict[str, list[str]]:
    return json.loads(QUESTIONS_PATH.read_text(encoding="utf-8"))


def stable_number(profile: Profile) -> int:
    """The same person always gets the same choices; different people spread out."""
    digest = hashlib.sha256(f"{profile.platform}:{profile.external_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# --- what to say ---------------------------------------------------------------------


def owner_interests(owner: Owner) -> set[str]:
    return {i.strip().lstrip("#").casefold() for i in owner.interests.split(",") if i.strip()}


def shared_interest(person: Understanding, owner: Owner) -> str | None:
    """Something in both profiles, in the person's own form ("#edtech", "Desmos")."""
    mine = owner_interests(owner)
    owner_bio = (owner.bio or "").casefold()
    for tag in person.hashtags:
        if tag in mine or f"#{tag}" in owner_bio:
            return f"#{tag}"
    for topic in person.topics:
        folded = topic.casefold()
        if folded in mine or regex.search(rf"(?<!\w){regex.escape(folded)}(?!\w)", owner_bio):
            return topic
    return None


def pick_question(person: Understanding, profile: Profile, *, variant: int = 0,
                  avoid: str | None = None) -> str:
    """An open question about something of theirs when we know it, else about their field."""
    bank, values = question_bank(person, profile, avoid)
    options = questions()[bank]
    chosen = options[(stable_number(profile) + variant) % len(options)]
    return chosen.format(platform=PLATFORM_NAMES.get(profile.platform, profile.platform),
                         **values)


def question_bank(person: Understanding, profile: Profile,
                  avoid: str | None) -> tuple[str, dict[str, str]]:
    """Tools make the most concrete question, then topics (for two people in three: the
    rest get a question about their work), then hashtags, then their field."""
    if person.spammy:
        return "cautious", {}
    topics = [t for t in person.topics if t != avoid]
    tools = [t for t in topics if t in rules()["tools"]]
    if tools:
        return "tool", {"topic": tools[0]}
    if topics and (stable_number(profile) % 3 or person.field not in questions()):
        return "topic", {"topic": topics[0]}
    hashtags = [h for h in person.hashtags if f"#{h}" != avoid]
    if hashtags:
        return "hashtag", {"hashtag": hashtags[0]}
    return (person.field if person.field in questions() else "other"), {}


def who(person: Understanding) -> str | None:
    """ "a Year 5 teacher at Riverside Primary School", "someone from Kingsbridge Academy"."""
    if person.role:
        return article(person.headline())
    return f"someone from {person.organisation}" if person.organisation else None


def choose_mentions(person: Understanding, shared: str | None, max_details: int) -> dict:
    """At most ``max_details`` specific things, the most personal first."""
    available = [
        ("role", bool(person.headline())),
        ("shared", bool(shared)),
        ("website", bool(person.website)),
    ]
    chosen = [name for name, ok in available if ok and not person.spammy][:max_details]
    return {name: name in chosen for name, _ in available}


def template_values(*, person: Understanding, profile: Profile, owner: Owner, variant: int,
                    max_details: int, use_handle: bool,
                    facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the template sees. ``facts`` (``person_facts``) are the same for every
    variant tried, so a welcome that needs several tries works them out once."""
    facts = facts or person_facts(person=person, profile=profile, owner=owner)
    greeting = facts["greeting_name"]
    if use_handle:
        greeting = f"@{profile.handle.lstrip('@')}" if not greeting else greeting
    shared = facts["shared_interest"]
    return {
        **facts,
        "greeting_name": greeting,
        "mention": choose_mentions(person, shared, max_details),
        "question": pick_question(person, profile, variant=variant, avoid=shared),
        "variant": variant,
    }


def person_facts(*, person: Understanding, profile: Profile, owner: Owner) -> dict[str, Any]:
    """The template values that do not change from one variant to the next."""
    return {
        "person": person,
        "greeting_name": person.first_name or person.salutation,
        "formal_name": person.salutation or person.first_name,
        "handle": profile.handle,
        "headline": person.headline(),
        "who": who(person),
        "website": display_url(person.website) if person.website else None,
        "website_kind": person.website_kind,
        "shared_interest": shared_interest(person, owner),
        "spammy": person.spammy,
        "platform": profile.platform,
        "platform_name": PLATFORM_NAMES.get(profile.platform, profile.platform),
        "tone": owner.tone if owner.tone in ("warm", "brief", "formal") else "warm",
        "signature": owner.signature.strip(),
    }


# --- rendering -----------------------------------------------------------------------


def render(values: dict[str, Any], templates_dir: str | None) -> str:
    """Render the owner's template; TemplateProblem says what is wrong with it."""
    try:
        template = environment(templates_dir).get_template(TEMPLATE_NAME)
        text = template.render(**values)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)  # only syntax errors know their line
        where = f" (line {lineno})" if lineno else ""
        raise TemplateProblem(f"{type(exc).__name__}{where}: {exc.message or exc}") from exc
    except Exception as exc:  # a user template can fail in any way; report, don't crash
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    text = tidy(text)
    if not text:
        raise TemplateProblem("it produced an empty message")
    return text


def tidy(text: str) -> str:
    """Collapse the template's line-joining spaces, keep paragraph breaks."""
    paragraphs = [LINE_JOIN.sub(" ", p).strip() for p in PARAGRAPH_BREAK.split(text.strip())]
    return "\n\n".join(p for p in paragraphs if p)


def render_or_fallback(values: dict[str, Any], templates_dir: str | None) -> Composed:
    if not templates_dir:
        return Composed(render(values, None))
    problem = None
    if not Path(templates_dir).is_dir():
        problem = f"the templates folder {templates_dir} does not exist"
    else:
        try:
            return Composed(render(values, templates_dir))
        except TemplateProblem as exc:
            problem = f"{Path(templates_dir) / TEMPLATE_NAME}: {exc}"
    log.warning("welcome template unusable, using the built-in one: %s", problem)
    return Composed(render(values, None),
                    warning=f"Your welcome template could not be used ({problem}); "
                            "this draft uses the built-in one.")


def compose_welcome(
    *, person: Understanding, profile: Profile, owner: Owner, templates_dir: str | None = None,
    taken: Callable[[str], bool] = lambda text: False,
) -> Composed:
    """The welcome for one person: within the platform's limit and unlike anyone else's.

    ``taken(text)`` says whether someone else already got exactly that text; variants
    are tried in turn, and as a last resort the person's handle makes it theirs alone.
    """
    composed = None
    base = stable_number(profile) % 27
    facts = person_facts(person=person, profile=profile, owner=owner)
    for attempt in range(VARIANTS + 1):
        use_handle = attempt == VARIANTS
        composed = fitted(person=person, profile=profile, owner=owner, variant=base + attempt,
                          templates_dir=templates_dir, use_handle=use_handle, facts=facts)
        if not taken(composed.text):
            return composed
    assert composed is not None, "the loop above runs at least once"
    for suffix in (f"(@{profile.handle.lstrip('@')})",
                   f"(@{profile.handle.lstrip('@')}, {profile.external_id})"):
        text = fit_to_limit(f"{composed.text}\n\n{suffix}", platform=profile.platform,
                            handle=profile.handle, keep_end=len(suffix) + 2)
        if not taken(text):
            return Composed(text, composed.warning)
    return composed


def fitted(*, person, profile, owner, variant, templates_dir, use_handle,
           facts=None) -> Composed:
    """Render with fewer details until the text fits; cut at a word only as a last resort."""
    details = 1 if owner.tone == "brief" else 2
    while True:
        values = template_values(person=person, profile=profile, owner=owner, variant=variant,
                                 max_details=details, use_handle=use_handle, facts=facts)
        composed = render_or_fallback(values, templates_dir)
        if fits(composed.text, platform=profile.platform, handle=profile.handle) or details == 0:
            composed.text = fit_to_limit(composed.text, platform=profile.platform,
                                         handle=profile.handle)
            return composed
        details -= 1


# --- platform limits -----------------------------------------------------------------


def length(text: str, platform: str) -> int:
    """What the platform counts: graphemes on Bluesky, characters elsewhere."""
    if platform == "bluesky":
        return len(GRAPHEME.findall(text))
    return len(text)


def limit_for(platform: str, handle: str) -> int:
    limit = LIMITS.get(platform, 2_000)
    if platform == "mastodon":
        limit -= len(f"@{handle.lstrip('@')} ")
    return limit


def fits(text: str, *, platform: str, handle: str) -> bool:
    return length(text, platform) <= limit_for(platform, handle)


def fit_to_limit(text: str, *, platform: str, handle: str, keep_end: int = 0) -> str:
    """Cut at a word boundary (whole graphemes) so the text fits, keeping the last
    ``keep_end`` characters (a signature or a suffix) intact."""
    limit = limit_for(platform, handle)
    if length(text, platform) <= limit:
        return text
    end = text[len(text) - keep_end :] if keep_end else ""
    room = limit - length(end, platform) - 1
    pieces, used = [], 0
    for grapheme in GRAPHEME.findall(text[: len(text) - keep_end]):
        used += 1 if platform == "bluesky" else len(grapheme)
        if used > room:
            break
        pieces.append(grapheme)
    cut = "".join(pieces)
    word_start = cut.rfind(" ")
    if word_start >= len(cut) - 40:  # end on a whole word unless that loses too much
        cut = cut[:word_start]
    return cut.rstrip() + "…" + end


def compose_link(*, platform: str, external_id: str, text: str) -> str | None:
    """Where a platform forbids sending by API (X), the owner sends through a link."""
    if platform != "x":
        return None
    return (
        "https://x.com/messages/compose?recipient_id="
        f"{quote(external_id, safe='')}&text={quote(text, safe='')}"
    )
