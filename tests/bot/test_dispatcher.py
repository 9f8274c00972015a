"""A command delivered twice with one message id (a DM caught up after a restart or a
gateway hand-over) changes things once and is answered once."""

from sqlmodel import Session, select

from storage.models import OutboxMessage, Reminder
from tests.support.factories import command


def rows(app, model) -> list:
    with Session(app.engine) as session:
        return list(session.exec(select(model)))


async def test_a_command_read_twice_runs_once(app, surface):
    for _ in range(2):
        await app.handle(command("remind me tomorrow water the plants", message_id="discord:7"))
    assert len(rows(app, Reminder)) == 1
    assert surface.kinds() == ["reply"]


async def test_message_ids_are_matched_whole_not_by_prefix(app, surface):
    await app.handle(command("remind me tomorrow water the plants", message_id="discord:7"))
    await app.handle(command("remind me tomorrow feed the fish", message_id="discord:70"))
    await app.handle(command("remind me tomorrow walk the dog", message_id="discord:_"))
    assert len(rows(app, Reminder)) == 3


async def test_commands_without_a_message_id_always_run(app, surface):
    for _ in range(2):
        await app.handle(command("remind me tomorrow water the plants"))
    assert len(rows(app, Reminder)) == 2
    assert len(rows(app, OutboxMessage)) == 2
