"""Canned responses (leads write, the team uses, placeholders filled) and referral cards (a
directory search in the console, the picked offers sent as the bot's cards, recorded)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from bot.webchat.sender import webchat_channel
from core.db import transaction
from core.models import Counsellor, Referral
from tests.console.conftest import login
from tests.console.test_console_api import start_web_chat
from tests.helpers import add_counsellor, add_team

API = "/api/v1/console"


async def lead(services, name: str, team_slug: str = "bundesweit") -> None:
    await add_counsellor(services, login=name, team_slug=team_slug)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == name).values(role="team_lead")
        )


async def test_leads_write_canned_responses_the_team_uses_with_placeholders(
    client, services, counsellor
):
    await lead(services, "leo")
    headers = {"X-CSRF-Token": await login(client, "leo")}
    text = {"title": "Begrüßung", "body": "Hallo, ich bin {counsellor} vom Team {team}. {x}"}
    made = await client.post(f"{API}/canned", json=text, headers=headers)
    assert made.status_code == 201
    english = {"language": "en", "title": "Hello", "body": "Hi, I am {counsellor}."}
    await client.post(f"{API}/canned", json=english, headers=headers)
    raw = (await client.get(f"{API}/canned?language=de&raw=true")).json()
    assert raw[0]["body"] == text["body"], "editing sees the placeholders"
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()

    anna_headers = {"X-CSRF-Token": await login(client, "anna")}
    [greeting] = (await client.get(f"{API}/canned?language=de")).json()
    assert greeting["body"] == "Hallo, ich bin Anna vom Team Bundesweites Team. {x}"
    refused = await client.post(f"{API}/canned", json=text, headers=anna_headers)
    assert refused.status_code == 403, "counsellors use, leads write"
    gone = await client.delete(f"{API}/canned/{made.json()['id']}", headers=anna_headers)
    assert gone.status_code == 403


async def test_another_teams_canned_responses_are_invisible_and_untouchable(client, services):
    await lead(services, "lis")
    await add_team(services, slug="mv", states=["MV"])
    await lead(services, "mia", team_slug="mv")
    headers = {"X-CSRF-Token": await login(client, "lis")}
    made = await client.post(
        f"{API}/canned", json={"title": "Intern", "body": "nur für uns"}, headers=headers
    )
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()
    headers = {"X-CSRF-Token": await login(client, "mia")}
    assert (await client.get(f"{API}/canned")).json() == []
    changed = await client.put(
        f"{API}/canned/{made.json()['id']}", json={"title": "x", "body": "y"}, headers=headers
    )
    assert changed.status_code == 404
    assert (
        await client.delete(f"{API}/canned/{made.json()['id']}", headers=headers)
    ).status_code == 404


async def test_a_referral_search_sends_the_bots_card_and_records_it(client, services, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    found = (await client.get("/api/v1/referrals?postcode=90402&needs=visits&limit=10")).json()
    treffpunkt = next(m for m in found["matches"] if "Treffpunkt" in m["organisation"])
    pseudonym = services.identities.pseudonym(
        channel="web", identifier=client.cookies["lotse_chat"]
    )
    async with services.bus.subscribe(webchat_channel(pseudonym)) as inbox:
        sent = await client.post(
            f"{API}/conversations/{conversation_id}/referrals",
            json={
                "service_ids": [treffpunkt["service_id"]],
                "postcode": "90402",
                "needs": ["visits"],
            },
            headers=headers,
        )
        card = await asyncio.wait_for(inbox.get(), 5)
    assert sent.status_code == 201
    assert "Treffpunkt e.V. Nürnberg" in card["text"] and " km · " in card["text"]
    assert "Stand:" in card["text"] and "Quelle:" in card["text"]
    async with services.sessions() as session:
        rows = (await session.scalars(select(Referral))).all()
    assert [(str(r.conversation_id), r.service_id) for r in rows] == [
        (conversation_id, treffpunkt["service_id"])
    ]


async def test_a_referral_not_in_the_search_or_a_bad_postcode_is_a_clear_422(
    client, services, counsellor
):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    url = f"{API}/conversations/{conversation_id}/referrals"
    unknown = await client.post(url, json={"service_ids": ["no-such-offer"]}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["service_ids"]
    bad = await client.post(
        url, json={"service_ids": ["x"], "postcode": "Nürnberg"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["postcode"]
    assert "Nürnberg" not in bad.text, "the input is not echoed"
    async with services.sessions() as session:
        assert (await session.scalars(select(Referral))).all() == []
