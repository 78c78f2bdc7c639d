"""The second factor is mandatory: the password alone opens nothing, TOTP is set up once with
recovery codes shown once, a code works once, guessing codes meets 429; invitations make
accounts of the right role and team, once, for a week."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from core.crypto import TOTP_STEP_SECONDS, totp_code, totp_step
from core.db import transaction
from core.models import Counsellor, Invitation, Team
from counsellor_console.account_pages import qr_svg
from tests.console.conftest import csrf_of, login, pass_second_factor
from tests.helpers import add_counsellor, add_team

API = "/api/v1/console"


async def password_only(client, name: str, password: str = "pw-long-enough"):
    page = await client.get("/console/login")
    return await client.post(
        "/console/login", data={"login": name, "password": password, "csrf": csrf_of(page.text)}
    )


async def unenrolled(services, name: str) -> None:
    await add_counsellor(services, login=name)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == name).values(totp_secret_sealed=None)
        )


async def submit(client, code: str):
    page = await client.get("/console/second-factor")
    return await client.post(
        "/console/second-factor", data={"code": code, "csrf": csrf_of(page.text)}
    )


async def test_the_password_alone_opens_nothing(client, counsellor):
    response = await password_only(client, "anna")
    assert response.headers["location"] == "/console/second-factor"
    assert (await client.get(f"{API}/queue")).status_code == 401
    console = await client.get("/console")
    assert console.status_code == 303 and console.headers["location"] == "/console/second-factor"


async def test_first_login_sets_up_totp_and_shows_the_recovery_codes_once(client, services):
    await unenrolled(services, "neu")
    await password_only(client, "neu")
    page = await client.get("/console/second-factor")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    assert f"otpauth://totp/Lotse%3Aneu?secret={secret}" in page.text
    # The same link as a QR code: inline SVG the strict CSP allows (no style, no script),
    # the very code segno draws for that link.
    svg = re.search(r'<svg[^>]*class="qr".*?</svg>', page.text, re.S).group(0)
    assert "style" not in svg and "script" not in svg
    uri = re.search(r'<code class="uri">([^<]+)</code>', page.text).group(1).replace("&amp;", "&")
    assert svg == str(qr_svg(uri))
    assert (await submit(client, "000000")).status_code == 401
    again = await client.get("/console/second-factor")
    assert secret in again.text, "the same secret until it is confirmed"

    done = await submit(client, totp_code(secret, totp_step(services.clock.now())))
    assert done.status_code == 200
    codes = re.findall(r"<code>([a-z2-7]{5}-[a-z2-7]{5})</code>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert (await client.get(f"{API}/me")).status_code == 200
    async with services.sessions() as session:
        stored = await session.scalar(select(Counsellor).where(Counsellor.login == "neu"))
    assert secret.encode() not in stored.totp_secret_sealed, "sealed, never plain"
    assert not any(code in str(stored.recovery_codes) for code in codes), "digests only"

    # Next login: a code, never the secret again; the same code does not work twice.
    used = totp_code(secret, totp_step(services.clock.now()))
    await client.post("/console/logout", headers={"X-CSRF-Token": "x"})
    client.cookies.clear()
    await password_only(client, "neu")
    verify = await client.get("/console/second-factor")
    assert secret not in verify.text and "Wiederherstellungscodes" in verify.text
    assert (await submit(client, used)).status_code == 401, "a code works once"
    assert (await submit(client, codes[3].upper())).status_code == 303, "a recovery code"
    client.cookies.clear()
    await password_only(client, "neu")
    assert (await submit(client, codes[3])).status_code == 401, "each recovery code once"
    services.clock.advance(seconds=TOTP_STEP_SECONDS)
    fresh = totp_code(secret, totp_step(services.clock.now()))
    assert (await submit(client, fresh)).status_code == 303


async def test_guessing_codes_meets_429(client, services, counsellor):
    await password_only(client, "anna")
    for _ in range(6):
        assert (await submit(client, "123456")).status_code == 401
    locked = await submit(client, "123456")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1


async def test_a_second_factor_session_cannot_call_the_api_even_with_its_csrf(client, counsellor):
    await password_only(client, "anna")
    page = await client.get("/console/second-factor")
    response = await client.put(
        f"{API}/me/availability",
        json={"availability": "online"},
        headers={"X-CSRF-Token": csrf_of(page.text)},
    )
    assert response.status_code == 401


async def make_lead(services, name: str, team_slug: str = "bundesweit") -> None:
    await add_counsellor(services, login=name, team_slug=team_slug)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == name).values(role="team_lead")
        )


async def test_a_lead_invites_a_counsellor_who_sets_up_their_account(client, services):
    await make_lead(services, "leitung")
    headers = {"X-CSRF-Token": await login(client, "leitung")}
    made = await client.post(
        f"{API}/invitations", json={"display_name": "Frau Neu"}, headers=headers
    )
    assert made.status_code == 201
    path = made.json()["url"].removeprefix("https://testserver")
    token = path.rsplit("/", 1)[1]
    async with services.sessions() as session:
        assert token not in str((await session.scalars(select(Invitation.token_hash))).all())
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()

    form = await client.get(path)
    assert form.status_code == 200 and "Frau Neu" in form.text
    csrf = csrf_of(form.text)
    fields = {"login": "neu", "password": "ein-langes-passwort", "csrf": csrf}
    mismatch = await client.post(path, data={**fields, "password2": "etwas-anderes-123"})
    assert mismatch.status_code == 422 and "stimmen nicht überein" in mismatch.text
    short = await client.post(path, data={**fields, "password": "kurz", "password2": "kurz"})
    assert short.status_code == 422 and "mindestens 12" in short.text
    taken = await client.post(
        path, data={**fields, "login": "leitung", "password2": fields["password"]}
    )
    assert taken.status_code == 422 and "vergeben" in taken.text
    created = await client.post(path, data={**fields, "password2": fields["password"]})
    assert created.status_code == 303
    assert created.headers["location"] == "/console/second-factor"
    page = await client.get("/console/second-factor")
    assert 'id="totp-secret"' in page.text, "the new account sets up its second factor"
    async with services.sessions() as session:
        account = await session.scalar(select(Counsellor).where(Counsellor.login == "neu"))
        team = await session.scalar(select(Team.id).where(Team.slug == "bundesweit"))
    assert (account.role, account.team_id, account.display_name) == (
        "counsellor",
        team,
        "Frau Neu",
    )

    client.cookies.clear()
    reused = await client.get(path)
    assert reused.status_code == 404 and "gilt nicht" in reused.text


async def test_who_may_invite_whom(client, services, counsellor):
    await add_team(services, slug="be", states=["BE"])
    async with services.sessions() as session:
        other_team = str(await session.scalar(select(Team.id).where(Team.slug == "be")))
    headers = {"X-CSRF-Token": await login(client, "anna")}
    refused = await client.post(f"{API}/invitations", json={"display_name": "X"}, headers=headers)
    assert refused.status_code == 403, "counsellors do not invite"
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()

    await make_lead(services, "lena")
    headers = {"X-CSRF-Token": await login(client, "lena")}
    admin = await client.post(
        f"{API}/invitations", json={"display_name": "X", "role": "admin"}, headers=headers
    )
    assert admin.status_code == 403, "a lead makes no admins"
    elsewhere = await client.post(
        f"{API}/invitations", json={"display_name": "X", "team_id": other_team}, headers=headers
    )
    assert elsewhere.status_code == 403, "a lead invites into their own team only"
    lead = await client.post(
        f"{API}/invitations", json={"display_name": "X", "role": "team_lead"}, headers=headers
    )
    assert lead.status_code == 201


async def test_an_invitation_expires_after_a_week(client, services, clock):
    await make_lead(services, "lara")
    headers = {"X-CSRF-Token": await login(client, "lara")}
    made = await client.post(f"{API}/invitations", json={"display_name": "Spät"}, headers=headers)
    path = made.json()["url"].removeprefix("https://testserver")
    clock.advance(days=7, seconds=1)
    client.cookies.clear()
    late = await client.get(path)
    assert late.status_code == 404 and "abgelaufen" in late.text


async def test_pass_second_factor_helper_matches_the_real_flow(client, services, counsellor):
    """The helper the other tests use goes through the same pages as a person."""
    await password_only(client, "anna")
    from tests.helpers import totp_secret_for

    response = await pass_second_factor(client, totp_secret_for("anna"))
    assert response.status_code == 303 and response.headers["location"] == "/console"
