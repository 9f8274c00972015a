"""Query functions shared by every handler, on SQLite and PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlmodel import Session, select

from storage import repo
from storage.db import make_engine, upgrade
from storage.models import Owner
from tests.conftest import make_settings


def test_a_new_owner_met_by_several_workers_at_once_is_created_once(database_url):
    engine = make_engine(database_url)
    upgrade(engine)

    def meet(_):
        with Session(engine) as session:
            owner = repo.get_or_create_owner(session, external_ref="amara",
                                             settings=make_settings(), now=datetime.now(UTC))
            session.commit()
            return owner.id

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(meet, range(12)))
    with Session(engine) as session:
        assert len(session.exec(select(Owner)).all()) == 1
    assert len(ids) == 1
    engine.dispose()
