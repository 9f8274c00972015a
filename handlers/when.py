"""Reading the owner's ``<when>`` and working with their wall clock.

The owner writes times in their own zone ("tomorrow 9am", "every friday"); the
database holds aware UTC. Known forms are matched first with small patterns (fast,
predictable); anything else goes to dateparser, imported lazily because it takes a
noticeable part of a second to import and console start-up must stay quick.

Recurrences are stored as ``"<unit>:<count>"`` (``"weeks:1"``, ``"days:3"``,
``"months:1"``) and rolled forward in the owner's *wall clock*, so "every friday 9:00"
stays at 9:00 across daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIME = time(9, 0)
EVENING = time(20, 0)
MAX_WHEN_WORDS = 6
ACCEPTED_FORMS = (
    "in 3 days, in 2 weeks, in 2 hours, tomorrow, tomorrow 9am, next monday, monday 14:00, "
    "2026-12-01, 2026-12-01 14:00, every friday, every 2 weeks"
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_ALIASES = {name[:3]: i for i, name in enumerate(WEEKDAYS)} | {
    name: i for i, name in enumerate(WEEKDAYS)} | {"tues": 1, "thur": 3, "thurs": 3}
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12}
UNITS = {"min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
         "m": "minutes", "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours",
         "hours": "hours", "d": "days", "day": "days", "days": "days", "w": "weeks",
         "week": "weeks", "weeks": "weeks", "fortnight": "fortnights",
         "fortnights": "fortnights", "month": "months", "months": "months"}
MONTH_WORDS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
               "dec")
MAX_AHEAD_DAYS = 3660

TIME_RE = (r"(?:at\s+)?(?:(?P<h12>\d{1,2})(?::(?P<m12>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)"
           r"|(?P<h24>\d{1,2})[:.h](?P<m24>\d{2})|(?P<word>noon|midday|midnight))")
AT_HOUR_RE = r"at\s+(?P<hat>\d{1,2})"
COUNT_RE = r"(?P<n>\d{1,4}|" + "|".join(NUMBER_WORDS) + ")"
UNIT_RE = r"(?P<unit>" + "|".join(sorted(UNITS, key=len, reverse=True)) + ")"
DAY_RE = r"(?P<day>" + "|".join(sorted(WEEKDAY_ALIASES, key=len, reverse=True)) + r")"


class WhenError(ValueError):
    """The text is not a time the owner can mean; the message says which forms work."""


@dataclass(frozen=True)
class When:
    due_at: datetime  # aware UTC
    recurrence: str | None = None  # "days:N" | "weeks:N" | "months:N:<day of the month>"


def zone_of(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time; a time skipped by DST moves forward."""
    local = datetime.combine(day, at, tzinfo=zone)
    return local.astimezone(UTC)


def local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(zone_of(tz))


# --- parsing -----------------------------------------------------------------------


def parse_when(text: str, *, tz: str, now: datetime) -> When:
    """One ``<when>`` (the whole text), in the future, or a WhenError saying why not."""
    phrase = normalise(text)
    if not phrase:
        raise WhenError(unreadable(text))
    found = match_known(phrase, tz=tz, now=now)
    if found is None:
        found = parse_with_dateparser(phrase, tz=tz, now=now)
    if found is None:
        raise WhenError(unreadable(text))
    return check_future(found, text=text, tz=tz, now=now)


def split_when(text: str, *, tz: str, now: datetime) -> tuple[When, str]:
    """Read ``<when> [text…]``: the longest leading words that make a time, and the rest.

    Known forms are tried first at every length, so "tomorrow call Jane" is
    "tomorrow" + "call Jane"; dateparser only gets a say when nothing known matches.
    """
    words = text.split()
    if not words:
        raise WhenError("Say when. " + accepted())
    for allow_dateparser in (False, True):
        for count in range(min(len(words), MAX_WHEN_WORDS), 0, -1):
            phrase = normalise(" ".join(words[:count]))
            found = match_known(phrase, tz=tz, now=now)
            if found is None and allow_dateparser and looks_like_date(phrase):
                found = parse_with_dateparser(phrase, tz=tz, now=now)
            if found is not None:
                when = check_future(found, text=" ".join(words[:count]), tz=tz, now=now)
                return when, strip_joiner(" ".join(words[count:]))
    raise WhenError(unreadable(" ".join(words[:MAX_WHEN_WORDS])))


def normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


def strip_joiner(rest: str) -> str:
    """ "to email Jane" → "email Jane": the joining word belongs to the sentence, not the note."""
    return re.sub(r"^(?:to|about|that|re:?|-|:)\s+", "", rest, flags=re.IGNORECASE).strip()


def looks_like_date(phrase: str) -> bool:
    return any(ch.isdigit() for ch in phrase) or any(
        word[:3] in MONTH_WORDS for word in phrase.split())


def accepted() -> str:
    return f"I understand times like: {ACCEPTED_FORMS}."


def unreadable(text: str) -> str:
    return f"I can't read {text.strip()[:60]!r} as a time. {accepted()}"


def check_future(found: When, *, text: str, tz: str, now: datetime) -> When:
    if found.due_at <= now:
        shown = show_time(found.due_at, tz)
        raise WhenError(f"{text.strip()!r} ({shown}) is in the past; give a future time.")
    if found.due_at - now > timedelta(days=MAX_AHEAD_DAYS):
        raise WhenError(f"{text.strip()!r} is more than ten years away; pick a nearer time.")
    return found


# --- the known forms ---------------------------------------------------------------


def match_known(phrase: str, *, tz: str, now: datetime) -> When | None:
    """Try each known form in turn; None when none matches the whole phrase."""
    zone = zone_of(tz)
    for reader in (read_every, read_in, read_day_word, read_weekday, read_iso, read_bare_time):
        found = reader(phrase, zone, now)
        if found is not None:
            return found
    return None


def clock_time(match: re.Match | None, default: time = DEFAULT_TIME) -> time | None:
    """The time of day a match names, the default when it names none, None when invalid."""
    if match is None:
        return default
    groups = match.groupdict()
    if groups.get("word"):
        return time(0, 0) if groups["word"] == "midnight" else time(12, 0)
    if groups.get("h12"):
        hour, minute = int(groups["h12"]), int(groups["m12"] or 0)
        if not 1 <= hour <= 12 or minute > 59:
            return None
        pm = groups["ampm"].startswith("p")
        return time(hour % 12 + (12 if pm else 0), minute)
    if groups.get("h24"):
        hour, minute = int(groups["h24"]), int(groups["m24"])
    elif groups.get("hat"):
        hour, minute = int(groups["hat"]), 0
    else:
        return default
    return time(hour, minute) if hour <= 23 and minute <= 59 else None


def time_suffix(rest: str) -> re.Match | None | Literal[False]:
    """The time-of-day match for ``rest`` ("", "9am", "at 14:00"); False if it is not one."""
    rest = rest.strip()
    if not rest:
        return None
    match = re.fullmatch(f"{TIME_RE}|{AT_HOUR_RE}", rest)
    return match if match else False


def count_of(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


def read_in(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "in 3 days", "in an hour", "in 2 weeks at 9am", and the short "2h" / "30m"."""
    match = re.fullmatch(rf"(?:in\s+{COUNT_RE}\s*{UNIT_RE}|(?P<sn>\d{{1,4}})\s*(?P<su>m|h|d|w))"
                         r"(?P<rest>(?:\s+.*)?)", phrase)
    if match is None:
        return None
    count = count_of(match["n"] or match["sn"])
    unit = UNITS[match["unit"] or match["su"]]
    if count < 1:
        return None
    if unit in ("minutes", "hours"):
        return None if match["rest"].strip() else When(now + timedelta(**{unit: count}))
    suffix = time_suffix(match["rest"])
    at = None if suffix is False else clock_time(suffix)
    if at is None:
        return None
    day = add_interval(now.astimezone(zone).date(), unit, count)
    return When(to_utc(day, at, zone))


def add_interval(day: date, unit: str, count: int) -> date:
    if unit == "months":
        from dateutil.relativedelta import relativedelta

        return day + relativedelta(months=count)
    days = {"days": 1, "weeks": 7, "fortnights": 14}[unit]
    return day + timedelta(days=days * count)


def read_day_word(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "today 5pm", "tonight", "tomorrow", "tomorrow 9am", "tomorrow at 14:00"."""
    match = re.fullmatch(r"(?P<word>today|tonight|tomorrow|tmrw|tmr)(?P<rest>(?:\s+.*)?)", phrase)
    if match is None:
        return None
    suffix = time_suffix(match["rest"])
    if suffix is False:
        return None
    today = now.astimezone(zone).date()
    day = today if match["word"] in ("today", "tonight") else today + timedelta(days=1)
    default = EVENING if match["word"] == "tonight" else DEFAULT_TIME
    if match["word"] == "today" and suffix is None:
        return None  # "today" alone has no sensible time; ask for one
    at = clock_time(suffix, default)
    return None if at is None else When(to_utc(day, at, zone))


def read_weekday(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "monday", "on friday", "next monday", "monday 14:00", "next week"."""
    if phrase == "next week":
        return weekday_when(0, None, zone, now, strictly_after_today=True)
    match = re.fullmatch(rf"(?P<lead>next\s+|on\s+|this\s+)?{DAY_RE}(?P<rest>(?:\s+.*)?)", phrase)
    if match is None:
        return None
    suffix = time_suffix(match["rest"])
    if suffix is False:
        return None
    strictly = (match["lead"] or "").strip() == "next"
    return weekday_when(WEEKDAY_ALIASES[match["day"]], suffix, zone, now,
                        strictly_after_today=strictly)


def weekday_when(weekday: int, suffix: re.Match | None, zone: ZoneInfo, now: datetime, *,
                 strictly_after_today: bool) -> When | None:
    """The next such weekday at the time given (today counts unless ``strictly``)."""
    at = clock_time(suffix)
    if at is None:
        return None
    today = now.astimezone(zone).date()
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and (strictly_after_today or to_utc(today, at, zone) <= now):
        ahead = 7
    return When(to_utc(today + timedelta(days=ahead), at, zone))


def read_iso(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "2026-12-01", "2026-12-01 14:00", "2026-12-01T14:00", "2026-12-01 at 2pm"."""
    match = re.fullmatch(r"(?:on\s+)?(?P<date>\d{4}-\d{1,2}-\d{1,2})(?:t|\s+)?(?P<rest>.*)", phrase)
    if match is None:
        return None
    suffix = time_suffix(match["rest"])
    if suffix is False:
        return None
    try:
        day = date(*map(int, match["date"].split("-")))
    except ValueError:
        return None
    at = clock_time(suffix)
    return None if at is None else When(to_utc(day, at, zone))


def read_bare_time(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "5pm", "at 17:30": the next time the clock shows it (today or tomorrow)."""
    suffix = time_suffix(phrase)
    if not suffix or suffix.groupdict().get("hat"):
        return None
    at = clock_time(suffix)
    if at is None:
        return None
    today = now.astimezone(zone).date()
    due = to_utc(today, at, zone)
    return When(due if due > now else to_utc(today + timedelta(days=1), at, zone))


def read_every(phrase: str, zone: ZoneInfo, now: datetime) -> When | None:
    """ "every friday [9am]", "every 2 weeks", "every day", "every month at 8:00"."""
    if not phrase.startswith("every "):
        return None
    body = phrase[len("every "):]
    day = re.fullmatch(rf"{DAY_RE}(?P<rest>(?:\s+.*)?)", body)
    if day is not None:
        suffix = time_suffix(day["rest"])
        first = None if suffix is False else weekday_when(
            WEEKDAY_ALIASES[day["day"]], suffix, zone, now, strictly_after_today=False)
        return None if first is None else When(first.due_at, "weeks:1")
    match = re.fullmatch(rf"(?:{COUNT_RE}\s+)?{UNIT_RE}(?P<rest>(?:\s+.*)?)", body)
    if match is None or UNITS[match["unit"]] in ("minutes", "hours"):
        return None
    count = count_of(match["n"]) if match["n"] else 1
    unit = UNITS[match["unit"]]
    unit, count = ("weeks", count * 2) if unit == "fortnights" else (unit, count)
    suffix = time_suffix(match["rest"])
    at = None if suffix is False else clock_time(suffix)
    if at is None or count < 1:
        return None
    today = now.astimezone(zone).date()
    first_due = to_utc(add_interval(today, unit, count), at, zone)
    # a monthly repeat remembers its day: begun on the 31st, it comes on the last day of
    # shorter months and on the 31st again after them, instead of drifting to the 28th
    anchor = f":{today.day}" if unit == "months" else ""
    return When(first_due, f"{unit}:{count}{anchor}")


# --- dateparser, for everything else ------------------------------------------------


def parse_with_dateparser(phrase: str, *, tz: str, now: datetime) -> When | None:
    """Free-form dates ("dec 5", "5 december 3pm"); date-only answers get 09:00."""
    from dateparser.date import DateDataParser  # lazy: slow to import, rarely needed

    zone = zone_of(tz)
    parser = DateDataParser(languages=["en"], settings={
        "TIMEZONE": zone.key, "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future", "PREFER_DAY_OF_MONTH": "first",
        "RELATIVE_BASE": now.astimezone(zone).replace(tzinfo=None),
    })
    try:
        data = parser.get_date_data(phrase)
    except Exception:  # dateparser raises assorted errors on odd input; unreadable is the answer
        return None
    if data is None or data.date_obj is None:
        return None
    moment = data.date_obj
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not re.search(r"\d(?::\d{2}|\s*[ap]\.?m\b)|noon|midday|midnight|hour|minute", phrase):
        return When(to_utc(moment.astimezone(zone).date(), DEFAULT_TIME, zone))
    return When(moment.astimezone(UTC))


# --- recurrence and display ----------------------------------------------------------


def parse_recurrence(recurrence: str) -> tuple[str, int]:
    """ "weeks:2" → ("weeks", 2); "months:1:31" → ("months", 1) (31: its day)."""
    unit, count, *_ = recurrence.split(":")
    return unit, int(count)


def month_day(recurrence: str) -> int | None:
    """The day of the month a monthly repeat keeps ("months:1:31" → 31), if it says."""
    parts = recurrence.split(":")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None


def next_occurrence(due_at: datetime, recurrence: str, *, tz: str, after: datetime) -> datetime:
    """The first occurrence after ``after``, stepping in the owner's wall clock."""
    zone = zone_of(tz)
    unit, count = parse_recurrence(recurrence)
    wall = due_at.astimezone(zone)
    day, at = wall.date(), wall.time().replace(tzinfo=None)
    keep_day = month_day(recurrence) or day.day
    candidate = due_at
    for step in range(1, 100_000):
        if unit == "months":
            day = nth_month(wall.date(), count * step, keep_day)
        else:
            day = add_interval(day, unit, count)
        candidate = to_utc(day, at, zone)
        if candidate > after:
            return candidate
    return candidate


def nth_month(start: date, months: int, keep_day: int) -> date:
    """``months`` after ``start``'s month, on ``keep_day`` or the month's last day."""
    from calendar import monthrange

    from dateutil.relativedelta import relativedelta

    month = start.replace(day=1) + relativedelta(months=months)
    return month.replace(day=min(keep_day, monthrange(month.year, month.month)[1]))


def describe_recurrence(recurrence: str | None, due_at: datetime, tz: str) -> str:
    if not recurrence:
        return ""
    unit, count = parse_recurrence(recurrence)
    if unit == "weeks" and count == 1:
        return f"every {WEEKDAYS[local(due_at, tz).weekday()].title()}"
    singular = unit.rstrip("s")
    return f"every {singular}" if count == 1 else f"every {count} {unit}"


def show_time(moment: datetime, tz: str) -> str:
    """ "Tue 1 Dec 2026 14:00" in the owner's zone."""
    wall = local(moment, tz)
    return f"{wall:%a} {wall.day} {wall:%b %Y %H:%M}"


def ago(delta: timedelta) -> str:
    days = delta.days
    if days >= 14:
        return f"{days // 7} weeks"
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = delta.seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''}" if hours else "moments"


# --- quiet hours and weeks ---------------------------------------------------------------


def parse_clock(text: str | None) -> time | None:
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


def in_quiet_hours(*, quiet_start: str | None, quiet_end: str | None, tz: str,
                   now: datetime) -> bool:
    """Whether ``now`` falls in the owner's quiet hours (which may run across midnight)."""
    start, end = parse_clock(quiet_start), parse_clock(quiet_end)
    if start is None or end is None or start == end:
        return False
    wall = local(now, tz).time().replace(tzinfo=None)
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def week_start(moment: datetime, tz: str) -> datetime:
    """Monday 00:00 of the owner's week containing ``moment``, as UTC."""
    zone = zone_of(tz)
    day = moment.astimezone(zone).date()
    return to_utc(day - timedelta(days=day.weekday()), time(0, 0), zone)


def shift_weeks(start: datetime, weeks: int, tz: str) -> datetime:
    """The Monday ``weeks`` away from the week starting at ``start`` (DST-safe)."""
    zone = zone_of(tz)
    day = start.astimezone(zone).date() + timedelta(weeks=weeks)
    return to_utc(day, time(0, 0), zone)
