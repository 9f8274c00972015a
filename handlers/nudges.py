"""Event handlers: nudges."""
