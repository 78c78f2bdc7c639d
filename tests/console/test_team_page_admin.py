"""An admin on the team page: a choice of every team, and the forms act on the chosen one
(hours, canned texts, invitations, ending access), while a lead's `?team=` changes nothing
for them: their own team only."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from core.db import transaction
from core.models import CannedResponse, Counsellor, Invitation, Team
from tests.console.conftest import login
from tests.console.test_team_page import as_lead, form_csrf
from tests.helpers import add_counsellor, add_team


async def as_admin(client, services) -> str:
    await add_counsellor(services, login="ada")
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == "ada").values(role="admin")
        )
    await login(client, "ada")
    return form_csrf((await client.get("/console/team")).text)


async def team_of(services, slug: str) -> Team:
    async with services.sessions() as session:
        return await session.scalar(select(Team).where(Team.slug == slug))


async def test_an_admin_chooses_a_team_and_its_forms_act_on_it(client, services):
    await add_team(services, slug="bayern", states=["BY"])
    bea = await add_counsellor(services, login="bea", team_slug="bayern")
    csrf = await as_admin(client, services)
    own = await client.get("/console/team")
    assert '<select id="team-choice" name="team">' in own.text
    assert re.search(r'<option value="bundesweit" selected>', own.text), "own team first"
    assert "bayern (BY)" in own.text and "Bea" not in own.text

    page = await client.get("/console/team?team=bayern")
    assert '<option value="bayern" selected>' in page.text and "Bea" in page.text
    assert 'action="/console/team/settings?team=bayern"' in page.text

    hours = {"csrf": csrf, "mon": "09:00-12:00", "away_de": "Bis Montag!", "away_en": ""}
    saved = await client.post("/console/team/settings?team=bayern", data=hours)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/team?done=settings&team=bayern"
    bayern, national = await team_of(services, "bayern"), await team_of(services, "bundesweit")
    assert bayern.opening_hours == {"mon": ["09:00-12:00"]}
    assert bayern.out_of_office == {"de": "Bis Montag!"}
    assert national.opening_hours is None, "the admin's own team is untouched"

    text = {"csrf": csrf, "title": "Gruß", "body": "Hallo aus Bayern", "language": "de"}
    assert (await client.post("/console/team/canned?team=bayern", data=text)).status_code == 303
    invited = await client.post(
        "/console/team/invite?team=bayern",
        data={"csrf": csrf, "display_name": "Neu in Bayern", "role": "counsellor"},
    )
    assert invited.status_code == 200 and "Neu in Bayern" in invited.text
    ended = await client.post(
        f"/console/team/members/{bea.id}/leave?team=bayern", data={"csrf": csrf, "confirm": "yes"}
    )
    assert ended.headers["location"] == "/console/team?done=left&team=bayern"
    async with services.sessions() as session:
        canned = await session.scalar(select(CannedResponse).where(CannedResponse.title == "Gruß"))
        invitation = await session.scalar(select(Invitation))
        bea_now = await session.get(Counsellor, bea.id)
        ada = await session.scalar(select(Counsellor).where(Counsellor.login == "ada"))
    assert canned.team_id == bayern.id and invitation.team_id == bayern.id
    assert bea_now.is_active is False
    assert ada.team_id == national.id, "acting in a team moves nobody"


async def test_an_unknown_team_is_a_clear_404(client, services):
    await as_admin(client, services)
    page = await client.get("/console/team?team=gibt-es-nicht")
    assert page.status_code == 404 and "Dieses Team gibt es nicht." in page.text


async def test_a_lead_stays_in_their_own_team_whatever_the_query_says(client, services):
    await add_team(services, slug="bayern", states=["BY"])
    await add_counsellor(services, login="bea", team_slug="bayern")
    csrf = await as_lead(client, services)
    page = await client.get("/console/team?team=bayern")
    assert page.status_code == 200 and "Bea" not in page.text
    assert "team-choice" not in page.text and "?team=" not in page.text
    hours = {"csrf": csrf, "mon": "10:00-11:00", "away_de": "", "away_en": ""}
    saved = await client.post("/console/team/settings?team=bayern", data=hours)
    assert saved.headers["location"] == "/console/team?done=settings"
    assert (await team_of(services, "bayern")).opening_hours is None
    assert (await team_of(services, "bundesweit")).opening_hours == {"mon": ["10:00-11:00"]}


async def test_an_admin_creates_a_team_and_changes_its_states_on_the_page(client, services):
    csrf = await as_admin(client, services)
    page = (await client.get("/console/team")).text
    assert "Teams verwalten (Admin)" in page and 'action="/console/team/create' in page
    made = await client.post(
        "/console/team/create",
        data={
            "csrf": csrf,
            "slug": "nord",
            "name": "Team Nord",
            "states": ["HB", "NI"],
            "languages": "de, en",
        },
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/console/team?done=created&team=nord"
    shown = (await client.get(made.headers["location"])).text
    assert "Das Team ist angelegt" in shown and '<option value="nord" selected>' in shown
    nord = await team_of(services, "nord")
    assert (nord.name, nord.federal_states, nord.languages) == (
        "Team Nord",
        ["HB", "NI"],
        ["de", "en"],
    )

    changed = await client.post(
        "/console/team/definition?team=nord",
        data={"csrf": csrf, "name": "Team Nord", "states": ["HB"], "languages": "de"},
    )
    assert changed.headers["location"] == "/console/team?done=definition&team=nord"
    nord = await team_of(services, "nord")
    assert (nord.federal_states, nord.languages) == (["HB"], ["de"])

    cases = [
        ({"slug": "nord", "name": "Noch eins", "languages": "de"}, "schon ein Team"),
        ({"slug": "Nord Ost", "name": "X", "languages": "de"}, "Kurzname passt nicht"),
        ({"slug": "ost", "name": "Ost", "states": ["XX"], "languages": "de"}, "unbekannt"),
        ({"slug": "ost", "name": "Ost", "languages": "deutsch"}, "mindestens eine Sprache"),
        ({"slug": "ost", "name": " ", "languages": "de"}, "einen Namen"),
    ]
    for fields, message in cases:
        refused = await client.post("/console/team/create", data={"csrf": csrf, **fields})
        assert refused.status_code == 422 and message in refused.text, fields
    assert await team_of(services, "ost") is None


async def test_only_admins_define_teams(client, services):
    csrf = await as_lead(client, services)
    assert "Teams verwalten" not in (await client.get("/console/team")).text
    refused = await client.post(
        "/console/team/create",
        data={"csrf": csrf, "slug": "nord", "name": "Nord", "languages": "de"},
    )
    assert refused.status_code == 403 and "nur Admins" in refused.text
    changed = await client.post(
        "/console/team/definition",
        data={"csrf": csrf, "name": "Umbenannt", "languages": "de"},
    )
    assert changed.status_code == 403
    assert await team_of(services, "nord") is None
    assert (await team_of(services, "bundesweit")).name != "Umbenannt"
