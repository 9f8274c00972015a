"""Owners who connect accounts by chat, on one database and one chat surface: what the
connected-account tests share (``tests/bot/conftest.py`` gives them as ``world``)."""

from __future__ import annotations

from cryptography.fernet import Fernet

from bot.app import App

# one key for the whole run: the accounts' credentials are encrypted with it
KEY = Fernet.generate_key().decode()


def owner_app(world, ref: str) -> App:
    """The app as owner ``ref`` meets it: the world's clock, settings, database and chat."""
    clock, settings, engine, surface = world
    return App(settings=settings.model_copy(update={"owner_ref": ref}), engine=engine,
               surface=surface, clock=clock)
