import json
import shutil

import pytest
from sqlalchemy import select

from core.db import transaction
from directory.models import DirectoryChange, Organization, Phone, Prison, Service
from directory.service import SEED_DIR, SeedInvalid, load_seed
from tests.directory.helpers import row_counts


async def test_seed_is_loaded_at_start_with_a_source_and_check_date_on_every_record(services):
    async with services.sessions() as session:
        orgs = (await session.scalars(select(Organization))).all()
        offers = (await session.scalars(select(Service))).all()
        prisons = (await session.scalars(select(Prison))).all()
    seed = json.loads((SEED_DIR / "organizations.json").read_text(encoding="utf-8"))
    assert len(orgs) == len(seed["organizations"])
    assert len(offers) == sum(len(org["services"]) for org in seed["organizations"])
    assert all(record.source and record.assured_date for record in [*offers, *prisons])
    assert not any(record.synthetic for record in [*orgs, *offers, *prisons])
    async with services.sessions() as session:
        numbers = set((await session.scalars(select(Phone.number))).all())
    assert "116 111" in numbers, "the national children's helpline is part of the seed"


async def test_loading_the_seed_again_changes_nothing_and_writes_no_history(services):
    before = await row_counts(services)
    async with transaction(services.sessions) as session:
        summary = await load_seed(session, clock=services.clock)
    assert not summary.created and not summary.updated
    assert sum(summary.unchanged.values()) > 0
    assert await row_counts(services) == before


async def test_a_changed_seed_entry_updates_the_same_record_and_records_the_change(
    services, tmp_path
):
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    doc = json.loads((seed / "organizations.json").read_text(encoding="utf-8"))
    service = doc["organizations"][0]["services"][0]
    old_name, service["name"] = service["name"], "Neuer Name"
    (seed / "organizations.json").write_text(json.dumps(doc), encoding="utf-8")
    async with services.sessions() as session:
        record_id = await session.scalar(select(Service.id).where(Service.slug == service["slug"]))

    async with transaction(services.sessions) as session:
        summary = await load_seed(session, directory=seed, clock=services.clock)

    assert dict(summary.updated) == {"service": 1}
    async with services.sessions() as session:
        assert await session.scalar(select(Service.name).where(Service.id == record_id)) == (
            "Neuer Name"
        )
        change = await session.scalar(
            select(DirectoryChange).where(
                DirectoryChange.entity_id == record_id, DirectoryChange.action == "update"
            )
        )
    assert change.changes == {"name": [old_name, "Neuer Name"]}
    assert change.actor == "seed" and change.changed_at == services.clock.now()


async def test_a_broken_seed_stops_with_every_problem_named(services, tmp_path):
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    doc = json.loads((seed / "organizations.json").read_text(encoding="utf-8"))
    service = doc["organizations"][0]["services"][0]
    service["needs"] = ["visits", "homework"]
    service["prisons"] = ["jva-gibt-es-nicht"]
    (seed / "organizations.json").write_text(json.dumps(doc), encoding="utf-8")
    before = await row_counts(services)

    with pytest.raises(SeedInvalid) as raised:
        async with transaction(services.sessions) as session:
            await load_seed(session, directory=seed, clock=services.clock)

    fields = {(p.row, p.field) for p in raised.value.problems}
    assert ("organizations[0].services[0]", "needs[1]") in fields
    assert ("organizations[0].services[0]", "prisons[0]") in fields
    assert "organizations.json" in str(raised.value)
    assert await row_counts(services) == before
