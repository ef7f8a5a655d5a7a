"""``schedule=`` → Nomad ``periodic`` blocks.

Runs on the client. ``modal.Cron`` keeps its expression and time zone;
``modal.Period`` becomes a cron expression only when one expresses it
exactly (Nomad's periodic jobs have no interval form), otherwise it is an
error that says so. A sub-minute Period uses the seconds field of Nomad's
7-field cron form. Note: a cron-expressed Period fires on clock
boundaries, not counted from the deploy time as Modal's does.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from agent_runtime.sdk.objects import Cron, Period

from ..errors import UserError
from ..ir import Periodic

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.upper() in names:
        return names.index(text.upper()) + (1 if names is _MONTHS else 0)
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def _field_problem(field: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    for part in field.split(","):
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) < 1):
            return f"bad step {step!r} in the {name} field"
        if base in ("*", "?"):
            continue
        lo, dash, hi = base.partition("-")
        a = _value(lo, low, high, names)
        b = _value(hi, low, high, names) if dash else a
        if a is None or b is None:
            bad = lo if a is None else hi
            return f"{bad!r} is not a valid {name} ({low}-{high})"
        if a > b:
            return f"the range {base!r} in the {name} field runs backwards"
    return None


def check_cron(expr: str, location: tuple[str, int]) -> str:
    text = " ".join(str(expr).split())
    if text in _MACROS:
        return text
    fields = text.split(" ")
    if len(fields) != 5:
        raise UserError(f"invalid cron expression {expr!r}: expected 5 fields "
                        f"(minute hour day-of-month month day-of-week), got {len(fields)}",
                        location=location, hint="e.g. modal.Cron(\"0 9 * * 1-5\")")
    for field, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        problem = _field_problem(field, name, low, high, names)
        if problem:
            raise UserError(f"invalid cron expression {expr!r}: {problem}", location=location,
                            hint="see `man 5 crontab`")
    return text


def check_timezone(tz: str, location: tuple[str, int]) -> str:
    if tz in ("UTC", "Local"):
        return tz
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {tz!r}", location=location,
                        hint="use an IANA name such as \"America/New_York\"") from None
    return tz


def period_to_cron(period: Period, location: tuple[str, int]) -> str:
    def fail(why: str) -> UserError:
        return UserError(
            f"{_describe(period)} cannot be expressed as a Nomad periodic job: {why}",
            location=location,
            hint="Nomad schedules with cron expressions; use a period that divides a minute, hour or day "
            "evenly (or 1 day, 1 week, 1 month, 1 year), or modal.Cron(...)",
        )

    if period.years or period.months:
        rest = (period.weeks, period.days, period.hours, period.minutes, period.seconds)
        if period.years == 1 and not period.months and not any(rest):
            return "0 0 1 1 *"
        if period.months == 1 and not period.years and not any(rest):
            return "0 0 1 * *"
        raise fail("only a single month or a single year is a cron schedule")
    total = period.weeks * 604800 + period.days * 86400 + period.hours * 3600 + period.minutes * 60 + period.seconds
    if total <= 0:
        raise fail("the period must be positive")
    if total != int(total):
        raise fail("cron has a resolution of one second")
    total = int(total)
    if total == 604800:
        return "0 0 * * 0"
    if total % 86400 == 0:
        if total == 86400:
            return "0 0 * * *"
        raise fail("cron cannot repeat every N days across month boundaries")
    if total % 3600 == 0:
        hours = total // 3600
        if 24 % hours == 0:
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        raise fail(f"{hours} hours does not divide a day")
    if total % 60 == 0:
        minutes = total // 60
        if minutes < 60 and 60 % minutes == 0:
            return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
        raise fail(f"{minutes} minutes does not divide an hour")
    if total < 60 and 60 % total == 0:
        # hashicorp/cronexpr (cronexpr.go, Parse) reads a seconds field only in a 7-field expression:
        # second minute hour day-of-month month day-of-week year; Nomad validates a periodic spec with
        # cronexpr.Parse alone (nomad/structs/structs.go, PeriodicConfig.Validate), with no minimum interval.
        return "* * * * * * *" if total == 1 else f"*/{total} * * * * * *"
    if total < 60:
        raise fail(f"{total} seconds does not divide a minute")
    raise fail(f"{total} seconds is not a whole number of minutes")


def _describe(period: Period) -> str:
    parts = [f"{k}={getattr(period, k)!r}" for k in ("years", "months", "weeks", "days", "hours", "minutes",
                                                   "seconds") if getattr(period, k)]
    return f"modal.Period({', '.join(parts)})"


def lower_schedule(schedule: Any, location: tuple[str, int]) -> Periodic | None:
    if schedule is None:
        return None
    loc = getattr(schedule, "location", None) or location
    if isinstance(schedule, Cron):
        return Periodic(crons=(check_cron(schedule.cron_string, loc),),
                        time_zone=check_timezone(schedule.timezone or "UTC", loc), prohibit_overlap=True)
    if isinstance(schedule, Period):
        return Periodic(crons=(period_to_cron(schedule, loc),), time_zone="UTC", prohibit_overlap=True)
    raise UserError(f"schedule= must be modal.Cron(...) or modal.Period(...), got {type(schedule).__name__}",
                    location=location)


