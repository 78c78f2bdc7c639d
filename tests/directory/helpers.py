"""Builders for directory tests: small directories, row counts, CSV edits, normal forms."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.db import transaction
from directory.io import import_directory
from directory.io.store import read_directory
from directory.io.transfer import LoadedFile
from directory.models import (
    Accessibility,
    DirectoryChange,
    Location,
    Organization,
    Phone,
    Prison,
    Schedule,
    Service,
    ServiceAtLocation,
    service_prisons,
)
from directory.schemas import (
    DirectoryPublic,
    LocationPublic,
    OrganizationPublic,
    PhonePublic,
    PrisonPublic,
    ServiceAtLocationPublic,
    ServicePublic,
    VisitInfoSchema,
)

DIRECTORY_TABLES = (
    Organization,
    Service,
    Location,
    ServiceAtLocation,
    Phone,
    Schedule,
    Accessibility,
    Prison,
    DirectoryChange,
)
NUREMBERG = (49.4551662968, 11.0793272477)
FUERTH = (49.4771, 10.9887)


async def row_counts(services) -> dict[str, int]:
    async with services.sessions() as session:
        counts = {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in DIRECTORY_TABLES
        }
        counts["service_prisons"] = await session.scalar(
            select(func.count()).select_from(service_prisons)
        )
    return counts


async def empty_directory(services) -> None:
    async with transaction(services.sessions) as session:
        for model in (DirectoryChange, Prison, Organization):
            await session.execute(model.__table__.delete())


async def import_data(services, data: DirectoryPublic, *, allow_synthetic: bool = True):
    async with transaction(services.sessions) as session:
        return await import_directory(
            session, loaded=LoadedFile(data), clock=services.clock, allow_synthetic=allow_synthetic
        )


async def current(services) -> DirectoryPublic:
    async with services.sessions() as session:
        return await read_directory(session)


def normal(data: DirectoryPublic) -> dict[str, list[dict[str, Any]]]:
    """Order-free form for comparing directories."""
    dumped = data.model_dump(mode="json")
    return {table: sorted(rows, key=lambda row: row["id"]) for table, rows in dumped.items()}


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def small_directory() -> DirectoryPublic:
    """One organization with a located service (two places), a national helpline, a draft, an
    inactive service, and two prisons (one without known coordinates)."""
    org_id, local, helpline, draft, closed = ids(5)
    place_a, place_b, prison, unknown_prison = ids(4)
    base: dict[str, Any] = {
        "organization_id": org_id,
        "source": "https://example.org/quelle",
        "assured_date": date(2026, 3, 1),
        "target_groups": ["teen", "caregiver"],
        "needs": ["visits"],
        "delivery": ["in_person"],
        "languages": ["de", "tr"],
        "publication_status": "published",
    }
    return DirectoryPublic(
        organizations=[
            OrganizationPublic(
                id=org_id,
                slug="beispiel-ev",
                name="Beispiel e.V.",
                website="https://example.org",
                source="https://example.org/quelle",
            )
        ],
        services=[
            ServicePublic(
                id=local,
                slug="beispiel-vor-ort",
                name="Vor Ort",
                coverage="radius",
                radius_km=40,
                prison_ids=[prison],
                **base,
            ),
            ServicePublic(
                id=helpline,
                slug="beispiel-telefon",
                name="Telefon",
                coverage="national",
                url="https://example.org/telefon",
                **base,
            ),
            ServicePublic(id=draft, name="Entwurf", coverage="national", **base).model_copy(
                update={"publication_status": "draft"}
            ),
            ServicePublic(
                id=closed, name="Geschlossen", coverage="states", coverage_states=["BY"], **base
            ).model_copy(update={"status": "inactive"}),
        ],
        locations=[
            LocationPublic(
                id=place_a,
                organization_id=org_id,
                city="Nürnberg",
                state_province="BY",
                latitude=NUREMBERG[0],
                longitude=NUREMBERG[1],
            ),
            LocationPublic(
                id=place_b,
                organization_id=org_id,
                city="Fürth",
                state_province="BY",
                latitude=FUERTH[0],
                longitude=FUERTH[1],
                postal_code="90762",
            ),
        ],
        service_at_locations=[
            ServiceAtLocationPublic(id=uuid.uuid4(), service_id=local, location_id=place_a),
            ServiceAtLocationPublic(id=uuid.uuid4(), service_id=local, location_id=place_b),
        ],
        phones=[
            PhonePublic(id=uuid.uuid4(), service_id=helpline, number="0800 000 000", type="voice"),
            PhonePublic(id=uuid.uuid4(), organization_id=org_id, number="0911 000 000"),
        ],
        prisons=[
            PrisonPublic(
                id=prison,
                slug="jva-beispiel",
                name="JVA Beispiel",
                federal_state="BY",
                latitude=49.44,
                longitude=11.05,
                prison_types=["men", "remand"],
                visits=VisitInfoSchema(family_rooms=True, regular_times="Di 13–16 Uhr"),
                source="https://example.org/jva",
                assured_date=date(2026, 2, 1),
                publication_status="published",
            ),
            PrisonPublic(
                id=unknown_prison,
                slug="jva-ohne-ort",
                name="JVA ohne Ort",
                federal_state="NW",
                source="https://example.org/jva2",
                assured_date=date(2026, 2, 1),
                publication_status="published",
            ),
        ],
    )


# -- CSV files ---------------------------------------------------------------------------------


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write_table(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def edit_table(
    path: Path, edit: Callable[[list[str], list[dict[str, str]]], tuple[list[str], list]]
) -> None:
    header, rows = read_table(path)
    header, rows = edit(header, rows)
    write_table(path, header, rows)
