"""Owners are isolated: every chat command, as owner B, against owner A's ids.

A also has two Bluesky accounts connected by chat and a Mastodon connection waiting for
its code: B can never see, use, poll or disconnect them, by platform or by name (its
rows, credentials included, are in the fingerprint every example compares).

For B, A's draft ids, reminder ids, ``#contact`` ids, handles, names and tags must be
indistinguishable from ids that exist nowhere: B's reply to ``<command> <A's ref>`` is
the reply to ``<command> <a ref nobody has>`` (numbers aside), it never shows A's
data, and A's rows are unchanged. The command list comes from the registry, so a new
command is covered the moment it is registered.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, SQLModel, select

from bot.app import App, open_database
from bot.events import SnapshotReceived, SourceChecked
from handlers.commands import unique_specs
from storage.models import Account, Contact, Draft, Handle, Reminder
from tests.conftest import make_settings
from tests.support.factories import arrival, command, mastodon_person, x_person
from tests.support.fake_bluesky import HANDLE as BLUESKY_HANDLE
from tests.support.fake_bluesky import PASSWORD as BLUESKY_PASSWORD
from tests.support.fake_bluesky import RunningBluesky
from tests.support.fake_mastodon import RunningMastodon
from tests.support.fakes import FakeClock, FakeSurface

SECOND_BLUESKY = "alice.school.example"  # A's second Bluesky account
SECRETS = ("Okafor", "Marlowe", "secret-plan", "amara_teach", BLUESKY_HANDLE, "teacher.bsky",
           SECOND_BLUESKY)
KEY = Fernet.generate_key().decode()


@dataclass
class World:
    alice: App
    bob: App
    refs: list[tuple[str, str]]  # (A's reference, one of the same shape that nobody has)
    code: str  # approved for A's waiting Mastodon connection, not pasted yet


async def build_world(db_url: str) -> World:
    clock = FakeClock()

    def app_for(owner: str) -> App:
        return App(settings=make_settings(PLNBOT_OWNER=owner, PLNBOT_SECRET_KEY=KEY),
                   engine=open_database(make_settings(), db_url), surface=FakeSurface(),
                   clock=clock)

    alice, bob = app_for("alice"), app_for("bob")
    for person in (x_person("Amara Okafor", username="amara_teach"),
                   mastodon_person("Jo Marlowe", acct="jo@marlowe.example")):
        await alice.handle(arrival(person, owner_ref="alice"))
    for line in ("note amara secret-plan #robotics", "remind amara tomorrow secret-plan",
                 "cadence #robotics every 2 weeks", "log jo@marlowe.example secret-plan"):
        await alice.handle(command(line, owner_ref="alice"))
    await bob.handle(arrival(x_person("Quentin Blake", username="qb"), owner_ref="bob"))
    code = await connect_alices_accounts(alice)
    alice.surface.pop(), bob.surface.pop()
    return World(alice, bob, references(alice), code)


async def connect_alices_accounts(alice: App) -> str:
    """A's two Bluesky accounts, connected; a Mastodon one waiting for the code this
    returns (approved on the instance, not pasted yet)."""
    with RunningBluesky() as sky, RunningBluesky() as school, RunningMastodon() as masto:
        school.handle, school.did = SECOND_BLUESKY, "did:plc:alice0school0000000000001"
        for server in (sky, school):
            await alice.handle(command(f"connect bluesky {server.handle} {BLUESKY_PASSWORD} "
                                       f"{server.url}", owner_ref="alice"))
        await alice.handle(command(f"connect mastodon {masto.url}", owner_ref="alice"))
        (client_id,) = masto.apps
        return masto.authorize(client_id)


def references(alice: App) -> list[tuple[str, str]]:
    with Session(alice.engine) as session:
        contact = session.exec(select(Contact).where(Contact.owner_id == alice.owner_id)).first()
        draft = session.exec(select(Draft).where(Draft.owner_id == alice.owner_id)).first()
        reminder = session.exec(select(Reminder).where(Reminder.owner_id == alice.owner_id)
                                ).first()
        handle = session.exec(select(Handle).where(Handle.owner_id == alice.owner_id)).first()
    # Numbers nobody has, of a size every command accepts (`lost 1` and `lost 9999`
    # differ for reasons that have nothing to do with owners); B creates far fewer rows.
    spare = 500
    return [(f"#{contact.id}", f"#{spare}"), (str(draft.id), str(spare + 1)),
            (f"#{draft.id}", f"#{spare + 1}"), (str(reminder.id), str(spare + 2)),
            (f"@{handle.handle}", "@nobody_here"),
            ("jo@marlowe.example", "no@where.example"), ("Okafor", "Zzyzx"),
            ("#robotics", "#knitting"), (SECOND_BLUESKY, "nobody.school.example")]


def alice_rows(alice: App) -> str:
    """A fingerprint of every row owner A has, in every table."""
    digest = hashlib.sha256()
    with Session(alice.engine) as session:
        for table in SQLModel.metadata.sorted_tables:
            if "owner_id" in table.c:
                for row in session.execute(select(table).where(
                        table.c.owner_id == alice.owner_id).order_by(*table.primary_key)):
                    digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('tenancy') / 'plnbot.sqlite3'}"
    return asyncio.run(build_world(db_url))


def without(text: str, ref: str) -> str:
    """The reply with the reference the owner typed taken out (it may be echoed back)."""
    return re.sub(re.escape(ref), "<ref>", text, flags=re.IGNORECASE)


def normalised(replies, ref: str) -> list[tuple[str, str]]:
    """Kinds and texts with the echoed reference and every number (ids, counts) blanked;
    a numeric reference is blanked with the other numbers."""
    def blank(text: str) -> str:
        text = text if re.search(r"\d", ref) else without(text, ref)
        text = re.sub(r"'[^'\n]*'", "'…'", text)  # echoed input, possibly cut to a length
        return re.sub(r"\d+", "N", text)
    return [(m.kind, blank(m.text)) for m in replies]


async def said_by_bob(world: World, line: str):
    await world.bob.handle(command(line, owner_ref="bob"))
    replies = world.bob.surface.pop()
    assert len(replies) == 1, (line, [m.text for m in replies])
    return replies


def as_bob(world: World, line: str):
    return asyncio.run(said_by_bob(world, line))


SUFFIXES = ("", " tomorrow", " hello there", " every 2 weeks", " 3 per week")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.sampled_from(unique_specs()), pair=st.integers(0, 8),
       suffix=st.sampled_from(SUFFIXES))
def test_owner_b_cannot_reach_owner_a(world, spec, pair, suffix):
    theirs, nobodys = world.refs[pair]
    before = alice_rows(world.alice)
    replies = as_bob(world, f"{spec.name} {theirs}{suffix}")
    baseline = as_bob(world, f"{spec.name} {nobodys}{suffix}")
    assert normalised(replies, theirs) == normalised(baseline, nobodys)
    shown = without(" ".join(f"{m.text} {m.fields}" for m in replies), theirs).lower()
    assert not [secret for secret in SECRETS if secret.lower() in shown]
    assert alice_rows(world.alice) == before


def test_every_command_is_in_the_property(world):
    """The registry drives the property above; it must hold real commands."""
    names = {spec.name for spec in unique_specs()}
    assert {"who", "skip", "done", "cancel", "snooze"} <= names


async def test_as_owner_b_a_ids_are_not_found(world):
    contact_ref, draft_ref, reminder_ref = world.refs[0][0], world.refs[1][0], world.refs[3][0]
    for line in (f"who {contact_ref}", f"skip {draft_ref}", f"done {reminder_ref}",
                 f"cancel {reminder_ref}", f"snooze {reminder_ref} tomorrow", "who amara"):
        [reply] = await said_by_bob(world, line)
        assert reply.kind == "error", (line, reply.text)


async def test_as_owner_b_a_accounts_are_invisible_and_untouchable(world):
    before = alice_rows(world.alice)
    [listed] = await said_by_bob(world, "accounts")
    assert "No accounts connected yet" in listed.text and listed.fields["accounts"] == []
    for line in ("disconnect bluesky", "disconnect mastodon",
                 f"disconnect bluesky {BLUESKY_HANDLE}", f"disconnect bluesky {SECOND_BLUESKY}",
                 f"disconnect bluesky @{SECOND_BLUESKY}"):
        [reply] = await said_by_bob(world, line)
        assert reply.kind == "error" and "connected by chat" in reply.text, line
        assert SECOND_BLUESKY not in reply.text.replace(line, "")
    # A's approved code, pasted by B, connects nothing (for B it is no command at all)
    [pasted] = await said_by_bob(world, world.code)
    assert pasted.kind == "error" and "I don't know the command" in pasted.text
    assert alice_rows(world.alice) == before
    with Session(world.alice.engine) as session:
        bobs = session.exec(select(Account).where(Account.owner_id == world.bob.owner_id))
        assert [a.platform for a in bobs if a.credentials or a.connected_at] == []


async def test_a_accounts_are_listed_for_a(world):
    [listed] = await said_as(world.alice, "alice", "accounts")
    assert BLUESKY_HANDLE in listed.text and "waiting for the code" in listed.text
    assert SECOND_BLUESKY in listed.text


async def test_an_event_naming_a_account_is_never_applied_to_it_for_b(world):
    """However an event for B names one of A's accounts (a bug in a source, a forged
    id), it reaches only B's own: A's rows stay as they were."""
    before = alice_rows(world.alice)
    with Session(world.alice.engine) as session:
        alices = session.exec(select(Account.id).where(
            Account.owner_id == world.alice.owner_id, Account.platform == "bluesky")).all()
    for account_id in alices:
        await world.bob.handle(SourceChecked(owner_ref="bob", platform="bluesky",
                                             problem="auth", text="refused",
                                             account_id=account_id))
        await world.bob.handle(SnapshotReceived(owner_ref="bob", platform="bluesky",
                                                profiles=[], account_id=account_id))
    world.bob.surface.pop()
    assert alice_rows(world.alice) == before


async def said_as(app: App, ref: str, line: str):
    await app.handle(command(line, owner_ref=ref))
    replies = app.surface.pop()
    assert len(replies) == 1, [m.text for m in replies]
    return replies
