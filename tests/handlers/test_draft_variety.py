"""Drafts that sound like a person (issue 18, item 7): across forty varied newcomers in
each tone, no question frame (its first four words) in more than a fifth of the drafts
and no two drafts in a row opening alike; punctuation right in every tone; tags as the
person wrote them; "the founder & CEO of Classloop", not "a founder & CEO at".
"""

from __future__ import annotations

import pytest
import regex

from bot.demo import demo_profiles
from tests.support.draft_variety import drafts_in_tone, varied_newcomers, variety
from tests.support.factories import arrival, mastodon_person, x_person
from tests.support.owner import set_owner
from tests.support.profiles import recorded_profiles

TONES = ("warm", "brief", "formal")
GLUED = regex.compile(r"\p{Ll}[.!?]\p{Lu}")  # "Mastodon.I was"


def corpus(name: str):
    if name == "table":
        return varied_newcomers(40)
    if name == "recorded":
        return [p for p in recorded_profiles() if not p.is_bot][:40]
    return demo_profiles()


@pytest.mark.parametrize("tone", TONES)
@pytest.mark.parametrize("name", ["table", "recorded", "demo"])
async def test_forty_newcomers_get_varied_openings_and_questions(app, tone, name):
    people = corpus(name)
    drafts = await drafts_in_tone(app, tone, people)
    measured = variety(drafts)
    assert len(drafts) == len(people) and (name == "demo" or len(drafts) == 40)
    assert measured.top_frame_share <= 0.20, measured
    assert measured.consecutive_same_openings == 0, measured
    for draft in drafts:
        assert not GLUED.search(draft), draft
        assert " ," not in draft and ".." not in draft and " ." not in draft, draft
        assert draft.count("?") == 1, draft


@pytest.mark.parametrize("tone", TONES)
async def test_a_tag_keeps_the_case_the_person_wrote_it_in(app, surface, tone):
    """ "#send" in lower case reads as the verb; the person wrote "#SEND". Which details a
    draft mentions depends on the person's id, so several people with the same bio."""
    set_owner(app, tone=tone, interests="send, inclusion")
    drafts = []
    for number in range(6):
        await app.handle(arrival(mastodon_person(
            "Robin Grey", acct=f"robin{number}@school.social", id=str(4200 + number),
            note="<p>SENCo. Inclusion for every learner. #SEND #InclusiveEd</p>")))
        [message] = surface.pop()
        drafts.append(message.fields["draft"])
    tagged = [d for d in drafts if regex.search(r"#\w+", d)]
    assert tagged, drafts
    for draft in tagged:
        assert set(regex.findall(r"#\w+", draft)) <= {"#SEND", "#InclusiveEd"}, draft
    if tone != "brief":  # brief drafts mention one detail: often the role
        assert all("#SEND" in draft for draft in drafts), drafts


@pytest.mark.parametrize(("tone", "expected"), [
    ("warm", "the founder & CEO of Classloop"), ("brief", "the founder & CEO of Classloop"),
    ("formal", "the founder & CEO of Classloop"),
])
async def test_a_founder_is_the_founder_of_their_company(app, surface, tone, expected):
    """Whichever phrasing a person's id picks (several ids), never "a founder"."""
    set_owner(app, tone=tone)
    for number in range(6):
        await app.handle(arrival(x_person("Lena Fischer", id=str(5100 + number),
                                          description="Founder & CEO at Classloop.")))
        [message] = surface.pop()
        draft = message.fields["draft"]
        assert expected in draft and "a founder" not in draft, draft
