"""The vault: what it decrypts is scrubbed from every log line from then on."""

import logging

from cryptography.fernet import Fernet

from bot.config import Settings
from bot.logs import setup_logging
from bot.vault import vault_from


def test_decrypted_credentials_never_reach_the_log(capsys):
    setup_logging("INFO", [])
    vault = vault_from(Settings(_env_file=None, PLNBOT_SECRET_KEY=Fernet.generate_key().decode()))
    stored = vault.encrypt({"access_token": "tok-1234567890", "handle": "ada@school.social"})
    credentials = vault.decrypt(stored)
    logging.getLogger("plnbot.test").warning("calling with %s for %s",
                                             credentials["access_token"], credentials["handle"])
    logged = capsys.readouterr().err
    assert "tok-1234567890" not in logged and "calling with *** for ada@school.social" in logged
