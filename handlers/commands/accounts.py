"""``connect``, ``accounts``, ``disconnect``: each owner connects their own accounts by chat.

The platform talking goes through ``ctx.connector`` (bot/connecting.py); credentials are
stored only encrypted (bot/vault.py, PLNBOT_SECRET_KEY). Mastodon and X answer an
authorization link with a code the owner pastes back: while a connection waits for its
code, a line that looks like one (and is no command) finishes it (``pasted_code``).
The first poll of a newly connected account is the quiet baseline (bot/connected.py).

What differs between platforms beyond the command words (which settings mean the
operator configured the account, which connections finish with a pasted code) is read
from the platform registry (bot/platforms.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from bot import platforms
from bot.connecting import AccountConnector, ConnectedAccount, ConnectRefused, instance_url
from bot.context import Context
from bot.vault import SecretKeyError, Vault, require_vault
from handlers.commands import NAMED, CommandError, command, on_unmatched_line
from handlers.drafting import PLATFORM_NAMES
from handlers.when import ago
from storage import accounts as store
from storage.models import Account

CONNECT_USAGE = "connect <platform> [details…]"
USAGES = {
    "mastodon": "connect mastodon <instance>",
    "bluesky": "connect bluesky <handle> <app password> [<server URL>]",
    "x": "connect x",
    "discord-server": "connect discord-server <id> [<welcome channel id>]",
}
DISCONNECT_USAGE = "disconnect <platform> [<handle or server id>]"
PLATFORM_OF = {"mastodon": "mastodon", "bluesky": "bluesky", "x": "x", "twitter": "x",
               "discord-server": "discord", "discord": "discord"}
WORD_OF = {platform: word for word, platform in PLATFORM_OF.items() if word in USAGES}
BLUESKY_SERVER = "https://bsky.social"
CODE_SHAPE = re.compile(r"[A-Za-z0-9_\-.~]{16,512}|https?://\S*[?&]code=\S+")
PENDING_FOR = timedelta(minutes=30)
BASELINE_NOTE = ("My first look records who already follows you there, quietly; from then "
                 "on I tell you about each new follower.")


def _connector(ctx: Context) -> AccountConnector:
    if ctx.connector is None:
        raise CommandError("Connecting accounts is not available here.")
    return ctx.connector


def _vault(ctx: Context) -> Vault:
    try:
        return require_vault(ctx.settings)
    except SecretKeyError:
        raise CommandError("I cannot keep credentials safely yet: the operator has to set "
                           "PLNBOT_SECRET_KEY (see the README, Secrets).") from None


def _owner_id(ctx: Context) -> int:
    owner_id = ctx.owner.id
    assert owner_id is not None  # the dispatcher hands handlers a stored owner
    return owner_id


def _name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform)


@command("connect", CONNECT_USAGE, group="settings", profiles=NAMED)
async def connect(args: str, ctx: Context) -> None:
    """Connect one of your accounts so I watch your followers there.

    `connect mastodon <instance>` (e.g. `connect mastodon mastodon.social`): I reply with
    a link; approve there and paste the code it shows you here.
    `connect bluesky <handle> <app password> [<server URL>]`: an app password, never your
    main one (Settings → Privacy and security → App passwords); a self-hosted server
    by its URL.
    `connect x`: I reply with a link; approve, then paste the code from the address X
    sends you to (or the whole address).
    `connect discord-server <id> [<welcome channel id>]`: a server I am in and you may
    manage; its members become your connections. Welcomes you approve go to each
    member as a DM, or are posted in the welcome channel when you name one.

    You may connect several accounts on one platform (a class server and a PLN server,
    a personal and a school Mastodon account): each is watched on its own. Connecting
    the same account or server again only refreshes it (a new welcome channel, say).
    """
    words = args.split()
    kind = words[0].lower() if words else ""
    if kind not in USAGES:
        raise CommandError("Say which platform: mastodon, bluesky, x or discord-server.",
                           usage=" | ".join(USAGES.values()))
    _not_configured_by_operator(ctx, PLATFORM_OF[kind])
    try:
        await CONNECTORS[kind](words[1:], ctx)
    except ConnectRefused as exc:
        raise CommandError(str(exc), usage=USAGES[kind]) from None


async def _connect_mastodon(words: list[str], ctx: Context) -> None:
    if len(words) != 1:
        raise CommandError("Name your Mastodon instance, e.g. `connect mastodon "
                           "mastodon.social`.", usage=USAGES["mastodon"])
    instance = instance_url(words[0])
    vault, connector = _vault(ctx), _connector(ctx)
    app = await _mastodon_app(ctx, vault, connector, instance)
    authorization = await connector.mastodon_authorization(instance, app)
    _keep_pending(ctx, vault, "mastodon", {"instance": instance})
    ctx.send("reply", f"Open this link, approve plnbot, and paste here the code Mastodon "
                      f"shows you:\n{authorization.url}",
             platform="mastodon", url=authorization.url)


async def _mastodon_app(ctx: Context, vault: Vault, connector: AccountConnector,
                        instance: str) -> dict[str, str]:
    """The bot's app on ``instance``: registered once, then kept (encrypted) for everyone."""
    row = store.platform_app(ctx.session, platform="mastodon", instance=instance)
    if row is not None:
        return {k: str(v) for k, v in vault.decrypt(row.credentials).items()}
    app = await connector.mastodon_register(instance)
    store.save_platform_app(ctx.session, platform="mastodon", instance=instance,
                            credentials=vault.encrypt(app), now=ctx.now())
    return app


async def _connect_bluesky(words: list[str], ctx: Context) -> None:
    if len(words) not in (2, 3):
        raise CommandError("Give your handle and an app password, e.g. `connect bluesky "
                           "jane.bsky.social abcd-efgh-ijkl-mnop`.", usage=USAGES["bluesky"])
    handle, password = words[0].lstrip("@"), words[1]
    server = instance_url(words[2]) if len(words) == 3 else BLUESKY_SERVER
    vault = _vault(ctx)
    account = await _connector(ctx).bluesky_login(handle, password, server)
    again = _already_connected(ctx, "bluesky", account.external_id)
    _store_connected(ctx, "bluesky", account.external_id, account.handle,
                     vault.encrypt(account.credentials))
    reminder = ("\nThe message you just wrote holds your app password: please delete it."
                if _on_discord(ctx) else "")
    ctx.send("reply", f"{_connected_text('bluesky', '@' + account.handle, again)}{reminder}",
             platform="bluesky", handle=account.handle, again=again)


async def _connect_x(words: list[str], ctx: Context) -> None:
    if words:
        raise CommandError("`connect x` takes nothing more; I reply with a link.",
                           usage=USAGES["x"])
    vault = _vault(ctx)
    authorization = await _connector(ctx).x_authorization()
    _keep_pending(ctx, vault, "x", authorization.pending)
    ctx.send("reply", "Open this link and approve plnbot; X then sends you to a page whose "
                      "address holds `code=…`. Paste that code (or the whole address) here:\n"
                      f"{authorization.url}", platform="x", url=authorization.url)


async def _connect_discord_server(words: list[str], ctx: Context) -> None:
    if not 1 <= len(words) <= 2 or not all(w.isdigit() and len(w) <= 20 for w in words):
        raise CommandError("Give the server's id (right-click the server → Copy Server ID, "
                           "with Developer Mode on), and optionally the welcome channel's "
                           "id the same way.", usage=USAGES["discord-server"])
    channel = int(words[1]) if len(words) == 2 else None
    server = await _connector(ctx).discord_server(int(words[0]), ctx.owner.external_ref,
                                                  channel)
    again = _already_connected(ctx, "discord", server.external_id)
    _store_connected(ctx, "discord", server.external_id, server.handle, None,
                     welcome_channel=server.welcome_channel)
    where = ("posted in the welcome channel" if server.welcome_channel
             else "sent to each member as a DM")
    text = (f"The Discord server {server.handle} was already connected; welcomes you "
            f"approve there are now {where}." if again else
            f"Connected the Discord server {server.handle}: its members are your "
            "connections from now on. My first look records who is there already, "
            f"quietly; welcomes you approve are {where}.")
    ctx.send("reply", text, platform="discord", handle=server.handle,
             welcome_channel=server.welcome_channel, again=again)


def _not_configured_by_operator(ctx: Context, platform: str) -> None:
    """The environment's account is PLNBOT_OWNER's, polled as such and found by owner
    and platform alone (it has no id there before its first poll): an account by chat
    next to it would be mistaken for it, so the operator's settings stay the only way."""
    known = platforms.get(platform)
    if known.configured_in(ctx.settings) and ctx.owner.external_ref == ctx.settings.owner_ref:
        raise CommandError(f"Your {_name(platform)} account is set up by the operator "
                           f"({known.settings_names} settings); it cannot also be connected "
                           f"by chat.")


CONNECTORS = {"mastodon": _connect_mastodon, "bluesky": _connect_bluesky, "x": _connect_x,
              "discord-server": _connect_discord_server}


def _on_discord(ctx: Context) -> bool:
    token = ctx.settings.discord_token
    return ctx.owner.external_ref.startswith("discord:") or bool(
        token and token.get_secret_value())


def _keep_pending(ctx: Context, vault: Vault, platform: str, pending: dict[str, Any]) -> None:
    """Remember the half-made connection in a row of its own: the accounts already
    connected there go on being polled, and the code decides which account it is."""
    waiting = {"pending": {**pending, "since": ctx.now().isoformat()}}
    store.keep_pending(ctx.session, owner_id=_owner_id(ctx), platform=platform,
                       credentials=vault.encrypt(waiting))


def _already_connected(ctx: Context, platform: str, external_id: str) -> bool:
    account = store.owner_account(ctx.session, owner_id=_owner_id(ctx), platform=platform,
                                  external_id=external_id)
    return account is not None and account.connected_at is not None


def _store_connected(ctx: Context, platform: str, external_id: str, handle: str,
                     credentials: str | None, *, welcome_channel: str | None = None) -> Account:
    return store.mark_connected(ctx.session, owner_id=_owner_id(ctx), platform=platform,
                                external_id=external_id, handle=handle,
                                credentials=credentials, now=ctx.now(),
                                welcome_channel=welcome_channel)


# --- the pasted code ----------------------------------------------------------------


@on_unmatched_line
async def pasted_code(line: str, ctx: Context) -> bool:
    """A line that is no command but looks like a code finishes a waiting connection."""
    if not CODE_SHAPE.fullmatch(line.strip()):
        return False
    waiting = _waiting(ctx)
    if waiting is None:
        return False
    account, credentials = waiting
    pending = credentials.pop("pending")
    word = WORD_OF[account.platform]
    try:
        connected = await FINISHERS[word](ctx, pending, line.strip())
    except ConnectRefused as exc:
        raise CommandError(str(exc), usage=USAGES[word]) from None
    again = _already_connected(ctx, account.platform, connected.external_id)
    stored = _store_connected(ctx, account.platform, connected.external_id, connected.handle,
                              _vault(ctx).encrypt(connected.credentials))
    if stored.id != account.id and account.connected_at is not None:
        _forget_pending(ctx, account, credentials)  # a wait kept in another account's row
    ctx.send("reply", _connected_text(account.platform, connected.handle, again),
             platform=account.platform, handle=connected.handle, again=again)
    return True


def _connected_text(platform: str, handle: str, again: bool) -> str:
    if again:
        return (f"{handle} on {_name(platform)} was already connected: I refreshed its "
                "access, and its followers and history stay as they were.")
    return f"Connected {handle} on {_name(platform)}. {BASELINE_NOTE}"


def _forget_pending(ctx: Context, account: Account, credentials: dict[str, Any]) -> None:
    """A wait stored the old way, inside a connected account's credentials: the code is
    used, so only the account's own credentials stay."""
    account.credentials = _vault(ctx).encrypt(credentials) if credentials else None
    ctx.session.add(account)


def _waiting(ctx: Context) -> tuple[Account, dict[str, Any]] | None:
    """The owner's most recent connection still waiting for its code, if any."""
    if ctx.settings.secret_key is None:
        return None
    vault, found = _vault(ctx), []
    for account in store.owner_accounts(ctx.session, owner_id=_owner_id(ctx)):
        if platforms.get(account.platform).pasted_code and account.credentials:
            credentials = vault.decrypt(account.credentials)
            since = (credentials.get("pending") or {}).get("since")
            if since and datetime.fromisoformat(since) > ctx.now() - PENDING_FOR:
                found.append((since, account, credentials))
    return max(found, key=lambda f: f[0])[1:] if found else None


async def _finish_mastodon(ctx: Context, pending: dict[str, Any],
                           code: str) -> ConnectedAccount:
    connector, instance = _connector(ctx), pending["instance"]
    app = await _mastodon_app(ctx, _vault(ctx), connector, instance)
    return await connector.mastodon_finish(instance, app, code)


async def _finish_x(ctx: Context, pending: dict[str, Any], code: str) -> ConnectedAccount:
    return await _connector(ctx).x_finish(pending, code, ctx.now())


# how a connection waiting for its pasted code finishes, by command word (the platforms
# whose ``Platform.pasted_code`` is set)
FINISHERS = {"mastodon": _finish_mastodon, "x": _finish_x}


# --- accounts and disconnect --------------------------------------------------------


@command("accounts", "accounts", group="settings", profiles=NAMED)
async def accounts(args: str, ctx: Context) -> None:
    """List your connected accounts and servers: handle or server name, last poll and
    any problem."""
    if args.strip():
        raise CommandError("`accounts` takes nothing more.")
    rows = store.owner_accounts(ctx.session, owner_id=_owner_id(ctx))
    if not rows:
        ctx.send("reply", "No accounts connected yet. Write `help connect` to see how.",
                 accounts=[])
        return
    lines = [_account_line(ctx, row) for row in rows]
    ctx.send("reply", "Your accounts:\n" + "\n".join(lines),
             accounts=[_account_fields(row) for row in rows])


def _account_line(ctx: Context, account: Account) -> str:
    who = _handle(account) if account.handle else "(waiting for the code)"
    if account.connected_at is None and account.credentials is None:
        how = "set up by the operator"
    elif account.connected_at is None and platforms.get(account.platform).pasted_code:
        how = "waiting for the code you paste"
    elif account.connected_at is None:  # the operator's, with its kept (Bluesky) session
        how = "set up by the operator"
    elif not platforms.get(account.platform).polls_connected:  # a Discord server: live
        how = ("connected; first look pending" if account.last_synced_at is None else
               f"connected; joins and leaves seen as they happen, whole list last read "
               f"{ago(ctx.now() - account.last_synced_at)} ago")
    elif account.last_polled_at is None:
        how = "connected; first look pending"
    else:
        how = f"last looked {ago(ctx.now() - account.last_polled_at)}"
    problem = f"; problem: {account.last_error.split(': ', 1)[-1]}" if account.last_error \
        else ""
    server = f"id {account.external_id}; " if account.platform == "discord" else ""
    return f"- {_name(account.platform)}: {who} ({server}{how}{problem})"


def _label(account: Account) -> str:
    """How the owner recognises and names the account: a Discord server by its name and
    id (``disconnect discord-server <id>``), any other by its handle."""
    if account.platform == "discord":
        return f"{account.handle} (id {account.external_id})"
    return _handle(account)


def _handle(account: Account) -> str:
    """A Mastodon or X handle with its "@" (as their users write it); a Bluesky handle
    or a server name as it is."""
    if account.platform in ("mastodon", "x") and not account.handle.startswith("@"):
        return f"@{account.handle}"
    return account.handle


def _account_fields(account: Account) -> dict[str, Any]:
    return {"platform": account.platform, "handle": account.handle,
            "external_id": account.external_id,
            "connected": account.connected_at is not None,
            "last_poll": account.last_polled_at, "problem": account.last_error}


@command("disconnect", DISCONNECT_USAGE, group="settings", profiles=NAMED)
async def disconnect(args: str, ctx: Context) -> None:
    """Stop watching one of your accounts and delete what I stored to reach it.

    `disconnect mastodon` (or bluesky, x, discord-server). With several accounts on one
    platform, name the one: `disconnect mastodon @me@school.social`, `disconnect
    discord-server 1234` (the server's id, as `accounts` shows it). Your contacts and
    history stay, and nobody is counted as gone. To also withdraw the bot's access on
    the platform, remove plnbot from your authorized apps there.
    """
    word, _, which = args.strip().partition(" ")
    platform = PLATFORM_OF.get(word.lower())
    if platform is None:
        raise CommandError("Say which: mastodon, bluesky, x or discord-server.",
                           usage=DISCONNECT_USAGE)
    known = platforms.get(platform)
    if known.configured_in(ctx.settings) and ctx.owner.external_ref == ctx.settings.owner_ref:
        raise CommandError(f"Your {_name(platform)} account is set up by the operator "
                           f"({known.settings_names} settings), not connected by chat: "
                           f"removing those settings stops it.")
    chosen = _chosen(ctx, platform, which.strip())
    account = store.disconnect(ctx.session, owner_id=_owner_id(ctx), account_id=chosen.id)
    assert account is not None  # ``_chosen`` picks only the owner's connected accounts
    ctx.send("reply", f"Disconnected {account.handle or _name(platform)} on {_name(platform)}: "
                      "I deleted the stored credentials and stopped reading it. Your "
                      "contacts and history there stay.",
             platform=platform, handle=account.handle, external_id=account.external_id)


def _chosen(ctx: Context, platform: str, which: str) -> Account:
    """The owner's account on ``platform`` connected by chat that ``which`` names (its
    handle, or a server's id or name); with ``which`` empty, their only one there. A
    wait for a pasted code counts only when nothing there is connected (it cancels it)."""
    rows = [a for a in store.owner_accounts(ctx.session, owner_id=_owner_id(ctx),
                                            platform=platform) if a.credentials or a.connected_at]
    connected = [a for a in rows if a.connected_at is not None]
    candidates = connected or rows
    if not candidates:
        raise CommandError(f"You have no {_name(platform)} account connected by chat "
                           "(`accounts` lists them).")
    kinds = "servers" if platform == "discord" else "accounts"
    if which:
        named = [a for a in candidates if _is_named(a, which)]
        if len(named) == 1:
            return named[0]
        raise CommandError(f"None of your {_name(platform)} {kinds} is {which}: "
                           f"{_listing(candidates)}." if not named else
                           f"{which} names more than one: {_listing(named)}; name it by "
                           f"{'its id' if platform == 'discord' else 'its full handle'}.",
                           usage=DISCONNECT_USAGE)
    if len(candidates) == 1:
        return candidates[0]
    example = _which(candidates[0])
    raise CommandError(f"You have {len(candidates)} {_name(platform)} {kinds} connected: "
                       f"{_listing(candidates)}. Say which, e.g. "
                       f"`disconnect {WORD_OF[platform]} {example}`.")


def _is_named(account: Account, which: str) -> bool:
    """Whether ``which`` (as typed: "@handle", "handle", a server id or name) is it."""
    wanted = which.strip().lstrip("@").lower()
    return wanted in (account.external_id.lower(), account.handle.lstrip("@").lower())


def _which(account: Account) -> str:
    """The word that names this account in ``disconnect``."""
    if account.platform == "discord" or not account.handle:
        return account.external_id
    return _handle(account)


def _listing(accounts: list[Account]) -> str:
    return ", ".join(_label(a) if a.handle else "one waiting for its code" for a in accounts)
