"""A cron schedule with a time zone: validated by croniter, fired by APScheduler, exported as Quartz.

One expression has to mean the same thing to three engines: croniter (validation), APScheduler 3 (which
numbers weekdays from Monday = 0, unlike crontab) and DolphinScheduler's Quartz (which needs ``?`` in one
of the two day fields). :class:`Cron` keeps the standard crontab text and translates weekdays to names
for the other two, and refuses expressions that restrict both day-of-month and day-of-week (crontab ORs
them, APScheduler ANDs them, Quartz forbids them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from hmco.windows import as_utc

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

__all__ = ["Cron"]

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TICK = timedelta(microseconds=1)
_MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Cron:
    """A 5-field crontab expression (minute hour day-of-month month day-of-week) in ``timezone``.

    Raises:
        ValueError: the expression is not valid cron (``99 99 99 99 99``), names an unknown time zone,
            or restricts both day fields.
    """

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 5 or not croniter.is_valid(self.expression):
            raise ValueError(
                f"{self.expression!r} is not a valid 5-field cron expression (minute hour day month weekday)"
            )
        try:
            croniter(self.expression, datetime(2026, 1, 1), max_years_between_matches=8).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"{self.expression!r} is not a valid schedule: it never fires") from None
        if fields[2] not in ("*", "?") and fields[4] not in ("*", "?"):
            raise ValueError(
                f"{self.expression!r} restricts both day-of-month and day-of-week; cron engines disagree on "
                "what that means (OR or AND): use one of the two"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{self.timezone!r} is not an IANA time zone (e.g. UTC, America/New_York)"
            ) from None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _weekdays(self) -> list[str] | None:
        """The day-of-week field as day names, or None when it is unrestricted."""
        if self.expression.split()[4] in ("*", "?"):
            return None
        days = croniter.expand(self.expression)[0][4]
        return [_DAYS[int(d) % 7] for d in sorted({int(d) % 7 for d in days if d != "*"})]

    def trigger(self) -> CronTrigger:
        """The APScheduler trigger firing on this schedule (weekdays passed by name, not number)."""
        from apscheduler.triggers.cron import CronTrigger

        minute, hour, day, month, _ = self.expression.split()
        weekdays = self._weekdays
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=",".join(weekdays) if weekdays else "*",
            timezone=self.tz,
        )

    def fire_times(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every fire time in ``(after, until]``, computed by the same trigger the scheduler runs."""
        trigger = self._trigger
        t = trigger.get_next_fire_time(None, as_utc(after).astimezone(self.tz) + _TICK)
        until = as_utc(until)
        while t is not None and t <= until:
            yield t
            t = trigger.get_next_fire_time(None, t + _TICK)

    def last_fire(self, until: datetime, *, within: timedelta) -> datetime | None:
        """The newest fire time in ``(until - within, until]``, or None."""
        last = None
        for last in self.fire_times(as_utc(until) - within, until):  # noqa: B007
            pass
        return last

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``."""
        t = self._trigger.get_next_fire_time(None, as_utc(after).astimezone(self.tz) + _TICK)
        assert t is not None  # a valid cron expression always fires again
        return t

    @cached_property
    def _trigger(self) -> CronTrigger:
        return self.trigger()

    @property
    def cadence(self) -> timedelta:
        """The gap between two fires from a fixed Monday (a week for the Sunday jobs)."""
        first = self.next_fire(_MONDAY)
        return self.next_fire(first) - first

    def quartz(self) -> str:
        """The Quartz form DolphinScheduler schedules take: ``sec min hour dom month dow year``."""
        minute, hour, day, month, _ = self.expression.split()
        weekdays = self._weekdays
        if weekdays:
            return f"0 {minute} {hour} ? {month} {','.join(d.upper() for d in weekdays)} *"
        return f"0 {minute} {hour} {day} {month} ? *"

    def __str__(self) -> str:
        return f"{self.expression} ({self.timezone})"
