"""help comes from the command definitions; the catalog is what slash commands use."""

import pytest

from handlers.commands import command_catalog, parse_usage
from handlers.commands.help import overview
from tests.support.chat import say_one


async def test_help_lists_every_command_by_group_in_one_chat_message(app):
    reply = await say_one(app, "help")
    for info in command_catalog():
        assert f"\n  {info.name}" in reply.text
    assert reply.text.index("People:") < reply.text.index("Settings:")
    assert set(reply.fields["commands"]) == {info.name for info in command_catalog()}
    assert len(reply.text) <= 1_900


def test_a_long_command_list_shortens_summaries_to_stay_one_message():
    catalog = command_catalog() * 3
    text = overview(catalog)
    assert len(text) <= 1_900 and all(info.name in text for info in catalog)
    assert "Show everything I know about someone." in overview(command_catalog()[:3])


@pytest.mark.parametrize("name", [info.name for info in command_catalog()])
async def test_help_for_each_command_shows_usage_and_its_docstring(app, name):
    reply = await say_one(app, f"help {name}")
    info = next(i for i in command_catalog() if i.name == name)
    assert reply.kind == "reply" and reply.text.startswith(f"Usage: {info.usage}")
    assert info.help and info.help in reply.text


async def test_help_for_an_unknown_command_suggests_close_ones(app):
    reply = await say_one(app, "help fnd")
    assert reply.kind == "error" and "Did you mean find" in reply.text
    assert (await say_one(app, "help who find")).kind == "error"


def test_usage_lines_become_structured_arguments():
    args = parse_usage("settings [tz <Area/City>] [tone <warm|brief|formal>] "
                       "[signature <text…>]")
    assert [(a.name, a.keyword, a.required, a.rest) for a in args] == [
        ("tz", "tz", False, False), ("tone", "tone", False, False),
        ("signature", "signature", False, True)]
    assert args[1].choices == ("warm", "brief", "formal")
    args = parse_usage("remind <person|me> <when> [text…]")
    assert [(a.name, a.required, a.rest, a.choices) for a in args] == [
        ("person", True, False, ()), ("when", True, False, ()), ("text", False, True, ())]
    assert [a.name for a in parse_usage("link <person> <person>")] == ["person", "person_2"]
    assert parse_usage("goal <conversations|connections|outside> <N> per week")[0].choices


def test_every_command_is_described_for_generated_interfaces():
    for info in command_catalog():
        data = info.as_dict()
        assert data["name"] and data["summary"] and data["usage"].startswith(info.name)
        assert isinstance(data["arguments"], tuple)


async def test_shortened_summaries_end_at_a_word_boundary(app):
    """With summaries cut to fit one message, every cut ends at a whole word."""
    catalog = command_catalog() * 2
    text = overview(catalog)
    words = {w.strip(".,;:()`'\"—") for info in catalog for w in info.summary.split()}
    for line in text.splitlines():
        if line.endswith("…") and " — " in line:
            last = line.rsplit(" — ", 1)[1][:-1].split()[-1].strip(".,;:()`'\"—")
            assert last in words, line
