"""Welcome drafts rendered from Jinja2 templates the owner can override.

The bot only drafts; the owner approves each message before anything reaches the
person (platform rules forbid automated welcome DMs, and it is the product's point).
Python decides *what* to mention (at most two specific details, one open question);
the template (``templates/welcome.j2``, or the owner's copy in PLNBOT_TEMPLATES_DIR)
decides how to say it in the owner's tone.

So that drafts sound like a person rather than a form letter, the opening, the
compliments and the question come from banks (``data/welcome_phrases.json``,
``data/welcome_questions.json``) and are chosen from what the profile says *and* what
the newest drafts said: never the previous draft's opening, and a question whose first
four words ("its frame") the last twelve drafts used least.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

import regex
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from bot import platforms
from bot.events import Profile
from handlers.profiles import Understanding, display_url, rules
from storage.models import Owner

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "welcome.j2"
QUESTIONS_PATH = Path(__file__).parent / "data" / "welcome_questions.json"
PHRASES_PATH = Path(__file__).parent / "data" / "welcome_phrases.json"
RECENT_FRAMES = 12  # a question frame used in the last twelve drafts is avoided
RECENT_OPENINGS = 4
WORDS = regex.compile(r"[\w'’#&-]+")
SENTENCE_END = regex.compile(r"(?<=[.!?])\s+")
# roles someone holds alone in an organisation: "the founder & CEO of Classloop"
LEADER_ROLE = regex.compile(r"(?i)^(?:co-?)?founder\b|^(?:ceo|cto|coo|cfo|president|chair|"
                            r"chairman|chairwoman|chief\b|managing director|executive director)")
HEAD_ROLE = regex.compile(r"(?i)^(?:head|headteacher|headmaster|headmistress|principal|dean|"
                          r"deputy head|director)\b")
# Names and the limits for one direct message (and what they count, and whether the
# "@person " the sender puts in front counts) come from the platform registry.
PLATFORM_NAMES = platforms.View(lambda p: p.name)
LIMITS = platforms.View(lambda p: p.message_limit)
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


@cache
def phrases() -> dict[str, Any]:
    return json.loads(PHRASES_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=4096)
def frame_of(question: str) -> str:
    """A question's first four words, lower-case: "what's exciting you about"."""
    return " ".join(WORDS.findall(question.lower())[:4])


@lru_cache(maxsize=4096)
def opening_of(text: str) -> str:
    """How a draft opens: its greeting word and the first three words after the
    greeting's comma ("Hi Amara, thanks so much for…" → "hi | thanks so much")."""
    head, _, rest = text.partition(",")
    greeting = (WORDS.findall(head.lower()) or [""])[0]
    return f"{greeting} | {' '.join(WORDS.findall(rest.lower())[:3])}"


@dataclass(frozen=True)
class Recent:
    """What the newest drafts said, newest first: what a new draft should not echo."""

    texts: tuple[str, ...] = ()

    @cached_property
    def openings(self) -> list[str]:
        return [opening_of(text) for text in self.texts[:RECENT_OPENINGS]]

    @cached_property
    def frames(self) -> list[str]:
        found = []
        for text in self.texts[:RECENT_FRAMES]:
            question = next((s for s in SENTENCE_END.split(text) if s.endswith("?")), "")
            found.append(frame_of(question))
        return found

    def previous(self) -> str:
        return self.texts[0] if self.texts else ""


def stable_number(profile: Profile) -> int:
    """The same person always gets the same choices; different people spread out."""
    digest = hashlib.sha256(f"{profile.platform}:{profile.external_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# --- what to say ---------------------------------------------------------------------


# words that carry a sentence's feeling: two of them in one draft sound like a form
SENTIMENT = frozenset({"glad", "pleasure", "pleased", "lovely", "great", "nice", "treat",
                       "delighted", "happy", "thanks", "thank"})


@lru_cache(maxsize=1024)
def feelings(text: str) -> frozenset[str]:
    return SENTIMENT & frozenset(WORDS.findall(text.lower()))


def clashes(option: str, text: str) -> bool:
    """Whether ``option`` would echo ``text``: same opening words, or the same feeling."""
    start = option.split("{")[0].strip()
    return bool(start and start in text) or bool(feelings(option) & feelings(text))


def rotated_choice(options: list[str], start: int, *, avoid: str = "") -> str:
    """The option at ``start`` (wrapping), or the next one that does not echo ``avoid``
    (the previous draft, and what this draft already says)."""
    ordered = [options[(start + i) % len(options)] for i in range(len(options))]
    return next((o for o in ordered if not clashes(o, avoid)), ordered[0])


def opening_phrase(facts: dict[str, Any], *, joined: bool, number: int,
                   recent: Recent) -> tuple[str, str]:
    """(greeting word, thanks phrase) in the owner's tone: a pair whose opening the last
    drafts did not use, the previous draft's never."""
    tone = facts["tone"]
    greetings = phrases()["greetings"][tone] if facts["formal_name"] or tone != "formal" \
        else ["Hello"]
    bank = phrases()["thanks"][f"{tone}_joined" if joined else tone]
    pairs = [(g, t.format(platform=facts["platform_name"])) for t in bank for g in greetings]
    pairs = pairs[number % len(pairs):] + pairs[:number % len(pairs)]
    previous, used = recent.openings[:1], recent.openings

    def cost(pair: tuple[str, str]) -> tuple[int, int]:
        opening = opening_of(f"{pair[0]} x, {pair[1]}")
        return (opening in previous, used.count(opening))

    return min(pairs, key=cost)


def compliments(facts: dict[str, Any], mention: dict[str, bool], *, number: int,
                recent: Recent, said: str = "") -> list[str]:
    """One sentence per detail to mention, each from its bank in the owner's tone, none
    echoing the previous draft or what this one ``said`` already."""
    bank = phrases()["compliments"][facts["tone"]]
    person = facts["person"]
    values = {"who": facts["who"] or "", "shared": facts["shared_interest"] or "",
              "website": facts["website"] or "", "organisation": person.organisation or ""}
    chosen: list[str] = []
    for kind in ("role", "shared", "website"):
        if not mention.get(kind) or (kind == "role" and not facts["who"]):
            continue
        key = "blog" if kind == "website" and facts["website_kind"] == "blog" else kind
        if kind == "role" and not person.role:
            key = "org"
        avoid = " ".join([recent.previous(), said, *chosen])
        chosen.append(rotated_choice(bank[key], number, avoid=avoid).format(**values))
    if not chosen and bank["none"] and not facts["spammy"]:
        avoid = " ".join([recent.previous(), said])
        chosen.append(rotated_choice(bank["none"], number, avoid=avoid))
    return chosen


def owner_interests(owner: Owner) -> set[str]:
    return {i.strip().lstrip("#").casefold() for i in owner.interests.split(",") if i.strip()}


def shared_interest(person: Understanding, owner: Owner) -> str | None:
    """Something in both profiles, in the person's own form ("#edtech", "Desmos")."""
    mine = owner_interests(owner)
    owner_bio = (owner.bio or "").casefold()
    for tag in person.hashtags:  # as the person wrote it: "#SEND" is not the verb
        if tag.casefold() in mine or f"#{tag.casefold()}" in owner_bio:
            return f"#{tag}"
    for topic in person.topics:
        folded = topic.casefold()
        if folded in mine or regex.search(rf"(?<!\w){regex.escape(folded)}(?!\w)", owner_bio):
            return topic
    return None


def pick_question(person: Understanding, profile: Profile, *, variant: int = 0,
                  avoid: str | None = None, recent: Recent = Recent()) -> str:
    """An open question about something of theirs when we know it, else about their
    field: of those, the one whose frame the newest drafts used least."""
    options = question_options(person, profile, avoid, variant)
    used = recent.frames
    best = min(range(len(options)),
               key=lambda i: (used.count(frame_of(options[i][1])) + options[i][0], i))
    return options[best][1]


def question_options(person: Understanding, profile: Profile, avoid: str | None,
                     variant: int) -> list[tuple[int, str]]:
    """(0 for the most fitting bank, 1 for the others, question), each bank rotated so
    that different people start at different questions."""
    platform = PLATFORM_NAMES.get(profile.platform, profile.platform)
    options: list[tuple[int, str]] = []
    for rank, (bank, values) in enumerate(question_banks(person, profile, avoid)):
        bank_questions = questions()[bank]
        start = (stable_number(profile) + variant) % len(bank_questions)
        for question in bank_questions[start:] + bank_questions[:start]:
            options.append((min(rank, 1), question.format(platform=platform, **values)))
    return options


def question_bank(person: Understanding, profile: Profile,
                  avoid: str | None) -> tuple[str, dict[str, str]]:
    """The most fitting bank of questions for this person (see ``question_banks``)."""
    return question_banks(person, profile, avoid)[0]


def question_banks(person: Understanding, profile: Profile,
                   avoid: str | None) -> list[tuple[str, dict[str, str]]]:
    """Tools make the most concrete question, then topics (for two people in three: the
    rest get a question about their work), then hashtags, then their field; the banks
    after the first are there when its questions were all asked lately."""
    if person.spammy:
        return [("cautious", {})]
    field = person.field if person.field in questions() else "other"
    topics = [t for t in person.topics if t != avoid]
    tools = [t for t in topics if t in rules()["tools"]]
    hashtags = [h for h in person.hashtags if f"#{h}" != avoid]
    banks: list[tuple[str, dict[str, str]]] = []
    if tools:
        banks.append(("tool", {"topic": tools[0]}))
    others = [t for t in topics if t not in tools]
    if others and (stable_number(profile) % 3 or person.field not in questions() or tools):
        banks.append(("topic", {"topic": others[0]}))
    if hashtags:
        banks.append(("hashtag", {"hashtag": hashtags[0]}))
    banks.append((field, {}))
    return banks


def who(person: Understanding) -> str | None:
    """ "a Year 5 teacher at Riverside Primary School", "the founder & CEO of Classloop",
    "the Head of Maths at Kingsbridge Academy", "someone from Kingsbridge Academy"."""
    if person.role and person.organisation and LEADER_ROLE.match(person.role):
        return f"the {person.role} of {person.organisation}"
    if person.role and person.organisation and HEAD_ROLE.match(person.role):
        return f"the {person.headline()}"
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
                    facts: dict[str, Any] | None = None,
                    recent: Recent = Recent()) -> dict[str, Any]:
    """What the template sees. ``facts`` (``person_facts``) are the same for every
    variant tried, so a welcome that needs several tries works them out once."""
    facts = facts or person_facts(person=person, profile=profile, owner=owner)
    greeting = facts["greeting_name"]
    if use_handle:
        greeting = f"@{profile.handle.lstrip('@')}" if not greeting else greeting
    shared = facts["shared_interest"]
    mention = choose_mentions(person, shared, max_details)
    number = stable_number(profile) + variant
    joined = platforms.get(profile.platform).connection_kind == "member"
    hello, thanks = opening_phrase(facts, joined=joined, number=number, recent=recent)
    return {
        **facts,
        "greeting_name": greeting,
        "mention": mention,
        "question": pick_question(person, profile, variant=variant, avoid=shared,
                                  recent=recent),
        "variant": variant,
        "hello": hello,
        "thanks": thanks,
        "compliments": compliments(facts, mention, number=number, recent=recent,
                                   said=thanks),
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
    taken: Callable[[str], bool] = lambda text: False, recent: Sequence[str] = (),
) -> Composed:
    """The welcome for one person: within the platform's limit and unlike anyone else's.

    ``taken(text)`` says whether someone else already got exactly that text; variants
    are tried in turn, and as a last resort the person's handle makes it theirs alone.
    ``recent``: the newest drafts' texts, newest first, which this one should not echo.
    """
    composed = None
    base = stable_number(profile) % 27
    facts = person_facts(person=person, profile=profile, owner=owner)
    echo = Recent(tuple(recent[:RECENT_FRAMES]))
    for attempt in range(VARIANTS + 1):
        use_handle = attempt == VARIANTS
        composed = fitted(person=person, profile=profile, owner=owner, variant=base + attempt,
                          templates_dir=templates_dir, use_handle=use_handle, facts=facts,
                          recent=echo)
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
           facts=None, recent: Recent = Recent()) -> Composed:
    """Render with fewer details until the text fits; cut at a word only as a last resort."""
    details = 1 if owner.tone == "brief" else 2
    while True:
        values = template_values(person=person, profile=profile, owner=owner, variant=variant,
                                 max_details=details, use_handle=use_handle, facts=facts,
                                 recent=recent)
        composed = render_or_fallback(values, templates_dir)
        if fits(composed.text, platform=profile.platform, handle=profile.handle) or details == 0:
            composed.text = fit_to_limit(composed.text, platform=profile.platform,
                                         handle=profile.handle)
            return composed
        details -= 1


# --- platform limits -----------------------------------------------------------------


def length(text: str, platform: str) -> int:
    """What the platform counts: graphemes or characters (the registry says which)."""
    if platforms.get(platform).counts == "graphemes":
        return len(GRAPHEME.findall(text))
    return len(text)


def limit_for(platform: str, handle: str) -> int:
    return platforms.get(platform).limit_for(handle)


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
    by_grapheme = platforms.get(platform).counts == "graphemes"
    for grapheme in GRAPHEME.findall(text[: len(text) - keep_end]):
        used += 1 if by_grapheme else len(grapheme)
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
    return platforms.get(platform).compose_link(external_id=external_id, text=text)
