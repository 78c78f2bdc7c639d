"""Monitoring statistics: anonymous counts for funders and ministries, never content.

What is counted (docs/statistics.md defines every figure):
- `conversation`: a conversation with a counsellor that ended (closed by a counsellor, or by
  retention after a week without messages), in the month it ended: the user's role (the bot's
  roles are also its age bands), federal state, topics, crisis flag and outcome codes.
- `search`: the bot showed offers for a place and topics: role, federal state, topics, and
  whether anything was found.
- `referral`: an offer a counsellor sent as a card, by the need it was sent for, counted when
  its conversation ends.
- `followup`: an answer to a check-in ("Hat dir das Angebot geholfen?").

Each is a `StatEvent` row with codes and the month only. They are published as fixed tables
for whole, completed periods (one period length per deployment, quarters by default), once:
the first time a period is asked for, its protected tables are stored and never computed
again. Every count under 5 shows as "<5", and `core.disclosure.protect` withholds what else is
needed so that no total or margin, within the report, lets a reader work one back out.
Fixed periods, one length, and no filters (no per-team view, no free date range) are what keep
reports from being subtracted from each other: the difference of two overlapping reports
would be an unprotected table. That is why the current period is not shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.db import transaction
from core.disclosure import AtMost, Status, Sum, UnprotectableError, protect
from core.hours import local_month
from core.i18n import Catalogue
from core.models import Contact, Conversation, Counsellor, Referral, StatEvent, StatReport
from core.outcomes import FOLLOWUP_ANSWERS, RESULTS
from core.schemas import CRISIS_CATEGORIES
from core.teams import NotAllowed
from referral.records import NEEDS, STATE_NAMES

log = logging.getLogger(__name__)

THRESHOLD = 5
SMALL = "<5"
WITHHELD = "x"
UNKNOWN = "unknown"
GRANULARITIES = ("month", "quarter", "year")
USER_ROLES = ("child", "teen", "young_adult", "caregiver", "professional")
# A conversation retention closed had no outcome set by anyone: it is counted as such.
CLOSED_INACTIVE = "closed_inactive"
OTHER = "other"


class UnknownPeriod(ValueError):
    """Not a period of this deployment's length, not complete yet, or malformed."""


class PeriodOverlaps(ValueError):
    """A stored report of another length covers part of this period: publishing both would
    let a reader subtract one from the other."""


# -- recording ---------------------------------------------------------------------------------


def _topics(codes: Iterable[str]) -> list[str]:
    wanted = set(codes)
    return [need for need in NEEDS if need in wanted]


def _state(code: str | None) -> str | None:
    return code if code in STATE_NAMES else None


def _role(code: str | None) -> str | None:
    return code if code in USER_ROLES else None


async def record_ended(
    session: AsyncSession, *, conversations: Sequence[Conversation], at: datetime, inactive: bool
) -> None:
    """Inside the transaction that ends them (contacts loaded): one `conversation` event each,
    and one `referral` event per offer a counsellor sent in it."""
    if not conversations:
        return
    month = local_month(at)
    ids = [c.id for c in conversations]
    rows = (
        await session.execute(
            select(Referral.conversation_id, Referral.category).where(
                Referral.conversation_id.in_(ids)
            )
        )
    ).all()
    categories: dict[Any, list[str | None]] = {}
    for conversation_id, category in rows:
        categories.setdefault(conversation_id, []).append(category)
    for conversation in conversations:
        contact: Contact = conversation.contact
        role, state = _role(contact.role), _state(contact.federal_state)
        topics = [*conversation.topics]
        topics += [
            c.removeprefix("topic:") for c in conversation.outcomes if c.startswith("topic:")
        ]
        results = [c for c in conversation.outcomes if c in RESULTS]
        session.add(
            StatEvent(
                unit="conversation",
                month=month,
                role=role,
                federal_state=state,
                topics=_topics(topics),
                outcomes=[CLOSED_INACTIVE] if inactive and not results else results,
                crisis=bool(conversation.crisis),
                crisis_category=conversation.crisis_category if conversation.crisis else None,
            )
        )
        for category in categories.get(conversation.id, ()):
            session.add(
                StatEvent(
                    unit="referral",
                    month=month,
                    role=role,
                    federal_state=state,
                    category=category if category in NEEDS else OTHER,
                )
            )


def referral_category(*, offer_needs: Iterable[str], asked: Sequence[str]) -> str:
    """The need an offer was sent for: the first need searched for that it serves, else its
    own first need; so each referral counts once."""
    serves = set(offer_needs)
    for need in asked:
        if need in serves:
            return need
    return next((need for need in NEEDS if need in serves), OTHER)


# -- periods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    key: str  # "2026-11", "2026-Q4", "2026"
    granularity: str
    months: tuple[str, ...]

    @property
    def starts(self) -> str:
        return self.months[0]

    @property
    def ends(self) -> str:
        return self.months[-1]


def _months(year: int, first: int, count: int) -> tuple[str, ...]:
    return tuple(f"{year:04d}-{m:02d}" for m in range(first, first + count))


def period_of(month: str, granularity: str) -> Period:
    """The period of this length that contains the month ("2026-11")."""
    year, number = int(month[:4]), int(month[5:7])
    if granularity == "month":
        return Period(month, granularity, (month,))
    if granularity == "quarter":
        quarter = (number - 1) // 3 + 1
        return Period(f"{year}-Q{quarter}", granularity, _months(year, 3 * quarter - 2, 3))
    return Period(f"{year}", "year", _months(year, 1, 12))


def parse_period(key: str, granularity: str) -> Period:
    try:
        if granularity == "month" and len(key) == 7 and key[4] == "-":
            month = int(key[5:])
            if 1 <= month <= 12:
                return period_of(f"{int(key[:4]):04d}-{month:02d}", "month")
        elif granularity == "quarter" and len(key) == 7 and key[4:6] == "-Q":
            quarter = int(key[6])
            if 1 <= quarter <= 4:
                return period_of(f"{int(key[:4]):04d}-{3 * quarter - 2:02d}", "quarter")
        elif granularity == "year" and len(key) == 4:
            return period_of(f"{int(key):04d}-01", "year")
    except ValueError:
        pass
    raise UnknownPeriod(key)


def months_before(month: str, count: int) -> str:
    """The month `count` months before "2026-12" (24 -> "2024-12")."""
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def previous(period: Period) -> Period:
    year, month = int(period.starts[:4]), int(period.starts[5:7])
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return period_of(f"{year:04d}-{month:02d}", period.granularity)


# -- tables ------------------------------------------------------------------------------------


# The columns of `StatEvent` the tables read.
FACTS = (
    "unit",
    "month",
    "role",
    "federal_state",
    "topics",
    "outcomes",
    "crisis",
    "crisis_category",
    "found",
    "category",
    "answer",
)


@dataclass(frozen=True)
class Dimension:
    name: str
    values: Callable[[Period], tuple[str, ...]]
    read: Callable[[Any], Iterable[str]]  # a row with the FACTS
    multi: bool = False  # an event can have several values (topics, outcomes)


NO_CRISIS = "none"


def _crisis_kind(event: Any) -> str:
    """Flagged by hand, or before the kinds were kept (migration 0009): of unknown kind."""
    if not event.crisis:
        return NO_CRISIS
    return event.crisis_category if event.crisis_category in CRISIS_CATEGORIES else UNKNOWN


def _yes_no(value: bool | None) -> tuple[str, ...]:
    return ("yes",) if value else ("no",)


DIMENSIONS = {
    d.name: d
    for d in (
        Dimension(
            "state", lambda _: (*STATE_NAMES, UNKNOWN), lambda e: (e.federal_state or UNKNOWN,)
        ),
        Dimension("role", lambda _: (*USER_ROLES, UNKNOWN), lambda e: (e.role or UNKNOWN,)),
        Dimension("month", lambda p: p.months, lambda e: (e.month,)),
        Dimension("crisis", lambda _: ("yes", "no"), lambda e: _yes_no(e.crisis)),
        Dimension("found", lambda _: ("yes", "no"), lambda e: _yes_no(e.found)),
        Dimension(
            "crisis_kind",
            lambda _: (*CRISIS_CATEGORIES, UNKNOWN, NO_CRISIS),
            lambda e: (_crisis_kind(e),),
        ),
        Dimension("topic", lambda _: NEEDS, lambda e: e.topics, multi=True),
        Dimension(
            "outcome", lambda _: (*RESULTS, CLOSED_INACTIVE), lambda e: e.outcomes, multi=True
        ),
        Dimension("category", lambda _: (*NEEDS, OTHER), lambda e: (e.category or OTHER,)),
        Dimension("answer", lambda _: FOLLOWUP_ANSWERS, lambda e: (e.answer or "",)),
    )
}


@dataclass(frozen=True)
class TableSpec:
    id: str
    unit: str
    rows: str
    columns: str


# The published tables, in the order the dashboard shows them. Columns are always a dimension
# with one value per event, so each row's total is the sum of its cells.
TABLES = (
    TableSpec("conversations_by_state", "conversation", rows="state", columns="role"),
    TableSpec("conversations_by_month", "conversation", rows="month", columns="crisis"),
    TableSpec("conversation_topics", "conversation", rows="topic", columns="role"),
    TableSpec("conversation_outcomes", "conversation", rows="outcome", columns="crisis"),
    TableSpec("crises_by_kind", "conversation", rows="crisis_kind", columns="role"),
    TableSpec("referrals_by_category", "referral", rows="category", columns="role"),
    TableSpec("searches_by_state", "search", rows="state", columns="role"),
    TableSpec("search_topics", "search", rows="topic", columns="found"),
    TableSpec("followup_answers", "followup", rows="answer", columns="month"),
)
UNITS = ("conversation", "search", "referral", "followup")

Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(unit: str, **conditions: str) -> Key:
    return unit, tuple(sorted(conditions.items()))


class CellOut(BaseModel):
    display: str  # "12", "<5" or "x"
    value: int | None  # None unless shown


class RowOut(BaseModel):
    value: str
    cells: list[CellOut]
    total: CellOut


class TableOut(BaseModel):
    id: str
    unit: str
    rows_dimension: str
    columns_dimension: str
    columns: list[str]
    rows: list[RowOut]
    # None where rows can overlap (topics, outcomes): their sum counts an event twice.
    column_totals: list[CellOut] | None
    total: CellOut | None


class ReportOut(BaseModel):
    period: str
    granularity: str
    months: list[str]
    threshold: int
    published_at: datetime
    tables: list[TableOut]


@dataclass
class _Layout:
    values: dict[Key, int]
    sums: list[Sum]


def _axes(
    spec: TableSpec, period: Period
) -> tuple[Dimension, tuple[str, ...], Dimension, tuple[str, ...]]:
    """A table's row and column dimensions with their values in the period."""
    rows_d, cols_d = DIMENSIONS[spec.rows], DIMENSIONS[spec.columns]
    return rows_d, rows_d.values(period), cols_d, cols_d.values(period)


def _layout(period: Period, events: Sequence[Any]) -> _Layout:
    """Every published figure as a key (unit + conditions), counted, and the sums that tie
    them together. Figures with the same conditions in two tables are one key: one value, one
    status everywhere."""
    values: dict[Key, int] = {}
    sum_list: list[Sum] = []
    for spec in TABLES:
        rows_d, rows, cols_d, cols = _axes(spec, period)
        counts: Counter[tuple[str, str]] = Counter()
        for event in events:
            if event.unit != spec.unit:
                continue
            for r in set(rows_d.read(event)):
                for c in cols_d.read(event):
                    counts[r, c] += 1

        def cell(r: str, c: str, spec: TableSpec = spec) -> Key:
            return _key(spec.unit, **{spec.rows: r, spec.columns: c})

        for r in rows:
            for c in cols:
                values[cell(r, c)] = counts[r, c]
        lines: list[tuple[Key, tuple[Key, ...]]] = []
        for r in rows:
            total = _key(spec.unit, **{spec.rows: r})
            values[total] = sum(counts[r, c] for c in cols)
            lines.append((total, tuple(cell(r, c) for c in cols)))
        if not rows_d.multi:
            for c in cols:
                total = _key(spec.unit, **{spec.columns: c})
                values[total] = sum(counts[r, c] for r in rows)
                lines.append((total, tuple(cell(r, c) for r in rows)))
            grand = _key(spec.unit)
            values[grand] = sum(counts.values())
            lines.append((grand, tuple(_key(spec.unit, **{spec.rows: r}) for r in rows)))
            lines.append((grand, tuple(_key(spec.unit, **{spec.columns: c}) for c in cols)))
        sum_list += [Sum(total=total, parts=parts) for total, parts in lines]
    return _Layout(values=values, sums=_unique(sum_list))


def _unique(sums: Iterable[Sum]) -> list[Sum]:
    seen: set[tuple[Hashable, frozenset[Hashable]]] = set()
    out = []
    for s in sums:
        mark = (s.total, frozenset(s.parts))
        if mark not in seen:
            seen.add(mark)
            out.append(s)
    return out


def _at_most(keys: Iterable[Key]) -> list[AtMost]:
    """A count with more conditions is at most the count with fewer, e.g. teens who talked
    about school <= teens: a reader knows that, so the audit must too."""
    by_unit: dict[str, list[Key]] = {}
    for key in keys:
        by_unit.setdefault(key[0], []).append(key)
    out = []
    for unit_keys in by_unit.values():
        for part in unit_keys:
            conditions = set(part[1])
            for whole in unit_keys:
                if whole != part and set(whole[1]) < conditions:
                    out.append(AtMost(part=part, whole=whole))
    return out


def _withhold_first(key: Hashable) -> int:
    """Cells before margins before the grand total: the totals are what funders read first
    (how many conversations, in which state), so they are the last to be withheld."""
    return 2 - len(cast(Key, key)[1])


def build_report(*, period: Period, events: Sequence[Any], now: datetime) -> ReportOut:
    layout = _layout(period, events)
    try:
        statuses = protect(
            values=cast(Mapping[Hashable, int], layout.values),
            sums=layout.sums,
            at_most=_at_most(layout.values),
            threshold=THRESHOLD,
            priority=_withhold_first,
        )
    except UnprotectableError:
        # Not seen at a threshold of 5 (core/disclosure.py); should it happen, nothing but the
        # symbols is published rather than a figure that gives a small one away.
        log.warning("statistics fully withheld", extra={"period": period.key})
        statuses = {
            key: Status.SMALL if value < THRESHOLD else Status.WITHHELD
            for key, value in layout.values.items()
        }

    def out(key: Key) -> CellOut:
        status = statuses[key]
        if status == Status.SHOWN:
            return CellOut(display=str(layout.values[key]), value=layout.values[key])
        return CellOut(display=SMALL if status == Status.SMALL else WITHHELD, value=None)

    tables = []
    for spec in TABLES:
        rows_d, rows, _, cols = _axes(spec, period)
        tables.append(
            TableOut(
                id=spec.id,
                unit=spec.unit,
                rows_dimension=spec.rows,
                columns_dimension=spec.columns,
                columns=list(cols),
                rows=[
                    RowOut(
                        value=r,
                        cells=[
                            out(_key(spec.unit, **{spec.rows: r, spec.columns: c})) for c in cols
                        ],
                        total=out(_key(spec.unit, **{spec.rows: r})),
                    )
                    for r in rows
                ],
                column_totals=None
                if rows_d.multi
                else [out(_key(spec.unit, **{spec.columns: c})) for c in cols],
                total=None if rows_d.multi else out(_key(spec.unit)),
            )
        )
    return ReportOut(
        period=period.key,
        granularity=period.granularity,
        months=list(period.months),
        threshold=THRESHOLD,
        published_at=now,
        tables=tables,
    )


def report_csv(report: ReportOut, *, label: Callable[[str, str], str]) -> str:
    """One line per published figure; `label(dimension, value)` names codes for people."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            "period",
            "table",
            "unit",
            "row_dimension",
            "row",
            "row_label",
            "column_dimension",
            "column",
            "column_label",
            "count",
        ]
    )
    for table in report.tables:
        r_dim, c_dim = table.rows_dimension, table.columns_dimension
        lines = [
            (row.value, zip((*table.columns, "total"), (*row.cells, row.total), strict=True))
            for row in table.rows
        ]
        if table.column_totals is not None and table.total is not None:
            totals = (*table.column_totals, table.total)
            lines.append(("total", zip((*table.columns, "total"), totals, strict=True)))
        for row_value, cells in lines:
            for column, cell in cells:
                writer.writerow(
                    [
                        report.period,
                        table.id,
                        table.unit,
                        r_dim,
                        row_value,
                        label(r_dim, row_value),
                        c_dim,
                        column,
                        label(c_dim, column),
                        cell.display,
                    ]
                )
    return buffer.getvalue()


# -- who reads them, and how they are named -------------------------------------------------

READER_ROLES = ("team_lead", "admin")


def check_reader(counsellor: Counsellor) -> None:
    """Team leads and admins; everybody sees the same, national tables (a per-team view
    subtracted from the national one would be an unprotected table)."""
    if counsellor.role not in READER_ROLES:
        raise NotAllowed("statistics are for team leads and admins")


def label(catalogue: Catalogue, lang: str, dimension: str, value: str) -> str:
    """A code as people read it; the codes themselves are in docs/statistics.md."""
    if value == "total":
        return catalogue.text(lang, "stats.total")
    if value == UNKNOWN:
        return catalogue.text(lang, "stats.unknown")
    if dimension == "state":
        return STATE_NAMES.get(value, value)
    if dimension in ("topic", "category"):
        return catalogue.text(lang, "stats.other" if value == OTHER else f"need.{value}")
    if dimension == "outcome" and value != CLOSED_INACTIVE:
        return catalogue.text(lang, f"console.outcome.{value}")
    if dimension == "answer":
        return catalogue.text(lang, f"followup.answer.{value}")
    if dimension == "crisis_kind" and value != NO_CRISIS:
        return catalogue.text(lang, f"crisis.category.{value}")
    if dimension == "month":
        return value
    return catalogue.text(lang, f"stats.{dimension}.{value}")


# -- the service -------------------------------------------------------------------------------


class StatisticsService:
    # Searches are counted write-behind: a transaction of its own for each would cost the bot
    # a fifth of its throughput (bench/README.md). They are written at most this many seconds
    # later, or at once when this many wait; a crash loses at most those seconds of counts.
    flush_seconds = 2.0
    flush_size = 200
    # Kept for the next try when the database fails, up to this many; beyond, counts are
    # dropped (and logged) rather than memory grown.
    max_pending = 10_000

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        granularity: str = "quarter",
    ) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"statistics period must be one of {', '.join(GRANULARITIES)}")
        self._sessions = sessions
        self._clock = clock
        self.granularity = granularity
        self._pending: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record_search(
        self, *, role: str | None, federal_state: str | None, topics: Sequence[str], found: bool
    ) -> None:
        """Counted write-behind (see `flush_seconds`); the month is the one of the search."""
        self._pending.append(
            {
                "id": uuid.uuid4(),
                "unit": "search",
                "month": local_month(self._clock.now()),
                "role": _role(role),
                "federal_state": _state(federal_state),
                "topics": _topics(topics),
                "outcomes": [],
                "found": found,
            }
        )
        if len(self._pending) >= self.flush_size:
            await self.flush()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="statistics-flush")

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.flush_seconds)
        finally:
            self._flusher = None
        await self.flush()

    async def flush(self) -> int:
        """Writes the searches counted so far; how many. Called on shutdown too."""
        rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            async with transaction(self._sessions) as session:
                await session.execute(insert(StatEvent), rows)
        except SQLAlchemyError:
            keep = rows[-self.max_pending :]
            self._pending = keep + self._pending
            log.warning(
                "searches not counted yet",
                extra={"waiting": len(self._pending), "dropped": len(rows) - len(keep)},
            )
            return 0
        return len(rows)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    def current(self) -> Period:
        return period_of(local_month(self._clock.now()), self.granularity)

    def last_complete(self) -> Period:
        return previous(self.current())

    async def periods(self) -> list[Period]:
        """Completed periods from the first recorded event (or stored report), newest first."""
        async with self._sessions() as session:
            first_event = await session.scalar(select(func.min(StatEvent.month)))
            first_report = await session.scalar(
                select(func.min(StatReport.starts)).where(
                    StatReport.granularity == self.granularity
                )
            )
        firsts = [m for m in (first_event, first_report) if m]
        last = self.last_complete()
        if not firsts:
            return []
        start = period_of(min(firsts), self.granularity)
        out: list[Period] = []
        period = last
        while period.starts >= start.starts:
            out.append(period)
            period = previous(period)
        return out

    def parse(self, key: str) -> Period:
        period = parse_period(key, self.granularity)
        if period.starts > self.last_complete().starts:
            raise UnknownPeriod(key)
        return period

    async def report(self, period: Period) -> ReportOut:
        """The stored report of a completed period; made and stored the first time."""
        async with self._sessions() as session:
            stored = await session.get(StatReport, period.key)
        if stored is not None:
            return ReportOut.model_validate(stored.body)
        return await self._publish(period)

    async def _publish(self, period: Period) -> ReportOut:
        async with transaction(self._sessions) as session:
            overlapping = await session.scalar(
                select(StatReport.period).where(
                    StatReport.granularity != period.granularity,
                    StatReport.starts <= period.ends,
                    StatReport.ends >= period.starts,
                )
            )
            if overlapping is not None:
                raise PeriodOverlaps(overlapping)
            # Plain rows, not ORM objects: they are counted in another thread.
            events = (
                await session.execute(
                    select(*(getattr(StatEvent, f) for f in FACTS)).where(
                        StatEvent.month.in_(period.months)
                    )
                )
            ).all()
        now = self._clock.now()
        # The audit solves linear programmes: seconds of CPU at worst, off the event loop.
        report = await asyncio.to_thread(build_report, period=period, events=events, now=now)
        try:
            async with transaction(self._sessions) as session:
                session.add(
                    StatReport(
                        period=period.key,
                        granularity=period.granularity,
                        starts=period.starts,
                        ends=period.ends,
                        body=report.model_dump(mode="json"),
                        created_at=now,
                    )
                )
        except IntegrityError:
            # Another process published it first: theirs is the one everybody sees.
            async with self._sessions() as session:
                stored = await session.get(StatReport, period.key)
            if stored is None:
                raise
            return ReportOut.model_validate(stored.body)
        log.info(
            "statistics published",
            extra={"period": period.key, "events": len(events)},
        )
        return report

    async def publish_due(self) -> int:
        """The scheduled job: publishes every completed period not stored yet."""
        published = 0
        for period in await self.periods():
            async with self._sessions() as session:
                if await session.get(StatReport, period.key) is not None:
                    continue
            try:
                await self._publish(period)
            except PeriodOverlaps:
                log.warning(
                    "statistics period overlaps a stored report", extra={"period": period.key}
                )
                continue
            published += 1
        return published

    async def trend(
        self, periods: Sequence[Period]
    ) -> list[tuple[str, Mapping[str, CellOut | None]]]:
        """Each stored period's published totals per unit (no new figures: the same cells as
        in its report), oldest first, for the dashboard's trend chart."""
        keys = [p.key for p in periods]
        async with self._sessions() as session:
            stored = {
                r.period: ReportOut.model_validate(r.body)
                for r in (
                    await session.scalars(select(StatReport).where(StatReport.period.in_(keys)))
                ).all()
            }
        out: list[tuple[str, Mapping[str, CellOut | None]]] = []
        for period in reversed(periods):
            report = stored.get(period.key)
            totals: dict[str, CellOut | None] = {}
            for unit in UNITS:
                table = (
                    next(
                        (t for t in report.tables if t.unit == unit and t.total is not None), None
                    )
                    if report
                    else None
                )
                totals[unit] = table.total if table else None
            out.append((period.key, totals))
        return out
