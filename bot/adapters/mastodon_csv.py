"""Mastodon's ``following_accounts.csv`` export (Preferences → Import and export).

Two shapes exist: the current one with the header
``Account address,Show boosts,Notify on new posts,Languages``, and older exports
with one account address per line and no header. Either way the whole file is read
and checked before anything is stored, so a broken file changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from bot.events import Profile

HEADER = "Account address"
ADDRESS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


MAX_ADDRESS = 320  # a 64-character user part, "@" and a 253-character domain
# Mastodon lets most people follow at most 7,500 accounts; 32 MB holds over 300,000
# addresses, so a bigger file is not this export and is refused before it is read.
MAX_FILE_BYTES = 32 * 1024 * 1024


class ExportFileError(Exception):
    """The file is missing, unreadable or not a following_accounts.csv; names file and line."""


def read_following(path: Path) -> list[str]:
    """The account addresses (``user@instance``) in the export, in file order."""
    try:
        rows = list(csv.reader(io.StringIO(_text(path))))
    except csv.Error as exc:  # a field past the csv module's 128 KB limit, a NUL…
        raise ExportFileError(f"{path}: not a following_accounts.csv ({exc})") from None
    has_header = bool(rows) and rows[0] and rows[0][0].strip().lstrip("\ufeff") == HEADER
    addresses = []
    for number, row in enumerate(rows, start=1):
        if number == 1 and has_header:
            continue
        cell = row[0].strip() if row else ""
        if not cell:
            continue
        address = cell.lstrip("@")
        if len(address) > MAX_ADDRESS or not ADDRESS.match(address):
            raise ExportFileError(
                f"{path}: line {number}: {cell[:60]!r} is not an account address like "
                f"user@example.social (is this Mastodon's following_accounts.csv?)")
        addresses.append(address)
    if not addresses:
        raise ExportFileError(f"{path}: no account addresses in it")
    return addresses


def following_profiles(path: Path) -> list[Profile]:
    """The export as profiles known only by address (``acct:<address>``).

    The live source upgrades such a placeholder to the platform id when it first sees
    the person (``storage.repo.upsert_handle``), so they stay one contact.
    """
    return [
        Profile(platform="mastodon", external_id=f"acct:{address.lower()}", handle=address,
                name=address)
        for address in read_following(path)
    ]


def _text(path: Path) -> str:
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ExportFileError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MB, far more "
                                  "than any following_accounts.csv (is it the right file?)")
        return data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ExportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ExportFileError(f"{path}: is a folder; give the following_accounts.csv file "
                              f"inside it") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ExportFileError(f"{path}: line {line}: not UTF-8 text (is this the CSV "
                              f"export?)") from None
    except OSError as exc:
        raise ExportFileError(f"{path}: cannot read it ({exc.strerror})") from None
