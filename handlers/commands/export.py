"""Chat commands: export (see handlers/commands/__init__.py for the registry)."""
