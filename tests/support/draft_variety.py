"""How varied welcome drafts are: the measure behind issue 18's "drafts that sound like
a person" (and the test that keeps it).

Forty varied newcomers (the profile tables, round robin over the platforms, bots and
spam left out) arrive through the real pipeline; for each draft we read its *question
frame* (the first four words of its question) and its *opening* (the greeting word and
the first three words after the greeting's comma: "Hi Amara, thanks so much for…" →
"hi | thanks so much").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from bot.adapters.translate import TRANSLATORS
from bot.events import Profile
from tests.support.factories import arrival
from tests.support.owner import set_owner
from tests.support.profiles import PLATFORMS, table

WORD = re.compile(r"[\w'’#&-]+")


def varied_newcomers(count: int = 40) -> list[Profile]:
    """``count`` people taken in turn from each platform's table (no bots, no spam)."""
    queues = []
    for platform in PLATFORMS:
        rows = [row for row in table(platform) if not row["expect"].get("spam")]
        profiles = [TRANSLATORS[platform](row["object"]) for row in rows]
        queues.append([p for p in profiles if not p.is_bot])
    chosen: list[Profile] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


async def drafts_in_tone(app, tone: str, profiles: list[Profile]) -> list[str]:
    set_owner(app, tone=tone, interests="edtech, outdoor learning, #mathchat")
    drafts = []
    for profile in profiles:
        await app.handle(arrival(profile))
        [message] = [m for m in app.surface.pop() if m.kind == "new_connection"]
        drafts.append(message.fields["draft"])
    return drafts


def question_frame(draft: str) -> str:
    question = next((s for s in re.split(r"(?<=[.!?])\s+", draft) if s.endswith("?")), "")
    return " ".join(WORD.findall(question.lower())[:4])


def opening(draft: str) -> str:
    head, _, rest = draft.partition(",")
    greeting = (WORD.findall(head.lower()) or [""])[0]
    return f"{greeting} | {' '.join(WORD.findall(rest.lower())[:3])}"


@dataclass
class Variety:
    drafts: int
    top_frame: str
    top_frame_share: float
    consecutive_same_openings: int

    def __str__(self) -> str:
        return (f"{self.drafts} drafts: most common question frame {self.top_frame!r} in "
                f"{self.top_frame_share:.0%}; consecutive same openings: "
                f"{self.consecutive_same_openings}")


def variety(drafts: list[str]) -> Variety:
    frames = Counter(question_frame(d) for d in drafts)
    top, count = frames.most_common(1)[0]
    openings = [opening(d) for d in drafts]
    repeats = sum(1 for a, b in zip(openings, openings[1:], strict=False) if a == b)
    return Variety(len(drafts), top, count / len(drafts), repeats)
