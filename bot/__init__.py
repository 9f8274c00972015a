"""plnbot runtime: configuration, events, dispatcher, outbox, adapters and the CLI."""

__version__ = "0.1.0"
