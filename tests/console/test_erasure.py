"""Erasure started by a counsellor: everything linked to the user goes from every table (and
the bot's flow state); a second erasure finds nothing; the audit entry keeps no pseudonym."""

from __future__ import annotations

from sqlalchemy import select

from bot.state import FlowStateStore
from core.models import AuditEntry
from tests.console.conftest import login
from tests.console.test_console_api import start_web_chat
from tests.helpers import add_counsellor, add_team
from tests.keyring import table_dump, table_rows

API = "/api/v1/console"


async def test_a_counsellor_erases_everything_of_a_user_once(client, services, counsellor):
    await start_web_chat(client)
    await client.post("/chat/api/messages", json={"kind": "text", "value": "Bitte alles weg"})
    pseudonym = services.identities.pseudonym(
        channel="web", identifier=client.cookies["lotse_chat"]
    )
    assert await FlowStateStore(services.storage).get(pseudonym) != {}
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    url = f"{API}/conversations/{conversation_id}/erase"

    assert (await client.post(url)).status_code == 403, "CSRF token required"
    assert (await client.post(url, headers=headers)).status_code == 204
    dump = await table_dump(services)
    assert pseudonym not in dump, "nothing linked to the pseudonym remains in any table"
    rows = await table_rows(services)
    for table in ("conversations", "messages", "contacts", "referrals", "case_notes"):
        assert conversation_id not in str(rows[table]) and pseudonym not in str(rows[table])
    assert rows["contacts"] == [] and rows["messages"] == []
    async with services.sessions() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.at))).all()
    assert [e.action for e in entries][-1] == "erase"
    assert pseudonym not in str([(e.action, e.conversation_id, e.team_id) for e in entries])
    assert await FlowStateStore(services.storage).get(pseudonym) == {}, "flow state is gone"
    assert (await client.get(f"{API}/conversations/{conversation_id}")).status_code == 404
    assert (await client.post(url, headers=headers)).status_code == 404, "a second is a no-op"
    assert await table_dump(services) == dump


async def test_another_team_cannot_erase(client, services, counsellor):
    await add_team(services, slug="by", states=["BY"])
    await add_counsellor(services, login="bea", team_slug="by")
    await start_web_chat(client)  # postcode 90402: Bavaria, so team "by" takes it
    headers = {"X-CSRF-Token": await login(client, "anna")}
    assert (await client.get(f"{API}/queue")).json() == []
    await client.post("/console/logout", headers=headers)
    headers = {"X-CSRF-Token": await login(client, "bea")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post("/console/logout", headers=headers)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    url = f"{API}/conversations/{conversation_id}/erase"
    assert (await client.post(url, headers=headers)).status_code == 404
