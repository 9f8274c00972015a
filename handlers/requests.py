"""Follow requests to a locked account: who is asking, so the owner can decide.

The bot never approves or denies on the owner's behalf; it only shows who the person
is (the same profile understanding as for new connections) and where to decide.
"""

from __future__ import annotations

from bot import platforms
from bot.context import Context
from bot.dispatcher import on
from bot.events import FollowRequested, Profile
from handlers import profiles
from handlers.drafting import PLATFORM_NAMES
from handlers.present import at_handle


@on(FollowRequested)
async def on_follow_requested(event: FollowRequested, ctx: Context) -> None:
    profile = event.profile
    if profile.is_bot and not profile.name:
        return
    ctx.send(
        "follow_request", request_text(profile),
        key=f"request:{profile.platform}:{profile.external_id}",
        platform=profile.platform, contact=request_summary(profile),
    )


def request_text(profile: Profile) -> str:
    where = PLATFORM_NAMES.get(profile.platform, profile.platform)
    name = profile.name or profile.handle
    lines = [f"{name} ({at_handle(profile.platform, profile.handle)}) asked to follow you "
             f"on {where}."]
    person = profiles.understand_safely(profile)
    details = [("Role", person.role), ("Works at", person.organisation),
               ("Location", person.location), ("Field", person.field),
               ("Interests", ", ".join(f"#{i}" for i in person.interests)),
               ("Website", person.website)]
    lines += [f"  {label}: {value}" for label, value in details if value and value != "other"]
    bio = shown_bio(profile)
    if bio:
        lines.append(f"  Bio: {bio}")
    if profile.is_bot:
        lines.append("  (This is marked as a bot account.)")
    lines.append(platforms.get(profile.platform).follow_request
                 or f"Approve or deny it on {where}.")
    return "\n".join(lines)


def request_summary(profile: Profile) -> dict:
    """Who asks, as ``--json`` gives it: every value the text quotes from their profile
    is a field of its own, so a chat surface can show it as plain text (Discord escapes
    these fields' Markdown and mentions wherever the text quotes them)."""
    person = profiles.understand_safely(profile)
    return {"handle": profile.handle, "name": profile.name or profile.handle,
            "external_id": profile.external_id, "role": person.role,
            "organisation": person.organisation, "field": person.field,
            "interests": person.interests, "location": person.location,
            "website": person.website, "bio": shown_bio(profile)}


def shown_bio(profile: Profile) -> str:
    """The bio as the request quotes it: plain text, at most 280 characters."""
    return profiles.plain_text(profile.bio)[:280]
