"""Resolving ``<person>`` as the owner writes it: ``@handle``, ``handle@instance``,
``#id`` or a name fragment (case- and accent-insensitive).

Ambiguous or unknown people are a CommandError, so nothing is changed; the owner
gets the candidates to choose from (by ``#id``) or a hint to use ``find``.
"""

from __future__ import annotations

import re
import unicodedata

from sqlmodel import Session, col, or_, select

from handlers.commands import CommandError
from handlers.present import describe_contact
from storage.models import Contact, Handle, Owner

MAX_CANDIDATES = 10


def fold(text: str) -> str:
    """Lower-case without accents: "Zoë Ångström" → "zoe angstrom"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def split_person(args: str, usage: str) -> tuple[str, str]:
    """Split ``<person> <rest…>``; a quoted person ("Jane Doe") may hold spaces."""
    args = args.strip()
    if not args:
        raise CommandError("Say who: a @handle, a name, or #id.", usage=usage)
    if args[0] in "\"'":
        end = args.find(args[0], 1)
        if end == -1:
            raise CommandError("The quoted name is missing its closing quote.", usage=usage)
        return args[1:end].strip(), args[end + 1 :].strip()
    person, _, rest = args.partition(" ")
    return person, rest.strip()


def resolve(session: Session, *, owner: Owner, text: str) -> Contact:
    """The one contact ``text`` names, or a CommandError saying why not."""
    text = text.strip()
    if not text:
        raise CommandError("Say who: a @handle, a name, or #id.")
    if re.fullmatch(r"#\d{1,12}", text):
        return _by_id(session, owner=owner, contact_id=int(text[1:]))
    if text.startswith("@") or "@" in text:
        candidates = _by_handle(session, owner=owner, handle=text)
    else:
        candidates = _by_name(session, owner=owner, fragment=text)
    return _choose(candidates, text)


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
    return _live(session, contact)


def _by_handle(session: Session, *, owner: Owner, handle: str) -> list[Contact]:
    wanted = handle.strip().lstrip("@").lower()
    local = wanted.split("@", 1)[0]
    rows = session.exec(
        select(Handle).where(
            Handle.owner_id == owner.id,
            or_(Handle.handle == wanted, col(Handle.handle).startswith(local + "@"),
                Handle.handle == local),
        )
    ).all()
    exact = [h for h in rows if h.handle == wanted]
    chosen = exact or ([h for h in rows if h.handle.split("@", 1)[0] == local] if "@" not in wanted
                       else [])
    return _unique_contacts(session, [h.contact_id for h in chosen])


def _by_name(session: Session, *, owner: Owner, fragment: str) -> list[Contact]:
    wanted = fold(fragment)
    rows = session.exec(
        select(Contact.id, Contact.name).where(
            Contact.owner_id == owner.id, col(Contact.merged_into_id).is_(None)
        )
    ).all()
    whole_word = [cid for cid, name in rows if wanted in fold(name).split()]
    partial = whole_word or [cid for cid, name in rows if wanted in fold(name)]
    if not partial:
        handles = session.exec(
            select(Handle.contact_id, Handle.handle).where(Handle.owner_id == owner.id)
        ).all()
        partial = [cid for cid, handle in handles if wanted in handle]
    return _unique_contacts(session, partial)


def _unique_contacts(session: Session, ids: list[int]) -> list[Contact]:
    contacts: dict[int, Contact] = {}
    for contact_id in ids:
        contact = _live(session, session.get(Contact, contact_id))
        if contact is not None:
            contacts.setdefault(contact.id, contact)
    return list(contacts.values())


def _choose(candidates: list[Contact], text: str) -> Contact:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CommandError(f"I don't know anyone matching {text!r}. Try `find {text}`.")
    shown = candidates[:MAX_CANDIDATES]
    lines = [f"  {n}. {describe_contact(c)}" for n, c in enumerate(shown, 1)]
    more = len(candidates) - len(shown)
    if more:
        lines.append(f"  … and {more} more; be more specific.")
    raise CommandError(
        f"{len(candidates)} people match {text!r}; say which one by #id:\n" + "\n".join(lines)
    )
