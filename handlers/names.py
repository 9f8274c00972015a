"""Reading a display name: a likely first name, a salutation, or an organisation.

Display names are free text ("Amara Okafor 🌱", "Mr Smith | Y6", "BORO Issouf",
"devin ivy", "Riverside Primary School", "Wizzy1122"). Greeting someone by the wrong
name is worse than "Hi there", so anything unclear gives ``None``. Names in scripts
that put the family name first (Chinese, Japanese, Korean) give ``None`` too: without
knowing which part is the given name, no guess is honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import emoji
import regex

PRONOUNS = regex.compile(
    r"\b(?:she|he|they|xe|ze|her|him|them)\s*/\s*(?:her|him|them|they|hers|his|theirs|xem|zir)\b"
    r"(?:\s*/\s*\w+)?",
    regex.I,
)
BRACKETS = regex.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|（[^）]*）")
SEPARATORS = regex.compile(r"\s[|·•–—\-~:]\s|[|,/:•·]")
FAMILY_NAME_FIRST = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
TITLE_CASE = regex.compile(r"(?:Mc|Mac|[OD]['’])?\p{Lu}\p{Ll}+(?:['’\-]\p{Lu}?\p{Ll}+)*")
UPPER = regex.compile(r"\p{Lu}{2,}(?:['’\-]\p{Lu}+)*")
LOWER = regex.compile(r"\p{Ll}{2,}(?:['’\-]\p{Ll}+)*")
UNCASED = regex.compile(r"[\p{Lo}\p{M}]+")
INITIAL = regex.compile(r"\p{Lu}\.?")
LINKISH = regex.compile(r"\S*[./]\S*")
NOT_NAME_CHARACTERS = regex.compile(r"[^\p{L}\p{M}\p{N}\s'’.\-_@]")
SPACES = regex.compile(r"\s+")


_SETS: dict[tuple[int, str], tuple[dict, frozenset[str]]] = {}


def rule_set(rules: dict, key: str) -> frozenset[str]:
    """``rules[key]`` as a set, made once per rules object (a first sync reads a name
    per person: building these sets each time was a fifth of the parsing)."""
    found = _SETS.get((id(rules), key))
    if found is None or found[0] is not rules:  # (the rules object pins its id)
        found = _SETS[(id(rules), key)] = (rules, frozenset(rules[key]))
    return found[1]


@dataclass(frozen=True)
class Name:
    first: str | None = None
    salutation: str | None = None  # "Mr Smith", "Dr Mensah": a title and a surname
    organisation: bool = False


def clean(display_name: str) -> str:
    """Emoji, pronouns, brackets and everything after a separator removed."""
    text = display_name or ""
    if not text.isascii():  # no emoji is ASCII, and replace_emoji walks every character
        text = emoji.replace_emoji(text, " ")
    if "/" in text:  # each pattern needs its mark: most names have none of them
        text = PRONOUNS.sub(" ", text)
    if any(mark in text for mark in "([{（"):
        text = BRACKETS.sub(" ", text)
    text = SEPARATORS.split(text, maxsplit=1)[0]
    text = NOT_NAME_CHARACTERS.sub(" ", text)
    return SPACES.sub(" ", text).strip(" .-")


def kind_of(word: str) -> str | None:
    """ "title", "upper", "lower", "uncased", "initial", or None (not a name word)."""
    for kind, pattern in (("title", TITLE_CASE), ("upper", UPPER), ("lower", LOWER),
                          ("uncased", UNCASED), ("initial", INITIAL)):
        if pattern.fullmatch(word):
            return kind
    return None


def proper_case(word: str) -> str:
    """ "DANIEL" → "Daniel", "devin" → "Devin", "Jean-Luc" kept."""
    if kind_of(word) in ("upper", "lower"):
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return word


def parse(display_name: str, *, handle: str = "", bio: str = "", rules: dict) -> Name:
    cleaned = clean(display_name)
    if not cleaned or FAMILY_NAME_FIRST.search(cleaned):
        return Name()
    postnominals = rule_set(rules, "postnominals")
    words = [w for w in cleaned.split() if w.casefold().strip(".") not in postnominals]
    lowered = {w.casefold().strip(".").removesuffix("'s").removesuffix("’s") for w in words}
    if lowered & rule_set(rules, "organisation_words"):
        return Name(organisation=True)
    if not words or lowered & rule_set(rules, "not_in_names"):
        return Name()
    titles, rest = split_titles(words, rules)
    if titles:
        return titled_name(titles, rest, rules)
    if len(words) == 1:
        nicknames = tuple(BRACKETS.findall(display_name or ""))
        return Name(first=single_name(words[0], handle=handle, bio=bio, rules=rules,
                                      nicknames=nicknames))
    return Name(first=first_of_several(words, rules))


def split_titles(words: list[str], rules: dict) -> tuple[list[str], list[str]]:
    titles = rule_set(rules, "titles")
    index = 0
    while index < len(words) and words[index].casefold().rstrip(".") in titles:
        index += 1
    return words[:index], words[index:]


def titled_name(titles: list[str], rest: list[str], rules: dict) -> Name:
    """ "Dr Kwame Mensah" → Kwame / "Dr Mensah"; "Mr Smith" → no first name, "Mr Smith"."""
    kinds = [kind_of(w) for w in rest]
    if not rest or None in kinds or len(rest) > 4:
        return Name()
    surname = proper_case(rest[-1]) if kinds[-1] in ("title", "upper", "uncased") else None
    salutation = f"{titles[0].rstrip('.').capitalize()} {surname}" if surname else None
    first = None
    if (len(rest) >= 2 and kinds[0] != "initial"
            and rest[0].casefold() not in rule_set(rules, "not_names")):
        first = proper_case(rest[0])
    return Name(first=first, salutation=salutation)


def single_name(word: str, *, handle: str, bio: str, rules: dict,
                nicknames: tuple[str, ...] = ()) -> str | None:
    """One word is a first name only if it looks like one and the handle agrees ("Libby",
    @LibbyAllen82) or a bracketed nickname is the handle ("Ilya (Marshal)", marshal.dev);
    a brand's name usually also appears in its own bio ("Vercel's …")."""
    if kind_of(word) not in ("title", "upper", "uncased") or not 2 <= len(word) <= 12:
        return None
    folded = word.casefold()
    if folded in rule_set(rules, "not_names"):
        return None
    handle_letters = letters(handle)
    agrees = folded in handle_letters or (len(handle_letters) >= 4
                                          and folded.startswith(handle_letters))
    nickname = any(letters(n) and letters(n) in handle_letters for n in nicknames)
    if not (agrees or nickname):
        return None
    words_of_bio = LINKISH.sub(" ", bio.casefold())  # not inside links
    if regex.search(rf"(?<!\w){regex.escape(folded)}(?!\w)", words_of_bio):
        return None
    return proper_case(word)


def letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalpha())


def first_of_several(words: list[str], rules: dict) -> str | None:
    """ "Amara Okafor" → Amara, "BORO Issouf" → Issouf (a capitalised family name is the
    French-speaking convention), "devin ivy" → Devin; anything odd → None."""
    particles = rule_set(rules, "name_particles")
    words = [w for i, w in enumerate(words) if i == 0 or w.casefold() not in particles]
    kinds = [kind_of(w) for w in words]
    if None in kinds or len(words) > 4:
        return None
    if words[0].casefold().strip(".") in rule_set(rules, "not_names"):
        return None
    if "lower" in kinds:
        return proper_case(words[0]) if set(kinds) == {"lower"} and len(words) <= 3 else None
    if "upper" in kinds and "title" in kinds:
        return words[kinds.index("title")]
    if kinds[0] == "initial":
        return None
    return proper_case(words[0])
