"""Members on the team page: a lead invites by a one-time link shown once, and ends a
member's access (as `lotse account leave` does), with a confirmation; never their own, never
another team's; counsellors cannot."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from core.models import ConsoleSession, Counsellor, Team, TeamKeyWrap
from tests.console.conftest import login
from tests.console.test_team_page import as_lead, form_csrf
from tests.helpers import add_counsellor, add_team

BASE = "https://testserver"


async def test_a_lead_sees_the_team_and_invites_someone_by_a_link_shown_once(client, services):
    await add_counsellor(services, login="anna")
    csrf = await as_lead(client, services)
    page = await client.get("/console/team")
    assert "Mitglieder des Teams" in page.text and "Anna" in page.text and "(du)" in page.text
    made = await client.post(
        "/console/team/invite",
        data={"csrf": csrf, "display_name": "Neue Kollegin", "role": "counsellor"},
    )
    assert made.status_code == 200
    link = re.search(r'id="invitation-url" value="([^"]+)"', made.text).group(1)
    assert link.startswith(f"{BASE}/console/invite/")
    assert "Neue Kollegin" in made.text and "gültig bis" in made.text
    # The link works once, and is in no later page.
    assert (await client.get(link.removeprefix(BASE))).status_code == 200
    assert link not in (await client.get("/console/team")).text
    for bad in (
        {"display_name": "", "role": "counsellor"},
        {"display_name": "X", "role": "admin"},
    ):
        refused = await client.post("/console/team/invite", data={"csrf": csrf, **bad})
        assert refused.status_code == 422 and "Die Einladung ging nicht" in refused.text
    forged = await client.post(
        "/console/team/invite", data={"csrf": "no", "display_name": "X", "role": "counsellor"}
    )
    assert forged.status_code == 403


async def test_a_lead_ends_a_members_access_after_confirming(client, services, app):
    anna = await add_counsellor(services, login="anna")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as annas:
        await login(annas, "anna")
        async with services.sessions() as session:
            team = await session.scalar(select(Team).where(Team.id == anna.team_id))
            session.add(
                TeamKeyWrap(
                    team_id=team.id,
                    epoch=1,
                    counsellor_id=anna.id,
                    envelope={"v": 1},
                    created_at=services.clock.now(),
                )
            )
            await session.commit()
        csrf = await as_lead(client, services)
        url = f"/console/team/members/{anna.id}/leave"
        unconfirmed = await client.post(url, data={"csrf": csrf})
        assert unconfirmed.status_code == 422 and "Häkchen" in unconfirmed.text
        done = await client.post(url, data={"csrf": csrf, "confirm": "yes"})
        assert done.status_code == 303 and done.headers["location"] == "/console/team?done=left"
        async with services.sessions() as session:
            row = await session.get(Counsellor, anna.id)
            assert row.is_active is False
            assert (
                await session.scalars(
                    select(ConsoleSession).where(ConsoleSession.counsellor_id == anna.id)
                )
            ).all() == []
            assert (
                await session.scalars(
                    select(TeamKeyWrap).where(TeamKeyWrap.counsellor_id == anna.id)
                )
            ).all() == []
            assert (await session.get(Team, anna.team_id)).rotation_due is True
        # Her open console is logged out at once.
        assert (await annas.get("/api/v1/console/me")).status_code == 401
    page = await client.get("/console/team?done=left")
    assert "Der Zugang ist beendet" in page.text and "Zugang beendet" in page.text


async def test_not_oneself_not_another_team_and_not_as_a_counsellor(client, services):
    await add_team(services, slug="bayern", states=["BY"])
    other = await add_counsellor(services, login="otto", team_slug="bayern")
    csrf = await as_lead(client, services)
    async with services.sessions() as session:
        me = await session.scalar(select(Counsellor).where(Counsellor.login == "tina"))
    for target in (me.id, other.id):
        refused = await client.post(
            f"/console/team/members/{target}/leave", data={"csrf": csrf, "confirm": "yes"}
        )
        assert refused.status_code == 403 and "nur Mitglieder deines Teams" in refused.text
    async with services.sessions() as session:
        assert (await session.get(Counsellor, other.id)).is_active is True
        assert (await session.get(Counsellor, me.id)).is_active is True
    client.cookies.clear()
    anna = await add_counsellor(services, login="anna")
    await login(client, "anna")
    page = await client.get("/console")
    csrf = form_csrf(page.text) if 'name="csrf"' in page.text else "x"
    attempt = await client.post(
        f"/console/team/members/{other.id}/leave", data={"csrf": csrf, "confirm": "yes"}
    )
    assert attempt.status_code == 403
    assert anna.is_active
