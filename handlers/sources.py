"""A live source's sync state and problems, kept on its Account row.

Sources poll outside any transaction; what they learn about the account itself (its id,
handle, follower count, an error that stops polling) arrives as a ``SourceChecked``
event so it is stored durably and the owner is told about a problem exactly once.
"""

from __future__ import annotations

import logging

from bot.context import Context
from bot.dispatcher import on
from bot.events import SourceChecked
from handlers.drafting import PLATFORM_NAMES
from storage import repo
from storage.models import Account

log = logging.getLogger(__name__)

MAX_ERROR = 500


@on(SourceChecked)
async def on_source_checked(event: SourceChecked, ctx: Context) -> None:
    account = repo.get_or_create_account(
        ctx.session, owner=ctx.owner, platform=event.platform,
        external_id=event.account_external_id, handle=event.account_handle,
    )
    if event.followers_count is not None:
        account.followers_count_seen = event.followers_count
    if event.problem:
        record_problem(ctx, account=account, problem=event.problem, text=event.text)
    elif account.last_error:
        clear_problem(ctx, account=account)
    ctx.session.add(account)


def problem_code(account: Account) -> str | None:
    """The stable code of the account's current problem ("tier", "auth", …) if any."""
    if not account.last_error:
        return None
    return account.last_error.split(":", 1)[0]


def record_problem(ctx: Context, *, account: Account, problem: str, text: str) -> None:
    """Remember the problem; tell the owner only when it is a new one."""
    now = ctx.now()
    if problem_code(account) != problem:
        ctx.send(
            "source_error", text, key=f"source:{account.id}:{problem}:{now.isoformat()}",
            platform=account.platform, problem=problem,
        )
    account.last_error = f"{problem}: {text}"[:MAX_ERROR]
    account.last_error_at = now


def clear_problem(ctx: Context, *, account: Account) -> None:
    where = PLATFORM_NAMES.get(account.platform, account.platform)
    previous = problem_code(account)
    ctx.send(
        "source_recovered", f"{where} works again: I can read your followers there now.",
        key=f"source:{account.id}:ok:{ctx.now().isoformat()}", platform=account.platform,
        problem=previous,
    )
    account.last_error = None
    account.last_error_at = None
