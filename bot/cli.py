"""The ``plnbot`` command line (see the README and CONTRACT for the interface).

Errors the user can fix (configuration, arguments, an unreadable file or database)
end with one line on stderr and exit code 2, never a traceback. Heavy imports are
done inside the commands so that start-up stays fast.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import click

from bot import __version__
from bot.errors import UserError

__all__ = ["UserError", "main"]

USER_ERROR_EXIT = 2


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every known user-fixable failure into one stderr line and exit code 2."""
    from bot.adapters.translate import SnapshotError
    from bot.config import ConfigError
    from storage.db import DatabaseError

    try:
        yield
    except (UserError, ConfigError, DatabaseError, SnapshotError) as exc:
        click.echo(f"plnbot: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT)
    except KeyboardInterrupt:
        click.echo("plnbot: interrupted", err=True)
        sys.exit(130)


def friendly(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args, **kwargs):
        with user_errors():
            return func(*args, **kwargs)

    return wrapper


class SnapshotPlatform(click.Choice):
    """The platforms whose follower lists ``sync --snapshot`` reads, from the platform
    registry when first needed (so ``plnbot --version`` loads no platform)."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property
    # click keeps the choices as a plain attribute; here they are read when first needed
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from bot import platforms

        return tuple(p.id for p in platforms.registry().values() if p.snapshot is not None)


db_option = click.option(
    "--db", "db_url", metavar="URL", default=None,
    help="SQLAlchemy database URL (overrides DATABASE_URL).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print chat messages as one JSON object per line."
)


def settings_and_logging():
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.secrets())
    return settings


def console_app(settings, db_url: str | None, *, as_json: bool, **app_kwargs):
    from bot.adapters.console import ConsoleSurface
    from bot.app import App, open_database

    engine = open_database(settings, db_url)
    return App(settings=settings, engine=engine, surface=ConsoleSurface(json_mode=as_json),
               **app_kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plnbot")
def main() -> None:
    """plnbot: grow and tend your professional learning network."""


@main.command()
@click.option("--fast", is_flag=True, help="Compress the simulated minute of arrivals.")
@json_option
@db_option
@friendly
def demo(fast: bool, as_json: bool, db_url: str | None) -> None:
    """Try the bot: simulated people connect and you answer as the owner."""
    from bot.demo import demo_senders, run_demo
    from storage.db import describe_url

    settings = settings_and_logging()
    url = db_url or fresh_demo_database(settings)
    click.echo(f"plnbot demo: database {describe_url(url)}", err=as_json)
    if sys.stdin.isatty() and not as_json:
        click.echo("People will start connecting in a moment. Type `help`; Ctrl-D ends.")
    app = console_app(settings, url, as_json=as_json, senders=demo_senders())
    asyncio.run(run_demo(app, fast=fast))


def fresh_demo_database(settings) -> str:
    """The demo runs on its own new SQLite file so demo people never mix with real ones."""
    path = settings.data_path() / "demo.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


@main.command()
@json_option
@db_option
@friendly
def console(as_json: bool, db_url: str | None) -> None:
    """Chat with the bot over stdin/stdout; first delivers anything that came due."""
    from bot.runner import configured_senders, run_console

    settings = settings_and_logging()
    app = console_app(settings, db_url, as_json=as_json, senders=configured_senders(settings))
    asyncio.run(run_console(app))


@main.command()
@click.option("--once", is_flag=True, help="Poll every source once, deliver what is due, exit.")
@click.option("--worker", is_flag=True,
              help="Serve every owner on the database, sharing the work with other workers "
                   "(PostgreSQL; see README, Scaling out).")
@json_option
@db_option
@friendly
def run(once: bool, worker: bool, as_json: bool, db_url: str | None) -> None:
    """Run the bot from configuration: every configured source and the chat surface."""
    from bot.runner import run_bot, run_worker

    settings = settings_and_logging()
    mode = run_worker if worker else run_bot
    asyncio.run(mode(settings, db_url, once=once, as_json=as_json))


@main.command()
@click.option(
    "--platform", required=True, type=SnapshotPlatform()
)
@click.option("--snapshot", "snapshot", required=True, metavar="FILE",
              help="The platform's own JSON list of your current followers/members.")
@click.option("--partial", is_flag=True, help="The list is incomplete: add, never remove.")
@json_option
@db_option
@friendly
def sync(platform: str, snapshot: str, partial: bool, as_json: bool, db_url: str | None) -> None:
    """Diff a follower/member list against what is stored, as a live sync would."""
    from bot.adapters.snapshot_file import load_snapshot_file
    from bot.events import SnapshotReceived

    settings = settings_and_logging()
    profiles = load_snapshot_file(platform, Path(snapshot))
    app = console_app(settings, db_url, as_json=as_json)
    event = SnapshotReceived(
        owner_ref=settings.owner_ref, platform=platform, profiles=profiles, complete=not partial
    )
    asyncio.run(import_and_report(app, event, what="sync"))


@main.group(name="import")
def import_group() -> None:
    """Import your network from a platform's data export."""


@import_group.command("x-archive")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@db_option
@friendly
def x_archive(path: Path, as_json: bool, db_url: str | None) -> None:
    """Import followers and following from your X data archive (the zip or its folder).

    Everyone in it is already part of your network, so nobody gets a welcome draft;
    importing the same archive again changes nothing. Works without X API access.
    """
    from bot.adapters.x_archive import ArchiveError, check_owner_account, read_archive
    from storage.db import session_scope

    settings = settings_and_logging()
    try:
        archive = read_archive(path)
        app = console_app(settings, db_url, as_json=as_json)
        with session_scope(app.engine) as session:
            check_owner_account(session, owner_ref=settings.owner_ref, archive=archive)
    except ArchiveError as exc:
        raise UserError(str(exc)) from None
    asyncio.run(import_and_report(app, archive.event(settings.owner_ref)))


@import_group.command("mastodon-csv")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@db_option
@friendly
def mastodon_csv(path: Path, as_json: bool, db_url: str | None) -> None:
    """Import the accounts you follow from Mastodon's following_accounts.csv.

    Both the export with the header "Account address,Show boosts,…" and the older one
    with one address per line work. Nobody gets a welcome draft (you chose to follow
    them); importing the same file again changes nothing.
    """
    from bot.adapters.mastodon_csv import ExportFileError, following_profiles
    from bot.events import NetworkImported

    settings = settings_and_logging()
    try:
        following = following_profiles(path)
    except ExportFileError as exc:
        raise UserError(str(exc)) from None
    app = console_app(settings, db_url, as_json=as_json)
    event = NetworkImported(owner_ref=settings.owner_ref, platform="mastodon", followers=[],
                            following=following, source=path.name)
    asyncio.run(import_and_report(app, event))


async def import_and_report(app, event, what: str = "import") -> None:
    """Dispatch an import or sync; the dispatcher logs failures, so say plainly that it
    failed (and exit non-zero: a failed command never looks like a success)."""
    if not await app.dispatcher.dispatch(event):
        await app.flush()
        raise UserError(f"the {what} failed and nothing was changed (the log above says why)")
    await app.flush()


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True,
              help="json: one JSON document (re-importable with `plnbot import json`); "
                   "csv: a .zip with owner.csv plus one CSV per table.")
@click.option("--out", metavar="FILE", default=None,
              help="Where to write. JSON defaults to stdout; CSV defaults to "
                   "plnbot-export.zip in the current folder.")
@db_option
@friendly
def export(fmt: str, out: str | None, db_url: str | None) -> None:
    """Export everything you have: contacts, handles, history, reminders, drafts.

    Never includes tokens or passwords (they live only in your environment).
    """
    from handlers import backlog
    from handlers.commands.export import write_export
    from storage import transfer

    settings = settings_and_logging()
    with owner_session(settings, db_url) as (session, owner, now):
        backlog.catch_up(session, owner_id=owner.id)  # profiles a first sync left to read
        data = transfer.export_data(session, owner=owner, now=now)
    if fmt == "json" and out in (None, "-"):
        click.echo(transfer.to_json(data), nl=False)
        return
    path = Path(out or "plnbot-export.zip")
    try:
        write_export(data, fmt, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    numbers = transfer.counts(data)
    click.echo(f"plnbot: exported {numbers['contacts']} contacts to {path}", err=True)


@import_group.command(name="json")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@friendly
def import_json(path: Path, db_url: str | None) -> None:
    """Load a `plnbot export` JSON file into an empty database (restore or move)."""
    from storage import transfer

    settings = settings_and_logging()
    try:
        data = transfer.load_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    except transfer.TransferError as exc:
        raise UserError(f"cannot import {path}: {exc}") from exc
    check_owner_settings(path, data)
    try:
        with owner_session(settings, db_url) as (session, owner, _now):
            numbers = transfer.import_data(session, owner=owner, data=data)
    except transfer.TransferError as exc:
        raise UserError(f"cannot import {path}: {exc}; nothing was imported") from exc
    summary = ", ".join(f"{count} {name}" for name, count in numbers.items() if count)
    click.echo(f"plnbot: imported {summary or 'nothing (the export was empty)'}", err=True)


def check_owner_settings(path: Path, data: dict) -> None:
    """The export's settings pass the ``settings`` command's own rules, before any write."""
    from handlers.commands import CommandError
    from handlers.commands.settings import check_exported

    try:
        check_exported(data.get("owner"))
    except CommandError as exc:
        raise UserError(f"cannot import {path}: owner settings: {exc}; nothing was "
                        "imported") from exc


@contextmanager
def owner_session(settings, db_url: str | None):
    """One transaction on the configured database, with the owner row."""
    from bot.app import open_database
    from bot.context import utcnow
    from storage import repo
    from storage.db import session_scope

    engine = open_database(settings, db_url)
    now = utcnow()
    try:
        with session_scope(engine) as session:
            owner = repo.get_or_create_owner(
                session, external_ref=settings.owner_ref, settings=settings, now=now
            )
            yield session, owner, now
    finally:
        engine.dispose()


@main.group()
def owner() -> None:
    """Enrol the people a shared bot serves (run --worker; see README, Scaling out)."""


@owner.command("add")
@click.argument("address", metavar="discord:<USER ID>")
@click.option("--name", default="", help="How the bot addresses them (default: empty).")
@click.option("--tz", "zone", default=None, metavar="Area/City",
              help="Their time zone (default: PLNBOT_TIMEZONE, else UTC).")
@db_option
@friendly
def owner_add(address: str, name: str, zone: str | None, db_url: str | None) -> None:
    """Enrol an owner: the bot answers their Discord DMs and DMs them their messages.

    Adding someone who is already enrolled changes nothing and says so.
    """
    from bot.owners import EnrolmentError, add_owner

    settings = settings_and_logging()
    try:
        with operator_session(settings, db_url) as (session, now):
            row, created = add_owner(session, external_ref=address, name=name,
                                     tz=zone or settings.timezone, now=now)
            ref = row.external_ref
    except EnrolmentError as exc:
        raise UserError(str(exc)) from None
    if created:
        click.echo(f"plnbot: enrolled {ref}; they can now DM the bot (try `help`)")
    else:
        click.echo(f"plnbot: {ref} is already enrolled; nothing changed")


@owner.command("list")
@db_option
@friendly
def owner_list(db_url: str | None) -> None:
    """Every owner on the database: address, name, time zone, number of contacts."""
    from bot.owners import list_owners

    settings = settings_and_logging()
    with operator_session(settings, db_url) as (session, _now):
        owners = list_owners(session)
    if not owners:
        click.echo("plnbot: no owners yet; enrol one with `plnbot owner add discord:<user id>`",
                   err=True)
        return
    click.echo("\t".join(("owner", "name", "tz", "contacts")))
    for row in owners:
        click.echo("\t".join((row.external_ref, row.name or "-", row.tz, str(row.contacts))))


@contextmanager
def operator_session(settings, db_url: str | None):
    """One transaction on the configured database, without creating PLNBOT_OWNER."""
    from bot.app import open_database
    from bot.context import utcnow
    from storage.db import session_scope

    engine = open_database(settings, db_url)
    try:
        with session_scope(engine) as session:
            yield session, utcnow()
    finally:
        engine.dispose()


@main.group()
def secrets() -> None:
    """The key that encrypts connected accounts' credentials (PLNBOT_SECRET_KEY)."""


@secrets.command("new-key")
@db_option
def secrets_new_key(db_url: str | None) -> None:
    """Print a fresh key for PLNBOT_SECRET_KEY (nothing is stored or changed; the
    database is not opened, ``--db`` is accepted like everywhere and ignored)."""
    from bot.vault import new_key

    click.echo(new_key())


@secrets.command("rotate")
@db_option
@friendly
def secrets_rotate(db_url: str | None) -> None:
    """Re-encrypt every stored credential under the key in PLNBOT_SECRET_KEY.

    Put the new key in PLNBOT_SECRET_KEY and the old one in PLNBOT_SECRET_KEY_OLD
    (comma-separated if several), run this, then remove PLNBOT_SECRET_KEY_OLD.
    """
    from bot.app import open_database
    from bot.vault import rotate_all

    settings = settings_and_logging()
    engine = open_database(settings, db_url)
    try:
        count = rotate_all(settings, engine)
    finally:
        engine.dispose()
    click.echo(f"plnbot: re-encrypted {count} stored credential{'s' * (count != 1)} "
               "under PLNBOT_SECRET_KEY; PLNBOT_SECRET_KEY_OLD is no longer needed", err=True)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@db_option
@friendly
def upgrade(db_url: str | None) -> None:
    """Apply database migrations (the bot also does this on start)."""
    from bot.app import open_database
    from storage.db import current_revision, describe_url

    settings = settings_and_logging()
    engine = open_database(settings, db_url)
    click.echo(f"{describe_url(str(engine.url))} is at revision {current_revision(engine)}.")


if __name__ == "__main__":  # pragma: no cover
    main()
