"""Directory curation in the console: who may use it, what a save writes, and what the bot sees."""

from __future__ import annotations

import json
import shutil
from datetime import date
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, func, select, update

from core import crypto, keyring
from core.db import transaction
from core.models import Counsellor, MemberKeys, TeamEpoch, TeamKeyWrap, TeamRoster
from directory import curation
from directory.models import DirectoryChange, Phone, Prison, Service
from directory.schemas import PhoneLine, ServiceUpdate
from directory.service import SEED_DIR, load_seed, prison_records, referral_records
from lotse.bootstrap import bootstrap
from referral import gazetteer
from tests.console.conftest import login
from tests.helpers import add_counsellor

CAFE = "angehoerigencafe-jva-nuernberg"
HOTLINE = "kinder-und-jugendtelefon"
BASE = "/console/directory"


class FormReader(HTMLParser):
    """The fields of the page's edit form as a browser would submit them (checked boxes only)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._select: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form" and a.get("method") == "post" and "edit" in a.get("class", ""):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a["value"]))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, value = self.fields.pop()
            self.fields.append((name, value + data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def form_of(html: str) -> list[tuple[str, str]]:
    reader = FormReader()
    reader.feed(html)
    assert reader.fields, "the page has an edit form"
    return reader.fields


def with_values(fields: list[tuple[str, str]], **values: str | list[str]) -> list[tuple[str, str]]:
    """The form with some fields replaced (a list replaces every value of a checkbox group)."""
    kept = [(name, value) for name, value in fields if name not in values]
    for name, value in values.items():
        kept += [(name, item) for item in value] if isinstance(value, list) else [(name, value)]
    return kept


async def add_account(services, login_name: str, role: str) -> Counsellor:
    counsellor = await add_counsellor(services, login=login_name)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.id == counsellor.id).values(role=role)
        )
    counsellor.role = role
    return counsellor


@pytest.fixture
async def editor(services) -> Counsellor:
    return await add_account(services, "erika", "directory_editor")


async def record_id(services, model, slug: str):
    async with services.sessions() as session:
        return await session.scalar(select(model.id).where(model.slug == slug))


async def changes_of(services, entity_id) -> list[DirectoryChange]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(DirectoryChange)
            .where(DirectoryChange.entity_id == entity_id)
            .order_by(DirectoryChange.changed_at)
        )
        return list(rows)


async def post_form(client, path: str, fields, action: str = "save", **headers: str):
    # A list of pairs, as a browser sends repeated checkbox names.
    return await client.post(
        path,
        content=urlencode([*fields, ("action", action)]),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


def cafe_is_found(services) -> bool:
    result = services.referrals.current.search(
        area=gazetteer.lookup("90402"), role="caregiver", needs=["visits"], limit=20
    )
    return any(match.offer.name.startswith("Angehörigencafé") for match in result.matches)


# -- who may curate ----------------------------------------------------------------------------


async def test_anonymous_visitors_are_sent_to_the_login(client, services):
    service_id = await record_id(services, Service, CAFE)
    for path in (BASE, f"{BASE}/prisons", f"{BASE}/services/{service_id}"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/console/login"
    posted = await client.post(f"{BASE}/services/{service_id}", data={"name": "x"})
    assert posted.status_code == 303 and posted.headers["location"] == "/console/login"


@pytest.mark.parametrize("role", ["counsellor", "team_lead"])
async def test_counsellors_and_team_leads_get_403_with_a_clear_page(client, services, role):
    await add_account(services, "carla", role)
    csrf = await login(client, "carla")
    service_id = await record_id(services, Service, CAFE)
    prison_id = await record_id(services, Prison, "jva-nuernberg")
    for path in (BASE, f"{BASE}/services/{service_id}", f"{BASE}/prisons/{prison_id}"):
        response = await client.get(path)
        assert response.status_code == 403
        assert "nur die Verzeichnisredaktion und Admins" in response.text
    posted = await client.post(
        f"{BASE}/services/{service_id}", data={"csrf": csrf, "name": "Übernommen"}
    )
    assert posted.status_code == 403
    assert [change.actor for change in await changes_of(services, service_id)] == ["seed"]
    assert 'href="/console/directory"' not in (await client.get("/console")).text


@pytest.mark.parametrize("role", ["directory_editor", "admin"])
async def test_editors_and_admins_may_curate(client, services, role):
    await add_account(services, "ida", role)
    await login(client, "ida")
    assert 'href="/console/directory"' in (await client.get("/console")).text
    listing = await client.get(BASE)
    assert listing.status_code == 200 and "Angehörigencafé vor der JVA Nürnberg" in listing.text
    service_id = await record_id(services, Service, CAFE)
    page = await client.get(f"{BASE}/services/{service_id}")
    assert page.status_code == 200
    assert 'name="csrf"' in page.text and "Veröffentlicht" in page.text
    assert (await client.get(f"{BASE}/prisons")).status_code == 200


async def test_the_data_functions_refuse_a_counsellor_too(services):
    counsellor = await add_account(services, "carla", "counsellor")
    service_id = await record_id(services, Service, CAFE)
    with pytest.raises(curation.NotAllowed):
        async with transaction(services.sessions) as session:
            await curation.set_publication(
                session,
                service_id=service_id,
                published=False,
                editor=counsellor,
                clock=services.clock,
            )


async def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(
    client, services, editor
):
    csrf = await login(client, "erika")
    service_id = await record_id(services, Service, CAFE)
    path = f"{BASE}/services/{service_id}"
    fields = with_values(form_of((await client.get(path)).text), description="Neu")
    without = [(name, value) for name, value in fields if name != "csrf"]
    assert (await post_form(client, path, without)).status_code == 403
    wrong = with_values(fields, csrf="not-the-token")
    assert (await post_form(client, path, wrong)).status_code == 403
    cross = await post_form(
        client, path, fields, **{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "Formular ist abgelaufen" in cross.text
    assert [change.actor for change in await changes_of(services, service_id)] == ["seed"]
    assert dict(fields)["csrf"] == csrf, "the form carries the session's token"


# -- what a save writes ------------------------------------------------------------------------


async def test_an_edit_writes_exactly_the_changed_fields_with_who_and_when(
    client, services, editor
):
    await login(client, "erika")
    service_id = await record_id(services, Service, CAFE)
    path = f"{BASE}/services/{service_id}"
    fields = form_of((await client.get(path)).text)
    services.clock.advance(minutes=3)
    edited = with_values(
        fields,
        description="Neu: jeden Dienstag vor der Besuchszeit.",
        phones="0911 000 000 | Café-Telefon",
        delivery=["in_person", "group"],
    )

    response = await post_form(client, path, edited)

    assert response.status_code == 303
    assert response.headers["location"] == f"{path}?done=saved"
    changes = await changes_of(services, service_id)
    assert [change.action for change in changes] == ["create", "update"]
    latest = changes[-1]
    assert set(latest.changes) == {"description", "phones", "delivery"}
    assert latest.changes["delivery"] == [["in_person"], ["in_person", "group"]]
    assert latest.changes["phones"] == [
        [],
        [{"description": "Café-Telefon", "number": "0911 000 000"}],
    ]
    assert latest.actor == "erika" and latest.counsellor_id == editor.id
    assert latest.changed_at == services.clock.now()
    page = await client.get(response.headers["location"])
    assert "Gespeichert." in page.text
    assert "Erika" in page.text and "Beschreibung" in page.text
    assert "Neu: jeden Dienstag vor der Besuchszeit." in page.text

    again = await post_form(client, path, form_of(page.text))
    assert again.headers["location"] == f"{path}?done=unchanged"
    assert len(await changes_of(services, service_id)) == 2, "no row when nothing changed"


async def test_checked_today_sets_the_date_and_keeps_the_form_changes_in_one_entry(
    client, services, editor
):
    await login(client, "erika")
    service_id = await record_id(services, Service, HOTLINE)
    path = f"{BASE}/services/{service_id}"
    fields = with_values(form_of((await client.get(path)).text), source="https://example.org/neu")

    response = await post_form(client, path, fields, action="verify")

    assert response.headers["location"] == f"{path}?done=verified"
    latest = (await changes_of(services, service_id))[-1]
    assert set(latest.changes) == {"assured_date", "source"}
    assert latest.changes["assured_date"][1] == "2026-01-15"
    page = await client.get(response.headers["location"])
    assert "Zuletzt geprüft: 15.01.2026" in page.text


async def test_a_phone_that_stays_keeps_its_type_and_an_unchanged_form_writes_nothing(
    services, editor
):
    service_id = await record_id(services, Service, HOTLINE)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Phone).where(Phone.service_id == service_id).values(type="voice")
        )
    async with services.sessions() as session:
        detail = await curation.get_service(session, service_id=service_id, today=date(2026, 1, 1))
    current = detail.service.model_dump(include=set(ServiceUpdate.model_fields))
    lines = [PhoneLine(number=p.number, description=p.description) for p in detail.phones]
    async with transaction(services.sessions) as session:
        changed = await curation.update_service(
            session,
            service_id=service_id,
            changes=ServiceUpdate(**{**current, "phones": lines}),
            editor=editor,
            clock=services.clock,
        )
    assert changed is False
    async with services.sessions() as session:
        types = set(
            await session.scalars(select(Phone.type).where(Phone.service_id == service_id))
        )
    assert types == {"voice"}


# -- publication and the bot -------------------------------------------------------------------


async def test_a_draft_reaches_the_bot_only_once_published(client, services, editor):
    await login(client, "erika")
    service_id = await record_id(services, Service, CAFE)
    path = f"{BASE}/services/{service_id}"
    assert cafe_is_found(services)

    withdrawn = await post_form(client, path, form_of((await client.get(path)).text), "withdraw")

    assert withdrawn.headers["location"] == f"{path}?done=withdrawn"
    async with services.sessions() as session:
        assert str(service_id) not in {r.service_id for r in await referral_records(session)}
    assert not cafe_is_found(services), "the index was rebuilt at once"
    drafts = await client.get(BASE, params={"status": "draft"})
    assert "Angehörigencafé" in drafts.text and "Entwurf" in drafts.text
    page = await client.get(withdrawn.headers["location"])
    assert "Veröffentlichen" in page.text

    published = await post_form(client, path, form_of(page.text), "publish")

    assert published.headers["location"] == f"{path}?done=published"
    async with services.sessions() as session:
        assert str(service_id) in {r.service_id for r in await referral_records(session)}
    assert cafe_is_found(services)
    changes = await changes_of(services, service_id)
    assert [c.changes.get("publication_status") for c in changes[1:]] == [
        ["published", "draft"],
        ["draft", "published"],
    ]


async def test_prison_visit_rules_are_edited_and_the_bot_sees_them(client, services, editor):
    await login(client, "erika")
    prison_id = await record_id(services, Prison, "jva-nuernberg")
    path = f"{BASE}/prisons/{prison_id}"
    fields = with_values(
        form_of((await client.get(path)).text),
        visit_family_rooms="no",
        visit_booking_lead_time="eine Woche vorher",
    )

    response = await post_form(client, path, fields)

    assert response.headers["location"] == f"{path}?done=saved"
    latest = (await changes_of(services, prison_id))[-1]
    assert set(latest.changes) <= {"visit_family_rooms", "visit_booking_lead_time"}
    assert latest.changes["visit_booking_lead_time"][1] == "eine Woche vorher"
    visits = services.referrals.current.prison("jva-nuernberg").visits
    assert visits.family_rooms is False and visits.booking_lead_time == "eine Woche vorher"
    page = await client.get(response.headers["location"])
    assert "Vorlauf für die Anmeldung" in page.text and "eine Woche vorher" in page.text


async def test_a_withdrawn_prison_leaves_the_bot_and_a_check_records_its_source(services, editor):
    prison_id = await record_id(services, Prison, "jva-nuernberg")
    services.clock.advance(minutes=1)
    async with transaction(services.sessions) as session:
        await curation.set_prison_publication(
            session, prison_id=prison_id, published=False, editor=editor, clock=services.clock
        )
    services.clock.advance(minutes=1)
    async with transaction(services.sessions) as session:
        await curation.mark_prison_verified(
            session,
            prison_id=prison_id,
            editor=editor,
            clock=services.clock,
            source="https://example.org/jva",
        )
    async with services.sessions() as session:
        slugs = {prison.slug for prison in await prison_records(session)}
        entries = await curation.history(session, entity_type="prison", entity_id=prison_id)
    assert "jva-nuernberg" not in slugs
    assert [[change.field for change in entry.changes] for entry in entries[:2]] == [
        ["assured_date", "source"],
        ["publication_status"],
    ], "newest first"
    assert [entry.who for entry in entries] == ["Erika", "Erika", None]
    assert entries[-1].actor == "seed" and entries[0].changed_at == services.clock.now()


# -- staleness ---------------------------------------------------------------------------------


def test_stale_means_more_than_12_calendar_months():
    assert not curation.is_stale(date(2026, 3, 1), date(2027, 3, 1))
    assert curation.is_stale(date(2026, 3, 1), date(2027, 3, 2))
    # Calendar months: a 29 February in between changes nothing (directory.freshness).
    assert not curation.is_stale(date(2027, 3, 1), date(2028, 3, 1))
    assert curation.is_stale(date(2027, 3, 1), date(2028, 3, 2))
    assert not curation.is_stale(date(2026, 11, 21), date(2026, 1, 15)), "future dates are fresh"


async def test_the_stale_filter_follows_the_clock(client, services, editor):
    await login(client, "erika")
    service_id = await record_id(services, Service, CAFE)
    async with transaction(services.sessions) as session:
        await curation.mark_verified(
            session, service_id=service_id, editor=editor, clock=services.clock
        )
    assert "Gefundene Einträge: 0" in (await client.get(BASE, params={"status": "stale"})).text

    services.clock.advance(days=366)
    await login(client, "erika")  # the session itself has long expired

    stale = await client.get(BASE, params={"status": "stale"})
    assert "Gefundene Einträge: 1" in stale.text
    assert "Angehörigencafé" in stale.text
    assert "Seit über 12 Monaten nicht geprüft (zuletzt 15.01.2026)" in stale.text
    async with services.sessions() as session:
        today = curation.local_today(services.clock)
        found = await curation.search_services(session, status_filter="stale", today=today)
    assert [item.id for item in found.items] == [service_id] and found.items[0].stale


async def test_search_ignores_case_and_accents_on_every_database(services):
    async with services.sessions() as session:
        by_city = await curation.search_services(
            session, query="NURNBERG", today=date(2026, 1, 15)
        )
        by_org = await curation.search_services(
            session, query="treffpunkt e.v.", today=date(2026, 1, 15)
        )
        prisons = await curation.search_prisons(session, query="nürnb", today=date(2026, 1, 15))
    assert {item.name for item in by_city.items} >= {
        "Angehörigencafé vor der JVA Nürnberg",
        "Vater-Kind-Gruppe in der JVA Nürnberg",
    }
    assert "JUKI-online" in {item.name for item in by_org.items}
    assert [item.name for item in prisons.items] == ["Justizvollzugsanstalt Nürnberg"]


# -- validation --------------------------------------------------------------------------------


async def test_invalid_input_is_shown_next_to_the_field_and_nothing_is_saved(
    client, services, editor
):
    await login(client, "erika")
    service_id = await record_id(services, Service, HOTLINE)
    path = f"{BASE}/services/{service_id}"
    fields = with_values(
        form_of((await client.get(path)).text),
        url="www.nummergegenkummer.de",
        minimum_age="120",
        languages="de, xx",
        name="  ",
        description="Meine Eingabe bleibt",
    )

    response = await post_form(client, path, fields)

    assert response.status_code == 422
    html = response.text
    assert 'aria-describedby="f-url-hint f-url-error"' in html
    assert 'id="f-url-error"' in html and "Keine Webadresse" in html
    assert "Das Alter muss zwischen 0 und 99 liegen." in html
    assert "Kein Sprachcode nach ISO 639-1" in html
    assert 'id="f-name-error"' in html and "Bitte ausfüllen." in html
    assert 'value="www.nummergegenkummer.de"' in html and "Meine Eingabe bleibt" in html
    assert [change.actor for change in await changes_of(services, service_id)] == ["seed"]


async def test_coverage_rules_of_the_import_apply_to_the_console(client, services, editor):
    await login(client, "erika")
    service_id = await record_id(services, Service, HOTLINE)
    path = f"{BASE}/services/{service_id}"
    fields = form_of((await client.get(path)).text)

    no_place = await post_form(
        client, path, with_values(fields, coverage="radius", radius_km="20")
    )
    no_state = await post_form(client, path, with_values(fields, coverage="states"))
    no_radius = await post_form(client, path, with_values(fields, coverage="radius"))

    assert no_place.status_code == 422 and "braucht einen Ort mit Koordinaten" in no_place.text
    assert "mindestens ein Bundesland" in no_state.text
    assert "bitte den Umkreis in km angeben" in no_radius.text
    unknown = with_values(fields, needs=["visits", "homework"])
    assert "Diesen Wert gibt es nicht" in (await post_form(client, path, unknown)).text
    assert [change.actor for change in await changes_of(services, service_id)] == ["seed"]


async def test_a_form_older_than_the_record_is_refused_with_the_input_kept(
    client, services, editor
):
    await login(client, "erika")
    service_id = await record_id(services, Service, CAFE)
    path = f"{BASE}/services/{service_id}"
    stale_form = form_of((await client.get(path)).text)
    services.clock.advance(minutes=5)
    first = await post_form(client, path, with_values(stale_form, description="Erste Änderung"))
    assert first.status_code == 303

    second = await post_form(client, path, with_values(stale_form, description="Zweite"))

    assert second.status_code == 422 and "inzwischen geändert" in second.text
    assert "Zweite" in second.text
    async with services.sessions() as session:
        description = await session.scalar(
            select(Service.description).where(Service.id == service_id)
        )
    assert description == "Erste Änderung"


# -- the seed and the editors ------------------------------------------------------------------


async def test_the_seed_never_overwrites_a_record_an_editor_changed(services, editor, tmp_path):
    edited_id = await record_id(services, Service, CAFE)
    async with transaction(services.sessions) as session:
        await curation.set_publication(
            session, service_id=edited_id, published=False, editor=editor, clock=services.clock
        )
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    doc = json.loads((seed / "organizations.json").read_text(encoding="utf-8"))
    by_slug = {s["slug"]: s for org in doc["organizations"] for s in org["services"]}
    by_slug[CAFE]["description"] = "Vom Seed geändert"
    by_slug[CAFE]["phones"] = [{"number": "0911 111 111"}]
    by_slug[HOTLINE]["description"] = "Auch vom Seed geändert"
    new_service = {**by_slug["juki-online"], "slug": "neu-im-seed", "name": "Neu im Seed"}
    doc["organizations"][0]["services"].append(new_service)
    (seed / "organizations.json").write_text(json.dumps(doc), encoding="utf-8")

    async with transaction(services.sessions) as session:
        summary = await load_seed(session, directory=seed, clock=services.clock)

    assert summary.created["service"] == 1 and summary.updated["service"] == 1
    async with services.sessions() as session:
        cafe = await session.get(Service, edited_id)
        hotline = await session.scalar(select(Service).where(Service.slug == HOTLINE))
        new = await session.scalar(select(func.count()).where(Service.slug == "neu-im-seed"))
        cafe_phones = await session.scalar(
            select(func.count()).where(Phone.service_id == edited_id)
        )
    assert cafe.publication_status == "draft", "the editor's withdrawal stands"
    assert cafe.description != "Vom Seed geändert" and cafe_phones == 0
    assert hotline.description == "Auch vom Seed geändert", "untouched records follow the seed"
    assert new == 1


async def test_unknown_or_malformed_addresses_get_a_page_not_a_stack_trace(
    client, services, editor
):
    await login(client, "erika")
    missing = await client.get(f"{BASE}/services/00000000-0000-4000-8000-000000000000")
    malformed = await client.get(f"{BASE}/prisons/not-an-id")
    bad_filter = await client.get(BASE, params={"status": "everything"})
    assert missing.status_code == 404 and "gibt es nicht (mehr)" in missing.text
    assert malformed.status_code == 404
    assert bad_filter.status_code == 400 and "everything" not in bad_filter.text


# -- development accounts ----------------------------------------------------------------------


async def test_development_start_creates_a_counsellor_and_a_directory_editor(services):
    # A fresh development database: the national team has no keys until the dev lead's exist.
    async with transaction(services.sessions) as session:
        for table in (TeamRoster, TeamEpoch):
            await session.execute(delete(table))
    created = await bootstrap(services.sessions, clock=services.clock, create_dev_account=True)
    assert [(a.login, bool(a.password), bool(a.passphrase)) for a in created] == [
        ("dev", True, True),
        ("dev-lead", True, True),
        ("dev-editor", True, False),
    ]
    async with services.sessions() as session:
        roles = dict((await session.execute(select(Counsellor.login, Counsellor.role))).all())
        ids = dict((await session.execute(select(Counsellor.login, Counsellor.id))).all())
        [epoch] = (await session.scalars(select(TeamEpoch))).all()
        [roster] = (await session.scalars(select(TeamRoster))).all()
        wraps = (await session.scalars(select(TeamKeyWrap))).all()
        blob = (await session.get(MemberKeys, ids["dev"])).wrapped
    assert roles == {
        "dev": "counsellor",
        "dev-lead": "team_lead",
        "dev-editor": "directory_editor",
    }
    # Epoch 1 as the lead's browser would make it: signed by dev-lead, wrapped for both, and
    # the keys open with the printed passphrase.
    team = str(epoch.team_id)
    latest = keyring.check_roster_chain(
        [{"roster": roster.roster, "signature": roster.signature}], team=team, epoch=1
    )
    assert latest["signer"] == str(ids["dev-lead"])
    assert {w.counsellor_id for w in wraps} == {ids["dev"], ids["dev-lead"]}
    pkcs8 = crypto.unwrap_member_key(
        owner=str(ids["dev"]), kind="x25519", passphrase=created[0].passphrase, stored=blob
    )
    private = serialization.load_der_private_key(pkcs8, password=None)
    [mine] = [w for w in wraps if w.counsellor_id == ids["dev"]]
    team_key = keyring.open_team_key(
        private=private, team=team, member=str(ids["dev"]), envelope=mine.envelope
    )
    keyring.open_transcript_key(
        team_key=team_key, team=team, epoch=1, envelope=epoch.wrapped_transcript_key
    )
    again = await bootstrap(services.sessions, clock=services.clock, create_dev_account=True)
    assert again == []

    async with transaction(services.sessions) as session:
        await session.execute(delete(Counsellor).where(Counsellor.login == "dev-editor"))
    added = await bootstrap(services.sessions, clock=services.clock, create_dev_account=True)
    assert [a.login for a in added] == ["dev-editor"], "an older dev database gets the editor"
    async with services.sessions() as session:
        assert len((await session.scalars(select(TeamEpoch))).all()) == 1, "keys made once"

    await add_account(services, "real", "counsellor")
    async with transaction(services.sessions) as session:
        await session.execute(delete(Counsellor).where(Counsellor.login == "dev-editor"))
    none = await bootstrap(services.sessions, clock=services.clock, create_dev_account=True)
    assert none == [], "never beside real accounts"
