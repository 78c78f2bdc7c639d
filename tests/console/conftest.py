from collections.abc import AsyncIterator

import httpx
import pytest

from lotse.app import create_app
from tests.helpers import add_counsellor

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


async def login(client: httpx.AsyncClient, login: str, password: str = "pw-long-enough") -> str:
    page = await client.get("/console/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/console/login", data={"login": login, "password": password, "csrf": csrf}
    )
    assert response.status_code == 303, response.text
    console = await client.get("/console")
    return console.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@pytest.fixture
async def counsellor(services):
    return await add_counsellor(services, login="anna")
