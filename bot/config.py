"""One validated Settings object, read from the environment and ``.env``.

Every variable is documented in ``config.example.env``. Tokens are ``SecretStr``
so that they never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """Configuration that cannot work; the message says which variable to fix."""


class Settings(BaseSettings):
    # An empty `NAME=` (as in config.example.env) means "not set", not an invalid value.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_file_encoding="utf-8", env_ignore_empty=True
    )

    # storage
    database_url: str | None = Field(default=None, alias="DATABASE_URL")

    # the owner
    owner_ref: str = Field(default="local", alias="PLNBOT_OWNER")
    owner_name: str = Field(default="", alias="PLNBOT_OWNER_NAME")
    timezone: str = Field(default="UTC", alias="PLNBOT_TIMEZONE")
    owner_field: str = Field(default="education", alias="PLNBOT_OWNER_FIELD")
    owner_interests: str = Field(default="", alias="PLNBOT_OWNER_INTERESTS")

    # behaviour
    templates_dir: Path | None = Field(default=None, alias="PLNBOT_TEMPLATES_DIR")
    followup_days: int = Field(default=7, ge=1, le=365, alias="PLNBOT_FOLLOWUP_DAYS")
    draft_expiry_days: int = Field(default=14, ge=1, le=365, alias="PLNBOT_DRAFT_EXPIRY_DAYS")
    mass_drop_share: float = Field(default=0.05, gt=0, le=1, alias="PLNBOT_MASS_DROP_SHARE")
    mass_drop_min: int = Field(default=20, ge=1, alias="PLNBOT_MASS_DROP_MIN")
    vanished_give_up_days: int = Field(default=7, ge=1, alias="PLNBOT_VANISHED_GIVE_UP_DAYS")
    poll_minutes: int = Field(default=5, ge=1, le=1440, alias="PLNBOT_POLL_MINUTES")
    # fractional hours allowed (0.5 = every half hour); the peer tests use seconds' worth
    reconcile_hours: float = Field(default=24, gt=0, alias="PLNBOT_RECONCILE_HOURS")
    sweep_seconds: int = Field(default=30, ge=1, le=3600, alias="PLNBOT_SWEEP_SECONDS")
    # several workers on one database (``plnbot run --worker``)
    lease_seconds: int = Field(default=60, ge=1, le=3600, alias="PLNBOT_LEASE_SECONDS")
    worker_id: str | None = Field(default=None, max_length=100, alias="PLNBOT_WORKER_ID")
    data_dir: Path | None = Field(default=None, alias="PLNBOT_DATA_DIR")
    log_level: str = Field(default="WARNING", alias="PLNBOT_LOG_LEVEL")
    # credentials of accounts connected by chat are encrypted with this key (bot/vault.py);
    # after a change of key the old one(s), comma-separated, until `plnbot secrets rotate`
    secret_key: SecretStr | None = Field(default=None, alias="PLNBOT_SECRET_KEY")
    secret_key_old: SecretStr | None = Field(default=None, alias="PLNBOT_SECRET_KEY_OLD")

    # X / Twitter
    x_bearer_token: SecretStr | None = Field(default=None, alias="X_BEARER_TOKEN")
    x_user_access_token: SecretStr | None = Field(default=None, alias="X_USER_ACCESS_TOKEN")
    x_user_id: str | None = Field(default=None, alias="X_USER_ID")
    # the operator's X app, for owners who `connect x` (OAuth 2.0 with PKCE)
    x_client_id: str | None = Field(default=None, alias="X_CLIENT_ID")
    x_client_secret: SecretStr | None = Field(default=None, alias="X_CLIENT_SECRET")
    x_redirect_uri: str | None = Field(default=None, alias="X_REDIRECT_URI")

    # Mastodon
    mastodon_base_url: str | None = Field(default=None, alias="MASTODON_BASE_URL")
    mastodon_access_token: SecretStr | None = Field(default=None, alias="MASTODON_ACCESS_TOKEN")
    mastodon_streaming: bool = Field(default=False, alias="MASTODON_STREAMING")

    # Bluesky
    bluesky_handle: str | None = Field(default=None, alias="BLUESKY_HANDLE")
    bluesky_app_password: SecretStr | None = Field(default=None, alias="BLUESKY_APP_PASSWORD")
    bluesky_base_url: str | None = Field(default=None, alias="BLUESKY_BASE_URL")

    # Discord
    discord_token: SecretStr | None = Field(default=None, alias="DISCORD_TOKEN")
    discord_owner_id: int | None = Field(default=None, alias="DISCORD_OWNER_ID")
    discord_guild_id: int | None = Field(default=None, alias="DISCORD_GUILD_ID")
    discord_welcome_channel_id: int | None = Field(
        default=None, alias="DISCORD_WELCOME_CHANNEL_ID"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an Area/City name") from exc
        return value

    def data_path(self) -> Path:
        """Where plnbot keeps files (see ``data_path``)."""
        return data_path(self.data_dir)

    def secrets(self) -> list[str]:
        """Every secret value that is set, so logs and exports can be scrubbed of them: every
        ``SecretStr`` field, so a new platform's token is covered by being declared one."""
        values = [getattr(self, name) for name in type(self).model_fields]
        return [v.get_secret_value() for v in values
                if isinstance(v, SecretStr) and v.get_secret_value()]


def secret(value: SecretStr | None) -> str:
    """A secret setting's value, or "" when it is not set."""
    return value.get_secret_value() if value is not None else ""


def data_path(data_dir: Path | None) -> Path:
    """PLNBOT_DATA_DIR, else the user's data directory: the one place this is decided."""
    if data_dir:
        return Path(data_dir).expanduser()
    from platformdirs import user_data_path

    return user_data_path("plnbot", appauthor=False)


def load_settings(**overrides) -> Settings:
    """Read the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error.get("loc", ()))
            problems.append(f"{name}: {error.get('msg', 'invalid value')}")
        raise ConfigError(
            "invalid configuration: " + "; ".join(problems) + " (see config.example.env)"
        ) from None
