"""A digest's chart travels with its message: a worker on another machine (another data
folder, the maker's folder gone) delivers the digest with the same chart."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.app import App, open_database
from tests.conftest import make_settings
from tests.support.factories import command
from tests.support.fakes import FakeClock, FakeSurface


def machine(db_url: str, folder: Path, clock: FakeClock) -> App:
    settings = make_settings(PLNBOT_DATA_DIR=str(folder))
    return App(settings=settings, engine=open_database(settings, db_url), surface=FakeSurface(),
               clock=clock)


async def test_a_digest_made_on_one_machine_is_delivered_with_its_chart_by_another(
        tmp_path, database_url):
    clock = FakeClock()
    maker = machine(database_url, tmp_path / "machine-a", clock)
    maker.surface.fail_next = 1  # machine A makes the digest but cannot deliver it
    await maker.handle(command("digest"))
    assert maker.surface.pop() == []
    shutil.rmtree(tmp_path / "machine-a", ignore_errors=True)

    clock.advance(minutes=5)  # past the retry pause
    deliverer = machine(database_url, tmp_path / "machine-b", clock)
    assert await deliverer.flush() == 1
    (digest,) = deliverer.surface.pop()
    image = Path(digest.fields["image"])
    assert image.is_relative_to(tmp_path / "machine-b") and image.is_file()
    assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not (tmp_path / "machine-a").exists()
