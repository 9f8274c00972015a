"""``export``: everything you have, as a file you keep (same data as ``plnbot export``)."""

from __future__ import annotations

from pathlib import Path

from bot.context import Context
from handlers.commands import CommandError, command
from storage import transfer

USAGE = "export [json|csv]"


def exports_dir(settings) -> Path:
    """``PLNBOT_DATA_DIR``/exports, else the user's data directory (platformdirs)."""
    return settings.data_path() / "exports"


def write_export(data: dict, fmt: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path.write_text(transfer.to_json(data), encoding="utf-8")
    else:
        path.write_bytes(transfer.to_csv_zip(data))


@command("export", USAGE, group="data")
async def export(args: str, ctx: Context) -> None:
    """Save everything you have to a file: contacts, handles, history, reminders, drafts.

    `export` writes JSON (which `plnbot import json FILE` reads back); `export csv`
    writes a .zip holding one CSV file per table, for spreadsheets. The same data as
    `plnbot export` on the command line; tokens and passwords are never included.
    """
    fmt = args.strip().lower() or "json"
    if fmt not in ("json", "csv"):
        word = args.split()[0][:40]
        raise CommandError(f"I can export json or csv, not {word!r}.")
    data = transfer.export_data(ctx.session, owner=ctx.owner, now=ctx.now())
    suffix = "json" if fmt == "json" else "zip"
    path = exports_dir(ctx.settings) / f"plnbot-export-{ctx.now():%Y%m%d-%H%M%S}.{suffix}"
    try:
        write_export(data, fmt, path)
    except OSError as exc:
        raise CommandError(f"I could not write {path}: {exc.strerror or exc}. "
                           "Set PLNBOT_DATA_DIR to a folder I can write to.") from exc
    numbers = transfer.counts(data)
    ctx.send("reply",
             f"Exported {numbers['contacts']} contacts, {numbers['interactions']} logged "
             f"conversations and notes, {numbers['reminders']} reminders and "
             f"{numbers['drafts']} drafts to {path}",
             path=str(path), format=fmt, counts=numbers)
