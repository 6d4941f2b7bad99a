"""Business hours: when a team answers, and time counted only while it does. Pure: no I/O
(public holidays come from the ``holidays`` package, which computes them, lunar dates
included).

A calendar is weekly opening intervals in a time zone (breaks are gaps between
intervals), minus public holidays and extra closed dates, plus make-up working days (a
Saturday worked in exchange for a bridge day). Instants are Unix times (float seconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_tables
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 86400
# How far ahead the next opening is looked for (a calendar closed for longer never opens).
HORIZON_DAYS = 800
_INTERVAL = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")

DEFAULT_OFF_HOURS_TEXTS = {
    "vi": "Cảm ơn bạn đã liên hệ. Hiện đã ngoài giờ làm việc; chúng tôi sẽ trả lời bạn "
    "lúc {opening}.",
    "en": "Thanks for reaching out. We are closed now and will answer you at {opening}.",
}
_WEEKDAY_NAMES = {
    "vi": ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def parse_interval(text: str) -> tuple[int, int]:
    """``"08:00-12:00"`` -> seconds after midnight (start, end); ``24:00`` ends a day."""
    found = _INTERVAL.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not an interval like 08:00-12:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} is not an interval like 08:00-12:00")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


def _day_intervals(texts: list[str]) -> tuple[tuple[int, int], ...]:
    spans = sorted(parse_interval(t) for t in texts)
    for (_, end), (start, _) in pairwise(spans):
        if start < end:
            raise ValueError(f"intervals overlap: {', '.join(texts)}")
    return tuple(spans)


class BusinessHoursSettings(BaseModel):
    """One ``[[business_hours]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    timezone: str = "Asia/Ho_Chi_Minh"
    # mon..sun -> ["08:00-12:00", "13:30-17:30"]; a day not named is closed.
    hours: dict[str, list[str]] = Field(default_factory=dict)
    # A country's public holidays (ISO code, e.g. "VN"), from the holidays package.
    holidays: str | None = None
    # Closed although the week says open (a company day off).
    closed_dates: list[date] = Field(default_factory=list)
    # Open although the week or a holiday says closed, with make_up_hours (default: the
    # Monday's hours).
    make_up_days: list[date] = Field(default_factory=list)
    make_up_hours: list[str] | None = None
    # Channel ids or channel types that follow these hours.
    channels: list[str] = Field(default_factory=list)
    # Routing rules (teams) whose conversations follow these hours, whatever the channel.
    rules: list[str] = Field(default_factory=list)
    # Outside hours a customer gets one automatic reply per closed period.
    off_hours_reply: bool = True
    # Per language; {opening} is the next opening ("08:00 thứ Hai, 16/02").
    texts: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OFF_HOURS_TEXTS))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("hours")
    @classmethod
    def _week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekdays {', '.join(unknown)} (use {', '.join(WEEKDAYS)})")
        for texts in value.values():
            _day_intervals(texts)
        return value

    @field_validator("holidays")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in holiday_tables.list_supported_countries():
            raise ValueError(f"no public holidays known for {value!r}")
        return None if value is None else value.upper()

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        for language, text in value.items():
            try:
                text.format(opening="")
            except (KeyError, IndexError, ValueError):
                raise ValueError(f"texts.{language}: only {{opening}} can be filled in") from None
        return value

    @model_validator(mode="after")
    def _make_up(self) -> BusinessHoursSettings:
        if self.make_up_hours is not None:
            _day_intervals(self.make_up_hours)
        return self


class Calendar:
    """Opening hours as instants. ``Calendar.always()`` is open around the clock."""

    def __init__(self, settings: BusinessHoursSettings) -> None:
        self.settings = settings
        self.id = settings.id
        self.zone = ZoneInfo(settings.timezone)
        self._week = tuple(_day_intervals(settings.hours.get(d, [])) for d in WEEKDAYS)
        make_up = settings.make_up_hours
        self._make_up = _day_intervals(make_up) if make_up is not None else self._week[0]
        self._closed = frozenset(settings.closed_dates)
        self._open_days = frozenset(settings.make_up_days)
        self._always = False
        self._days: dict[date, tuple[tuple[float, float], ...]] = {}

    @classmethod
    def always(cls) -> Calendar:
        """24/7: every second is business time."""
        cal = cls(BusinessHoursSettings(id="always", timezone="UTC"))
        cal._always = True
        return cal

    @property
    def around_the_clock(self) -> bool:
        return self._always

    def holiday(self, day: date) -> str | None:
        """The public holiday's name on this local date, if any."""
        country = self.settings.holidays
        if country is None:
            return None
        return _holidays(country, day.year).get(day)

    def local_hours(self, day: date) -> tuple[tuple[int, int], ...]:
        """Opening intervals of a local date, in seconds after its midnight."""
        if day in self._open_days:
            return self._make_up
        if day in self._closed or self.holiday(day) is not None:
            return ()
        return self._week[day.weekday()]

    def intervals(self, day: date) -> tuple[tuple[float, float], ...]:
        """Opening intervals of a local date as instants."""
        found = self._days.get(day)
        if found is None:
            midnight = datetime.combine(day, time(), self.zone)
            found = tuple(
                (_at(midnight, start), _at(midnight, end)) for start, end in self.local_hours(day)
            )
            if len(self._days) > 4096:
                self._days.clear()
            self._days[day] = found
        return found

    def _local_date(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.zone).date()

    def _spans_from(self, t: float) -> Iterator[tuple[float, float]]:
        """Opening intervals that end after t, in order (the first may have begun)."""
        day = self._local_date(t) - timedelta(days=1)
        for _ in range(HORIZON_DAYS + 2):
            for start, end in self.intervals(day):
                if end > t:
                    yield start, end
            day += timedelta(days=1)

    def is_open(self, t: float) -> bool:
        if self._always:
            return True
        return any(start <= t < end for start, end in self.intervals(self._local_date(t)))

    def next_opening(self, t: float) -> float | None:
        """The first instant at or after t when it is open (t itself when open); None
        when it does not open within the horizon."""
        if self._always:
            return t
        for start, _ in self._spans_from(t):
            return max(start, t)
        return None

    def business_seconds(self, a: float, b: float) -> float:
        """Open seconds between two instants (0 when b is not after a)."""
        if b <= a:
            return 0.0
        if self._always:
            return b - a
        total = 0.0
        for start, end in self._spans_from(a):
            if start >= b:
                break
            total += min(end, b) - max(start, a)
        return total

    def due(self, start: float, seconds: float) -> float | None:
        """The instant when ``seconds`` of business time have passed since ``start``;
        None when the calendar does not open enough within the horizon."""
        if self._always:
            return start + max(seconds, 0.0)
        if seconds <= 0:
            return start
        left = seconds
        for begin, end in self._spans_from(start):
            begin = max(begin, start)
            if end - begin >= left:
                return begin + left
            left -= end - begin
        return None

    def describe(self, t: float, language: str | None) -> str:
        """An opening instant for a customer: ``08:00 thứ Hai, 16/02``."""
        local = datetime.fromtimestamp(t, self.zone)
        names = _WEEKDAY_NAMES.get((language or "").lower().split("-")[0], _WEEKDAY_NAMES["en"])
        joint = " " if names is _WEEKDAY_NAMES["vi"] else " on "
        return f"{local:%H:%M}{joint}{names[local.weekday()]}, {local:%d/%m}"


def _at(midnight: datetime, seconds: int) -> float:
    """The instant ``seconds`` of wall-clock time after a local midnight (DST aware: the
    wall clock, not elapsed time)."""
    if seconds >= DAY:
        following = (midnight + timedelta(days=1)).date()
        return datetime.combine(following, time(), midnight.tzinfo).timestamp()
    wall = midnight.replace(hour=seconds // 3600, minute=seconds % 3600 // 60)
    return wall.astimezone(UTC).timestamp()


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> dict[date, str]:
    return dict(holiday_tables.country_holidays(country, years=year).items())


class Calendars:
    """Which business hours a conversation follows: its routing rule's (a team's), else
    its channel's (by id, then type); None: around the clock."""

    def __init__(self, entries: list[BusinessHoursSettings]) -> None:
        self.by_channel: dict[str, Calendar] = {}
        self.by_rule: dict[str, Calendar] = {}
        for entry in entries:
            cal = Calendar(entry)
            for names, kind, found in (
                (entry.channels, "channel", self.by_channel),
                (entry.rules, "routing rule", self.by_rule),
            ):
                for name in names:
                    if name in found:
                        raise ValueError(f"{kind} {name!r} follows two business hours")
                    found[name] = cal

    def of(self, channel_id: str, channel_type: str, rule: str | None = None) -> Calendar | None:
        if rule is not None and rule in self.by_rule:
            return self.by_rule[rule]
        return self.by_channel.get(channel_id) or self.by_channel.get(channel_type)
