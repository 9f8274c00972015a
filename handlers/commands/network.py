"""Chat commands: network (see handlers/commands/__init__.py for the registry)."""
