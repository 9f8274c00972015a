"""Credentials at rest: every stored platform credential is a Fernet token.

Owners who connect accounts by chat (``connect …``) leave tokens and app passwords
with the bot; the database only ever holds them encrypted with ``PLNBOT_SECRET_KEY``
(``cryptography``'s Fernet: AES-128-CBC with an HMAC, so a wrong key is detected,
never silently misread). Rotation uses MultiFernet: put the new key in
``PLNBOT_SECRET_KEY``, the old one(s) in ``PLNBOT_SECRET_KEY_OLD`` (comma-separated),
run ``plnbot secrets rotate``, then drop ``PLNBOT_SECRET_KEY_OLD``.

Nothing here ever logs, prints or puts a key or a decrypted value in an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.config import ConfigError, Settings
from bot.logs import redact_also
from storage.models import Account, PlatformApp

KEY_HELP = "create one with `plnbot secrets new-key` and keep it safe (see README, Secrets)"
# Every table whose ``credentials`` column holds Fernet tokens.
ENCRYPTED_TABLES: tuple[type[Account] | type[PlatformApp], ...] = (Account, PlatformApp)


# the fields of stored credentials that are secrets (the rest: handles, server URLs)
SECRET_FIELDS = {"access_token", "refresh_token", "app_password", "client_secret", "verifier"}


class SecretKeyError(ConfigError):
    """PLNBOT_SECRET_KEY is missing, malformed or not the key the credentials were
    encrypted with; the message names it and says what to do."""


def new_key() -> str:
    """A fresh random key for PLNBOT_SECRET_KEY (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


def _fernet(value: str, name: str) -> Fernet:
    try:
        return Fernet(value.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SecretKeyError(f"{name} is not a valid key (32 url-safe base64-encoded "
                             f"bytes); {KEY_HELP}") from None


@dataclass(frozen=True)
class Vault:
    """Encrypts with the current key; decrypts with the current or any old key."""

    keys: MultiFernet

    def encrypt(self, data: dict[str, Any]) -> str:
        return self.keys.encrypt(json.dumps(data).encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> dict[str, Any]:
        """The stored credentials; their secret values are scrubbed from logs from now on."""
        try:
            value = json.loads(self.keys.decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError):
            raise SecretKeyError("PLNBOT_SECRET_KEY is not the key the stored credentials "
                                 "were encrypted with; set the right key (after a change of "
                                 "key, put the old one in PLNBOT_SECRET_KEY_OLD and run "
                                 "`plnbot secrets rotate`)") from None
        if not isinstance(value, dict):
            return {}
        redact_also(str(v) for k, v in value.items() if k in SECRET_FIELDS and v)
        return value

    def rotate(self, token: str) -> str:
        """The same credentials, encrypted under the current key."""
        try:
            return self.keys.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError("a stored credential cannot be read with PLNBOT_SECRET_KEY "
                                 "or PLNBOT_SECRET_KEY_OLD; give the key it was encrypted "
                                 "with in PLNBOT_SECRET_KEY_OLD") from None


def vault_from(settings: Settings) -> Vault | None:
    """The configured vault, or None when PLNBOT_SECRET_KEY is not set."""
    if settings.secret_key is None or not settings.secret_key.get_secret_value().strip():
        return None
    keys = [_fernet(settings.secret_key.get_secret_value(), "PLNBOT_SECRET_KEY")]
    old = settings.secret_key_old.get_secret_value() if settings.secret_key_old else ""
    keys += [_fernet(part, "PLNBOT_SECRET_KEY_OLD") for part in old.split(",") if part.strip()]
    return Vault(MultiFernet(keys))


def require_vault(settings: Settings) -> Vault:
    """The vault, or a SecretKeyError saying that storing credentials needs a key."""
    vault = vault_from(settings)
    if vault is None:
        raise SecretKeyError(f"PLNBOT_SECRET_KEY is not set, so credentials cannot be stored "
                             f"or read; {KEY_HELP}")
    return vault


def _stored_tokens(session: Session) -> Iterator[tuple[Any, int, str]]:
    for model in ENCRYPTED_TABLES:
        rows = session.execute(select(col(model.id), col(model.credentials))
                               .where(col(model.credentials).is_not(None)))
        for row_id, token in rows:
            yield model, row_id, token


def check_key(settings: Settings, engine: Engine) -> None:
    """At start: stored credentials need PLNBOT_SECRET_KEY, and the right one.

    One stored token is decrypted (a millisecond), so a wrong key stops the process
    with one clear line rather than failing every poll later."""
    with Session(engine) as session:
        first = next(_stored_tokens(session), None)
    if first is None:
        vault_from(settings)  # a malformed key is reported even before it is needed
        return
    require_vault(settings).decrypt(first[2])


def rotate_all(settings: Settings, engine: Engine) -> int:
    """Re-encrypt every stored credential under the current key, in one transaction
    (all or nothing); returns how many were re-encrypted."""
    vault = require_vault(settings)
    count = 0
    with Session(engine) as session:
        for model, row_id, token in list(_stored_tokens(session)):
            session.execute(update(model).where(col(model.id) == row_id)
                            .values(credentials=vault.rotate(token)))
            count += 1
        session.commit()
    return count
