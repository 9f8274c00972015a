"""Chat commands: settings (see handlers/commands/__init__.py for the registry)."""
