"""bluesky connection source."""

from __future__ import annotations


def build_source(settings):
    """The bluesky source when it is configured, else None."""
    return None
