"""A conversation's life in the console API: claim, release, crisis flag, transfer to a colleague
or a team with a handover note, close with outcome codes; capacity; and every conversation
endpoint refused to another team's counsellor."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from bot.webchat.sender import webchat_channel
from core import keyring
from core.models import Conversation, Team
from tests.console.conftest import login
from tests.console.test_console_api import start_web_chat
from tests.helpers import add_counsellor, add_team
from tests.keyring import keyring_of

API = "/api/v1/console"


async def first_conversation(client) -> str:
    return (await client.get(f"{API}/queue")).json()[0]["id"]


async def team_id(services, slug: str) -> str:
    async with services.sessions() as session:
        return str(await session.scalar(select(Team.id).where(Team.slug == slug)))


async def test_release_puts_it_back_in_the_queue_in_its_place(client, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    released = await client.post(f"{API}/conversations/{conversation_id}/release", headers=headers)
    assert released.status_code == 200
    assert released.json()["status"] == "waiting" and released.json()["counsellor_id"] is None
    again = await client.post(f"{API}/conversations/{conversation_id}/release", headers=headers)
    assert again.status_code == 409, "only an active conversation can be released"


async def test_crisis_flag_set_and_cleared_by_a_counsellor(client, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    url = f"{API}/conversations/{conversation_id}/crisis"
    assert (await client.put(url, json={"crisis": True}, headers=headers)).json()["crisis"]
    assert (await client.get(f"{API}/queue")).json()[0]["crisis"] is True
    assert not (await client.put(url, json={"crisis": False}, headers=headers)).json()["crisis"]
    bad = await client.put(url, json={"crisis": "maybe"}, headers=headers)
    assert bad.status_code == 422


async def test_close_records_outcomes_and_tells_the_user(client, services, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    pseudonym = services.identities.pseudonym(
        channel="web", identifier=client.cookies["lotse_chat"]
    )
    async with services.bus.subscribe(webchat_channel(pseudonym)) as inbox:
        closed = await client.post(
            f"{API}/conversations/{conversation_id}/close",
            json={"outcomes": ["topic:visits", "referral_given", "referral_given"]},
            headers=headers,
        )
        farewell = await asyncio.wait_for(inbox.get(), 5)
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["outcomes"] == ["referral_given", "topic:visits"]
    assert "beendet" in farewell["text"]
    assert (await client.get(f"{API}/queue")).json() == []
    # The user writing on gets told the talk is over, and nothing is stored against it.
    after = await client.post("/chat/api/messages", json={"kind": "text", "value": "hallo?"})
    assert "beendet" in after.json()["replies"][0]["text"]
    twice = await client.post(
        f"{API}/conversations/{conversation_id}/close", json={"outcomes": []}, headers=headers
    )
    assert twice.status_code == 409


async def test_close_with_an_unknown_outcome_is_refused_by_name(client, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    response = await client.post(
        f"{API}/conversations/{conversation_id}/close",
        json={"outcomes": ["Max Mustermann"]},
        headers=headers,
    )
    assert response.status_code == 422
    assert "unknown outcome codes" in response.json()["detail"]
    assert (await client.get(f"{API}/queue")).json()[0]["status"] == "waiting", "still open"


async def test_transfer_to_a_colleague_with_a_note_only_the_team_sees(
    client, services, counsellor
):
    colleague = await add_counsellor(services, login="carla")
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    moved = await client.post(
        f"{API}/conversations/{conversation_id}/transfer",
        json={"to_counsellor_id": str(colleague.id), "note": "Fragt nach Besuchen in Nürnberg"},
        headers=headers,
    )
    assert moved.status_code == 200
    assert moved.json()["counsellor_id"] == str(colleague.id)
    detail = (await client.get(f"{API}/conversations/{conversation_id}")).json()
    note = detail["messages"][-1]
    assert note["sender"] == "handover" and note["delivery"] == "internal"
    await services.relay.drain()
    pseudonym = services.identities.pseudonym(
        channel="web", identifier=client.cookies["lotse_chat"]
    )
    async with services.bus.subscribe(webchat_channel(pseudonym)) as inbox:
        await asyncio.sleep(0.05)
        assert inbox.empty(), "the handover note never reaches the user"


async def test_transfer_to_another_team_moves_it_to_their_queue(client, services, counsellor):
    await add_team(services, slug="nrw", states=["NW"])
    await add_counsellor(services, login="nora", team_slug="nrw")
    await start_web_chat(client)
    await client.post("/chat/api/messages", json={"kind": "text", "value": "Wir ziehen nach Köln"})
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    nrw = await team_id(services, "nrw")
    url = f"{API}/conversations/{conversation_id}/transfer"
    # What the sending browser does (team_keys.js resealFor): verify the other team's roster
    # chain, open every message, seal it again to the transcript key that chain names.
    target = (await client.get(f"{API}/teams/{nrw}/transcript-key")).json()
    roster = keyring.check_roster_chain(target["rosters"], team=nrw, epoch=target["epoch"])
    messages = (await client.get(f"{API}/conversations/{conversation_id}")).json()["messages"]
    ring = keyring_of(services)
    resealed = [
        {
            "message_id": m["id"],
            "envelope": keyring.seal_message(
                transcript_public=roster["keys"]["transcript_public"],
                kid=roster["keys"]["transcript_kid"],
                epoch=target["epoch"],
                team=nrw,
                conversation=conversation_id,
                message=m["id"],
                sender=m["sender"],
                text=ring.open(m),
            ),
        }
        for m in messages
    ]
    body = {"to_team_id": nrw, "note": "Wohnt in NRW"}
    missing = await client.post(url, json=body, headers=headers)
    assert missing.status_code == 409, "the server cannot re-seal: the browser must"
    mislabelled = [{**r, "envelope": {**r["envelope"], "epoch": 7}} for r in resealed]
    refused = await client.post(url, json={**body, "resealed": mislabelled}, headers=headers)
    assert refused.status_code == 422
    moved = await client.post(url, json={**body, "resealed": resealed}, headers=headers)
    assert moved.status_code == 200 and moved.json()["status"] == "waiting"
    assert (await client.get(f"{API}/queue")).json() == [], "gone from the old team"
    assert (await client.get(f"{API}/conversations/{conversation_id}")).status_code == 404
    await client.post("/console/logout", headers=headers)
    await login(client, "nora")
    assert [c["id"] for c in (await client.get(f"{API}/queue")).json()] == [conversation_id]
    detail = (await client.get(f"{API}/conversations/{conversation_id}")).json()
    assert [ring.open(m) for m in detail["messages"]] == ["Wir ziehen nach Köln", "Wohnt in NRW"]
    assert (await client.get(f"{API}/teams/{uuid.uuid4()}/transcript-key")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"to_counsellor_id": "00000000-0000-0000-0000-000000000000"}, {"to_team_id": None}],
)
async def test_transfer_without_a_valid_target_is_a_clear_422(client, counsellor, body):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    response = await client.post(
        f"{API}/conversations/{conversation_id}/transfer", json=body, headers=headers
    )
    assert response.status_code == 422 and response.json()["detail"]


async def test_a_counsellor_at_capacity_cannot_claim_more_except_a_crisis(client, services):
    from core.db import transaction

    await add_counsellor(services, login="anna")
    async with transaction(services.sessions) as session:
        from core.models import Counsellor

        anna = await session.scalar(select(Counsellor).where(Counsellor.login == "anna"))
        anna.capacity = 1
    ids = []
    for n in range(3):
        person = services.identities.pseudonym(channel="web", identifier=f"p{n}")
        from core.conversations import Profile

        handover = await services.conversations.request_handover(
            channel="web", pseudonym=person, chat_ref=None, profile=Profile(), crisis=n == 2
        )
        ids.append(str(handover.conversation.id))
    headers = {"X-CSRF-Token": await login(client, "anna")}
    assert (await client.post(f"{API}/conversations/{ids[0]}/claim", headers=headers)).is_success
    full = await client.post(f"{API}/conversations/{ids[1]}/claim", headers=headers)
    assert full.status_code == 409 and "capacity" in full.json()["detail"]
    crisis = await client.post(f"{API}/conversations/{ids[2]}/claim", headers=headers)
    assert crisis.status_code == 200, "a crisis is never refused for capacity"


ENDPOINTS = [
    ("GET", "", None),
    ("POST", "/claim", None),
    ("POST", "/release", None),
    ("PUT", "/crisis", {"crisis": True}),
    ("POST", "/close", {"outcomes": []}),
    ("POST", "/transfer", {"note": "x"}),
    ("POST", "/messages", {"text": "hallo"}),
    ("POST", "/referrals", {"service_ids": ["x"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_another_teams_counsellor_gets_404_on_every_conversation_endpoint(
    client, services, counsellor, method, path, body
):
    await add_team(services, slug="hh", states=["HH"])
    await add_counsellor(services, login="hanna", team_slug="hh")
    await start_web_chat(client)
    async with services.sessions() as session:
        conversation_id = await session.scalar(select(Conversation.id))
    headers = {"X-CSRF-Token": await login(client, "hanna")}
    response = await client.request(
        method, f"{API}/conversations/{conversation_id}{path}", json=body, headers=headers
    )
    assert response.status_code == 404, response.text
    async with services.sessions() as session:
        unchanged = await session.get(Conversation, conversation_id)
        assert unchanged.status == "waiting" and not unchanged.crisis


async def test_logging_in_counts_as_online_until_away_or_logout(client, services, counsellor):
    from core.teams import online_count

    async def online() -> int:
        async with services.sessions() as session:
            team = await session.scalar(select(Team.id).where(Team.slug == "bundesweit"))
            return await online_count(session, team_id=team, now=services.clock.now())

    assert await online() == 0
    headers = {"X-CSRF-Token": await login(client, "anna")}
    assert await online() == 1
    away = await client.put(
        f"{API}/me/availability", json={"availability": "away"}, headers=headers
    )
    assert away.json()["availability"] == "away" and await online() == 0
    await client.put(f"{API}/me/availability", json={"availability": "online"}, headers=headers)
    assert (await client.post(f"{API}/me/heartbeat", headers=headers)).status_code == 204
    assert await online() == 1
    bad = await client.put(
        f"{API}/me/availability", json={"availability": "asleep"}, headers=headers
    )
    assert bad.status_code == 422
    await client.post("/console/logout", headers=headers)
    assert await online() == 0


async def test_only_a_team_lead_sets_hours_and_out_of_office(client, services, counsellor):
    from core.db import transaction
    from core.models import Counsellor

    settings = {"opening_hours": {"mon": ["09:00-17:00"]}, "out_of_office": {"de": "Bis bald!"}}
    headers = {"X-CSRF-Token": await login(client, "anna")}
    refused = await client.put(f"{API}/team/settings", json=settings, headers=headers)
    assert refused.status_code == 403
    async with transaction(services.sessions) as session:
        anna = await session.scalar(select(Counsellor).where(Counsellor.login == "anna"))
        anna.role = "team_lead"
    saved = await client.put(f"{API}/team/settings", json=settings, headers=headers)
    assert saved.status_code == 200 and saved.json() == settings
    assert (await client.get(f"{API}/team/settings")).json() == settings
    broken = await client.put(
        f"{API}/team/settings",
        json={"opening_hours": {"mon": ["17:00-09:00"]}, "out_of_office": {}},
        headers=headers,
    )
    assert broken.status_code == 422 and "split a night" in broken.json()["detail"]
    assert (await client.get(f"{API}/team/settings")).json() == settings, "nothing half-saved"


async def test_every_opening_and_change_is_audited_and_only_leads_read_it(
    client, services, counsellor
):
    from core.db import transaction
    from core.models import AuditEntry, Counsellor

    await add_counsellor(services, login="lea")
    async with transaction(services.sessions) as session:
        lead = await session.scalar(select(Counsellor).where(Counsellor.login == "lea"))
        lead.role = "team_lead"
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    await client.get(f"{API}/conversations/{conversation_id}")
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    await client.put(
        f"{API}/conversations/{conversation_id}/crisis", json={"crisis": True}, headers=headers
    )
    await client.post(
        f"{API}/conversations/{conversation_id}/close", json={"outcomes": []}, headers=headers
    )
    assert (await client.get(f"{API}/audit")).status_code == 403, "not for counsellors"
    await client.post("/console/logout", headers=headers)

    await login(client, "lea")
    entries = (await client.get(f"{API}/audit")).json()
    assert [e["action"] for e in reversed(entries)] == ["open", "claim", "crisis_on", "close"]
    assert {e["counsellor"] for e in entries} == {"Anna"}
    assert {e["conversation_id"] for e in entries} == {conversation_id}
    async with services.sessions() as session:
        rows = (await session.scalars(select(AuditEntry))).all()
    text = str([(r.action, r.conversation_id, r.counsellor_id, r.team_id) for r in rows])
    assert "hallo" not in text.lower()

    await add_team(services, slug="sh", states=["SH"])
    await add_counsellor(services, login="sven", team_slug="sh")
    async with transaction(services.sessions) as session:
        other = await session.scalar(select(Counsellor).where(Counsellor.login == "sven"))
        other.role = "team_lead"
    await login(client, "sven")
    assert (await client.get(f"{API}/audit")).json() == [], "another team's lead sees nothing"


async def test_only_its_counsellor_writes_in_a_conversation_or_a_lead_who_joins(
    client, services, counsellor
):
    from core.db import transaction
    from core.models import Counsellor

    await add_counsellor(services, login="cora")
    await add_counsellor(services, login="lutz")
    async with transaction(services.sessions) as session:
        lutz = await session.scalar(select(Counsellor).where(Counsellor.login == "lutz"))
        lutz.role = "team_lead"
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = await first_conversation(client)
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()

    headers = {"X-CSRF-Token": await login(client, "cora")}
    url = f"{API}/conversations/{conversation_id}/messages"
    refused = await client.post(url, json={"text": "Ich mische mich ein"}, headers=headers)
    assert refused.status_code == 403 and "colleague" in refused.json()["detail"]
    assert (await client.get(f"{API}/team/workload")).status_code == 403
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()

    headers = {"X-CSRF-Token": await login(client, "lutz")}
    joined = await client.post(
        url, json={"text": "Hallo, ich bin die Teamleitung."}, headers=headers
    )
    assert joined.status_code == 201
    workload = {
        row["display_name"]: row for row in (await client.get(f"{API}/team/workload")).json()
    }
    assert workload["Anna"]["active"] == 1 and workload["Anna"]["capacity"] == 5
    assert workload["Cora"]["active"] == 0
    assert workload["Lutz"]["availability"] == "online"
