from datetime import UTC, datetime

import pytest

from core.hours import TIMEZONE, InvalidHours, OpeningHours

# Thursday 15 January 2026 (winter time, UTC+1) and Thursday 16 July 2026 (summer time, UTC+2).
WINTER = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)  # 10:30 in Berlin
SUMMER = datetime(2026, 7, 16, 8, 30, tzinfo=UTC)  # 10:30 in Berlin


def hours(**days):
    return OpeningHours.parse(days)


def test_no_hours_set_means_none():
    assert OpeningHours.parse(None) is None


@pytest.mark.parametrize("at", [WINTER, SUMMER])
def test_open_is_judged_in_berlin_time_in_winter_and_summer(at):
    assert hours(thu=["10:00-11:00"]).is_open(at)
    assert not hours(thu=["11:00-12:00"]).is_open(at)
    assert not hours(fri=["10:00-11:00"]).is_open(at)


def test_a_window_ends_before_its_end_minute():
    assert not hours(thu=["09:00-10:30"]).is_open(WINTER)
    assert hours(thu=["10:30-24:00"]).is_open(WINTER)


def test_next_opening_later_today_tomorrow_and_next_week():
    assert hours(thu=["14:00-16:00"]).next_opening(WINTER) == datetime(
        2026, 1, 15, 14, 0, tzinfo=TIMEZONE
    )
    assert hours(fri=["09:00-12:00"]).next_opening(WINTER) == datetime(
        2026, 1, 16, 9, 0, tzinfo=TIMEZONE
    )
    # The same weekday, but the window is over: a week later.
    assert hours(thu=["08:00-09:00"]).next_opening(WINTER) == datetime(
        2026, 1, 22, 8, 0, tzinfo=TIMEZONE
    )
    assert hours().next_opening(WINTER) is None


def test_two_windows_a_day_with_a_break():
    split = hours(thu=["08:00-10:00", "12:00-14:00"])
    assert not split.is_open(WINTER)
    assert split.next_opening(WINTER) == datetime(2026, 1, 15, 12, 0, tzinfo=TIMEZONE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"thursday": ["09:00-10:00"]}, "unknown weekday"),
        ({"thu": ["9-10"]}, "HH:MM-HH:MM"),
        ({"thu": ["22:00-02:00"]}, "split a night"),
        ({"thu": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"thu": ["24:00-24:00"]}, "HH:MM-HH:MM"),
    ],
)
def test_unreadable_hours_say_why(data, message):
    with pytest.raises(InvalidHours, match=message):
        OpeningHours.parse(data)
