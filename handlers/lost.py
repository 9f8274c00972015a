"""Event handlers: lost."""
