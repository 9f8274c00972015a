"""Chat commands: reminders (see handlers/commands/__init__.py for the registry)."""
