"""The monitoring dashboard as a team lead reads it: a quarter of anonymous events (seeded into
the running service's database, as the service itself would have recorded them) shows at
/console/statistics as protected tables and charts, downloads as CSV, has no serious axe
problem and works with the keyboard; a counsellor gets neither the link nor the page."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import SCREENSHOTS, RunningService, console_login
from tests.e2e.test_accessibility import serious_problems

pytestmark = pytest.mark.e2e

PERIOD = "2026-Q3"
MONTHS = ("2026-07", "2026-08", "2026-09")
UNIT_COLUMNS = {
    "conversation": "Gespräche",
    "search": "Suchen im Bot",
    "referral": "Vermittlungen",
    "followup": "Rückmeldungen",
}

# Conversations per federal state in the quarter: many in the big states, a few in Saarland
# and Bremen; three users gave no postcode. 150 in all.
CONVERSATION_STATES = {
    "NW": 30,
    "BY": 24,
    "BE": 25,
    "BW": 14,
    "NI": 11,
    "HE": 9,
    "SN": 7,
    "HH": 6,
    "RP": 5,
    "SH": 4,
    "TH": 3,
    "BB": 2,
    "ST": 2,
    "MV": 1,
    "SL": 2,
    "HB": 2,
    None: 3,
}
STATE_WEIGHTS = {s: n for s, n in CONVERSATION_STATES.items() if s is not None}
ROLES = {"teen": 34, "caregiver": 26, "young_adult": 20, "child": 10, "professional": 8, None: 2}
TOPICS = {
    "visits": 30,
    "talking": 30,
    "school": 15,
    "money": 10,
    "rights": 10,
    "release": 8,
    "material": 5,
    "training": 4,
}
RESULTS = ("referral_given", "crisis_handled", "follow_up_wished", "info_given", "no_contact")


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _some(rng: random.Random, weights: dict[str, int], most: int) -> list[str]:
    chosen: list[str] = []
    for _ in range(rng.randint(1, most)):
        topic = _pick(rng, weights)
        if topic not in chosen:
            chosen.append(topic)
    return chosen


def quarter_of_events(seed: int = 20260930) -> list[dict[str, Any]]:
    """About what a quarter brings: 150 conversations (10% crisis), the referrals sent in
    them, 200 searches in the bot and 30 follow-up answers; the same every run."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    states = [s for s, n in CONVERSATION_STATES.items() for _ in range(n)]
    rng.shuffle(states)
    crisis = set(rng.sample(range(len(states)), 15))
    for index, state in enumerate(states):
        month = rng.choices(MONTHS, weights=(45, 50, 55))[0]
        role = _pick(rng, ROLES)
        topics = _some(rng, TOPICS, 3)
        if index in crisis:
            topics.append("crisis")
            results = {"crisis_handled"}
        else:
            results = set()
        if index not in crisis and rng.random() < 0.1:
            outcomes = ["closed_inactive"]  # retention closed it, nobody set an outcome
        else:
            if rng.random() < 0.25:
                results.add("referral_given")
            if rng.random() < 0.55:
                results.add("info_given")
            if rng.random() < 0.15:
                results.add("follow_up_wished")
            if rng.random() < 0.05 or not results:
                results.add("no_contact" if rng.random() < 0.3 else "info_given")
            outcomes = [r for r in RESULTS if r in results]
        common = {"month": month, "role": role, "federal_state": state}
        events.append(
            {
                "unit": "conversation",
                **common,
                "topics": topics,
                "outcomes": outcomes,
                "crisis": index in crisis,
            }
        )
        if "referral_given" in outcomes:
            for _ in range(2 if rng.random() < 0.15 else 1):
                category = rng.choice(topics) if rng.random() < 0.95 else "other"
                events.append({"unit": "referral", **common, "category": category})
    for _ in range(200):
        events.append(
            {
                "unit": "search",
                "month": rng.choices(MONTHS, weights=(30, 33, 37))[0],
                "role": _pick(rng, ROLES),
                "federal_state": _pick(rng, STATE_WEIGHTS) if rng.random() < 0.97 else None,
                "topics": _some(rng, TOPICS, 2),
                "found": rng.random() < 0.88,
            }
        )
    for _ in range(30):
        events.append(
            {
                "unit": "followup",
                # Check-ins go out days after a referral: fewer answers in the first month.
                "month": rng.choices(MONTHS, weights=(20, 40, 40))[0],
                "federal_state": _pick(rng, STATE_WEIGHTS),
                "topics": _some(rng, TOPICS, 2),
                "answer": rng.choices(("helped", "partly", "not_helped"), weights=(5, 3, 2))[0],
            }
        )
    return events


@dataclass
class Seeded:
    # False when another test had the quarter published before: its figures are not ours.
    fresh: bool
    # Events of the quarter per unit in the database after seeding (ours, and any others').
    totals: dict[str, int]
    # Conversations per federal state among the seeded events.
    states: Counter[str | None]


def database_url(service: RunningService) -> str:
    """The service's database: PostgreSQL when the suite runs on it (conftest gives the
    service a database of its own), else the SQLite file in its data directory."""
    if url := service.env.get("DATABASE_URL"):
        return url
    return f"sqlite+aiosqlite:///{Path(service.env['LOTSE_DATA_DIR']) / 'lotse.db'}"


async def _seed(url: str, events: list[dict[str, Any]]) -> tuple[bool, dict[str, int]]:
    # The service's own (async) drivers: the suite has no sync PostgreSQL driver.
    from sqlalchemy import func, select

    from core.db import create_engine
    from core.models import StatEvent, StatReport

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            published = await connection.scalar(
                select(StatReport.period).where(StatReport.period == PERIOD)
            )
            if published is None:
                # One transaction: the hourly publishing job never sees half a quarter.
                await connection.execute(StatEvent.__table__.insert(), events)
            rows = await connection.execute(
                select(StatEvent.unit, func.count())
                .where(StatEvent.month.in_(MONTHS))
                .group_by(StatEvent.unit)
            )
            return published is None, {unit: count for unit, count in rows.all()}
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def seeded(service: RunningService) -> Seeded:
    """Before the first request for the quarter: its report is made once, on that request."""
    events = [
        {
            "id": uuid.uuid4(),
            "role": None,
            "federal_state": None,
            "topics": [],
            "outcomes": [],
            "crisis": None,
            "found": None,
            "category": None,
            "answer": None,
            **e,
        }
        for e in quarter_of_events()
    ]
    # Playwright's sync API may hold an event loop on this thread: the seeding gets its own.
    with ThreadPoolExecutor(1) as pool:
        fresh, totals = pool.submit(asyncio.run, _seed(database_url(service), events)).result()
    states = Counter(e["federal_state"] for e in events if e["unit"] == "conversation")
    return Seeded(fresh=fresh, totals=totals, states=states)


@pytest.fixture
def audited_lead(browser: Browser) -> Any:
    # bypass_csp: axe is injected as a script of its own (see test_accessibility.audited).
    context = browser.new_context(
        bypass_csp=True, viewport={"width": 1280, "height": 800}, locale="de-DE"
    )
    yield context.new_page()
    context.close()


def tab_until(page: Page, selector: str, presses: int = 30) -> None:
    """Tab (only the keyboard) until the focused element matches `selector`."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{presses} Tab presses never reached {selector}")


def test_lead_reads_the_quarter_on_the_dashboard(
    service: RunningService, seeded: Seeded, audited_lead: Page
) -> None:
    page = audited_lead
    assert service.lead_login, "the bootstrap printed no team lead"
    console_login(page, service, service.lead_login, service.lead_password, unlock=False)

    # From the console's top bar, with the keyboard.
    tab_until(page, "header.topbar a[href='/console/statistics']")
    expect(page.locator(":focus")).to_have_text("Statistik")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/statistics")
    expect(page.get_by_role("heading", level=1)).to_have_text("Statistik für das Monitoring")
    expect(page.get_by_label("Zeitraum", exact=True)).to_have_value(PERIOD)
    expect(page.get_by_text("Der laufende Zeitraum 2026-Q4 erscheint")).to_be_visible()

    # Every table is named by its caption and has a "Gesamt" column.
    by_state = page.get_by_role("table", name="Gespräche nach Bundesland und Rolle")
    expect(by_state).to_be_visible()
    expect(by_state.get_by_role("columnheader", name="Bundesland")).to_be_visible()
    expect(by_state.get_by_role("columnheader", name="Jugendliche (13–17)")).to_be_visible()
    expect(by_state.get_by_role("columnheader", name="Gesamt")).to_be_visible()
    expect(by_state.get_by_role("rowheader", name="Nordrhein-Westfalen")).to_be_visible()
    for name in (
        "Gespräche nach Monat und Krise",
        "Themen der Gespräche",
        "Ergebnisse der Gespräche",
        "Vermittlungen durch Berater*innen",
        "Suchen im Bot nach Bundesland und Rolle",
        "Themen der Suchen",
        "Rückmeldungen: Hat das Angebot geholfen?",
        "Krisen nach Art",
    ):
        table = page.get_by_role("table", name=name)
        expect(table.get_by_role("columnheader", name="Gesamt")).to_have_count(1)
    expect(page.locator("caption")).to_have_count(9)
    # Topics overlap (one conversation, several topics): no sum over them.
    expect(page.get_by_role("table", name="Themen der Gespräche").locator("tfoot")).to_have_count(
        0
    )
    # One bar chart per table, hidden from screen readers (the table says the same).
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(9)
    for chart in charts.all():
        assert chart.get_attribute("aria-hidden") == "true"

    if seeded.fresh:
        # Nobody published the quarter before: the report is made of what was seeded.
        # Small counts only as "<5", in tables and charts; every chart has bars.
        assert page.locator("td.suppressed", has_text="<5").count() > 0
        assert page.locator("svg.chart text.suppressed", has_text="<5").count() > 0
        for chart in charts.all():
            assert chart.locator("rect.bar").count() > 0
        # The grand totals are what was recorded.
        trend = page.locator("#trend-title + p + table")
        row = trend.get_by_role("row").filter(has=page.get_by_role("rowheader", name=PERIOD))
        expect(row.get_by_role("cell")).to_have_text(
            [str(seeded.totals[unit]) for unit in UNIT_COLUMNS]
        )
        expect(by_state.locator("tfoot td").last).to_have_text(str(seeded.totals["conversation"]))
        saarland = by_state.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name="Saarland", exact=True)
        )
        assert seeded.states["SL"] < 5
        expect(saarland.locator("td").last).to_have_text("<5")
        bremen = by_state.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name="Bremen", exact=True)
        )
        expect(bremen.locator("td").last).to_have_text("<5")

    # The CSV download: one line per figure, codes and names.
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV", exact=True).click()
    download = info.value
    assert download.suggested_filename == f"lotse-{PERIOD}.csv"
    lines = Path(download.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("period,table,unit")
    assert any(line.startswith(f"{PERIOD},conversations_by_state,conversation,") for line in lines)
    if seeded.fresh:
        grand = f"{PERIOD},conversations_by_state,conversation,state,total,Gesamt,role,total,"
        assert grand + "Gesamt," + str(seeded.totals["conversation"]) in lines

    assert serious_problems(page) == []

    # The wide tables scroll sideways in a focusable region, which the keyboard reaches.
    page.get_by_role("link", name="JSON", exact=True).focus()
    tab_until(page, "div.table-scroll[role=region]", presses=5)
    focused = page.locator(":focus")
    expect(focused).to_have_attribute("aria-labelledby", "t-conversations_by_state")
    assert focused.evaluate("el => getComputedStyle(el).outlineStyle") != "none"

    # The stylesheet applied (its SRI hash matched), or the screenshots show a bare page.
    expect(page.locator("header.topbar")).to_have_css("display", "flex")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(":focus").blur()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "statistics-dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 800, "height": 1024})
    # Tablet width: the tables scroll inside their regions, the page never sideways.
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 800, f"the page scrolls sideways ({scroll_width}px)"
    page.screenshot(path=str(SCREENSHOTS / "statistics-dashboard-tablet.png"), full_page=True)


def test_counsellor_gets_no_statistics(
    service: RunningService, seeded: Seeded, page: Page
) -> None:
    login = f"statistik-{uuid.uuid4().hex[:8]}"
    printed = service.lotse("account", "create", login)
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    console_login(page, service, login, password)
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.get_by_role("link", name="Statistik")).to_have_count(0)
    response = page.goto(service.url + "/console/statistics")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_have_text("Die Statistik sehen Teamleitungen und Admins.")
    expect(page.get_by_role("table")).to_have_count(0)
    response = page.goto(service.url + f"/api/v1/console/statistics/{PERIOD}.csv")
    assert response is not None and response.status == 403
