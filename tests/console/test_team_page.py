"""The team page for leads: hours and out-of-office text the bot uses, and canned responses,
as server-rendered forms with CSRF; counsellors are refused."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from core.db import transaction
from core.models import CannedResponse, Counsellor, Team
from tests.console.conftest import login
from tests.helpers import add_counsellor


def form_csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def as_lead(client, services, name: str = "tina") -> str:
    await add_counsellor(services, login=name)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == name).values(role="team_lead")
        )
    await login(client, name)
    return form_csrf((await client.get("/console/team")).text)


async def national(services) -> Team:
    async with services.sessions() as session:
        return await session.scalar(select(Team).where(Team.slug == "bundesweit"))


async def test_a_lead_sets_hours_and_out_of_office_that_the_bot_then_uses(client, services):
    csrf = await as_lead(client, services)
    saved = await client.post(
        "/console/team/settings",
        data={"csrf": csrf, "mon": "09:00-13:00, 14:00-18:00", "fri": "10:00-12:00",
              "away_de": "Wir sind bald zurück.", "away_en": ""},
    )  # fmt: skip
    assert saved.status_code == 303
    team = await national(services)
    assert team.opening_hours == {"mon": ["09:00-13:00", "14:00-18:00"], "fri": ["10:00-12:00"]}
    assert team.out_of_office == {"de": "Wir sind bald zurück."}
    page = await client.get("/console/team")
    assert 'value="09:00-13:00, 14:00-18:00"' in page.text
    # The fake clock is on a Thursday: the bot names Friday and adds the team's words.
    from bot.engine import Inbound, Sender

    who = Sender("web", services.identities.pseudonym(channel="web", identifier="u1"))
    await services.engine.handle(sender=who, inbound=Inbound("command", "start"))
    replies = await services.engine.handle(sender=who, inbound=Inbound("action", "handover"))
    assert "Freitag, 10:00 Uhr" in replies[0].text
    assert replies[1].text == "Nachricht von unserem Team: Wir sind bald zurück."


async def test_unreadable_hours_are_refused_with_a_message_and_nothing_is_saved(client, services):
    csrf = await as_lead(client, services)
    refused = await client.post(
        "/console/team/settings", data={"csrf": csrf, "tue": "abends", "away_de": "x"}
    )
    assert refused.status_code == 422 and "nicht lesbar" in refused.text
    assert 'value="abends"' in refused.text, "the lead's input is kept"
    team = await national(services)
    assert team.opening_hours is None and team.out_of_office is None


async def test_canned_responses_are_added_edited_and_deleted_on_the_page(client, services):
    csrf = await as_lead(client, services)
    added = await client.post(
        "/console/team/canned",
        data={
            "csrf": csrf,
            "title": "Gruß",
            "body": "Hallo, ich bin {counsellor}.",
            "language": "de",
        },
    )
    assert added.status_code == 303
    async with services.sessions() as session:
        row = await session.scalar(select(CannedResponse))
    edited = await client.post(
        "/console/team/canned",
        data={
            "csrf": csrf,
            "canned_id": str(row.id),
            "title": "Gruß",
            "body": "Hi {team}",
            "language": "en",
        },
    )
    assert edited.status_code == 303
    page = await client.get("/console/team")
    assert "Hi {team}" in page.text
    empty = await client.post("/console/team/canned", data={"csrf": csrf, "title": "", "body": ""})
    assert empty.status_code == 422 and "braucht einen Titel" in empty.text
    deleted = await client.post(
        "/console/team/canned", data={"csrf": csrf, "canned_id": str(row.id), "delete": "1"}
    )
    assert deleted.status_code == 303
    async with services.sessions() as session:
        assert (await session.scalars(select(CannedResponse))).all() == []


async def test_the_team_page_is_for_leads_and_checks_csrf(client, services, counsellor):
    await login(client, "anna")
    page = await client.get("/console/team")
    assert page.status_code == 403 and "für Teamleitungen" in page.text
    client.cookies.clear()
    csrf = await as_lead(client, services, "tom")
    forged = await client.post(
        "/console/team/settings", data={"csrf": "wrong", "mon": "09:00-10:00"}
    )
    assert forged.status_code == 403
    assert (await national(services)).opening_hours is None
    assert csrf
