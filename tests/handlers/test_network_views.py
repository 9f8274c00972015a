"""What the owner sees of connections coming and going: `who` states, `lost #<drop>`,
`people lost`, and welcome drafts withdrawn when their person leaves (and the digest
saying so)."""

from sqlmodel import Session, select

from bot.events import SnapshotReceived
from storage.models import Draft
from tests.support.chat import say_one
from tests.support.factories import x_person


def snapshot(profiles, complete=True):
    return SnapshotReceived(owner_ref="local", platform="x", profiles=list(profiles),
                            complete=complete)


def crowd(count):
    return [x_person(f"Person {i}", username=f"person{i}", id=str(1000 + i))
            for i in range(count)]


async def test_who_and_lost_show_a_mass_drop_and_who_is_still_missing(app, surface, clock):
    people = crowd(100)
    await app.handle(snapshot(people))
    clock.advance(days=1)
    await app.handle(snapshot(people[30:]))  # 30 vanish at once
    clock.advance(hours=1)
    await app.handle(snapshot(people[10:]))  # 20 come back, 10 still missing
    surface.pop()
    who = await say_one(app, "who Person 3")
    assert "X: vanished in the mass drop of Tue 03 Nov 2026 (#1), still missing" in who.text
    who = await say_one(app, "who Person 20")
    assert "X: follows you; back since Tue 03 Nov 2026" in who.text
    who = await say_one(app, "who Person 50")
    assert "X: follows you since Mon 02 Nov 2026" in who.text
    lost = await say_one(app, "lost")
    assert "(mass drop #1: 20 back, 10 still missing; re-checking; `lost #1` lists them)" in (
        lost.text)
    opened = await say_one(app, "lost #1")
    lines = opened.text.splitlines()
    assert lines[0].endswith("30 vanished, 20 back, 10 still missing:")
    assert sorted(c["name"] for c in opened.fields["contacts"]) == sorted(
        p.name for p in people[:10])
    assert len(lines) == 11 and "Person 0 (@person0, #1)" in opened.text
    assert (await say_one(app, "people lost")).fields["total"] == 10
    error = await say_one(app, "lost #9")
    assert error.kind == "error" and "no mass drop #9" in error.text


async def test_a_draft_for_someone_who_left_is_withdrawn_and_the_digest_says_so(
        app, surface, clock):
    people = crowd(10)
    await app.handle(snapshot(people))
    newcomers = [x_person("Nia Mensah", username="nia", id="77"),
                 x_person("Tom Berry", username="tom", id="78")]
    await app.handle(snapshot(people + newcomers))
    surface.pop()
    clock.advance(days=1)
    await app.handle(snapshot(people + newcomers[1:]))  # Nia unfollows before any send
    surface.pop()
    with Session(app.engine) as session:
        assert [d.status for d in session.exec(select(Draft).order_by(Draft.id))] == [
            "withdrawn", "pending"]
    who = await say_one(app, "who nia")
    assert "X: stopped following you on Tue 03 Nov 2026" in who.text
    reply = await say_one(app, "send 1")
    assert reply.kind == "error" and "withdrawn: they left before it was sent" in reply.text
    clock.advance(minutes=5)
    digest = await say_one(app, "digest")
    assert "1 withdrawn because the person left before it was sent" in digest.text
    assert digest.fields["drafts_withdrawn"] == 1
