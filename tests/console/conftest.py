from collections.abc import AsyncIterator

import httpx
import pytest

from core.crypto import TOTP_STEP_SECONDS, totp_code, totp_step
from lotse.app import create_app
from tests.helpers import add_counsellor, totp_secret_for

BASE = "https://testserver"


@pytest.fixture
async def app(services):
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def login(client: httpx.AsyncClient, login: str, password: str = "pw-long-enough") -> str:
    """Password, then the current TOTP code of the account's test secret; returns the
    console's CSRF token."""
    page = await client.get("/console/login")
    response = await client.post(
        "/console/login", data={"login": login, "password": password, "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/second-factor"
    await pass_second_factor(client, totp_secret_for(login))
    console = await client.get("/console")
    return console.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@pytest.fixture
async def counsellor(services):
    return await add_counsellor(services, login="anna")


async def pass_second_factor(client: httpx.AsyncClient, secret: str) -> httpx.Response:
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    # A code works once: step the fake clock on so every login has a fresh one.
    services.clock.advance(seconds=TOTP_STEP_SECONDS)
    page = await client.get("/console/second-factor")
    code = totp_code(secret, totp_step(services.clock.now()))
    response = await client.post(
        "/console/second-factor", data={"code": code, "csrf": csrf_of(page.text)}
    )
    assert response.status_code in (200, 303), response.text
    return response
