"""Profile understanding: who is this person, from what their profile says.

Deterministic and offline. The rules are data (``data/profile_rules.json``) so they
can grow without growing the code. Unknown is a fine answer; a wrong guess is worse
than none (a welcome that calls someone by the wrong name or job does more harm than
a plain one), so every extractor returns ``None`` unless its evidence is clear.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from functools import cache
from html import unescape
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import emoji
import regex

from bot.events import Profile
from handlers import names
from handlers.untrusted import CAPS, MAX_FIELDS

log = logging.getLogger(__name__)
RULES_PATH = Path(__file__).parent / "data" / "profile_rules.json"
HASHTAG = regex.compile(r"(?<![\w&/])#(\w{2,50})")
TAG_RE = regex.compile(r"<[^>]+>")
ANCHOR_RE = regex.compile(r"<a\s[^>]*>", regex.I)
HREF_RE = regex.compile(r"""href\s*=\s*["']([^"']+)["']""", regex.I)
URL_RE = regex.compile(r"https?://[^\s\"'<>)\]]+", regex.I)
BARE_DOMAIN_RE = regex.compile(
    r"(?<![@\w./-])((?:[a-z0-9-]+\.)+(?:com|org|net|blog|dev|io|co\.uk|org\.uk|ac\.uk|uk|edu"
    r"|me|info|app|site|online|school|page|ca|au|de|fr|es|nl|ie|nz|xyz|ai)(?:/[^\s,;)]*)?)"
    r"(?![\w@])",
    regex.I,
)
CLAUSE_BREAK = regex.compile(r"[.;,|\n•·!?]")
SENTENCE_END = regex.compile(r"\s*(?:[.;|\n•·!?]|$)")
# compiled once: profile understanding runs for every arrival
LINE_BREAK_TAGS = regex.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", regex.I)
SPACES = regex.compile(r"\s+")
TRAILING_JOINERS = regex.compile(r"[\s'’&-]+$")
ABBREVIATION_STOP = regex.compile(r"\b(St|Mt|Ft|Dr|Mr|Mrs|Ms)\.\s")
ANY_LETTER = regex.compile(r"\p{L}")
HANDLE_SEPARATORS = regex.compile(r"[_.\-]+")
MENTION_OR_HASHTAG_LINK = regex.compile(r"class\s*=\s*[\"'][^\"']*(?:mention|hashtag)", regex.I)
HEAD_OF = regex.compile(r"(?i)(head|director) of ")
SUBJECT_ROLE = regex.compile(r"(?i)(professor|lecturer|teacher) (of|in) ")
MAX_LINKS = 16  # X link entities of one bio (160 characters hold a handful)
FORMER_REACH = 60  # how far before a role "Ex-", "former", "retired" may stand
PIN = regex.compile(r"📍\s*([^\n|•·;]+)")


@dataclass
class Understanding:
    """What a profile tells us, each part ``None``/empty unless the evidence is clear."""

    first_name: str | None = None
    salutation: str | None = None  # who to greet when there is no first name: "Mr Smith"
    role: str | None = None
    former_role: str | None = None
    organisation: str | None = None
    location: str | None = None
    website: str | None = None
    website_kind: str = "website"  # "blog" when it reads like one
    field: str = "other"
    hashtags: list[str] = dataclass_field(default_factory=list)
    topics: list[str] = dataclass_field(default_factory=list)  # display forms: "Desmos"
    spam_reasons: list[str] = dataclass_field(default_factory=list)
    is_organisation: bool = False

    @property
    def interests(self) -> list[str]:
        """Hashtags, topics and tools, lower-case and de-duplicated (what a contact stores)."""
        seen = dict.fromkeys(i.casefold() for i in [*self.hashtags, *self.topics])
        return list(seen)[:12]

    @property
    def spammy(self) -> bool:
        return bool(self.spam_reasons)

    @property
    def known_details(self) -> int:
        """How much we know beyond a name; a bare profile scores 0."""
        parts = (self.role, self.organisation, self.location, self.website)
        return sum(1 for p in parts if p) + min(len(self.interests), 2)

    def headline(self) -> str:
        """ "Year 5 teacher at Riverside Primary School" (or whichever part is known)."""
        if self.role and self.organisation:
            return f"{self.role} at {self.organisation}"
        return self.role or self.organisation or ""


@cache
def rules() -> dict:
    return json.loads(RULES_PATH.read_text(encoding="utf-8"))


def plain_text(html_or_text: str) -> str:
    """Bios arrive as HTML on Mastodon; keep the words only (and the line breaks).

    Text without ``<`` or ``&`` has no tag or entity to remove: it is returned at once
    (a first sync reads six such strings per person)."""
    if "<" not in html_or_text and "&" not in html_or_text:
        return html_or_text.strip()
    text = LINE_BREAK_TAGS.sub("\n", html_or_text or "")
    text = TAG_RE.sub("", text)
    return unescape(text).strip()


def links_in_html(html: str) -> list[str]:
    """Link targets in Mastodon HTML, leaving out the #hashtag and @mention links."""
    found = []
    for anchor in ANCHOR_RE.findall(html or ""):
        if MENTION_OR_HASHTAG_LINK.search(anchor):
            continue
        href = HREF_RE.search(anchor)
        if href:
            found.append(unescape(href.group(1)))
    return found


@cache
def whole_word(word: str, flags: int = 0, not_after: str = r"\w") -> regex.Pattern:
    """``word`` standing alone (not inside a longer word), compiled once per process.

    Profile understanding runs on every arrival; compiling these few hundred patterns
    per profile used to cost more than everything else a new connection does.
    """
    return regex.compile(rf"(?<![{not_after}]){regex.escape(word)}(?!\w)", flags)


def mentions_word(lowered_text: str, word: str) -> bool:
    """True when ``word`` (any case) stands alone in the already lower-cased text.

    The plain substring test first is exact, not a heuristic: a literal pattern can only
    match where its text occurs, and most words occur in no given bio.
    """
    lowered_word = word.lower()
    if lowered_word not in lowered_text:
        return False
    return whole_word(lowered_word).search(lowered_text) is not None


# --- names ---------------------------------------------------------------------------


def first_name(display_name: str, handle: str = "", bio: str = "") -> str | None:
    """A likely first name, or None: "Jane Doe 🍎" → "Jane"; "Mr_Smith_Teach" → None."""
    return names.parse(display_name, handle=handle, bio=bio, rules=rules()).first


# --- roles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleMention:
    start: int
    end: int
    text: str
    field: str | None
    rank: int  # position of its rule: later rules are more generic
    former: bool


def role_pattern(rule: dict) -> str:
    """A role rule's pattern with the subjects filled in."""
    subjects = sorted(rules()["subjects"], key=len, reverse=True)
    subject_alternation = "(?:" + "|".join(regex.escape(s) for s in subjects) + ")"
    return str(rule["pattern"]).replace("{subject}", subject_alternation)


@cache
def role_patterns() -> list[tuple[regex.Pattern, str | None]]:
    compiled = []
    for rule in rules()["roles"]:
        pattern = role_pattern(rule)
        compiled.append(
            (regex.compile(rf"(?<![\p{{L}}\p{{N}}])(?:{pattern})(?![\p{{L}}\p{{N}}])", regex.I),
             rule["field"])
        )
    return compiled


@cache
def former_marker() -> regex.Pattern:
    markers = "|".join(regex.escape(m.rstrip("-")) for m in rules()["former_markers"])
    return regex.compile(rf"(?<!\p{{L}})(?:{markers})(?!\p{{L}})", regex.I)


def clause_breaks(text: str) -> list[int]:
    """Where each clause of ``text`` starts (after a full stop, comma, line break…)."""
    return [m.end() for m in CLAUSE_BREAK.finditer(text)]


def is_former(text: str, start: int, breaks: list[int] | None = None) -> bool:
    """True when the clause before ``start`` says the role is in the past ("Ex-", "former").

    Only the last ``FORMER_REACH`` characters of the clause are read: a marker stands
    right before its role, and reading whole clauses for every role made a long bio of
    roles quadratic."""
    breaks = clause_breaks(text[:start]) if breaks is None else breaks
    index = bisect_right(breaks, start) - 1
    clause_start = max(breaks[index] if index >= 0 else 0, start - FORMER_REACH)
    return former_marker().search(text, clause_start, start) is not None


@cache
def any_role() -> regex.Pattern:
    """All role patterns as one alternation: it matches where any of them does, so a
    bio it does not match names no role and the patterns need not run one by one."""
    alternation = "|".join(f"(?:{role_pattern(rule)})" for rule in rules()["roles"])
    return regex.compile(rf"(?<![\p{{L}}\p{{N}}])(?:{alternation})(?![\p{{L}}\p{{N}}])",
                         regex.I)


def role_mentions(text: str) -> list[RoleMention]:
    """Every role the text names, longest wins where two overlap, in reading order."""
    if any_role().search(text) is None:
        return []
    found = []
    breaks = clause_breaks(text)
    for rank, (pattern, field) in enumerate(role_patterns()):
        for match in pattern.finditer(text):
            found.append(RoleMention(match.start(), match.end(), match.group(0), field, rank,
                                     is_former(text, match.start(), breaks)))
    found.sort(key=lambda m: (m.start, -(m.end - m.start), m.rank))
    kept: list[RoleMention] = []
    for mention in found:
        # kept mentions are in order and apart, so only the last one can overlap
        if not kept or mention.start >= kept[-1].end:
            kept.append(mention)
    return kept


def main_role(mentions: list[RoleMention]) -> RoleMention | None:
    """The first current role, preferring a specific one to a bare "teacher"."""
    current = [m for m in mentions if not m.former]
    generic = len(role_patterns()) - 1
    return min(current, key=lambda m: (m.rank == generic, m.start), default=None)


def tidy_role(text: str) -> str:
    """Mid-sentence casing: "School Librarian" → "school librarian", "Head of Maths" kept."""
    words = SPACES.sub(" ", text.strip()).split(" ")
    proper = set(rules()["proper_words"])
    if HEAD_OF.match(text):
        return " ".join(words)
    keep_rest = SUBJECT_ROLE.match(text)
    tidied = []
    for index, word in enumerate(words):
        if word.casefold() in proper or (len(word) > 1 and word.isupper()):
            tidied.append(word)
        elif keep_rest and index >= 2:
            tidied.append(word)
        else:
            tidied.append(word.lower())
    return " ".join(tidied)


# --- organisations and places --------------------------------------------------------


@cache
def phrase_pattern() -> str:
    """A run of capitalised words, allowing lower-case joiners: "Ysgol y Graig"."""
    joiners = "|".join(regex.escape(j) for j in rules()["name_connectors"])
    word = r"(?:\p{Lu}[\p{L}\p{N}'’&-]*)"
    return rf"(?-i:{word}(?:[ \t]+(?:(?:{joiners})[ \t]+)*{word}){{0,6}})"


@cache
def phrase_regex() -> regex.Pattern:
    return regex.compile(phrase_pattern())


@cache
def organisation_pattern() -> regex.Pattern:
    """What follows a role: " at Riverside Primary", ", @Kingsbridge Academy"."""
    return regex.compile(rf"\s*,?\s*(?:(?:at|of)\s+|@\s*)((?:the\s+)?{phrase_pattern()})",
                         regex.I)


def trim_phrase(phrase: str) -> str:
    return TRAILING_JOINERS.sub("", phrase).strip()


def has_organisation_word(phrase: str) -> bool:
    """ "Riverside Primary School", "Protocol Labs" — not "Official Bluesky"."""
    words = {w.casefold().removesuffix("'s").removesuffix("’s") for w in phrase.split()}
    return bool(words & set(rules()["organisation_nouns"]))


def normalise_abbreviations(text: str) -> str:
    """ "St. Mary's" → "St Mary's", so a full stop after an abbreviation ends nothing."""
    return ABBREVIATION_STOP.sub(r"\1 ", text)


def organisation_after(text: str, role: RoleMention | None) -> str | None:
    """ "Year 5 teacher at Riverside Primary School" → "Riverside Primary School"."""
    if role is None:
        return None
    match = organisation_pattern().match(text[role.end :])
    return trim_phrase(match.group(1)) if match else None


def organisation_named(text: str, mentions: list[RoleMention]) -> str | None:
    """A capitalised phrase with a school/hospital/museum word in it, outside role names."""
    starts = [m.start for m in mentions]  # in reading order and apart (role_mentions)
    for match in phrase_regex().finditer(text):
        phrase = trim_phrase(match.group(0))
        if len(phrase.split()) >= 2 and has_organisation_word(phrase) and not overlaps_any(
                mentions, starts, match.start(), match.end()):
            return phrase
    return None


def overlaps_any(mentions: list[RoleMention], starts: list[int], start: int, end: int) -> bool:
    """Does [start, end) overlap one of ``mentions`` (ordered, apart)? Two looks, not all."""
    index = bisect_left(starts, end) - 1  # the last mention starting before ``end``
    return index >= 0 and mentions[index].end > start


def clean_place(value: str | None) -> str | None:
    """A location as written, unless it is a joke or a non-place ("Planet Earth", "online")."""
    if not value:
        return None
    text = without_emoji(plain_text(value), "").strip(" \t,.;|-·")
    text = SPACES.sub(" ", text)
    if not text or not ANY_LETTER.search(text) or len(text) > 60:
        return None
    lowered = text.casefold()
    if lowered in rules()["not_places"] or "/" in text or "@" in text or "http" in lowered:
        return None
    return text


@cache
def place_patterns() -> tuple[regex.Pattern, regex.Pattern]:
    """ "(teacher) in Leeds" right after a role, and "based in Lyon" anywhere."""
    phrase = phrase_pattern()
    lead = r"(?:based|living|located|live|work|working|teach|teaching|school|college|teacher)"
    return (regex.compile(rf"\s*(?:\([^)]*\)\s*)?in\s+({phrase})"),
            regex.compile(rf"(?i:{lead})\s+in\s+({phrase})"))


def location_in(text: str, role: RoleMention | None, organisation: str | None) -> str | None:
    """A place the bio states: "teacher in Leeds", "based in Lyon", "…School, Leeds."."""
    after_role, after_lead = place_patterns()
    candidates = []
    if role is not None:
        candidates.append(after_role.match(text[role.end:]))
    candidates.append(after_lead.search(text))
    candidates.append(PIN.search(text))
    if organisation:
        phrase = phrase_pattern()
        after = rf"{regex.escape(organisation)},\s*({phrase})(?={SENTENCE_END.pattern})"
        candidates.append(regex.search(after, text))
    for match in candidates:
        place = clean_place(trim_phrase(match.group(1))) if match else None
        if place and not has_organisation_word(place) and len(place.split()) <= 4:
            return place
    return None


# --- websites ------------------------------------------------------------------------


def urls_in(value: str) -> list[str]:
    """Links in a field or bio: anchors, full URLs, then bare domains ("amarateaches.blog")."""
    if not any(mark in value for mark in ".:<&"):  # no domain, scheme, anchor or entity
        return []
    found = links_in_html(value) + URL_RE.findall(plain_text(value))
    if not found:
        found = [f"https://{d}" for d in BARE_DOMAIN_RE.findall(plain_text(value))
                 if "@" not in d]
    return [u.rstrip(".,;:!?") for u in found]


def split_url(url: str) -> SplitResult:
    """``urlsplit`` that never raises: "https://[fe80::1" in a bio is just not a link."""
    try:
        return urlsplit(url)
    except ValueError:
        return SplitResult("", "", "", "", "")


def is_social_profile(url: str) -> bool:
    parts = split_url(url)
    host = parts.netloc.casefold().removeprefix("www.")
    social = any(host == s or f"{host}{parts.path}".startswith(s) for s in rules()["social_hosts"])
    return social or parts.path.startswith("/@")


def website_of(profile: Profile) -> tuple[str | None, str]:
    """Their own website or blog and what to call it, from the best evidence first."""
    labelled: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for name, value in profile.fields:
        label = plain_text(name).casefold()
        target = labelled if any(w in label for w in rules()["website_field_names"]) else other
        target += [(u, label) for u in urls_in(value)]
    own_domain = profile.handle.casefold().lstrip("@")
    bio_links = sorted(((u, "") for u in urls_in(profile.bio)),
                       key=lambda link: host_of(link[0]) not in own_domain)
    profile_url = [(profile.url, "")] if profile.url else []
    for url, label in labelled + profile_url + other + bio_links:
        if split_url(url).netloc and not is_social_profile(url):
            return url, website_kind(url, label)
    return None, "website"


def host_of(url: str) -> str:
    return split_url(url).netloc.casefold().removeprefix("www.") or "\0"


def website_kind(url: str, label: str) -> str:
    lowered = f"{url} {label}".casefold()
    return "blog" if any(marker in lowered for marker in rules()["blog_markers"]) else "website"


def display_url(url: str) -> str:
    """ "https://www.amarateaches.blog/" → "amarateaches.blog" (for a sentence)."""
    parts = split_url(url)
    host = parts.netloc.removeprefix("www.")
    path = parts.path.rstrip("/")
    return f"{host}{path}" if len(path) <= 30 else host


# --- interests, fields, spam ----------------------------------------------------------


class Substrings:
    """Which of many words occur in a text, found by their first three letters: a
    word can only occur where its first three letters do, so a bio's few hundred
    three-letter pieces name the handful of words worth testing, in place of testing
    every word (the topics and field words were a third of understanding a bio)."""

    SIZE = 3

    def __init__(self, words: list[str]) -> None:
        self.short = [i for i, word in enumerate(words) if len(word) < self.SIZE]
        self.by_start: dict[str, list[int]] = {}
        for index, word in enumerate(words):
            if len(word) >= self.SIZE:
                self.by_start.setdefault(word[:self.SIZE], []).append(index)

    def candidates(self, text: str) -> list[int]:
        """Indexes (in order) of the words that may occur in ``text``: every word that
        does is among them."""
        size, by_start = self.SIZE, self.by_start
        found = set(self.short)
        for start in {text[i:i + size] for i in range(len(text) - size + 1)}:
            found.update(by_start.get(start, ()))
        return sorted(found)


def hashtags_in(text: str) -> list[str]:
    """Hashtags as the person first wrote them ("#SEND" is not the verb "#send"),
    one per spelling regardless of case."""
    seen: dict[str, str] = {}
    for tag in HASHTAG.findall(text):
        seen.setdefault(tag.casefold(), tag)
    return list(seen.values())[:8]


@cache
def topic_patterns() -> list[tuple[str, str, regex.Pattern]]:
    """(display form, case-folded form, pattern) per tool and topic.

    Capitalised entries ("Desmos", "AI") match only as written, lower-case ones in any
    case; neither matches inside a #hashtag (hashtags are collected on their own).
    """
    entries = [*rules()["tools"], *rules()["topics"]]
    return [(entry, entry.casefold(),
             whole_word(entry, 0 if any(ch.isupper() for ch in entry) else regex.I, r"\w#"))
            for entry in entries]


@cache
def topic_substrings() -> Substrings:
    return Substrings([folded for _, folded, _ in topic_patterns()])


def topics_in(text: str) -> list[str]:
    """Topics and tools in the order the rules list them, in their display form."""
    lowered = text.casefold()
    patterns = topic_patterns()
    found = [entry for entry, folded, pattern
             in (patterns[i] for i in topic_substrings().candidates(lowered))
             if folded in lowered and pattern.search(text)]
    folded = [f.casefold() for f in found]
    return [f for f in found if not any(f.casefold() in o and f.casefold() != o for o in folded)]


def classify_field(text: str, role_field: str | None = None) -> str:
    """The role's field when the role is clear; else the field whose words score highest."""
    if role_field:
        return role_field
    lowered = text.lower()
    words, fields = field_words()
    scores = dict.fromkeys(rules()["fields"], 0)
    for index in field_substrings().candidates(lowered):
        if words[index] in lowered and mentions_word(lowered, words[index]):
            scores[fields[index]] += 1
    best = max(scores.values(), default=0)
    if best == 0:
        return "other"
    tied = [name for name, score in scores.items() if score == best]
    return next((name for name in rules()["field_priority"] if name in tied), tied[0])


@cache
def field_words() -> tuple[list[str], list[str]]:
    """Every field word in lower case (the case ``mentions_word`` compares in), and the
    field each belongs to."""
    pairs = [(word.lower(), name) for name, words in rules()["fields"].items()
             for word in words]
    return [word for word, _ in pairs], [name for _, name in pairs]


@cache
def field_substrings() -> Substrings:
    return Substrings(field_words()[0])


def spam_reasons(text: str) -> list[str]:
    """Why a bio reads like promotion or follow-back spam; empty when it does not."""
    lowered = text.casefold()
    spam = rules()["spam"]
    # a phrase that is not even a substring is no hit (tested inline: most are not)
    strong = [p for p in spam["strong"] if p in lowered and _spam_hit(lowered, p)]
    weak = [p for p in spam["weak"] if p in lowered and _spam_hit(lowered, p)]
    if len(strong) >= spam["strong_threshold"] or len(weak) >= spam["weak_threshold"]:
        return (strong + weak)[:4]
    return []


def _spam_hit(lowered: str, phrase: str) -> bool:
    """Emoji and symbols ("💰") count anywhere; words only standing alone."""
    if not has_word_character(phrase):
        return phrase in lowered
    return mentions_word(lowered, phrase)


@cache
def has_word_character(phrase: str) -> bool:
    return regex.search(r"\w", phrase) is not None


# --- putting it together -------------------------------------------------------------


def bio_text(profile: Profile) -> str:
    """The bio as plain text, with X's t.co links replaced by where they point."""
    text = plain_text(profile.bio)
    entities = _mapping(_mapping(_mapping(profile.raw).get("entities")).get("description"))
    links = entities.get("urls")
    for link in links[:MAX_LINKS] if isinstance(links, list) else []:
        short, full = _mapping(link).get("url"), _mapping(link).get("expanded_url")
        if isinstance(short, str) and isinstance(full, str) and short and full:
            text = text.replace(short, full[: CAPS["url"]])[: CAPS["bio"] * 2]
    return normalise_abbreviations(text)


def _mapping(value: object) -> dict:
    """Platform JSON read defensively: anything but an object reads as an empty one."""
    return value if isinstance(value, dict) else {}


def handle_words(handle: str) -> str:
    """ "dm_for_promo" → "dm for promo", so a handle can give a spammer away too."""
    return HANDLE_SEPARATORS.sub(" ", handle.split("@")[0])


def field_value(profile: Profile, names_key: str) -> str | None:
    """The value of a profile field whose name is one of ``rules()[names_key]``."""
    wanted = rules()[names_key]
    for name, value in profile.fields:
        label = without_emoji(plain_text(name), "").strip(" :").casefold()
        text = plain_text(value).strip()
        if label in wanted and text and not URL_RE.search(text) and len(text) <= 80:
            return text
    return None


def without_emoji(text: str, replacement: str) -> str:
    """``emoji.replace_emoji``, skipped for ASCII text (no emoji is ASCII): it walks the
    text character by character, a third of what reading a plain profile cost."""
    return text if text.isascii() else emoji.replace_emoji(text, replacement)


def bounded(profile: Profile) -> Profile:
    """The profile cut to the documented caps before it is read (``handlers.untrusted``):
    profiles from the adapters already are; this keeps any other caller's linear too."""
    if len(profile.bio) <= CAPS["bio"] and len(profile.fields) <= MAX_FIELDS and all(
            len(k) <= CAPS["field_name"] and len(v) <= CAPS["field_value"]
            for k, v in profile.fields):
        return profile
    return replace(profile, bio=profile.bio[: CAPS["bio"]], fields=tuple(
        (k[: CAPS["field_name"]], v[: CAPS["field_value"]])
        for k, v in profile.fields[:MAX_FIELDS]))


def understand(profile: Profile, *, spam: bool = True) -> Understanding:
    """What ``profile`` says, in time linear in its (capped) length; never raises on text.
    ``spam=False`` leaves out the spam check, for callers that store what is understood
    and never show it (a first sync's quiet baseline)."""
    profile = bounded(profile)
    bio = bio_text(profile)
    field_text = " ".join(f"{plain_text(k)}: {plain_text(v)}." for k, v in profile.fields)
    name = names.parse(profile.name, handle=profile.handle, bio=bio, rules=rules())
    mentions = role_mentions(bio)
    role = main_role(mentions)
    former = next((m for m in mentions if m.former), None)
    organisation = (organisation_after(bio, role)
                    or field_value(profile, "organisation_field_names")
                    or organisation_named(bio, mentions))
    website, kind = website_of(profile)
    current_text = " ".join([bio, field_text]) if not former else (
        bio[: former.start] + bio[former.end :] + " " + field_text)
    return Understanding(
        first_name=name.first,
        salutation=name.salutation,
        role=tidy_role(role.text) if role else field_value(profile, "role_field_names"),
        former_role=tidy_role(former.text) if former else None,
        organisation=organisation,
        location=(clean_place(profile.location) or clean_place(
            field_value(profile, "location_field_names")) or location_in(bio, role, organisation)),
        website=website,
        website_kind=kind,
        field=classify_field(current_text, role.field if role else None),
        hashtags=hashtags_in(f"{bio} {field_text}"),
        topics=topics_in(f"{bio} {field_text}"),
        spam_reasons=spam_reasons(f"{profile.name} {handle_words(profile.handle)} {bio} "
                                  f"{field_text}") if spam else [],
        is_organisation=name.organisation,
    )


def understand_or_reason(profile: Profile, *,
                         spam: bool = True) -> tuple[Understanding | None, str]:
    """``(understanding, "")``, or ``(None, why)`` when this one profile cannot be read.

    Arrivals come in batches; one stranger's profile must never cost anyone else theirs,
    so a failure here is this person's alone (logged with its traceback for a fix)."""
    try:
        return understand(profile, spam=spam), ""
    except Exception as exc:  # noqa: BLE001 - isolate one person; the log keeps the detail
        log.exception("could not read the profile of %s on %s", profile.handle, profile.platform)
        return None, f"{type(exc).__name__}: {exc}"[:120]


def understand_safely(profile: Profile, *, spam: bool = True) -> Understanding:
    """What the profile says, or nothing known when it cannot be read (syncs store the
    person anyway: leaving them out would make them look gone)."""
    return understand_or_reason(profile, spam=spam)[0] or Understanding()
