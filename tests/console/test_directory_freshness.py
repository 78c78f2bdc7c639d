"""Directory freshness: offers and prisons not checked for more than twelve calendar months are
flagged, and editors get a review list, oldest first; a check today takes a record off it."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select, update

from core.db import transaction
from directory import curation, freshness
from directory.models import Prison, Service
from tests.console.conftest import login
from tests.console.test_curation import (
    BASE,
    CAFE,
    HOTLINE,
    add_account,
    form_of,
    post_form,
    record_id,
)

REVIEW = f"{BASE}/review"
PRISON = "jva-nuernberg"


@pytest.fixture
async def editor(services):
    return await add_account(services, "erika", "directory_editor")


async def everything_checked_on(services, day: date) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(update(Service).values(assured_date=day))
        await session.execute(update(Prison).values(assured_date=day))


async def checked_on(services, model, slug: str, day: date) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(update(model).where(model.slug == slug).values(assured_date=day))


async def overdue_now(services) -> list[freshness.OverdueRecord]:
    async with services.sessions() as session:
        return await freshness.overdue_records(session, clock=services.clock)


def rows_of(html: str) -> list[str]:
    """The record names in the review table, top to bottom."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a></th>', body)


# -- the rule ----------------------------------------------------------------------------------


def test_twelve_months_are_calendar_months_with_the_day_clamped():
    assert freshness.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert freshness.add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert freshness.add_months(date(2026, 3, 15), -15) == date(2024, 12, 15)
    # Checked 1 March: due 1 March a year later, leap year or not; overdue from 2 March.
    assert not freshness.is_overdue(date(2027, 3, 1), date(2028, 3, 1))
    assert freshness.is_overdue(date(2027, 3, 1), date(2028, 3, 2))
    # Checked 29 February: due 28 February, overdue from 1 March.
    assert not freshness.is_overdue(date(2028, 2, 29), date(2029, 2, 28))
    assert freshness.is_overdue(date(2028, 2, 29), date(2029, 3, 1))
    # On 29 February every check of the shorter February a year before is past its due date.
    assert freshness.review_cutoff(date(2028, 2, 29)) == date(2027, 3, 1)
    assert freshness.is_overdue(date(2027, 2, 28), date(2028, 2, 29))
    assert not freshness.is_overdue(date(2026, 11, 21), date(2026, 1, 15)), "future is fresh"
    assert curation.is_stale is freshness.is_overdue, "one rule for badge, filter and list"


def test_the_cutoff_and_the_due_date_agree_on_every_day_of_four_years():
    # The list filters in SQL by the cutoff, the page shows the due date: they must never differ.
    start = date(2026, 1, 1).toordinal()
    for today in map(date.fromordinal, range(start, start + 4 * 366, 7)):
        cutoff = freshness.review_cutoff(today)
        for back in range(355, 375):
            checked = date.fromordinal(today.toordinal() - back)
            overdue = freshness.review_due(checked) < today
            assert (checked < cutoff) is overdue, (today, checked)
            assert (freshness.days_overdue(checked, today) > 0) is overdue


# -- flagged with the clock --------------------------------------------------------------------


async def test_a_record_checked_12_months_less_a_day_ago_is_fresh_and_a_day_over_is_flagged(
    client, services, editor
):
    today = curation.local_today(services.clock)
    assert today == date(2026, 1, 15)
    await everything_checked_on(services, today)
    service_id = await record_id(services, Service, CAFE)
    prison_id = await record_id(services, Prison, PRISON)

    services.clock.advance(days=364)  # 14 January 2027: twelve months less a day
    assert await overdue_now(services) == []
    services.clock.advance(days=1)  # 15 January 2027: the due date itself
    assert await overdue_now(services) == []
    await login(client, "erika")
    assert "nicht geprüft" not in (await client.get(f"{BASE}/services/{service_id}")).text

    services.clock.advance(days=1)  # 16 January 2027: twelve months and a day
    overdue = await overdue_now(services)
    assert service_id in {item.id for item in overdue}
    assert prison_id in {item.id for item in overdue}
    assert {item.days_overdue for item in overdue} == {1}
    assert {item.due_date for item in overdue} == {date(2027, 1, 15)}

    await login(client, "erika")  # the session has long expired
    flag = "Seit über 12 Monaten nicht geprüft (zuletzt 15.01.2026)"
    assert flag in (await client.get(BASE, params={"q": "Angehörigencafé"})).text
    assert flag in (await client.get(f"{BASE}/prisons", params={"q": "Nürnberg"})).text
    edit = (await client.get(f"{BASE}/services/{service_id}")).text
    assert flag in edit and "Fällig war die Prüfung am 15.01.2027" in edit
    assert (
        "Fällig war die Prüfung am 15.01.2027"
        in (await client.get(f"{BASE}/prisons/{prison_id}")).text
    )
    review = (await client.get(REVIEW)).text
    assert "Überfällig seit" in review and "1 Tag (fällig am 15.01.2027)" in review


# -- the review list ---------------------------------------------------------------------------


async def test_the_review_page_lists_overdue_records_oldest_first_for_an_editor(
    client, services, editor
):
    await everything_checked_on(services, date(2025, 12, 1))
    await checked_on(services, Service, HOTLINE, date(2024, 9, 1))
    await checked_on(services, Prison, PRISON, date(2024, 5, 2))
    await checked_on(services, Service, CAFE, date(2025, 1, 10))
    names = {}
    async with services.sessions() as session:
        for model, slug in ((Service, HOTLINE), (Prison, PRISON), (Service, CAFE)):
            names[slug] = await session.scalar(select(model.name).where(model.slug == slug))

    await login(client, "erika")
    response = await client.get(REVIEW)
    assert response.status_code == 200
    html = response.text
    assert rows_of(html) == [names[PRISON], names[HOTLINE], names[CAFE]]
    assert "Überfällige Einträge: 3 (Angebote: 2, Anstalten: 1)" in html
    prison_id = await record_id(services, Prison, PRISON)
    cafe_id = await record_id(services, Service, CAFE)
    assert f'href="{BASE}/prisons/{prison_id}"' in html
    assert f'href="{BASE}/services/{cafe_id}"' in html
    assert "<caption" in html and '<th scope="col">' in html
    assert f'<a href="{REVIEW}" aria-current="page">Prüfliste</a>' in html
    # 15 January 2026 - due 10 January 2026 = 5 days; the prison was due 2 May 2025.
    assert "5 Tagen (fällig am 10.01.2026)" in html
    assert "258 Tagen (fällig am 02.05.2025)" in html
    # Every curation page links to the list.
    assert f'<a href="{REVIEW}">Prüfliste</a>' in (await client.get(BASE)).text


async def test_the_review_page_says_when_everything_is_current(client, services, editor):
    await everything_checked_on(services, date(2025, 6, 1))
    await login(client, "erika")
    html = (await client.get(REVIEW)).text
    assert "Überfällige Einträge: 0" in html
    assert "Alles aktuell" in html and "<table" not in html


async def test_checking_an_entry_today_takes_it_off_the_review_list(client, services, editor):
    await everything_checked_on(services, date(2025, 6, 1))
    await checked_on(services, Service, CAFE, date(2024, 6, 1))
    service_id = await record_id(services, Service, CAFE)
    await login(client, "erika")
    path = f"{BASE}/services/{service_id}"
    assert len(rows_of((await client.get(REVIEW)).text)) == 1

    saved = await post_form(client, path, form_of((await client.get(path)).text), "verify")
    assert saved.status_code == 303 and saved.headers["location"] == f"{path}?done=verified"
    async with services.sessions() as session:
        assert await session.scalar(
            select(Service.assured_date).where(Service.id == service_id)
        ) == date(2026, 1, 15)
    assert "Alles aktuell" in (await client.get(REVIEW)).text
    assert "nicht geprüft" not in (await client.get(path)).text


# -- who may see it ----------------------------------------------------------------------------


async def test_an_admin_sees_the_review_list(client, services):
    await add_account(services, "ida", "admin")
    await login(client, "ida")
    assert (await client.get(REVIEW)).status_code == 200


@pytest.mark.parametrize("role", ["counsellor", "team_lead"])
async def test_a_counsellor_gets_403_for_the_review_list(client, services, role):
    await add_account(services, "carla", role)
    await login(client, "carla")
    response = await client.get(REVIEW)
    assert response.status_code == 403
    assert "nur die Verzeichnisredaktion und Admins" in response.text


async def test_an_anonymous_visitor_is_sent_to_the_login(client):
    response = await client.get(REVIEW)
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
