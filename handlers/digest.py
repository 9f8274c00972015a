"""Event handlers: digest."""
