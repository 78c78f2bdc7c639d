"""The account page: a counsellor changes their own password (the current one asked, guesses
limited, other sessions ended); and the operator's reset for a forgotten password or a lost
second factor."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from core.crypto import verify_password
from core.db import transaction
from core.models import ConsoleSession, Counsellor
from counsellor_console.auth import reset_login
from tests.console.conftest import BASE, csrf_of, login
from tests.helpers import add_counsellor

API = "/api/v1/console"
NEW = "ein-neues-langes-passwort"


async def change(client: httpx.AsyncClient, *, current: str, new: str, repeat: str | None = None):
    page = await client.get("/console/account")
    assert page.status_code == 200
    data = {"current": current, "new": new, "repeat": new if repeat is None else repeat}
    return await client.post(
        "/console/account/password", data={**data, "csrf": csrf_of(page.text)}
    )


async def test_the_page_is_linked_from_the_console_and_labels_every_field(client, counsellor):
    await login(client, "anna")
    assert 'href="/console/account"' in (await client.get("/console")).text
    page = (await client.get("/console/account")).text
    for field in ("current", "new", "repeat"):
        assert f'<label for="{field}">' in page and f'id="{field}"' in page
    assert 'autocomplete="current-password"' in page and 'minlength="12"' in page


async def test_a_changed_password_logs_in_and_ends_the_other_sessions(app, client, services):
    await add_counsellor(services, login="anna")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as other_device:
        await login(other_device, "anna")
        await login(client, "anna")
        done = await change(client, current="pw-long-enough", new=NEW)
        assert done.status_code == 303 and done.headers["location"].endswith("?done=password")
        assert "Dein Passwort ist geändert" in (await client.get(done.headers["location"])).text
        assert (await client.get(f"{API}/me")).status_code == 200, "this session stays"
        assert (await other_device.get(f"{API}/me")).status_code == 401, "the other one ended"
    client.cookies.clear()
    await login(client, "anna", NEW)
    client.cookies.clear()
    page = await client.get("/console/login")
    old = await client.post(
        "/console/login",
        data={"login": "anna", "password": "pw-long-enough", "csrf": csrf_of(page.text)},
    )
    assert old.status_code == 401


async def test_a_refused_change_says_why_and_changes_nothing(client, services, counsellor):
    await login(client, "anna")
    cases = [
        ({"current": "falsch-falsch-falsch", "new": NEW}, "Das jetzige Passwort stimmt nicht."),
        ({"current": "pw-long-enough", "new": "kurz"}, "mindestens 12 Zeichen"),
        ({"current": "pw-long-enough", "new": NEW, "repeat": NEW + "x"}, "nicht gleich"),
        ({"current": "pw-long-enough", "new": "pw-long-enough"}, "ist das alte"),
    ]
    for fields, message in cases:
        refused = await change(client, **fields)
        assert refused.status_code == 422 and message in refused.text, fields
        assert 'role="alert"' in refused.text
        assert NEW not in refused.text, "no password is echoed"
    async with services.sessions() as session:
        stored = await session.scalar(select(Counsellor).where(Counsellor.login == "anna"))
    assert verify_password(stored.password_hash, "pw-long-enough")


async def test_guessing_the_current_password_meets_429(client, counsellor):
    await login(client, "anna")
    statuses = [
        (await change(client, current=f"guess-number-{n:02d}", new=NEW)).status_code
        for n in range(12)
    ]
    assert statuses[0] == 422 and statuses[-1] == 429, statuses
    limited = await change(client, current="pw-long-enough", new=NEW)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


async def test_a_post_without_the_csrf_token_or_from_elsewhere_is_refused(client, counsellor):
    await login(client, "anna")
    data = {"current": "pw-long-enough", "new": NEW, "repeat": NEW}
    assert (
        await client.post("/console/account/password", data={**data, "csrf": "x"})
    ).status_code == 403
    page = await client.get("/console/account")
    cross = await client.post(
        "/console/account/password",
        data={**data, "csrf": csrf_of(page.text)},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


async def test_without_a_login_the_page_sends_to_the_login(client):
    page = await client.get("/console/account")
    assert page.status_code == 303


async def test_reset_login_sets_up_the_second_factor_anew_and_ends_every_session(
    client, services, counsellor
):
    await login(client, "anna")
    async with transaction(services.sessions) as session:
        password = await reset_login(session, login="anna")
        assert await reset_login(session, login="nobody") is None
    async with services.sessions() as session:
        stored = await session.scalar(select(Counsellor).where(Counsellor.login == "anna"))
        sessions = await session.scalar(
            select(func.count())
            .select_from(ConsoleSession)
            .where(ConsoleSession.counsellor_id == stored.id)
        )
    assert stored.totp_secret_sealed is None and stored.recovery_codes is None
    assert sessions == 0
    assert (await client.get(f"{API}/me")).status_code == 401
    client.cookies.clear()
    page = await client.get("/console/login")
    again = await client.post(
        "/console/login", data={"login": "anna", "password": password, "csrf": csrf_of(page.text)}
    )
    assert again.headers["location"] == "/console/second-factor"
    setup = await client.get("/console/second-factor")
    assert 'id="totp-secret"' in setup.text, "the second factor is set up anew"
