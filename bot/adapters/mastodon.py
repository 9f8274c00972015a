"""mastodon connection source."""

from __future__ import annotations


def build_source(settings):
    """The mastodon source when it is configured, else None."""
    return None
