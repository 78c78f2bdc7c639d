"""The statistics in the console: for team leads and admins only, the same national tables for
both, as JSON, CSV and the dashboard page; and what the bot and the console record for them."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select, update

from core.db import transaction
from core.models import Counsellor, Referral, StatEvent
from tests.console.conftest import login
from tests.console.test_console_api import start_web_chat
from tests.core.test_statistics import add_events, conversations
from tests.helpers import add_counsellor

API = "/api/v1/console"


async def make_lead(services, name: str, role: str = "team_lead") -> None:
    await add_counsellor(services, login=name)
    async with transaction(services.sessions) as session:
        await session.execute(update(Counsellor).where(Counsellor.login == name).values(role=role))


async def test_a_lead_gets_the_last_completed_period_as_json_and_csv(client, services):
    await make_lead(services, "lena")
    await add_events(services, conversations(60))
    await login(client, "lena")
    index = (await client.get(f"{API}/statistics")).json()
    assert index == {"granularity": "quarter", "current": "2026-Q1", "periods": ["2025-Q4"]}
    report = await client.get(f"{API}/statistics/2025-Q4")
    assert report.status_code == 200
    body = report.json()
    assert body["period"] == "2025-Q4" and body["threshold"] == 5
    by_state = next(t for t in body["tables"] if t["id"] == "conversations_by_state")
    assert by_state["total"] == {"display": "60", "value": 60}
    exported = await client.get(f"{API}/statistics/2025-Q4.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    grand = next(
        r
        for r in rows
        if r["table"] == "conversations_by_state"
        and r["row"] == "total"
        and r["column"] == "total"
    )
    assert grand["count"] == "60" and grand["row_label"] == "Gesamt"
    assert {r["count"] for r in rows} >= {"<5"}
    assert all(r["count"] in ("<5", "x") or int(r["count"]) >= 5 for r in rows)
    # The CSV and the JSON are the same figures.
    json_cells = {
        (t["id"], row["value"], column): cell["display"]
        for t in body["tables"]
        for row in t["rows"]
        for column, cell in zip(t["columns"], row["cells"], strict=True)
    }
    csv_cells = {(r["table"], r["row"], r["column"]): r["count"] for r in rows}
    assert all(csv_cells[key] == display for key, display in json_cells.items())
    english = await client.get(f"{API}/statistics/2025-Q4.csv?lang=en")
    assert "Federal state" not in english.text and "Total" in english.text
    download = await client.get(f"{API}/statistics/2025-Q4?download=true")
    assert download.headers["content-disposition"] == 'attachment; filename="lotse-2025-Q4.json"'


async def test_counsellors_and_editors_get_no_statistics(client, services, counsellor):
    await make_lead(services, "eddi", role="directory_editor")
    await login(client, "anna")
    assert (await client.get(f"{API}/statistics")).status_code == 403
    assert (await client.get(f"{API}/statistics/2025-Q4")).status_code == 403
    assert (await client.get("/console/statistics")).status_code == 403
    await login(client, "eddi")
    assert (await client.get(f"{API}/statistics/2025-Q4.csv")).status_code == 403


async def test_an_admin_sees_the_same_tables_as_a_lead(client, services, app):
    import httpx

    await make_lead(services, "lena")
    await make_lead(services, "adam", role="admin")
    await add_events(services, conversations(30))
    await login(client, "lena")
    lead_view = (await client.get(f"{API}/statistics/2025-Q4")).json()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as admin:
        await login(admin, "adam")
        assert (await admin.get(f"{API}/statistics/2025-Q4")).json() == lead_view


async def test_running_unknown_and_malformed_periods_are_clear_404s(client, services):
    await make_lead(services, "lena")
    await login(client, "lena")
    for period in ("2026-Q1", "2026-Q3", "2025-Q9", "2025-11", "nonsense"):
        response = await client.get(f"{API}/statistics/{period}")
        assert response.status_code == 404, period
        assert "period" in response.json()["detail"]
    too_long = await client.get(f"{API}/statistics/{'9' * 40}")
    assert too_long.status_code == 422


async def test_the_dashboard_shows_tables_charts_and_the_legend(client, services):
    await make_lead(services, "lena")
    await add_events(services, conversations(60) + conversations(20, month="2025-08", seed=9))
    await login(client, "lena")
    page = await client.get("/console/statistics")
    assert page.status_code == 200
    html = page.text
    assert "Gespräche nach Bundesland und Rolle" in html and "Berlin" in html
    assert "&lt;5" in html and "<svg" in html and 'aria-hidden="true"' in html
    assert 'value="2025-Q3"' in html and "2026-Q1" in html  # the running one is named
    assert "/api/v1/console/statistics/2025-Q4.csv" in html
    older = await client.get("/console/statistics?period=2025-Q3")
    assert older.status_code == 200 and "Q3" in older.text
    assert (await client.get("/console/statistics?period=2030-Q1")).status_code == 404
    console = await client.get("/console")
    assert 'href="/console/statistics"' in console.text


async def test_a_search_in_the_bot_is_counted_without_anything_of_the_user(client, services):
    await client.get("/chat")
    for kind, value in [
        ("command", "start"),
        ("action", "role:teen"),
        ("text", "90402"),
        ("action", "need:visits"),
    ]:
        await client.post("/chat/api/messages", json={"kind": kind, "value": value})
    assert await services.statistics.flush() == 1  # counted write-behind
    async with services.sessions() as session:
        (event,) = (await session.scalars(select(StatEvent))).all()
    assert (event.unit, event.role, event.federal_state) == ("search", "teen", "BY")
    assert event.topics == ["visits"] and event.found is True
    assert event.month == "2026-01"


async def test_a_closed_conversation_and_its_referrals_are_counted(client, services, counsellor):
    await start_web_chat(client)  # teen, 90402 (Bayern), visits
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    found = (await client.get("/api/v1/referrals?postcode=90402&needs=visits")).json()
    service_id = found["matches"][0]["service_id"]
    sent = await client.post(
        f"{API}/conversations/{conversation_id}/referrals",
        json={"service_ids": [service_id], "postcode": "90402", "needs": ["visits"]},
        headers=headers,
    )
    assert sent.status_code == 201, sent.text
    async with services.sessions() as session:
        assert (await session.scalar(select(Referral.category))) == "visits"
    await client.post(
        f"{API}/conversations/{conversation_id}/close",
        json={"outcomes": ["referral_given", "topic:school"]},
        headers=headers,
    )
    await services.statistics.flush()
    async with services.sessions() as session:
        events = (await session.scalars(select(StatEvent).order_by(StatEvent.unit))).all()
    by_unit = {e.unit: e for e in events}
    ended = by_unit["conversation"]
    assert (ended.role, ended.federal_state, ended.crisis) == ("teen", "BY", False)
    assert ended.topics == ["visits", "school"] and ended.outcomes == ["referral_given"]
    assert by_unit["referral"].category == "visits"
    assert {e.unit for e in events} == {"search", "conversation", "referral"}


async def test_two_closes_at_once_count_the_conversation_once(client, services, counsellor):
    import asyncio

    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    url = f"{API}/conversations/{conversation_id}/close"
    answers = await asyncio.gather(
        *(client.post(url, json={"outcomes": ["info_given"]}, headers=headers) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    async with services.sessions() as session:
        ended = (
            await session.scalars(select(StatEvent).where(StatEvent.unit == "conversation"))
        ).all()
    assert len(ended) == 1
