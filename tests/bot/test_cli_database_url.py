"""A mistyped DATABASE_URL is one line, exit 2, and never shows the password."""

from __future__ import annotations

import pytest

from tests.support.cli import run_plnbot


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://sam:hunter2secret@db.example:abc/plnbot",  # non-numeric port
    "postgresql+psycopg://sam:hunter2secret@[::1/plnbot",  # broken IPv6 host
    "postgres//sam:hunter2secret@db.example/plnbot",  # no "://"
    "postgresql://sam:p@ss:hunter2secret@db.example:x/plnbot",  # "@" and ":" in the password
])
def test_a_malformed_url_is_one_line_with_the_password_masked(url):
    result = run_plnbot("db", "upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "is not a valid SQLAlchemy URL" in result.stderr
    assert "hunter2secret" not in result.stderr and "***" in result.stderr
