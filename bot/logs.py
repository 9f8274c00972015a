"""Logging to stderr, with every configured secret scrubbed from every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "***"
_FILTERS: list[RedactSecrets] = []


class RedactSecrets(logging.Filter):
    """Replace secret values in a record's final message (args included)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]
        _FILTERS.append(self)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.extend(s for s in secrets if len(s) >= 4 and s not in self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def redact_also(secrets: Iterable[str]) -> None:
    """Scrub these values too from now on: credentials read from the database (accounts
    connected by chat), which the settings' list cannot know in advance."""
    values = list(secrets)
    for redactor in _FILTERS:
        redactor.add(values)


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    _FILTERS[:] = [f for f in _FILTERS if f in handler.filters]  # replaced handlers' go
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
