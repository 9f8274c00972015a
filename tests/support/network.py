"""A small, realistic network to run commands against (real handlers, real database)."""

from __future__ import annotations

from bot.app import App, open_database
from tests.support.factories import arrival, bluesky_person, mastodon_person, x_person
from tests.support.fakes import FakeClock, FakeSurface

PEOPLE = (
    lambda: mastodon_person("Amara Okafor", acct="amara@mastodon.education",
                            note="Year 5 teacher in Leeds #edtech", id="101"),
    lambda: x_person("Ravi Patel", username="MrPatel_Maths", description="Head of Maths",
                     id="102"),
    lambda: bluesky_person("Zoë Ångström", handle="zoe.bsky.social",
                           description="Physics teacher in Malmö"),
    lambda: x_person("Amara Smith", username="asmith", description="School librarian",
                     id="104"),
    lambda: mastodon_person("Jane Doe", acct="jane@school.social", note="Deputy head",
                            id="105"),
    lambda: mastodon_person("Jane Doe-Smith", acct="jane@maths.social",
                            note="Maths coach", id="106"),
)


async def seed_network(app: App) -> App:
    """Everyone in PEOPLE connects once; their arrival messages are discarded."""
    for person in PEOPLE:
        await app.handle(arrival(person()))
    app.surface.pop()
    return app


def make_app(settings, url: str, clock: FakeClock | None = None) -> App:
    engine = open_database(settings, url)
    return App(settings=settings, engine=engine, surface=FakeSurface(),
               clock=clock or FakeClock())
