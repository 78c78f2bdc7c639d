import asyncio

from bot.webchat.sender import webchat_channel
from tests.console.conftest import BASE, login
from tests.helpers import add_counsellor, add_team
from tests.keyring import keyring_of


async def start_web_chat(client):
    await client.get("/chat")
    for kind, value in [
        ("command", "start"),
        ("action", "role:teen"),
        ("text", "90402"),
        ("action", "need:visits"),
        ("action", "handover"),
    ]:
        response = await client.post("/chat/api/messages", json={"kind": kind, "value": value})
        assert response.status_code == 200
    return response.json()


async def test_login_with_wrong_password_is_refused(client, counsellor):
    page = await client.get("/console/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/console/login", data={"login": "anna", "password": "nope", "csrf": csrf}
    )
    assert response.status_code == 401
    assert "stimmt nicht" in response.text
    assert (await client.get("/api/v1/console/queue")).status_code == 401


async def test_session_cookie_is_host_prefixed_secure_httponly_strict(client, counsellor):
    await login(client, "anna")
    cookie = next(c for c in client.cookies.jar if c.name.startswith("__Host-"))
    assert cookie.secure and cookie.path == "/"
    page = await client.get("/console/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    raw = await client.post(
        "/console/login", data={"login": "anna", "password": "pw-long-enough", "csrf": csrf}
    )
    header = raw.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "secure" in header


async def test_reply_reaches_the_web_chat_user_in_order(client, services, counsellor):
    await start_web_chat(client)
    csrf = await login(client, "anna")
    queue = (await client.get("/api/v1/console/queue")).json()
    assert len(queue) == 1 and queue[0]["status"] == "waiting" and queue[0]["role"] == "teen"
    conversation_id = queue[0]["id"]
    headers = {"X-CSRF-Token": csrf}
    claimed = await client.post(
        f"/api/v1/console/conversations/{conversation_id}/claim", headers=headers
    )
    assert claimed.json()["status"] == "active"
    pseudonym = services.identities.pseudonym(
        channel="web", identifier=client.cookies["lotse_chat"]
    )
    async with services.bus.subscribe(webchat_channel(pseudonym)) as inbox:
        for text in ("eins", "zwei", "drei"):
            sent = await client.post(
                f"/api/v1/console/conversations/{conversation_id}/messages",
                json={"text": text},
                headers=headers,
            )
            assert sent.status_code == 201
        received = [(await asyncio.wait_for(inbox.get(), 5))["text"] for _ in range(3)]
    assert received == ["eins", "zwei", "drei"]
    await services.relay.drain()
    detail = (await client.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert [m["delivery"] for m in detail["messages"]] == ["sent", "sent", "sent"]


async def test_state_change_without_csrf_token_is_refused(client, counsellor):
    await start_web_chat(client)
    await login(client, "anna")
    conversation_id = (await client.get("/api/v1/console/queue")).json()[0]["id"]
    response = await client.post(f"/api/v1/console/conversations/{conversation_id}/claim")
    assert response.status_code == 403


async def test_cross_site_post_is_refused(client, counsellor):
    await start_web_chat(client)
    csrf = await login(client, "anna")
    conversation_id = (await client.get("/api/v1/console/queue")).json()[0]["id"]
    response = await client.post(
        f"/api/v1/console/conversations/{conversation_id}/claim",
        headers={
            "X-CSRF-Token": csrf,
            "Origin": "https://evil.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert response.status_code == 403
    chat = await client.post(
        "/chat/api/messages",
        json={"kind": "text", "value": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert chat.status_code == 403


async def test_other_team_gets_404(client, services, counsellor):
    await add_team(services, slug="by", states=["HH"])
    await add_counsellor(services, login="bert", team_slug="by")
    await start_web_chat(client)
    csrf = await login(client, "bert")
    assert (await client.get("/api/v1/console/queue")).json() == []
    async with services.sessions() as session:
        from sqlalchemy import select

        from core.models import Conversation

        conversation_id = await session.scalar(select(Conversation.id))
    assert (
        await client.get(f"/api/v1/console/conversations/{conversation_id}")
    ).status_code == 404
    claim = await client.post(
        f"/api/v1/console/conversations/{conversation_id}/claim", headers={"X-CSRF-Token": csrf}
    )
    assert claim.status_code == 404


async def test_logout_ends_the_session_on_the_server(client, counsellor):
    csrf = await login(client, "anna")
    stolen = dict(client.cookies)
    response = await client.post("/console/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 303
    for name, value in stolen.items():
        client.cookies.set(name, value, domain="testserver")
    assert (await client.get("/api/v1/console/queue")).status_code == 401


async def test_invalid_input_is_a_clear_422_without_the_input(client, counsellor):
    await start_web_chat(client)
    csrf = await login(client, "anna")
    conversation_id = (await client.get("/api/v1/console/queue")).json()[0]["id"]
    response = await client.post(
        f"/api/v1/console/conversations/{conversation_id}/messages",
        json={"text": ""},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 422 and response.json()["detail"] == "invalid request"
    secret = "geheimer-text-" * 400
    chat = await client.post("/chat/api/messages", json={"kind": "text", "value": secret})
    assert chat.status_code == 422 and "geheimer" not in chat.text
    bad_id = await client.get("/api/v1/console/conversations/not-a-uuid")
    assert bad_id.status_code == 422


async def test_pages_carry_a_strict_content_security_policy(client):
    response = await client.get("/console/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    chat = await client.get("/chat")
    assert 'integrity="sha384-' in chat.text


async def test_web_chat_without_its_cookie_is_told_to_reload(client):
    response = await client.post("/chat/api/messages", json={"kind": "command", "value": "start"})
    assert response.status_code == 401
    assert "reload" in response.json()["detail"]


async def test_openapi_schema_documents_the_console_api(client):
    schema = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/console/queue" in schema["paths"]
    assert "/chat/api/messages" in schema["paths"]


async def test_unknown_user_html_is_stored_as_text(client, services, counsellor):
    await start_web_chat(client)
    await client.post(
        "/chat/api/messages", json={"kind": "text", "value": "<img src=x onerror=alert(1)>"}
    )
    await login(client, "anna")
    conversation_id = (await client.get("/api/v1/console/queue")).json()[0]["id"]
    detail = (await client.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert keyring_of(services).open(detail["messages"][0]) == "<img src=x onerror=alert(1)>"
    assert BASE.startswith("https")


async def test_reply_to_a_closed_web_chat_is_shown_as_not_delivered(client, services, counsellor):
    await start_web_chat(client)
    csrf = await login(client, "anna")
    conversation_id = (await client.get("/api/v1/console/queue")).json()[0]["id"]
    headers = {"X-CSRF-Token": csrf}
    await client.post(f"/api/v1/console/conversations/{conversation_id}/claim", headers=headers)
    await client.post(
        f"/api/v1/console/conversations/{conversation_id}/messages",
        json={"text": "bist du noch da?"},
        headers=headers,
    )
    await services.relay.drain()
    detail = (await client.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert detail["messages"][-1]["delivery"] == "failed"


async def test_at_start_replies_queued_long_ago_are_marked_failed_younger_ones_not(
    services, counsellor, clock
):
    """A previous run's queue died with it; a reply younger than 10 minutes may sit in the
    queue of another process that runs on (core/conversations.py, LOST_REPLY_AFTER)."""
    from core.conversations import Profile
    from lotse.app import create_app

    pseudonym = services.identities.pseudonym(channel="web", identifier="old")
    handover = await services.conversations.request_handover(
        channel="web", pseudonym=pseudonym, chat_ref=None, profile=Profile()
    )
    conversation_id = handover.conversation.id
    await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
    await services.conversations.add_counsellor_reply(
        conversation_id=conversation_id, counsellor=counsellor, text="never sent"
    )
    clock.advance(minutes=10, seconds=1)
    await services.conversations.add_counsellor_reply(
        conversation_id=conversation_id, counsellor=counsellor, text="another process has it"
    )
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app):
        detail = await services.conversations.get_conversation(
            conversation_id=conversation_id, counsellor=counsellor
        )
    assert [m.delivery for m in detail.messages[-2:]] == ["failed", "queued"]
