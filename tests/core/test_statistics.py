"""Monitoring statistics: what is recorded (codes and a month, never who), the periods, and
the published report: small counts as "<5", nothing recoverable from its totals, stored once.

The clock starts on 2026-01-15, so 2025-Q4 is the last completed quarter."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from scipy.optimize import linprog
from sqlalchemy import select

from core.db import transaction
from core.models import StatEvent, StatReport
from core.retention import RetentionPolicy, run_retention
from core.statistics import (
    SMALL,
    WITHHELD,
    PeriodOverlaps,
    ReportOut,
    StatisticsService,
    TableOut,
    UnknownPeriod,
    months_before,
    parse_period,
    period_of,
    referral_category,
)
from tests.keyring import table_rows

STATES = ("BE", "BY", "NW", "SL", "HB")
ROLES = ("child", "teen", "young_adult", "caregiver")


async def add_events(services, events: list[dict]) -> None:
    async with transaction(services.sessions) as session:
        for event in events:
            session.add(StatEvent(**{"topics": [], "outcomes": [], **event}))


def conversations(count: int, *, month: str = "2025-11", seed: int = 1, **fixed) -> list[dict]:
    """Skewed like real use: many in a few states, a handful elsewhere."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        out.append(
            {
                "unit": "conversation",
                "month": month,
                "role": rng.choice(ROLES),
                "federal_state": rng.choices(STATES, weights=(10, 6, 12, 1, 1))[0],
                "topics": rng.sample(["visits", "talking", "school", "money"], rng.randint(0, 2)),
                "outcomes": rng.sample(["referral_given", "info_given"], rng.randint(0, 1)),
                "crisis": rng.random() < 0.1,
                **fixed,
            }
        )
    return out


def table(report: ReportOut, table_id: str) -> TableOut:
    return next(t for t in report.tables if t.id == table_id)


def stats_of(services, granularity: str = "quarter") -> StatisticsService:
    return StatisticsService(
        sessions=services.sessions, clock=services.clock, granularity=granularity
    )


# -- periods ------------------------------------------------------------------------------------


def test_periods_of_each_length():
    assert period_of("2026-11", "quarter").key == "2026-Q4"
    assert period_of("2026-11", "quarter").months == ("2026-10", "2026-11", "2026-12")
    assert period_of("2026-02", "year").months[-1] == "2026-12"
    assert parse_period("2026-Q1", "quarter").months == ("2026-01", "2026-02", "2026-03")
    assert parse_period("2026-03", "month").key == "2026-03"
    for bad, granularity in [
        ("2026-Q5", "quarter"),
        ("2026-13", "month"),
        ("26", "year"),
        ("2026-11", "quarter"),
        ("x" * 7, "month"),
    ]:
        with pytest.raises(UnknownPeriod):
            parse_period(bad, granularity)
    assert months_before("2026-12", 24) == "2024-12"
    assert months_before("2026-01", 1) == "2025-12"


async def test_only_completed_periods_can_be_asked_for(services):
    stats = stats_of(services)
    assert stats.current().key == "2026-Q1"
    assert stats.parse("2025-Q4").key == "2025-Q4"
    with pytest.raises(UnknownPeriod):
        stats.parse("2026-Q1")  # still running: a later view could be subtracted from it
    assert await stats.periods() == []
    await add_events(services, conversations(3, month="2025-05"))
    assert [p.key for p in await stats.periods()] == ["2025-Q4", "2025-Q3", "2025-Q2"]


# -- what is recorded ---------------------------------------------------------------------------


def test_a_referral_counts_for_the_need_it_was_sent_for():
    assert referral_category(offer_needs={"visits", "talking"}, asked=["talking"]) == "talking"
    assert referral_category(offer_needs={"visits", "talking"}, asked=["money"]) == "visits"
    assert referral_category(offer_needs=set(), asked=["money"]) == "other"


async def test_retention_counts_the_conversations_it_closes(services):
    from core.conversations import Profile

    handover = await services.conversations.request_handover(
        channel="web",
        pseudonym="p-one",
        chat_ref=None,
        profile=Profile(role="teen", federal_state="BY", topics=("visits",)),
    )
    assert handover.conversation.status == "waiting"
    services.clock.advance(days=8)
    await run_retention(sessions=services.sessions, clock=services.clock, policy=RetentionPolicy())
    async with services.sessions() as session:
        (event,) = (await session.scalars(select(StatEvent))).all()
    assert (event.unit, event.role, event.federal_state) == ("conversation", "teen", "BY")
    assert event.topics == ["visits"] and event.outcomes == ["closed_inactive"]
    assert event.month == "2026-01" and event.crisis is False
    # Nothing of who: the pseudonym is in no column of the statistics.
    assert "p-one" not in str((await table_rows(services))["stat_events"])
    await run_retention(sessions=services.sessions, clock=services.clock, policy=RetentionPolicy())
    async with services.sessions() as session:
        assert len((await session.scalars(select(StatEvent))).all()) == 1, "counted once"


async def test_raw_events_go_after_the_retention_months_and_reports_stay(services):
    await add_events(services, conversations(6, month="2023-12") + conversations(6))
    stats = stats_of(services)
    await stats.report(stats.parse("2023-Q4"))
    result = await run_retention(
        sessions=services.sessions, clock=services.clock, policy=RetentionPolicy()
    )
    assert result.stat_events_deleted == 6
    async with services.sessions() as session:
        months = set((await session.scalars(select(StatEvent.month))).all())
        assert months == {"2025-11"}
        assert await session.get(StatReport, "2023-Q4") is not None


# -- the report ---------------------------------------------------------------------------------


async def test_small_counts_show_as_less_than_five_everywhere(services):
    events = conversations(40)
    await add_events(services, events)
    report = await stats_of(services).report(parse_period("2025-Q4", "quarter"))
    for t in report.tables:
        cells = [c for row in t.rows for c in (*row.cells, row.total)]
        cells += [*(t.column_totals or ()), *([t.total] if t.total else [])]
        for c in cells:
            if c.value is not None:
                assert c.value >= 5 and c.display == str(c.value)
            else:
                assert c.display in (SMALL, WITHHELD)
    by_state = table(report, "conversations_by_state")
    assert by_state.total is not None and by_state.total.value == 40
    counts = {state: sum(e["federal_state"] == state for e in events) for state in STATES}
    few = [state for state, n in counts.items() if 0 < n < 5]
    assert few, "the sample has a small state"
    for row in by_state.rows:
        if row.value in few or row.value not in counts:
            assert row.total.display == SMALL


def _lp_ranges(t: TableOut) -> list[tuple[str, float, float]]:
    """The reader's attack on one published table: every equation its totals give, shown
    values fixed, "<5" in [0, 4], "x" at least 5; min and max of each "<5" cell."""
    variables: list[tuple[str, object]] = []
    index = {}

    def var(name, cell):
        index[name] = len(variables)
        variables.append((name, cell))

    for r, row in enumerate(t.rows):
        for c, cell in enumerate(row.cells):
            var(("cell", r, c), cell)
        var(("row", r), row.total)
    if t.column_totals is not None:
        for c, cell in enumerate(t.column_totals):
            var(("col", c), cell)
        var(("grand",), t.total)
    equations = []
    for r, row in enumerate(t.rows):
        equations.append((("row", r), [("cell", r, c) for c in range(len(row.cells))]))
    if t.column_totals is not None:
        for c in range(len(t.columns)):
            equations.append((("col", c), [("cell", r, c) for r in range(len(t.rows))]))
        equations.append((("grand",), [("row", r) for r in range(len(t.rows))]))
    a_eq = np.zeros((len(equations), len(variables)))
    for i, (total, parts) in enumerate(equations):
        a_eq[i, index[total]] = -1
        for p in parts:
            a_eq[i, index[p]] = 1
    bounds = []
    for _, cell in variables:
        if cell.value is not None:
            bounds.append((cell.value, cell.value))
        elif cell.display == SMALL:
            bounds.append((0, 4))
        else:
            bounds.append((5, None))
    out = []
    for name, cell in variables:
        if cell.display != SMALL:
            continue
        objective = np.zeros(len(variables))
        objective[index[name]] = 1
        low = linprog(objective, A_eq=a_eq, b_eq=np.zeros(len(equations)), bounds=bounds)
        high = linprog(-objective, A_eq=a_eq, b_eq=np.zeros(len(equations)), bounds=bounds)
        assert low.status == 0 and high.status == 0
        out.append((str(name), low.fun, -high.fun))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_small_cell_can_be_worked_out_from_the_totals(services, seed):
    """The attempt the issue asks for: subtract what is shown from the totals, with every
    bound the symbols give, and see whether any "<5" comes out as one value."""
    await add_events(services, conversations(120, seed=seed))
    report = await stats_of(services).report(parse_period("2025-Q4", "quarter"))
    attacked = 0
    for t in report.tables:
        if t.column_totals is None:
            continue
        for name, low, high in _lp_ranges(t):
            attacked += 1
            assert high - low >= 1 - 1e-6, f"{t.id} {name} is {low}..{high}"
    assert attacked > 20


async def test_the_naive_subtraction_fails_on_the_published_table(services):
    """Saarland's one conversation: without secondary suppression, the national total minus
    the other states would give it. The table withholds a second state instead."""
    await add_events(
        services,
        conversations(30, seed=4, federal_state="BE")
        + conversations(20, seed=5, federal_state="NW")
        + conversations(1, seed=6, federal_state="SL"),
    )
    by_state = table(
        await stats_of(services).report(parse_period("2025-Q4", "quarter")),
        "conversations_by_state",
    )
    totals = {row.value: row.total for row in by_state.rows}
    assert totals["SL"].display == SMALL
    assert by_state.total is not None and by_state.total.value == 51
    shown = sum(c.value for c in totals.values() if c.value is not None)
    hidden = [k for k, c in totals.items() if c.value is None]
    # The reader knows that the hidden states together hold 51 - shown, but not where.
    assert len(hidden) > 1 and by_state.total.value - shown >= 1
    ranges = dict((name, (low, high)) for name, low, high in _lp_ranges(by_state))
    saarland = str(("row", [r.value for r in by_state.rows].index("SL")))
    assert ranges[saarland][1] - ranges[saarland][0] >= 1


async def test_a_period_is_published_once_and_never_changes(services):
    await add_events(services, conversations(30))
    stats = stats_of(services)
    first = await stats.report(stats.parse("2025-Q4"))
    await add_events(services, conversations(9, seed=8))  # e.g. a late write
    again = await stats.report(stats.parse("2025-Q4"))
    assert again == first
    assert table(again, "conversations_by_state").total.value == 30


async def test_reports_of_two_lengths_never_cover_the_same_months(services):
    await add_events(services, conversations(30))
    await stats_of(services, "month").report(parse_period("2025-11", "month"))
    with pytest.raises(PeriodOverlaps):
        await stats_of(services, "quarter").report(parse_period("2025-Q4", "quarter"))
    # Another year is fine.
    await stats_of(services, "quarter").report(parse_period("2024-Q4", "quarter"))


async def test_the_scheduled_job_publishes_each_completed_period_once(services):
    from lotse.scheduler import publish_statistics

    await add_events(services, conversations(10, month="2025-08") + conversations(10))
    assert await publish_statistics(services) == 2
    assert await publish_statistics(services) == 0
    async with services.sessions() as session:
        assert set((await session.scalars(select(StatReport.period))).all()) == {
            "2025-Q3",
            "2025-Q4",
        }


async def test_every_unit_has_its_tables_and_each_figure_one_status(services):
    await add_events(
        services,
        conversations(25)
        + [
            {
                "unit": "search",
                "month": "2025-12",
                "role": "teen",
                "federal_state": "BE",
                "topics": ["visits"],
                "found": True,
            }
        ]
        * 7
        + [
            {
                "unit": "referral",
                "month": "2025-12",
                "role": "teen",
                "federal_state": "BE",
                "category": "visits",
            }
        ]
        * 6
        + [{"unit": "followup", "month": "2025-10", "answer": "helped", "topics": ["visits"]}] * 5,
    )
    report = await stats_of(services).report(parse_period("2025-Q4", "quarter"))
    assert table(report, "searches_by_state").total.value == 7
    assert table(report, "referrals_by_category").total.value == 6
    followups = table(report, "followup_answers")
    assert [r.value for r in followups.rows] == ["helped", "partly", "not_helped"]
    assert followups.columns == ["2025-10", "2025-11", "2025-12"]
    # 5, 0, 0 with its total shown would say the zeros are zeros: something gives way.
    helped = next(r for r in followups.rows if r.value == "helped")
    assert [c.display for c in helped.cells][1:] == ["<5", "<5"]
    assert all(high - low >= 1 - 1e-6 for _, low, high in _lp_ranges(followups))
    # The grand total of conversations is one figure in both tables that show it.
    grand = {t.id: t.total for t in report.tables if t.unit == "conversation" and t.total}
    assert len({(c.display, c.value) for c in grand.values()}) == 1
    # Topic tables have no column totals: one conversation can count under two topics.
    assert table(report, "conversation_topics").column_totals is None
    assert list(itertools.chain(*(r.cells for r in table(report, "search_topics").rows)))


async def test_the_totals_funders_read_first_stay_shown_where_that_is_safe(services):
    """All in one month, no crisis: greedy withholding first hid the national total although
    hiding cells was enough; the release pass shows it again, and the attack still fails."""
    await add_events(
        services,
        [
            {
                "unit": "conversation",
                "month": "2025-11",
                "role": "teen" if i % 2 else "caregiver",
                "federal_state": "BE" if i < 9 else "HB",
                "topics": ["visits"],
                "crisis": False,
            }
            for i in range(12)
        ],
    )
    report = await stats_of(services).report(parse_period("2025-Q4", "quarter"))
    for table_id in ("conversations_by_state", "conversations_by_month"):
        t = table(report, table_id)
        assert t.total is not None and t.total.value == 12
        assert all(high - low >= 1 - 1e-6 for _, low, high in _lp_ranges(t))


async def search_rows(services) -> int:
    async with services.sessions() as session:
        return len((await session.scalars(select(StatEvent))).all())


async def test_searches_are_written_behind_in_batches_and_at_shutdown(services):
    import asyncio

    stats = stats_of(services)
    stats.flush_seconds, stats.flush_size = 0.05, 3
    for _ in range(2):
        await stats.record_search(role="teen", federal_state="BE", topics=["visits"], found=True)
    assert await search_rows(services) == 0, "not yet: written behind"
    await stats.record_search(role="teen", federal_state="BE", topics=["visits"], found=False)
    assert await search_rows(services) == 3, "a full batch is written at once"
    await stats.record_search(role="child", federal_state=None, topics=[], found=True)
    await asyncio.sleep(0.2)
    assert await search_rows(services) == 4, "the timer writes the rest"
    await stats.record_search(role="child", federal_state=None, topics=[], found=True)
    stats.flush_seconds = 60
    await stats.close()
    assert await search_rows(services) == 5, "shutdown writes what waits"


async def test_a_failing_database_keeps_the_searches_for_the_next_write(services, caplog):
    stats = stats_of(services)
    await stats.record_search(role="teen", federal_state="BE", topics=["visits"], found=True)
    real = stats._sessions

    def broken():
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, Exception("database is down"))

    stats._sessions = broken
    assert await stats.flush() == 0
    assert "searches not counted yet" in caplog.text
    stats._sessions = real
    assert await stats.flush() == 1
    assert await search_rows(services) == 1
    await stats.close()
