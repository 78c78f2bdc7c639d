from datetime import date

from directory.service import prison_records, referral_records
from referral.records import VisitInfo
from tests.directory.helpers import (
    FUERTH,
    NUREMBERG,
    empty_directory,
    import_data,
    small_directory,
)


async def records(services):
    async with services.sessions() as session:
        return await referral_records(session), await prison_records(session)


async def test_only_published_active_services_become_records_one_per_located_place(services):
    await empty_directory(services)
    await import_data(services, small_directory())

    offers, _ = await records(services)

    assert sorted(o.name for o in offers) == ["Telefon", "Vor Ort", "Vor Ort"]
    places = {(o.latitude, o.longitude, o.city) for o in offers if o.name == "Vor Ort"}
    assert places == {(*NUREMBERG, "Nürnberg"), (*FUERTH, "Fürth")}
    assert len({o.service_id for o in offers if o.name == "Vor Ort"}) == 1


async def test_a_nationwide_service_is_one_record_without_a_place(services):
    await empty_directory(services)
    data = small_directory()
    await import_data(services, data)

    offers, _ = await records(services)

    helpline = next(o for o in offers if o.name == "Telefon")
    assert (helpline.latitude, helpline.longitude, helpline.city) == (None, None, None)
    assert helpline.coverage == "national"
    assert helpline.phone == "0800 000 000"
    assert helpline.website == "https://example.org/telefon"
    assert helpline.organisation == "Beispiel e.V."
    assert helpline.target_groups == {"teen", "caregiver"}
    assert helpline.languages == {"de", "tr"}
    assert helpline.assured_date == date(2026, 3, 1)


async def test_a_local_record_carries_radius_prisons_and_falls_back_to_the_organisation(services):
    await empty_directory(services)
    data = small_directory()
    await import_data(services, data)

    offers, prisons = await records(services)

    local = next(o for o in offers if o.name == "Vor Ort")
    assert local.radius_km == 40
    assert local.prison_ids == {next(p.prison_id for p in prisons if p.slug == "jva-beispiel")}
    assert local.website == "https://example.org"
    assert local.phone == "0911 000 000"


async def test_prisons_keep_unknown_places_and_visit_rules_empty(services):
    await empty_directory(services)
    await import_data(services, small_directory())

    _, prisons = await records(services)

    assert [p.slug for p in prisons] == ["jva-beispiel", "jva-ohne-ort"]
    assert (prisons[1].latitude, prisons[1].longitude) == (None, None)
    assert prisons[0].prison_types == {"men", "remand"}
    assert prisons[0].visits == VisitInfo(regular_times="Di 13–16 Uhr", family_rooms=True)
    assert prisons[0].visits.video_visits is None
