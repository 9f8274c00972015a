"""Event handlers: reminders."""
