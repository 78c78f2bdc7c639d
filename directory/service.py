"""Directory data functions: the shipped seed, and the published records that referral ranks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.clock import Clock, SystemClock
from directory.io.problems import ValidationFailed, format_problems
from directory.io.seed import read_seed
from directory.io.store import WriteSummary, write_directory
from directory.io.validate import validate_tables
from directory.models import DirectoryChange, Organization, Prison, Service, ServiceAtLocation
from directory.schemas import DirectoryPublic
from referral.records import OfferRecord, PrisonRecord, VisitInfo

SEED_DIR = Path(__file__).with_name("seed")
# Actors that are not a person: their changes do not protect a record from the seed.
MACHINE_ACTORS = ("seed", "import")

log = logging.getLogger(__name__)


class SeedInvalid(ValidationFailed):
    """The shipped seed has problems: a packaging error, so start-up stops and says which."""

    def __str__(self) -> str:
        return "directory seed is invalid:\n" + format_problems(self.problems)


async def _known_slugs(session: AsyncSession) -> dict[tuple[str, str], uuid.UUID]:
    known: dict[tuple[str, str], uuid.UUID] = {}
    for table, model in (
        ("organizations", Organization),
        ("services", Service),
        ("prisons", Prison),
    ):
        rows = await session.execute(select(model.slug, model.id).where(model.slug.is_not(None)))
        known.update({(table, slug): record_id for slug, record_id in rows})
    return known


async def edited_by_editors(session: AsyncSession) -> set[uuid.UUID]:
    """Records an editor has changed (in the console): the seed leaves them to the editors."""
    rows = await session.scalars(
        select(DirectoryChange.entity_id)
        .where(
            # The actor as well: counsellor_id turns NULL if the account is ever deleted.
            or_(
                DirectoryChange.counsellor_id.is_not(None),
                DirectoryChange.actor.not_in(MACHINE_ACTORS),
            )
        )
        .distinct()
    )
    return set(rows)


def _without(data: DirectoryPublic, edited: set[uuid.UUID]) -> DirectoryPublic:
    """The seed minus the edited records and their parts (phones, schedules, places, links)."""
    skipped = edited & (
        {item.id for item in data.organizations}
        | {item.id for item in data.services}
        | {item.id for item in data.locations}
    )

    def kept(item: object, *owners: str) -> bool:
        return all(getattr(item, owner, None) not in skipped for owner in owners)

    return DirectoryPublic(
        organizations=[item for item in data.organizations if item.id not in edited],
        services=[item for item in data.services if item.id not in edited],
        locations=[item for item in data.locations if item.id not in edited],
        service_at_locations=[
            item for item in data.service_at_locations if kept(item, "service_id")
        ],
        phones=[
            item
            for item in data.phones
            if kept(item, "organization_id", "service_id", "location_id")
        ],
        schedules=[item for item in data.schedules if kept(item, "service_id", "location_id")],
        accessibility=[item for item in data.accessibility if kept(item, "location_id")],
        prisons=[item for item in data.prisons if item.id not in edited],
    )


async def load_seed(
    session: AsyncSession, *, directory: Path = SEED_DIR, clock: Clock | None = None
) -> WriteSummary:
    """Insert or update the shipped organizations, services and prisons by slug. Idempotent:
    an unchanged seed writes nothing, not even history.

    A record an editor has changed is never overwritten: the seed ships with the code, so
    without this rule every restart would undo the editors' work. New seed records are still
    inserted, and records no editor has touched still follow the seed."""
    known = await _known_slugs(session)
    raw, problems = await asyncio.to_thread(read_seed, directory, known)
    try:
        data = validate_tables(raw)
    except ValidationFailed as failed:
        raise SeedInvalid(problems + failed.problems) from None
    if problems:
        raise SeedInvalid(problems)
    edited = await edited_by_editors(session)
    if edited:
        seeded = data
        data = _without(seeded, edited)
        left = sum(
            len(getattr(seeded, table)) - len(getattr(data, table))
            for table in ("organizations", "services", "locations", "prisons")
        )
        log.info("seed leaves edited records alone", extra={"edited": left})
    return await write_directory(session, data=data, clock=clock or SystemClock(), actor="seed")


# -- what the referral engine reads ------------------------------------------------------------


def _phone(service: Service) -> str | None:
    # Voice numbers first: a teen should be offered something to call, not a fax.
    phones = sorted(
        [*service.phones, *service.organization.phones],
        key=lambda phone: (
            phone.type not in (None, "voice"),
            phone.service_id is None,
            phone.number,
        ),
    )
    return phones[0].number if phones else None


def _offer(service: Service, place: ServiceAtLocation | None) -> OfferRecord:
    location = place.location if place is not None else None
    return OfferRecord(
        service_id=str(service.id),
        name=service.name,
        organisation=service.organization.name,
        description=service.description,
        target_groups=frozenset(service.target_groups),
        needs=frozenset(service.needs),
        delivery=frozenset(service.delivery),
        languages=frozenset(service.languages),
        coverage=service.coverage,
        source=service.source,
        assured_date=service.assured_date,
        radius_km=service.radius_km,
        states=frozenset(service.coverage_states),
        latitude=location.latitude if location else None,
        longitude=location.longitude if location else None,
        city=location.city if location else None,
        min_age=service.minimum_age,
        max_age=service.maximum_age,
        phone=_phone(service),
        website=service.url or service.organization.website,
        prison_ids=frozenset(str(prison.id) for prison in service.prisons),
        synthetic=service.synthetic,
    )


async def referral_records(session: AsyncSession) -> list[OfferRecord]:
    """Published, active services: one record per located place for radius coverage, one
    record without a place for national, online and state-wide services."""
    services = await session.scalars(
        select(Service)
        .where(Service.publication_status == "published", Service.status == "active")
        .options(
            selectinload(Service.organization).selectinload(Organization.phones),
            selectinload(Service.service_at_locations).selectinload(ServiceAtLocation.location),
            selectinload(Service.phones),
            selectinload(Service.prisons),
        )
        .order_by(Service.name, Service.id)
    )
    records = []
    for service in services:
        if service.coverage != "radius":
            records.append(_offer(service, None))
            continue
        places = sorted(service.service_at_locations, key=lambda place: str(place.location_id))
        records += [
            _offer(service, place)
            for place in places
            if place.location.latitude is not None and place.location.longitude is not None
        ]
    return records


def _prison(prison: Prison) -> PrisonRecord:
    return PrisonRecord(
        prison_id=str(prison.id),
        slug=prison.slug,
        name=prison.name,
        federal_state=prison.federal_state,
        latitude=prison.latitude,
        longitude=prison.longitude,
        prison_types=frozenset(prison.prison_types),
        source=prison.source,
        assured_date=prison.assured_date,
        city=prison.city,
        address=prison.address,
        postal_code=prison.postal_code,
        website=prison.website,
        phone=prison.phone,
        visits=VisitInfo(
            regular_times=prison.visit_regular_times,
            booking=prison.visit_booking,
            booking_lead_time=prison.visit_booking_lead_time,
            children_rules=prison.visit_children_rules,
            family_rooms=prison.visit_family_rooms,
            family_days=prison.visit_family_days,
            video_visits=prison.visit_video_visits,
            special_visits_minors=prison.visit_special_visits_minors,
        ),
    )


async def prison_records(session: AsyncSession) -> list[PrisonRecord]:
    """Published, active prisons; coordinates stay None where no source gives the place."""
    prisons = await session.scalars(
        select(Prison)
        .where(Prison.publication_status == "published", Prison.status == "active")
        .order_by(Prison.name, Prison.id)
    )
    return [_prison(prison) for prison in prisons]


__all__ = [
    "SeedInvalid",
    "edited_by_editors",
    "load_seed",
    "prison_records",
    "referral_records",
]
