"""Directory freshness: when an offer or a prison is due for another check, and the review list.

Every record carries the date an editor last checked it against its source (HSDS
`assured_date`). A record is **overdue** once more than `REVIEW_AFTER_MONTHS` calendar months
have passed since then: checked on 15 January 2026, it is due on 15 January 2027 and overdue
from 16 January 2027. A check on a day the due month lacks (29 February, 31 August with a
six-month rule) is due on that month's last day.

Calendar months, not 365 days, because "twelve months" is what editors and funders mean: a
record checked on 1 March is due on 1 March of the next year, leap year or not. The rule is
still a single cutoff date per day (`review_cutoff`), so the list filter is the same `<`
comparison in Python, SQLite and PostgreSQL. Month arithmetic is done here by hand (no
dateutil): the year and month are shifted and the day is clamped to the month's length.

Time comes from a Clock; "today" is the calendar date in Germany.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, date, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from directory.models import Organization, Prison, Service

REVIEW_AFTER_MONTHS = 12
RecordKind = Literal["service", "prison"]


# -- today in Germany --------------------------------------------------------------------------


def _berlin() -> tzinfo:
    try:
        return ZoneInfo("Europe/Berlin")
    except ZoneInfoNotFoundError:  # pragma: no cover - images without tz data
        # Only the calendar date is taken from it: at worst "today" turns an hour late.
        return UTC


_BERLIN = _berlin()


def local_zone() -> tzinfo:
    """German local time, for showing when something changed."""
    return _BERLIN


def local_today(clock: Clock) -> date:
    """Today in Germany: an editor who checks an entry at 00:30 checked it on that day."""
    return clock.now().astimezone(_BERLIN).date()


# -- the rule ----------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """`day` shifted by whole calendar months (negative: back), the day clamped to the
    target month's length: 31 January + 1 month = 28 (or 29) February."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def review_due(assured_date: date, *, months: int = REVIEW_AFTER_MONTHS) -> date:
    """The last day on which a record checked on `assured_date` still counts as fresh."""
    return add_months(assured_date, months)


def review_cutoff(today: date, *, months: int = REVIEW_AFTER_MONTHS) -> date:
    """Records last checked before this date are overdue on `today`.

    The earliest check date whose due date is not yet past: `today` shifted back by `months`,
    or, when that day does not exist (today is 29 February, `months` = 12), the first day of
    the following month, since every check in the shorter month was due on an earlier day."""
    index = today.year * 12 + (today.month - 1) - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    if today.day <= last:
        return date(year, month + 1, today.day)
    return date(year, month + 1, last) + timedelta(days=1)


def is_overdue(assured_date: date, today: date) -> bool:
    """The one freshness rule: the console's badge, its filter, the review list and the tests
    all use it (a check date in the future counts as fresh)."""
    return assured_date < review_cutoff(today)


def days_overdue(assured_date: date, today: date) -> int:
    """Days since the record was due; 0 or less while it is fresh."""
    return (today - review_due(assured_date)).days


# -- the review list ---------------------------------------------------------------------------


class OverdueRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: RecordKind
    id: uuid.UUID
    name: str
    # The organization of a service, the town of a prison: which "Beratung" this is.
    context: str | None
    status: str
    publication_status: str
    assured_date: date
    due_date: date
    days_overdue: int


async def overdue_records(
    session: AsyncSession, *, clock: Clock, months: int = REVIEW_AFTER_MONTHS
) -> list[OverdueRecord]:
    """Services and prisons not checked for more than `months` calendar months, the longest
    unchecked first (ties by name, then id, so the order is stable on every database).

    Every record counts, drafts and records out of operation too: the list is the editors'
    to-do list, and their badges say which ones the bot would show."""
    today = local_today(clock)
    cutoff = review_cutoff(today, months=months)
    found: list[OverdueRecord] = []
    services = await session.execute(
        select(Service, Organization.name).join(Organization).where(Service.assured_date < cutoff)
    )
    for service, organization in services:
        found.append(_overdue("service", service, organization, today, months))
    for prison in await session.scalars(select(Prison).where(Prison.assured_date < cutoff)):
        found.append(_overdue("prison", prison, prison.city, today, months))
    found.sort(key=lambda item: (item.assured_date, item.name.casefold(), str(item.id)))
    return found


def _overdue(
    kind: RecordKind,
    row: Service | Prison,
    context: str | None,
    today: date,
    months: int,
) -> OverdueRecord:
    due = review_due(row.assured_date, months=months)
    return OverdueRecord(
        kind=kind,
        id=row.id,
        name=row.name,
        context=context,
        status=row.status,
        publication_status=row.publication_status,
        assured_date=row.assured_date,
        due_date=due,
        days_overdue=(today - due).days,
    )


__all__ = [
    "REVIEW_AFTER_MONTHS",
    "OverdueRecord",
    "add_months",
    "days_overdue",
    "is_overdue",
    "local_today",
    "local_zone",
    "overdue_records",
    "review_cutoff",
    "review_due",
]
