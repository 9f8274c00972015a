"""Durable state: models, engine/migrations, queries and the contact search index."""

from storage import search  # noqa: F401  (registers the index's after-flush hook)
