"""The weekly digest: its schedule in the owner's zone, catch-up, content and chart."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from bot.events import SnapshotReceived
from tests.support.chat import say_one
from tests.support.factories import arrival, mastodon_person
from tests.support.owner import set_owner

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def digests(surface) -> list:
    return [m for m in surface.pop() if m.kind == "digest"]


def assert_real_png(path: str) -> None:
    data = Path(path).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 600)


async def test_digest_arrives_on_its_day_once(app, clock, surface):
    await app.sweep()  # the owner was created at Monday 09:00: no digest for that week
    assert digests(surface) == []
    clock.now = datetime(2026, 11, 9, 8, 59, tzinfo=UTC)
    await app.sweep()
    assert digests(surface) == []
    clock.now = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    await app.sweep()
    [digest] = digests(surface)
    assert_real_png(digest.fields["image"])
    clock.advance(hours=1)
    await app.sweep()
    assert digests(surface) == []


async def test_digest_after_downtime_is_caught_up_once(app, clock, surface):
    clock.now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # three digest days missed
    await app.sweep()
    assert len(digests(surface)) == 1
    await app.sweep()
    assert digests(surface) == []


async def by_the_model(app) -> None:
    set_owner(app, tz="Asia/Tokyo", digest_weekday=4, digest_time="18:00")


async def by_the_settings_command(app) -> None:
    await say_one(app, "settings tz Asia/Tokyo digest friday 18:00")
    app.surface.pop()


@pytest.mark.parametrize("choose", [by_the_model, by_the_settings_command])
async def test_digest_day_and_time_are_in_the_owners_zone(app, clock, surface, choose):
    await choose(app)
    clock.now = datetime(2026, 11, 6, 8, 59, tzinfo=UTC)  # Fri 17:59 in Tokyo
    await app.sweep()
    assert digests(surface) == []
    clock.now = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
    await app.sweep()
    assert len(digests(surface)) == 1


async def test_digest_content(app, clock, surface):
    baseline = [mastodon_person(name, acct=f"{name.split()[0].lower()}@school.social",
                                note=note)
                for name, note in (("Olu Ade", "Teacher"), ("Pat Kim", "Nurse at the clinic"))]
    await app.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                      profiles=baseline))
    newcomers = [mastodon_person("Amara Okafor", acct="amara@school.social",
                                 note="Year 5 teacher"),
                 mastodon_person("Sam Lee", acct="sam@dev.social", note="Software engineer")]
    for person in newcomers:
        await app.handle(arrival(person))
    surface.pop()
    await say_one(app, "log amara talked about reading corners")
    await say_one(app, "goal conversations 1 per week")
    await say_one(app, "cadence olu every 3 days")
    clock.advance(days=2)
    await app.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                      profiles=[baseline[1], *newcomers]))
    clock.advance(days=4)  # Sunday: everything above is inside the last seven days
    surface.pop()
    digest = await say_one(app, "digest")
    assert digest.kind == "digest"
    fields, text = digest.fields, digest.text
    assert fields["new_connections"] == 2 and "Amara Okafor" in text and "Sam Lee" in text
    assert fields["conversations"] == 1 and "Conversations logged: 1" in text
    assert fields["goals"][0]["streak"] == 1 and "streak 1 week" in text
    assert fields["field_mix"]["education"] >= 2
    assert "Field mix of your 4 contacts" in text
    assert fields["lost"] == 1 and "Lost: 1\n    Olu Ade (@olu@school.social" in text
    assert fields["due"] and "Due for a conversation: Olu Ade" in text
    assert fields["drafts_pending"] == 2 and "2 waiting" in text
    assert_real_png(fields["image"])
    again = await say_one(app, "digest")
    assert again.fields["lost"] == 0 and "Olu Ade" not in again.text.split("Due for")[0]


async def test_digest_without_a_writable_folder_still_arrives(app, surface, settings,
                                                              tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    settings.data_dir = blocker
    digest = await say_one(app, "digest")
    assert digest.kind == "digest" and "image" not in digest.fields


async def test_stats(app, surface):
    await app.handle(arrival(mastodon_person("Amara Okafor", acct="amara@school.social")))
    surface.pop()
    await say_one(app, "log amara hello")
    reply = await say_one(app, "stats")
    facts = reply.fields["stats"]
    assert facts["contacts"] == 1 and facts["connections"] == 1
    assert facts["conversations"] == 1 and facts["drafts"] == 1
    assert "1 on mastodon" in reply.text


def chart_of(app, now: datetime):
    """The digest chart's figure, rebuilt from the database as ``digest`` drew it."""
    from sqlmodel import Session

    from handlers.digest import chart_figure, chart_series
    from storage.models import Owner

    with Session(app.engine) as session:
        series = chart_series(session, owner=session.get(Owner, app.owner_id), now=now)
    return series, chart_figure(series)


async def test_the_chart_shows_gained_and_lost_on_whole_number_scales_in_the_texts_weeks(
        app, clock, surface):
    """Issue 18, item 8: small multiples (no second y axis with another scale), integer
    ticks, gains and losses per week, and week labels that are the text's own dates."""
    people = [mastodon_person(f"Person {n}", acct=f"p{n}@school.social") for n in range(3)]
    await app.handle(SnapshotReceived(owner_ref="local", platform="mastodon", profiles=[]))
    for person in people:
        await app.handle(arrival(person))
    clock.advance(days=8)  # the three came in the week before last
    await app.handle(SnapshotReceived(owner_ref="local", platform="mastodon",
                                      profiles=people[:2]))
    clock.advance(days=1)  # one left in the digest's week
    surface.pop()
    digest = await say_one(app, "digest")
    assert_real_png(digest.fields["image"])
    series, figure = chart_of(app, clock.now)
    size, change, talks = figure.axes  # three panels, each with its own y axis
    assert series.gained[-2:] == [3, 0] and series.lost[-2:] == [0, 1]
    assert series.network[-2:] == [3, 2]
    for axes in figure.axes:
        ticks = [t for t in axes.get_yticks() if axes.get_ylim()[0] <= t <= axes.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (axes.get_title(), ticks)
        assert axes.get_ylim()[0] >= 0 or axes is change  # no -0.04 under a count
    # the text's week ("Sun 08 Nov – Sun 15 Nov" style) is the chart's last week
    first_line = digest.text.splitlines()[0]
    start_day, end_day = (int(part.split()[1]) for part in
                          first_line.split("(")[1].rstrip("):").split(" – "))
    assert talks.get_xticklabels()[-1].get_text().startswith(f"{start_day}–{end_day} ")
    heights = [bar.get_height() for bar in change.patches]
    weeks = len(series.labels)
    assert heights[:weeks][-2:] == [3, 0] and heights[weeks:][-1] == -1  # gained up, lost down


async def test_a_new_network_gets_a_chart_that_says_there_is_nothing_yet(app, surface):
    digest = await say_one(app, "digest")
    assert_real_png(digest.fields["image"])
    series, figure = chart_of(app, app.clock())
    assert series.empty and figure.axes == []
    assert any("Nothing to chart yet" in text.get_text() for text in figure.texts)
