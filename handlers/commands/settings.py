"""``settings``: the owner's time zone, quiet hours, drafting tone and signature, when
the weekly digest comes, and whether lost connections are reported at once.

Everything is validated before anything is stored, so a line with one bad value
changes nothing at all.
"""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import available_timezones

from bot.context import Context
from handlers.commands import NAMED, CommandError, command
from handlers.profiles import rules
from handlers.when import DATE_ORDERS, default_date_order
from storage.models import Owner

USAGE = ("settings [tz <Area/City>] [quiet <HH:MM-HH:MM>] [tone <warm|brief|formal>] "
         "[digest <weekday> [HH:MM]] [losses <digest|immediate>] [field <field>] "
         "[interests <text…>] [dates <day-first|month-first>] [signature <text…>]")
TONES = ("warm", "brief", "formal")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LOSSES = {"digest": "in the weekly digest", "immediate": "as soon as I notice"}
CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
OFF = ("off", "none", "clear")
MAX_SIGNATURE = 200
# settings whose value may be several words: they run up to the next setting's name
MULTI_WORD = ("field", "interests")
KEYS = ("tz", "quiet", "tone", "digest", "losses", "signature", "field", "interests", "dates")
MAX_INTERESTS = 1000
QUIET = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)")


@cache
def _zones() -> dict[str, str]:
    """Every IANA zone name by its lower-case spelling, so "europe/london" works too."""
    return {name.lower(): name for name in available_timezones()}


def parse_settings(args: str) -> dict[str, str]:
    """``tz X quiet Y tone Z signature the rest…`` → {"tz": X, …}; signature comes last."""
    changes: dict[str, str] = {}
    rest = args.strip()
    while rest:
        key, _, rest = rest.partition(" ")
        key = key.lower()
        if key == "signature":
            value, rest = rest.strip(), ""
        elif key in MULTI_WORD:
            value, rest = _up_to_next_key(rest)
        elif key in ("tz", "quiet", "tone", "losses", "dates"):
            value, _, rest = rest.strip().partition(" ")
        elif key == "digest":  # a weekday, then optionally a time: "digest friday 16:00"
            value, _, rest = rest.strip().partition(" ")
            clock, _, after = rest.strip().partition(" ")
            if CLOCK.fullmatch(clock):
                value, rest = f"{value} {clock}", after
        else:
            raise CommandError(f"There is no setting {key[:30]!r}; I know tz, quiet, tone, "
                               "digest, losses, field, interests, dates and signature.")
        if not value:
            raise CommandError(f"Give a value after {key!r}.")
        if key in changes:
            raise CommandError(f"{key!r} is given twice.")
        changes[key] = value
        rest = rest.strip()
    return changes


def _up_to_next_key(rest: str) -> tuple[str, str]:
    """ "maths, AI tz Europe/London" → ("maths, AI", "tz Europe/London")."""
    words = rest.split()
    for index, word in enumerate(words):
        if word.lower() in KEYS and index:
            return " ".join(words[:index]), " ".join(words[index:])
    return " ".join(words), ""


def fields() -> list[str]:
    """The fields people are sorted into (handlers/data/profile_rules.json), and "other"."""
    return [*rules()["fields"], "other"]


def valid_field(value: str) -> str:
    """ "Education", "arts", "tech" → the field's own name; anything else is refused."""
    wanted = value.strip().lower()
    exact = [name for name in fields() if name == wanted]
    close = exact or [name for name in fields() if name.startswith(wanted[:4]) and wanted]
    if len(close) != 1:
        raise CommandError(f"{value[:40]!r} is not a field I sort people into; "
                           f"choose one of: {', '.join(fields())}.")
    return close[0]


def valid_interests(value: str) -> str:
    """ "maths, project-based learning" or "#maths #AI robotics" → "maths,AI,robotics"."""
    if value.lower() in OFF:
        return ""
    parts = value.split(",") if "," in value else value.split()
    cleaned = list(dict.fromkeys(p.strip().lstrip("#").strip() for p in parts if p.strip()))
    joined = ",".join(p for p in cleaned if p)
    if not joined:
        raise CommandError("Give your interests, separated by commas: "
                           "`settings interests maths, robotics, AI`.")
    if len(joined) > MAX_INTERESTS:
        raise CommandError(f"Those interests are {len(joined)} characters; "
                           f"the limit is {MAX_INTERESTS}.")
    return joined


def valid_dates(value: str) -> str | None:
    """ "day-first" (4/12 is 4 December), "month-first" (April 12), or "auto"."""
    wanted = value.lower().replace("_", "-")
    if wanted in ("auto", "default", *OFF):
        return None
    if wanted in ("dmy", "day"):
        wanted = "day-first"
    if wanted in ("mdy", "month"):
        wanted = "month-first"
    if wanted not in DATE_ORDERS:
        raise CommandError(f"{value[:30]!r} is not day-first or month-first: with "
                           "`dates day-first` 4/12 is 4 December, with `dates month-first` "
                           "it is April 12 (`dates auto` follows your time zone).")
    return wanted


def valid_tz(value: str) -> str:
    zone = _zones().get(value.lower())
    if zone is None:
        raise CommandError(f"I don't know the time zone {value[:40]!r}. Use the Area/City "
                           "form, like Europe/London, America/New_York or Asia/Kolkata.")
    return zone


def valid_quiet(value: str) -> tuple[str, str] | tuple[None, None]:
    if value.lower() in OFF:
        return None, None
    match = QUIET.fullmatch(value)
    if not match:
        raise CommandError(f"Quiet hours {value[:40]!r} are not HH:MM-HH:MM, "
                           "like 21:30-07:00 (or `quiet off`).")
    start_h, start_m, end_h, end_m = match.groups()
    start, end = f"{int(start_h):02d}:{start_m}", f"{int(end_h):02d}:{end_m}"
    if start == end:
        raise CommandError("Quiet hours must start and end at different times.")
    return start, end


def valid_tone(value: str) -> str:
    if value.lower() not in TONES:
        raise CommandError(f"The tone {value[:30]!r} is not one of {', '.join(TONES)}.")
    return value.lower()


def valid_digest(value: str) -> tuple[int, str | None]:
    """ "friday 16:00" → (4, "16:00"); "mon" → (0, None): the time stays as it was."""
    day, _, clock = value.partition(" ")
    matches = [i for i, name in enumerate(WEEKDAYS) if len(day) >= 3 and
               name.startswith(day.lower())]
    if len(matches) != 1:
        raise CommandError(f"{day[:20]!r} is not a day of the week; say e.g. "
                           "`digest friday 16:00` or `digest monday`.")
    if not clock:
        return matches[0], None
    found = CLOCK.fullmatch(clock)
    if found is None:
        raise CommandError(f"{clock[:20]!r} is not a time; say e.g. `digest friday 16:00`.")
    hours, minutes = found.groups()
    return matches[0], f"{int(hours):02d}:{minutes}"


def valid_losses(value: str) -> str:
    if value.lower() not in LOSSES:
        raise CommandError(f"{value[:30]!r} is not digest or immediate: `losses digest` keeps "
                           "single unfollows for the weekly digest, `losses immediate` tells "
                           "you about each one as soon as I notice.")
    return value.lower()


def valid_signature(value: str) -> str:
    if value.lower() in OFF:
        return ""
    if len(value) > MAX_SIGNATURE:
        raise CommandError(f"The signature is {len(value)} characters; "
                           f"the limit is {MAX_SIGNATURE}.")
    return value


def current_settings(owner: Owner) -> dict[str, str | None]:
    quiet = f"{owner.quiet_start}-{owner.quiet_end}" if owner.quiet_start else None
    return {"tz": owner.tz, "quiet": quiet, "tone": owner.tone,
            "signature": owner.signature or None,
            "digest": f"{WEEKDAYS[owner.digest_weekday % 7]} {owner.digest_time}",
            "losses": owner.report_losses, "field": owner.field,
            "interests": owner.interests or None, "dates": date_order_of(owner)}


def date_order_of(owner: Owner) -> str:
    """The owner's chosen order, else the one their time zone suggests."""
    return owner.date_order or default_date_order(owner.tz)


def dates_text(owner: Owner) -> str:
    example = "4/12 is 4 December" if date_order_of(owner) == "day-first" else \
        "4/12 is April 12"
    chosen = "" if owner.date_order else ", from your time zone"
    return f"{date_order_of(owner)} ({example}{chosen})"


def settings_text(owner: Owner, heading: str) -> str:
    values = current_settings(owner)
    return "\n".join([
        heading,
        f"  Time zone (tz): {values['tz']}",
        f"  Quiet hours (quiet): {values['quiet'] or 'none'}",
        f"  Tone of drafts (tone): {values['tone']}",
        f"  Signature (signature): {values['signature'] or 'none'}",
        f"  Weekly digest (digest): {(values['digest'] or '').capitalize()}",
        f"  Lost connections (losses): {values['losses']}, "
        f"{LOSSES.get(values['losses'] or '', '')}",
        f"  Your field (field): {values['field']}",
        f"  Your interests (interests): "
        f"{(values['interests'] or 'none').replace(',', ', ')}",
        f"  Dates (dates): {dates_text(owner)}",
    ])


@command("settings", USAGE, group="settings", profiles=NAMED)
async def settings(args: str, ctx: Context) -> None:
    """Show or change your settings; with no arguments, shows them.

    tz: your time zone (Area/City), used for reminders, digests and dates I show.
    quiet: hours when I hold nudges and reminders back (`quiet off` clears them).
    tone: how welcome drafts sound: warm, brief or formal.
    digest: the day (and time) of your weekly digest, in your time zone.
    losses: `digest` keeps single unfollows for the digest; `immediate` tells you at once.
    field: your own field (education, technology, research, …): the diversity nudge
    suggests people outside it.
    interests: what you care about, separated by commas; drafts mention what you share.
    dates: day-first (4/12 is 4 December) or month-first (April 12); `dates auto`
    follows your time zone.
    signature: a line added to welcome drafts; it must come last (`signature off` clears).
    Example: settings tz Europe/London quiet 21:30-07:00 digest friday 16:00 signature — Sam
    Example: settings field education interests maths, robotics, AI dates day-first
    """
    changes = parse_settings(args)
    owner = ctx.owner
    if not changes:
        ctx.send("reply", settings_text(owner, "Your settings:"),
                 settings=current_settings(owner))
        return
    validated = {key: VALIDATORS[key](value) for key, value in changes.items()}
    for key, value in validated.items():
        APPLY[key](owner, value)
    ctx.session.add(owner)
    ctx.session.flush()
    ctx.send("reply", settings_text(owner, f"Saved ({', '.join(changes)}). Your settings:"),
             settings=current_settings(owner), changed=sorted(changes))


def _set_quiet(owner: Owner, value: tuple[str | None, str | None]) -> None:
    owner.quiet_start, owner.quiet_end = value


def _set_digest(owner: Owner, value: tuple[int, str | None]) -> None:
    owner.digest_weekday = value[0]
    owner.digest_time = value[1] or owner.digest_time


VALIDATORS = {"tz": valid_tz, "quiet": valid_quiet, "tone": valid_tone,
              "signature": valid_signature, "digest": valid_digest, "losses": valid_losses,
              "field": valid_field, "interests": valid_interests, "dates": valid_dates}
APPLY = {
    "tz": lambda owner, value: setattr(owner, "tz", value),
    "quiet": _set_quiet,
    "tone": lambda owner, value: setattr(owner, "tone", value),
    "signature": lambda owner, value: setattr(owner, "signature", value),
    "digest": _set_digest,
    "losses": lambda owner, value: setattr(owner, "report_losses", value),
    "field": lambda owner, value: setattr(owner, "field", value),
    "interests": lambda owner, value: setattr(owner, "interests", value),
    "dates": lambda owner, value: setattr(owner, "date_order", value),
}


def check_exported(values: object) -> None:
    """An export's owner settings pass the same rules as the ``settings`` command
    (``plnbot import json``): "99:99" quiet hours or an unknown tone are refused, since
    every later nudge, digest and draft would read them. Raises ``CommandError``."""
    if not isinstance(values, dict):
        return  # the import itself says that "owner" must be an object
    text = {k: v for k, v in values.items() if isinstance(v, str)}
    if "tz" in text:
        valid_tz(text["tz"])
    start, end = values.get("quiet_start"), values.get("quiet_end")
    if start is not None or end is not None:
        valid_quiet(f"{start}-{end}")
    if "tone" in text:
        valid_tone(text["tone"])
    if "report_losses" in text:
        valid_losses(text["report_losses"])
    if "signature" in text:
        valid_signature(text["signature"])
    weekday = values.get("digest_weekday", 0)
    if weekday not in range(7) or isinstance(weekday, bool):
        raise CommandError(f"The digest weekday {str(weekday)[:20]!r} is not 0 (Monday) to "
                           "6 (Sunday).")
    if "digest_time" in values and not CLOCK.fullmatch(str(values["digest_time"])):
        raise CommandError(f"The digest time {str(values['digest_time'])[:20]!r} is not HH:MM.")
