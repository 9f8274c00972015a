"""Resolving ``<person>`` as the owner writes it: ``@handle``, ``handle@instance``,
``#id`` or a name fragment (case- and accent-insensitive).

Ambiguous or unknown people are a CommandError, so nothing is changed; the owner
gets the candidates to choose from (by ``#id``) or a hint to use ``find``.
"""

from __future__ import annotations

import re
from collections import Counter

from sqlmodel import Session, col, select

from handlers import backlog
from handlers.commands import CommandError
from handlers.present import describe_contact
from storage import repo, search
from storage.models import Contact, Handle, Owner

MAX_CANDIDATES = 10
FETCH = 50
QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}

fold = search.fold


def split_person(args: str, usage: str) -> tuple[str, str]:
    """Split ``<person> <rest…>``; a quoted person ("Jane Doe") may hold spaces."""
    args = args.strip()
    if not args:
        raise CommandError("Say who: a @handle, a name, or #id.", usage=usage)
    if args[0] in QUOTES:
        end = args.find(QUOTES[args[0]], 1)
        if end == -1:
            raise CommandError("The quoted name is missing its closing quote.", usage=usage)
        return args[1:end].strip(), args[end + 1 :].strip()
    person, _, rest = args.partition(" ")
    return person, rest.strip()


WORD_SPAN = re.compile(r"\S+")
MAX_NAME_WORDS = 6


def split_known(session: Session, *, owner: Owner, args: str,
                usage: str) -> tuple[Contact, str]:
    """``<person> <rest…>`` where the person may be a full name with spaces, unquoted.

    The longest run of leading words that is a known name wins, so
    ``Jo Whitfield met at the gallery`` is Jo Whitfield and "met at the gallery".
    When a shorter run is exactly someone else's whole name, the split is ambiguous
    and the owner is asked (a numbered choice).
    """
    args = args.strip()
    if not args or args[0] in QUOTES:
        person, rest = split_person(args, usage)
        return resolve(session, owner=owner, text=person), rest
    spans = list(WORD_SPAN.finditer(args))
    first = spans[0].group()
    if not first.startswith(("#", "@")) and "@" not in first:
        for size in range(min(len(spans), MAX_NAME_WORDS), 1, -1):
            fragment = args[:spans[size - 1].end()]
            found = _by_whole_name(session, owner=owner, fragment=fragment)
            if found:
                _check_shorter(session, owner=owner, args=args, spans=spans, size=size,
                               found=found)
                return _choose(session, found, fragment), args[spans[size - 1].end():].strip()
    return resolve(session, owner=owner, text=first), args[spans[0].end():].strip()


def _by_whole_name(session: Session, *, owner: Owner, fragment: str) -> list[Contact]:
    """People whose name holds every word of ``fragment`` as a whole word; an exact
    full name wins over longer names."""
    wanted = search.words(fragment)
    if not wanted:
        return []
    ids = _search(session, owner=owner, fragment=fragment, column="name", prefix=False)
    contacts = [c for c in _unique_contacts(session, ids)
                if not Counter(wanted) - Counter(search.words(c.name))]
    exact = [c for c in contacts if search.words(c.name) == wanted]
    return exact or contacts


def _check_shorter(session: Session, *, owner: Owner, args: str, spans: list[re.Match[str]],
                   size: int, found: list[Contact]) -> None:
    """Ask when the longest match is only part of someone's name while a shorter run of
    words is exactly another person's whole name."""
    if len(found) != 1 or search.words(found[0].name) == search.words(
            args[:spans[size - 1].end()]):
        return
    for shorter in range(size - 1, 0, -1):
        fragment = args[:spans[shorter - 1].end()]
        others = [c for c in _by_whole_name(session, owner=owner, fragment=fragment)
                  if c.id != found[0].id and search.words(c.name) == search.words(fragment)]
        if len(others) == 1:
            long_fragment = args[:spans[size - 1].end()]
            options = [(long_fragment, found[0], args[spans[size - 1].end():].strip()),
                       (fragment, others[0], args[spans[shorter - 1].end():].strip())]
            lines = [f"  {n}. {describe_contact(c, _first_handle(session, c))}, "
                     f"storing {rest[:60]!r}" for n, (_, c, rest) in enumerate(options, 1)]
            raise CommandError(
                "I can read that two ways; say which one:\n" + "\n".join(lines)
                + "\nReply with its number.",
                choices=[(f, c.id) for f, c, _ in options])


def resolve(session: Session, *, owner: Owner, text: str) -> Contact:
    """The one contact ``text`` names, or a CommandError saying why not."""
    text = _unquote(text.strip())
    if not text:
        raise CommandError("Say who: a @handle, a name, or #id.")
    if re.fullmatch(r"#\d{1,12}", text):
        return _by_id(session, owner=owner, contact_id=int(text[1:]))
    if text.startswith("#"):
        raise CommandError(f"{text[:40]!r} is not a contact id; ids look like #12.")
    if "@" in text:
        candidates = _by_handle(session, owner=owner, handle=text)
    else:
        candidates = _by_name(session, owner=owner, fragment=text)
    return _choose(session, candidates, text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] in QUOTES and text[-1] == QUOTES[text[0]]:
        return text[1:-1].strip()
    return text


def _live(session: Session, contact: Contact | None) -> Contact | None:
    """Follow links made by ``link``: a merged contact points at the one it became."""
    seen = set()
    while contact is not None and contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id)
        contact = session.get(Contact, contact.merged_into_id)
    return contact


def _by_id(session: Session, *, owner: Owner, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id) if contact_id <= repo.MAX_ROW_ID else None
    if contact is None or contact.owner_id != owner.id:
        raise CommandError(f"There is nobody with id #{contact_id}. Try `find <text>`.")
    live = _live(session, contact)
    assert live is not None, "merged_into_id is a foreign key: the chain ends at a contact"
    backlog.read_these(session, [live.id])  # its profile, if a first sync left it unread
    return live


def _by_handle(session: Session, *, owner: Owner, handle: str) -> list[Contact]:
    """``@jane``, ``jane@school.social`` or ``@jane@school.social``.

    A bare ``@jane`` also finds ``jane@any.instance``; both lookups are index range
    scans on (owner_id, handle), never a scan of every handle.
    """
    wanted = handle.strip().lstrip("@").lower()
    exact = _handle_contacts(session, owner, Handle.handle == wanted)
    if exact or "@" in wanted:
        return _unique_contacts(session, exact)
    local = wanted + "@"
    on_instances = _handle_contacts(
        session, owner, Handle.handle >= local, Handle.handle < wanted + chr(ord("@") + 1)
    )
    return _unique_contacts(session, on_instances)


def _handle_contacts(session: Session, owner: Owner, *conditions) -> list[int]:
    query = select(Handle.contact_id).where(Handle.owner_id == owner.id, *conditions)
    return list(session.exec(query.limit(FETCH + 1)).all())


def _by_name(session: Session, *, owner: Owner, fragment: str) -> list[Contact]:
    """Whole words of the name first, then word beginnings, then handles.

    A name that is exactly the fragment wins over longer names containing it, so
    "Amara Okafor" is never ambiguous with "Amara Okafor-Smith".
    """
    wanted = search.words(fragment)
    if not wanted:
        return []
    whole = _search(session, owner=owner, fragment=fragment, column="name", prefix=False)
    if whole:
        contacts = _unique_contacts(session, whole)
        exact = [c for c in contacts if search.words(c.name) == wanted]
        return exact or contacts
    for column in ("name", "handles"):
        found = _search(session, owner=owner, fragment=fragment, column=column, prefix=True)
        if found:
            return _unique_contacts(session, found)
    return _unique_contacts(
        session, _handle_contacts(session, owner, Handle.handle == fragment.strip().lower())
    )


def _search(session: Session, *, owner: Owner, fragment: str, column: str,
            prefix: bool) -> list[int]:
    """Who the index finds, then people a first sync stored whose profiles are still
    being read (``handlers.backlog``): they are not indexed yet, but their names and
    handles are known, and a command about them must not wait for everyone else."""
    ids = search.search(session.connection(), owner_id=owner.id, query=fragment,
                        columns=(column,), prefix=prefix, limit=FETCH + 1)
    if len(ids) <= FETCH:
        ids += [contact_id for contact_id in backlog.named(
            session, owner_id=owner.id, query=fragment, column=column, prefix=prefix,
            limit=FETCH + 1) if contact_id not in ids]
    return ids[:FETCH + 1]


def _unique_contacts(session: Session, ids: list[int]) -> list[Contact]:
    """The live contacts ``ids`` stand for, their profiles read if still pending."""
    contacts: dict[int, Contact] = {}
    for contact_id in ids:
        contact = _live(session, session.get(Contact, contact_id))
        if contact is not None:
            contacts.setdefault(contact.id, contact)
    backlog.read_these(session, list(contacts))
    return list(contacts.values())


def _choose(session: Session, candidates: list[Contact], text: str) -> Contact:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CommandError(f"I don't know anyone matching {text[:60]!r}. "
                           f"Try `find {text[:60]}`.")
    shown = candidates[:MAX_CANDIDATES]
    lines = [f"  {n}. {describe_contact(c, _first_handle(session, c))}"
             for n, c in enumerate(shown, 1)]
    count = f"{len(candidates)}" if len(candidates) <= FETCH else f"More than {FETCH}"
    if len(candidates) > len(shown):
        lines.append(f"  … and {len(candidates) - len(shown)} more; be more specific.")
    raise CommandError(
        f"{count} people match {text[:60]!r}; say which one:\n" + "\n".join(lines)
        + "\nReply with its number (or use the #id).",
        choices=[(text, c.id) for c in shown],
    )


def _first_handle(session: Session, contact: Contact) -> Handle | None:
    query = select(Handle).where(Handle.contact_id == contact.id).order_by(col(Handle.id))
    return session.exec(query.limit(1)).first()
