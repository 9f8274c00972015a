"""Reading an X (Twitter) data archive: the way in for people without API access.

X's "Download an archive of your data" gives a zip whose ``data/`` folder holds
JavaScript files such as ``follower.js``::

    window.YTD.follower.part0 = [ { "follower": { "accountId": "12",
        "userLink": "https://twitter.com/intent/user?user_id=12" } }, ... ]

Large lists are split into ``follower-part1.js``, ``follower-part2.js``… (``part1``,
``part2`` in the assignment). Followers and following carry only ids; ``account.js``
names the archive's own account. Everything is read and checked before anything is
stored, so a broken archive imports nothing.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlmodel import Session, col, select

from bot.events import NetworkImported, Profile
from handlers.untrusted import clean_text, cleaned_profile
from storage.models import Account, Owner

KINDS = ("follower", "following", "account")
FILE_NAME = re.compile(r"^(follower|following|account)(?:-part(\d+))?\.js$")
ASSIGNMENT = re.compile(r"^\s*window\.YTD\.(\w+)\.part(\d+)\s*=\s*")
ACCOUNT_ID = re.compile(r"[0-9]{1,20}")  # fullmatch, ASCII only: "１２" or "12\n" is no id
# Caps on what is read (README, "Hostile data"). One follower entry of X's indented
# format is ~133 bytes, so one file of 128 MB holds about a million people, and reading
# it peaks near the figure bench/bench_hostile.py reports; X splits bigger lists into
# parts. A zip that inflates past these is refused before it fills memory.
MAX_MEMBER_BYTES = 128 * 1024 * 1024
MAX_TOTAL_BYTES = 192 * 1024 * 1024
MAX_LINK = 2_048  # a userLink is ~60 characters; anything longer is not X's
MAX_USERNAME = 50  # X usernames have at most 15 characters
FOLDER_PATTERNS = ("data/*.js", "*.js", "*/data/*.js")  # where _preference looks


class ArchiveError(Exception):
    """The archive cannot be imported; the message names the file and the problem."""


@dataclass
class XArchive:
    followers: list[Profile] = field(default_factory=list)
    following: list[Profile] = field(default_factory=list)
    account_id: str = ""
    username: str = ""

    def event(self, owner_ref: str) -> NetworkImported:
        return NetworkImported(
            owner_ref=owner_ref, platform="x", followers=self.followers,
            following=self.following, source="archive",
            account_external_id=self.account_id, account_handle=self.username,
        )


@dataclass(frozen=True)
class ArchiveFile:
    kind: str
    part: int
    name: str  # shown in messages
    read: Callable[[], bytes]


def read_archive(path: Path) -> XArchive:
    """Read the follower, following and account files of a zip or unpacked archive."""
    files = _archive_files(Path(path))
    if not any(f.kind in ("follower", "following") for f in files):
        raise ArchiveError(
            f"{path}: no data/follower.js or data/following.js in it. Is this the archive "
            "from X's \"Download an archive of your data\" (the zip, or its unpacked folder)?"
        )
    archive, total = XArchive(), 0
    for item in sorted(files, key=lambda f: (f.kind, f.part)):
        entries, size = parse_file(item)
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ArchiveError(f"{path}: its follower, following and account files come to "
                               f"more than {MAX_TOTAL_BYTES // 2**20} MB uncompressed, more "
                               "than any X archive holds; nothing was imported")
        if item.kind == "account":
            archive.account_id, archive.username = _account(item, entries)
        else:
            target = archive.followers if item.kind == "follower" else archive.following
            target.extend(_person(item, index, entry) for index, entry in enumerate(entries))
    return archive


def _archive_files(path: Path) -> list[ArchiveFile]:
    if path.is_dir():
        found = {p for pattern in FOLDER_PATTERNS for p in path.glob(pattern) if p.is_file()}
        return _pick([(p.relative_to(path).as_posix(), str(p), _file_reader(p)) for p in found])
    if not path.exists():
        raise ArchiveError(f"{path}: no such file or folder")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".js")]
    except zipfile.BadZipFile:
        raise ArchiveError(f"{path}: not a zip file (give the archive zip or its folder)") from None
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return _pick([(n, f"{path}: {n}", _zip_reader(path, n)) for n in names])


def _zip_reader(path: Path, member: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
                return _bounded(stream.read(MAX_MEMBER_BYTES + 1), f"{path}: {member}")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                NotImplementedError, ValueError, RuntimeError) as exc:
            raise ArchiveError(f"{path}: {member}: cannot read it ({exc})") from None

    return read


def _file_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with path.open("rb") as stream:
                return _bounded(stream.read(MAX_MEMBER_BYTES + 1), str(path))
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot read it ({exc.strerror or exc})") from None

    return read


def _bounded(data: bytes, name: str) -> bytes:
    """``data`` unless it passed the per-file cap (it was read at most one byte past it)."""
    if len(data) > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{name}: larger than {MAX_MEMBER_BYTES // 2**20} MB uncompressed, "
                           "more than any X archive file holds; is it really from X?")
    return data


def _pick(candidates: list[tuple[str, str, Callable[[], bytes]]]) -> list[ArchiveFile]:
    """The archive's own files: those in a ``data`` folder (or at the top, older archives).

    ``candidates`` are (path inside the archive, name for messages, reader).
    """
    found: dict[tuple[str, int], ArchiveFile] = {}
    for relative, name, read in sorted(candidates, key=lambda c: _preference(c[0])):
        match = FILE_NAME.match(PurePosixPath(relative).name)
        if not match or _preference(relative) > 1:
            continue
        kind, part = match.group(1), int(match.group(2) or 0)
        found.setdefault((kind, part), ArchiveFile(kind, part, name, read))
    return list(found.values())


def _preference(relative: str) -> int:
    """0 for data/<file>, 1 for a top-level file or <folder>/data/<file>, 2 elsewhere."""
    parts = PurePosixPath(relative).parts
    if parts[:-1] == ("data",):
        return 0
    if len(parts) == 1 or (len(parts) == 3 and parts[1] == "data"):
        return 1
    return 2


def parse_file(item: ArchiveFile) -> tuple[list[Any], int]:
    """The JSON list assigned in ``window.YTD.<kind>.partN = [...]``, and the file's size."""
    data = item.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ArchiveError(f"{item.name}: not UTF-8 text, so not an X archive file") from None
    match = ASSIGNMENT.match(text)
    if not match or match.group(1) != item.kind:
        raise ArchiveError(
            f"{item.name}: does not start with \"window.YTD.{item.kind}.part{item.part} = \" "
            "as the files of an X archive do"
        )
    del data  # the text is all that is needed now
    try:
        entries = json.loads(text[match.end():])
    except RecursionError:
        raise ArchiveError(f"{item.name}: nested too deeply to be an X archive file") from None
    except json.JSONDecodeError as exc:
        raise ArchiveError(
            f"{item.name}: broken JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file may be truncated: download the archive again"
        ) from None
    if not isinstance(entries, list):
        raise ArchiveError(f"{item.name}: expected a list after the \"=\", found "
                           f"{type(entries).__name__}")
    return entries, len(text)


def _inner(item: ArchiveFile, index: int, entry: Any) -> dict[str, Any]:
    inner = entry.get(item.kind) if isinstance(entry, dict) else None
    if not isinstance(inner, dict):
        raise ArchiveError(
            f"{item.name}: entry {index} is not a {{\"{item.kind}\": {{...}}}} object"
        )
    return inner


def _person(item: ArchiveFile, index: int, entry: Any) -> Profile:
    inner = _inner(item, index, entry)
    link = _text(inner.get("userLink"))
    if len(link) > MAX_LINK:
        raise ArchiveError(f"{item.name}: entry {index}: its userLink is longer than "
                           f"{MAX_LINK:,} characters, which no X archive writes")
    account_id = _text(inner.get("accountId")) or _id_from_link(link) or ""
    if not ACCOUNT_ID.fullmatch(account_id):
        raise ArchiveError(
            f"{item.name}: entry {index} has no numeric accountId (ASCII digits; found "
            f"{account_id[:40]!r})"
        )
    return cleaned_profile(platform="x", external_id=account_id, handle=account_id,
                           raw={"accountId": account_id, "userLink": link})


def _id_from_link(link: str) -> str | None:
    """``https://twitter.com/intent/user?user_id=12`` (or x.com) → ``12``."""
    try:
        values = parse_qs(urlsplit(link).query).get("user_id")
    except ValueError:
        return None
    return values[0] if values else None


def _text(value: Any) -> str:
    """A text field of the archive: X writes strings; anything else counts as missing."""
    return value if isinstance(value, str) else ""


def _account(item: ArchiveFile, entries: list[Any]) -> tuple[str, str]:
    if not entries:
        return "", ""
    inner = _inner(item, 0, entries[0])
    account_id = _text(inner.get("accountId"))
    if not ACCOUNT_ID.fullmatch(account_id):
        raise ArchiveError(f"{item.name}: the account has no numeric accountId (ASCII digits)")
    username = clean_text(inner.get("username"), MAX_USERNAME)
    return account_id, username


def check_owner_account(session: Session, *, owner_ref: str, archive: XArchive) -> None:
    """Refuse someone else's archive when the owner's X account is already known (any of
    them: an owner may have several)."""
    if not archive.account_id:
        return
    known = [a for a in session.exec(
        select(Account).join(Owner, col(Owner.id) == col(Account.owner_id))
        .where(Owner.external_ref == owner_ref, Account.platform == "x")
        .order_by(col(Account.id))) if a.external_id]
    if not known or any(a.external_id == archive.account_id for a in known):
        return
    account = known[0]
    theirs = _describe(archive.username, archive.account_id)
    mine = _describe(account.handle, account.external_id)
    raise ArchiveError(
        f"this archive belongs to the X account {theirs}, but your X account here is {mine}; "
        "import the archive of your own account"
    )


def _describe(username: str, account_id: str) -> str:
    return f"@{username} ({account_id})" if username else account_id
