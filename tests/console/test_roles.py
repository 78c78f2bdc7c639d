"""Role x endpoint: what each role may do in the console API. Leads and admins supervise and
keep the team's settings; counsellors and directory editors may not; nobody without a login."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from core.db import transaction
from core.models import Counsellor
from tests.console.conftest import login
from tests.helpers import add_counsellor

API = "/api/v1/console"
LEAD_ONLY = [
    ("GET", "/audit", None, 200),
    ("GET", "/team/workload", None, 200),
    ("PUT", "/team/settings", {"opening_hours": None, "out_of_office": {}}, 200),
    ("POST", "/canned", {"title": "T", "body": "B"}, 201),
    ("POST", "/invitations", {"display_name": "Neu"}, 201),
]
EVERYONE = [
    ("GET", "/me", None, 200),
    ("GET", "/queue", None, 200),
    ("GET", "/teams", None, 200),
    ("GET", "/colleagues", None, 200),
    ("GET", "/canned", None, 200),
    ("GET", "/team/settings", None, 200),
    ("PUT", "/me/availability", {"availability": "away"}, 200),
    ("POST", "/me/heartbeat", None, 204),
]
ROLES = ["counsellor", "team_lead", "directory_editor", "admin"]


async def as_role(client, services, role: str) -> dict[str, str]:
    name = f"user-{role}"
    await add_counsellor(services, login=name)
    async with transaction(services.sessions) as session:
        await session.execute(update(Counsellor).where(Counsellor.login == name).values(role=role))
    return {"X-CSRF-Token": await login(client, name)}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "ok"), LEAD_ONLY)
async def test_lead_only_endpoints_by_role(client, services, role, method, path, body, ok):
    headers = await as_role(client, services, role)
    response = await client.request(method, API + path, json=body, headers=headers)
    expected = ok if role in ("team_lead", "admin") else 403
    assert response.status_code == expected, (role, path, response.text)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "ok"), EVERYONE)
async def test_everyday_endpoints_work_for_every_role(
    client, services, role, method, path, body, ok
):
    headers = await as_role(client, services, role)
    response = await client.request(method, API + path, json=body, headers=headers)
    assert response.status_code == ok, (role, path, response.text)


@pytest.mark.parametrize(("method", "path", "body", "ok"), LEAD_ONLY + EVERYONE)
async def test_nothing_without_a_login(client, method, path, body, ok):
    response = await client.request(method, API + path, json=body)
    assert response.status_code == 401, (path, response.text)
