"""Resolving ``<person>`` as the owner writes it: ``@handle``, ``handle@instance``,
``#id`` or a name fragment (case- and accent-insensitive).

Ambiguous or unknown people are a CommandError, so nothing is changed; the owner
gets the candidates to choose from (by ``#id``) or a hint to use ``find``.
"""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from handlers.commands import CommandError
from handlers.present import describe_contact
from storage import search
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
    contact = session.get(Contact, contact_id)
    if contact is None or contact.owner_id != owner.id:
        raise CommandError(f"There is nobody with id #{contact_id}. Try `find <text>`.")
    live = _live(session, contact)
    assert live is not None, "merged_into_id is a foreign key: the chain ends at a contact"
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
    conn = session.connection()
    wanted = search.words(fragment)
    if not wanted:
        return []
    whole = search.search(conn, owner_id=owner.id, query=fragment, columns=("name",),
                          prefix=False, limit=FETCH + 1)
    if whole:
        contacts = _unique_contacts(session, whole)
        exact = [c for c in contacts if search.words(c.name) == wanted]
        return exact or contacts
    for columns in (("name",), ("handles",)):
        found = search.search(conn, owner_id=owner.id, query=fragment, columns=columns,
                              limit=FETCH + 1)
        if found:
            return _unique_contacts(session, found)
    return _unique_contacts(
        session, _handle_contacts(session, owner, Handle.handle == fragment.strip().lower())
    )


def _unique_contacts(session: Session, ids: list[int]) -> list[Contact]:
    contacts: dict[int, Contact] = {}
    for contact_id in ids:
        contact = _live(session, session.get(Contact, contact_id))
        if contact is not None:
            contacts.setdefault(contact.id, contact)
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
        f"{count} people match {text[:60]!r}; say which one by #id:\n" + "\n".join(lines)
    )


def _first_handle(session: Session, contact: Contact) -> Handle | None:
    query = select(Handle).where(Handle.contact_id == contact.id).order_by(col(Handle.id))
    return session.exec(query.limit(1)).first()
