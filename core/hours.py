"""Opening hours of a team: whether someone answers now, and when next, in German local time.

Stored on the team as JSON, one list of "HH:MM-HH:MM" windows per weekday that has any:
`{"mon": ["09:00-13:00", "14:00-18:00"], "sat": ["10:00-14:00"]}`. A day that is missing is
closed; "24:00" ends a window at midnight. No hours at all (NULL) means the team has not set
any, and the bot then promises nothing about times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Every team works in Germany; one zone keeps "Montag 9 Uhr" right across daylight saving.
TIMEZONE = ZoneInfo("Europe/Berlin")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_END_OF_DAY = time(23, 59, 59, 999999)


def local_month(at: datetime) -> str:
    """The calendar month of an instant in German local time, as "2026-12": the unit the
    statistics count in, so a night-time talk on the 31st counts where its users saw it."""
    return at.astimezone(TIMEZONE).strftime("%Y-%m")


class InvalidHours(ValueError):
    """The hours cannot be read; the message says which day and why, never more."""


@dataclass(frozen=True)
class OpeningHours:
    # weekday (0 = Monday) -> sorted windows of local wall-clock time
    windows: Mapping[int, tuple[tuple[time, time], ...]]

    @classmethod
    def parse(cls, data: Mapping[str, Sequence[str]] | None) -> OpeningHours | None:
        if data is None:
            return None
        windows: dict[int, tuple[tuple[time, time], ...]] = {}
        for day, spans in data.items():
            if day not in WEEKDAYS:
                raise InvalidHours(f"unknown weekday {day!r}: use {', '.join(WEEKDAYS)}")
            parsed = sorted(_window(day, span) for span in spans)
            for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
                if start < end:
                    raise InvalidHours(f"{day}: windows overlap")
            windows[WEEKDAYS.index(day)] = tuple(parsed)
        return cls(windows)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(TIMEZONE)
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.windows.get(local.weekday(), ()))

    def next_opening(self, at: datetime) -> datetime | None:
        """When the next window starts (local time), or None when every day is closed."""
        local = at.astimezone(TIMEZONE)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            for start, _ in self.windows.get(day.weekday(), ()):
                candidate = datetime.combine(day, start, TIMEZONE)
                if candidate > local:
                    return candidate
        return None


def _window(day: str, span: str) -> tuple[time, time]:
    match = _WINDOW.match(span.strip())
    if match is None:
        raise InvalidHours(f"{day}: write a window as HH:MM-HH:MM, e.g. 09:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2:
        raise InvalidHours(f"{day}: 24:00 is the latest end")
    start = time(h1, m1)
    end = _END_OF_DAY if h2 == 24 else time(h2, m2)
    if end <= start:
        raise InvalidHours(f"{day}: a window ends after it starts (split a night over two days)")
    return start, end
