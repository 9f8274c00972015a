"""undo, link/yes/unlink, names with spaces, numbered choices, people, history, draft,
tag/untag, add, rename, edit/delete of log entries: through the chat dispatcher, on
SQLite and PostgreSQL."""

import pytest
from sqlmodel import Session, select

from tests.conftest import make_settings
from tests.support.chat import say
from tests.support.network import make_app, seed_network


@pytest.fixture
async def network(database_url, clock):
    app = await seed_network(make_app(make_settings(), database_url, clock))
    yield app
    app.engine.dispose()


def rows(app, model):
    with Session(app.engine) as session:
        return list(session.exec(select(model).order_by(model.id)))


async def test_smoke(network):
    for line in ["add Jo Whitfield jo@art.social — met at the gallery",
                 "log Jo Whitfield met at the gallery late opening",
                 "who jo", "history jo whitfield", "tag jo whitfield #artsed",
                 "people #artsed", "people", "people never", "undo", "undo", "jane",
                 "1", "link ravi amara smith", "yes", "unlink #4", "undo", "undo"]:
        for m in await say(network, line):
            print(">>", line, "\n", m.kind, m.text)
