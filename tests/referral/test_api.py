"""GET /api/v1/referrals over HTTP (httpx + ASGI) on a minimal app with the referral router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from core.i18n import load_catalogue
from referral.api import create_router, refresh_referral_index
from referral.index import ReferralIndex, ReferralIndexHolder
from tests.referral.test_golden import DIRECTORY, PRISONS

URL = "/api/v1/referrals"
# Distinctive values, so that an echo in an error answer cannot hide in ordinary text.
MARKER = "Xylophon7"


def make_app(holder: ReferralIndexHolder | None) -> FastAPI:
    app = FastAPI()
    app.state.services = SimpleNamespace(
        referrals=holder or ReferralIndexHolder(), catalogue=load_catalogue()
    )
    app.include_router(create_router())
    return app


@pytest.fixture(scope="module")
def holder() -> ReferralIndexHolder:
    return ReferralIndexHolder(ReferralIndex(DIRECTORY, PRISONS))


@pytest.fixture
async def client(holder: ReferralIndexHolder) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(holder))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_teen_in_bielefeld_gets_ranked_offers_with_reason_parts(client):
    params = {"postcode": "33647", "role": "teen", "needs": "visits"}
    response = await client.get(URL, params=params)
    assert response.status_code == 200
    body = response.json()
    first = body["matches"][0]
    assert first["service_id"] == "besuchsbegleitung-brackwede"
    assert first["reason"]["scope"] == "local"
    assert first["reason"]["target_group"] == "teen"
    assert first["reason"]["needs"] == ["visits"]
    assert first["reason"]["distance_km"] < 5
    assert first["source"] == "test fixture" and first["last_checked"] == "2026-11-01"
    assert body["area"] == {"federal_state": "NW", "precision": 5}
    assert body["prison"] is None and body["near_prison"] == []
    assert any(m["reason"]["scope"] in ("national", "online") for m in body["matches"])


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        (None, "4 km · für Jugendliche · Besuche und Kontakt"),
        ("de", "4 km · für Jugendliche · Besuche und Kontakt"),
        ("en", "4 km · for teenagers · Visits and contact"),
        # Turkish ranks Turkish-speaking offers higher; the catalogue has no Turkish.
        ("tr", "4 km · für Jugendliche · Besuche und Kontakt"),
    ],
)
async def test_every_match_carries_its_reason_as_one_line_in_the_asked_language(
    client, lang, line
):
    params = {"postcode": "33647", "role": "teen", "needs": "visits"}
    if lang:
        params["lang"] = lang
    body = (await client.get(URL, params=params)).json()
    first = body["matches"][0]
    assert first["service_id"] == "besuchsbegleitung-brackwede"
    assert first["reason_text"] == line
    assert first["reason"]["needs"] == ["visits"], "the structured reason stays"
    assert all(m["reason_text"] for m in body["matches"])


@pytest.mark.parametrize(
    ("lang", "state"), [("de", "in Nordrhein-Westfalen"), ("en", "in North Rhine-Westphalia")]
)
async def test_a_state_wide_offer_names_the_state_in_the_asked_language(client, lang, state):
    params = {"postcode": "40210", "role": "caregiver", "lang": lang}
    body = (await client.get(URL, params=params)).json()
    state_wide = [m for m in body["matches"] if m["reason"]["scope"] == "state"]
    assert state_wide, "the NRW seed has state-wide offers for caregivers"
    assert all(m["reason_text"].startswith(state + " · ") for m in state_wide)


async def test_the_reason_names_an_asked_language_and_delivery_the_offer_has(client):
    params = {"postcode": "10997", "role": "teen", "needs": "talking", "lang": "tr"}
    asked = {**params, "delivery": "phone,online"}
    first = (await client.get(URL, params=asked)).json()["matches"][0]
    assert first["service_id"] == "beratung-berlin", "in Turkish, online, no phone"
    assert first["reason"]["language"] == "tr" and first["reason"]["delivery"] == ["online"]
    assert first["reason_text"].endswith(" · auf Türkisch · per Chat oder online")
    english = (await client.get(URL, params={**params, "lang": "en"})).json()["matches"][0]
    assert "English" not in english["reason_text"], "the card's own language goes unsaid"


async def test_offers_near_the_prison_carry_a_reason_line_too(client):
    params = {"postcode": "90402", "role": "teen", "needs": "visits", "lang": "en"}
    body = (await client.get(URL, params={**params, "prison": "jva-bielefeld-brackwede"})).json()
    (near,) = body["near_prison"]
    # The distance part is from the prison; the rest is what this test is about.
    assert near["reason_text"].endswith(" · near the prison · for teenagers · Visits and contact")


async def test_both_places_bring_the_prison_with_visit_rules_and_offers_near_it(client):
    response = await client.get(
        URL,
        params={
            "postcode": "90402",
            "role": "teen",
            "needs": "visits",
            "prison": "jva-bielefeld-brackwede",
        },
    )
    body = response.json()
    assert body["matches"][0]["service_id"] == "treffpunkt-nuernberg"
    assert body["prison"]["slug"] == "jva-bielefeld-brackwede"
    assert body["prison"]["visits"]["family_rooms"] is True
    assert body["prison"]["visits"]["regular_times"] is None
    assert body["prison"]["last_checked"] == "2026-11-01"
    near = body["near_prison"]
    assert [m["service_id"] for m in near] == ["besuchsbegleitung-brackwede"]
    assert near[0]["reason"]["scope"] == "near_prison"
    assert near[0]["reason"]["linked_prison"] is True


async def test_free_text_is_read_into_needs(client):
    response = await client.get(
        URL, params={"postcode": "80331", "role": "child", "q": "Papa sitzt im Knast, bin traurig"}
    )
    body = response.json()
    assert body["needs_from_text"] == ["talking"]
    assert body["needs"] == ["talking"]
    assert body["matches"][0]["service_id"] == "familien-muenchen"


async def test_without_postcode_only_nationwide_offers_come(client):
    response = await client.get(URL, params={"role": "teen", "limit": 2})
    body = response.json()
    assert body["area"] is None
    assert len(body["matches"]) == 2
    assert {m["reason"]["scope"] for m in body["matches"]} <= {"national", "online"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"postcode": f"{MARKER}"}, "postcode", "postcode must be 2 to 5 digits"),
        ({"postcode": "123456"}, "postcode", "postcode must be 2 to 5 digits"),
        ({"postcode": "00000"}, "postcode", "unknown postcode"),
        ({"role": MARKER}, "role", "unknown role"),
        ({"needs": f"visits,{MARKER}"}, "needs", "unknown need code"),
        ({"delivery": MARKER}, "delivery", "unknown delivery mode"),
        ({"age": "121"}, "age", "age must be a whole number from 0 to 120"),
        ({"age": "-3"}, "age", "age must be a whole number from 0 to 120"),
        ({"age": MARKER}, "age", "age must be a whole number from 0 to 120"),
        ({"lang": MARKER}, "lang", "lang must be a two-letter language code"),
        ({"limit": "0"}, "limit", "limit must be a whole number from 1 to 20"),
        ({"limit": MARKER}, "limit", "limit must be a whole number from 1 to 20"),
        ({"prison": f"jva-{MARKER}"}, "prison", "unknown prison"),
        ({"q": MARKER * 100}, "q", "q must be at most 500 characters"),
    ],
)
async def test_bad_input_gets_a_readable_422_without_the_value(client, params, field, message):
    response = await client.get(URL, params={"role": "teen", **params})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith(message)
    assert body["errors"] == [{"loc": ["query", field], "msg": body["detail"]}]
    assert MARKER not in response.text
    for value in params.values():
        assert value not in response.text.replace("0 to 120", "").replace("1 to 20", "")


async def test_several_bad_parameters_are_all_named(client):
    response = await client.get(URL, params={"age": "200", "limit": "99", "lang": "deutsch"})
    assert response.status_code == 422
    fields = {e["loc"][1] for e in response.json()["errors"]}
    assert fields == {"age", "limit", "lang"}


async def test_directory_not_loaded_yet_gives_503():
    transport = httpx.ASGITransport(app=make_app(ReferralIndexHolder()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(URL, params={"postcode": "33647"})
    assert response.status_code == 503


async def test_openapi_documents_the_endpoint_parameters_and_schemas(client):
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][URL]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {
        "postcode", "role", "age", "needs", "q", "lang", "prison", "delivery", "limit",
    }  # fmt: skip
    assert all(p.get("description") for p in parameters.values())
    assert parameters["postcode"]["schema"]["examples"] == ["33647"]
    role_choices = parameters["role"]["schema"]["anyOf"][0]["enum"]
    assert "parent_in_prison" in role_choices
    assert set(operation["responses"]) >= {"200", "422", "503"}
    problem = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert problem["$ref"].endswith("/ProblemPublic")
    schemas = spec["components"]["schemas"]
    for name in ("ReferralPublic", "OfferMatchPublic", "PrisonPublic", "VisitInfoPublic"):
        assert name in schemas
    assert "last_checked" in schemas["OfferMatchPublic"]["properties"]
    assert "reason_text" in schemas["OfferMatchPublic"]["required"]
    assert "source" in schemas["PrisonPublic"]["properties"]
    assert "visits" in schemas["PrisonPublic"]["properties"]


async def test_refresh_builds_the_index_from_the_directory_and_swaps_it(services):
    # `services` is bootstrapped on the test database, with the shipped seed directory.
    from directory.service import prison_records, referral_records

    async with services.sessions() as session:
        records = await referral_records(session)
        prisons = await prison_records(session)
    await refresh_referral_index(services)
    first = services.referrals.current
    assert first is not None and len(first) == len(records)
    for prison in prisons[:3]:
        assert first.search(prison=prison.slug).prison == prison
    await refresh_referral_index(services)
    assert services.referrals.current is not first

    transport = httpx.ASGITransport(app=make_app(services.referrals))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(URL, params={"postcode": "33647", "role": "caregiver"})
    assert response.status_code == 200
