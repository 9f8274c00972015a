"""The Send / Edit / Skip buttons on new-connection DMs, and the edit box."""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from typing import Protocol, cast

import discord

from storage.models import Draft

log = logging.getLogger(__name__)


# --- the Send / Edit / Skip buttons ------------------------------------------------------

# A draft the owner can still send, edit or skip (an expired one too, as `drafts` shows
# it), and one that is done with, whose buttons are taken away.
OPEN_DRAFT = ("pending", "expired", "uncertain")
SETTLED_DRAFT = ("sent", "skipped")
DRAFT_BUTTON = r"plnbot:draft:(?P<action>send|senddm|edit|skip):(?P<draft_id>[0-9]{1,18})"
BUTTON_LOOKS = {
    "send": ("Send", discord.ButtonStyle.success),
    "senddm": ("Send as DM", discord.ButtonStyle.success),
    "edit": ("Edit", discord.ButtonStyle.primary),
    "skip": ("Skip", discord.ButtonStyle.secondary),
}
# The chat command each button runs (Discord members: "Send" posts in the welcome
# channel, "Send as DM" writes to them directly).
BUTTON_COMMANDS = {"send": "send {id}", "senddm": "send {id} dm", "skip": "skip {id}"}


class DraftDecider(Protocol):
    """What the buttons and the edit box need of the client (``PlnbotClient``)."""

    async def owner_only(self, interaction: discord.Interaction) -> bool: ...

    async def press_draft_button(self, interaction: discord.Interaction, action: str,
                                 draft_id: int) -> None: ...

    async def submit_edit(self, interaction: discord.Interaction, draft_id: int,
                          text: str) -> None: ...


def decider(interaction: discord.Interaction) -> DraftDecider:
    """The plnbot client behind ``interaction`` (discord.py types it as any Client)."""
    return cast(DraftDecider, interaction.client)


class DraftButton(discord.ui.DynamicItem[discord.ui.Button], template=DRAFT_BUTTON):
    """A decision on one draft; the draft id lives in the custom id, so the button
    still works after a restart (registered with ``Client.add_dynamic_items``)."""

    def __init__(self, action: str, draft_id: int) -> None:
        label, style = BUTTON_LOOKS[action]
        button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
            label=label, style=style, custom_id=f"plnbot:draft:{action}:{draft_id}"
        )
        super().__init__(button)
        self.action = action
        self.draft_id = draft_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /) -> DraftButton:
        return cls(match["action"], int(match["draft_id"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await decider(interaction).owner_only(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        await decider(interaction).press_draft_button(interaction, self.action, self.draft_id)


def draft_view(draft_id: int, *, offer_dm: bool = False) -> discord.ui.View:
    """Send / Edit / Skip, and "Send as DM" where the owner has that choice."""
    view = discord.ui.View(timeout=None)
    for action in BUTTON_LOOKS:
        if action != "senddm" or offer_dm:
            view.add_item(DraftButton(action, draft_id))
    return view


class EditDraftModal(discord.ui.Modal):
    """The draft in a text box; submitting it is ``edit <id> <text>``."""

    def __init__(self, draft_id: int, text: str) -> None:
        super().__init__(title=f"Edit draft #{draft_id}", timeout=None)
        self.draft_id = draft_id
        self.text: discord.ui.TextInput[EditDraftModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, default=text[:4000], max_length=4000
        )
        self.add_item(discord.ui.Label(text="Your welcome", component=self.text))

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        await decider(interaction).submit_edit(interaction, self.draft_id, self.text.value)



def already_decided(draft_id: int, draft: Draft | None) -> str:
    if draft is None:
        return f"There is no draft #{draft_id} any more."
    if draft.status == "sending":
        return f"Draft #{draft_id} is being sent right now."
    return f"Draft #{draft_id} was already {draft.status}."


async def retire_buttons(message: discord.Message | None) -> None:
    if message is None:
        return
    with suppress(discord.HTTPException):
        await message.edit(view=None)
