"""The directory in the database: read it whole (export), write it whole (import, seed).

Writing upserts organizations, prisons, locations and services by id. The parts of each written
record (phones, schedules, accessibility, service_at_locations, prison links) are replaced by the
file's set, so the database ends up exactly as the file says. Every create or change of a record
is written to directory_changes as {field: [old, new]}, parts included.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
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
from directory.progress import NoProgress, Progress
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

# Keeps every IN (...) list well below the parameter limits of SQLite and asyncpg.
CHUNK = 500
_META = ("created_at", "updated_at")
_VISIT_FIELDS = tuple(VisitInfoSchema.model_fields)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, date | time | datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _columns(row: Any) -> dict[str, Any]:
    return {
        column.key: getattr(row, column.key)
        for column in row.__mapper__.column_attrs
        if column.key not in _META
    }


# -- reading -----------------------------------------------------------------------------------


def prison_values(prison: PrisonPublic) -> dict[str, Any]:
    values = prison.model_dump(exclude={"visits"})
    values.update({f"visit_{k}": v for k, v in prison.visits.model_dump().items()})
    return values


def prison_public(row: Prison) -> PrisonPublic:
    values = _columns(row)
    visits = {name: values.pop(f"visit_{name}") for name in _VISIT_FIELDS}
    return PrisonPublic.model_validate({**values, "visits": visits})


async def _all(session: AsyncSession, model: Any, *order: Any) -> Sequence[Any]:
    return (await session.scalars(select(model).order_by(*order))).all()


async def read_directory(session: AsyncSession) -> DirectoryPublic:
    """Everything, drafts and synthetic records included, in a stable order."""
    links: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for service_id, prison_id in (await session.execute(select(service_prisons))).all():
        links[service_id].append(prison_id)
    services = [
        ServicePublic.model_validate({**_columns(row), "prison_ids": links.get(row.id, [])})
        for row in await _all(session, Service, Service.name, Service.id)
    ]
    orgs = await _all(session, Organization, Organization.name, Organization.id)
    locations = await _all(session, Location, Location.name, Location.id)
    return DirectoryPublic(
        organizations=[OrganizationPublic.model_validate(_columns(row)) for row in orgs],
        services=services,
        locations=[LocationPublic.model_validate(_columns(row)) for row in locations],
        service_at_locations=[
            ServiceAtLocationPublic.model_validate(row)
            for row in await _all(session, ServiceAtLocation, ServiceAtLocation.id)
        ],
        phones=[PhonePublic.model_validate(row) for row in await _all(session, Phone, Phone.id)],
        schedules=[
            SchedulePublic.model_validate(row)
            for row in await _all(session, Schedule, Schedule.id)
        ],
        accessibility=[
            AccessibilityPublic.model_validate(row)
            for row in await _all(session, Accessibility, Accessibility.id)
        ],
        prisons=[
            prison_public(row) for row in await _all(session, Prison, Prison.name, Prison.id)
        ],
    )


# -- writing -----------------------------------------------------------------------------------


@dataclass
class WriteSummary:
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unchanged: dict[str, int] = field(default_factory=lambda: defaultdict(int))


# Parts of a record: table, the owner column, and how its rows appear in the change history.
_PARTS: dict[str, tuple[tuple[str, Any, str], ...]] = {
    "organization": (("phones", Phone, "organization_id"),),
    "location": (
        ("phones", Phone, "location_id"),
        ("schedules", Schedule, "location_id"),
        ("accessibility", Accessibility, "location_id"),
    ),
    "service": (
        ("phones", Phone, "service_id"),
        ("schedules", Schedule, "service_id"),
        ("service_at_locations", ServiceAtLocation, "service_id"),
    ),
}


def _part_snapshot(rows: Iterable[dict[str, Any]], owner: str) -> list[dict[str, Any]]:
    """Rows of one part as they appear in the history: without ids, sorted, JSON-safe."""
    cleaned = [
        {k: _jsonable(v) for k, v in row.items() if k not in ("id", owner) and v is not None}
        for row in rows
    ]
    return sorted(cleaned, key=lambda item: repr(sorted(item.items())))


class _Writer:
    def __init__(
        self,
        session: AsyncSession,
        *,
        data: DirectoryPublic,
        clock: Clock,
        actor: str,
        counsellor_id: uuid.UUID | None,
        progress: Progress,
    ) -> None:
        self.session = session
        self.data = data
        self.now = clock.now()
        self.actor = actor
        self.counsellor_id = counsellor_id
        self.progress = progress
        self.summary = WriteSummary()
        self.history: list[dict[str, Any]] = []
        self.new_parts = self._new_parts()

    def _new_parts(self) -> dict[str, dict[uuid.UUID, dict[str, list[dict[str, Any]]]]]:
        parts: dict[str, dict[uuid.UUID, dict[str, list[dict[str, Any]]]]] = {}
        for entity, specs in _PARTS.items():
            grouped: dict[uuid.UUID, dict[str, list[dict[str, Any]]]] = defaultdict(
                lambda: defaultdict(list)
            )
            for name, _, owner in specs:
                for item in getattr(self.data, name):
                    owner_id = getattr(item, owner, None)
                    if owner_id is not None:
                        grouped[owner_id][name].append(item.model_dump())
            parts[entity] = grouped
        for service in self.data.services:
            parts["service"][service.id]["prison_ids"] = [
                {"prison_id": prison} for prison in service.prison_ids
            ]
        return parts

    async def _old_parts(
        self, entity: str, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, list[dict[str, Any]]]]:
        grouped: dict[uuid.UUID, dict[str, list[dict[str, Any]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for name, model, owner in _PARTS.get(entity, ()):
            column = getattr(model, owner)
            for chunk in _chunks(ids):
                for row in await self.session.scalars(select(model).where(column.in_(chunk))):
                    grouped[getattr(row, owner)][name].append(_columns(row))
        if entity == "service":
            for chunk in _chunks(ids):
                query = select(service_prisons).where(service_prisons.c.service_id.in_(chunk))
                for service_id, prison_id in (await self.session.execute(query)).all():
                    grouped[service_id]["prison_ids"].append({"prison_id": prison_id})
        return grouped

    def _snapshot(self, entity: str, values: dict[str, Any], parts: dict[str, list]) -> dict:
        snapshot = {key: _jsonable(value) for key, value in values.items()}
        owner = f"{entity}_id"
        for name, _, _ in _PARTS.get(entity, ()):
            snapshot[name] = _part_snapshot(parts.get(name, []), owner)
        if entity == "service":
            snapshot["prison_ids"] = sorted(
                str(item["prison_id"]) for item in parts.get("prison_ids", [])
            )
        return snapshot

    async def upsert(self, entity: str, model: Any, records: list[dict[str, Any]]) -> None:
        ids = [record["id"] for record in records]
        existing: dict[uuid.UUID, Any] = {}
        for chunk in _chunks(ids):
            for row in await self.session.scalars(select(model).where(model.id.in_(chunk))):
                existing[row.id] = row
        old_parts = await self._old_parts(entity, list(existing))
        new_parts = self.new_parts.get(entity, {})
        for values in records:
            new = self._snapshot(entity, values, new_parts.get(values["id"], {}))
            row = existing.get(values["id"])
            if row is None:
                self._create(entity, model, values, new)
            else:
                old = self._snapshot(entity, _columns(row), old_parts.get(row.id, {}))
                self._update(entity, row, values, old, new)
            self.progress.advance()
        await self.session.flush()

    def _create(self, entity: str, model: Any, values: dict[str, Any], new: dict) -> None:
        self.session.add(model(**values, created_at=self.now, updated_at=self.now))
        changes = {k: [None, v] for k, v in new.items() if v not in (None, [], "", False)}
        self._record(entity, values["id"], "create", changes)
        self.summary.created[entity] += 1

    def _update(self, entity: str, row: Any, values: dict[str, Any], old: dict, new: dict) -> None:
        changes = {k: [old.get(k), v] for k, v in new.items() if old.get(k) != v}
        if not changes:
            self.summary.unchanged[entity] += 1
            return
        for key, value in values.items():
            if getattr(row, key) != value:
                setattr(row, key, value)
        row.updated_at = self.now
        self._record(entity, row.id, "update", changes)
        self.summary.updated[entity] += 1

    def _record(self, entity: str, entity_id: uuid.UUID, action: str, changes: dict) -> None:
        self.history.append(
            {
                "id": uuid.uuid4(),
                "entity_type": entity,
                "entity_id": entity_id,
                "action": action,
                "changes": changes,
                "actor": self.actor,
                "counsellor_id": self.counsellor_id,
                "changed_at": self.now,
            }
        )

    async def replace_parts(self) -> None:
        """The parts of every written record become exactly the file's parts."""
        owners = {
            "organization_id": [org.id for org in self.data.organizations],
            "service_id": [service.id for service in self.data.services],
            "location_id": [location.id for location in self.data.locations],
        }
        # A link between a service and a place is part of the service, not of the place: a file
        # that carries a location but not every service offered there must keep their links.
        for name, model, owned_by in (
            ("phones", Phone, ("organization_id", "service_id", "location_id")),
            ("schedules", Schedule, ("service_id", "location_id")),
            ("accessibility", Accessibility, ("location_id",)),
            ("service_at_locations", ServiceAtLocation, ("service_id",)),
        ):
            items = getattr(self.data, name)
            await self._delete(model, "id", [item.id for item in items])
            for owner in owned_by:
                await self._delete(model, owner, owners[owner])
            if items:
                await self.session.execute(insert(model), [item.model_dump() for item in items])
        service_ids = owners["service_id"]
        for chunk in _chunks(service_ids):
            await self.session.execute(
                delete(service_prisons).where(service_prisons.c.service_id.in_(chunk))
            )
        links = [
            {"service_id": service.id, "prison_id": prison}
            for service in self.data.services
            for prison in service.prison_ids
        ]
        if links:
            await self.session.execute(insert(service_prisons), links)

    async def _delete(self, model: Any, column: str, ids: list[uuid.UUID]) -> None:
        for chunk in _chunks(ids):
            await self.session.execute(
                delete(model).where(getattr(model, column).in_(chunk)),
                execution_options={"synchronize_session": False},
            )

    async def run(self) -> WriteSummary:
        data = self.data
        self.progress.start(
            "import",
            len(data.organizations) + len(data.prisons) + len(data.locations) + len(data.services),
        )
        await self.upsert(
            "organization", Organization, [o.model_dump() for o in data.organizations]
        )
        await self.upsert("prison", Prison, [prison_values(p) for p in data.prisons])
        await self.upsert("location", Location, [loc.model_dump() for loc in data.locations])
        await self.upsert(
            "service", Service, [s.model_dump(exclude={"prison_ids"}) for s in data.services]
        )
        await self.replace_parts()
        if self.history:
            await self.session.execute(insert(DirectoryChange), self.history)
        self.progress.finish()
        return self.summary


async def write_directory(
    session: AsyncSession,
    *,
    data: DirectoryPublic,
    clock: Clock,
    actor: str,
    counsellor_id: uuid.UUID | None = None,
    progress: Progress | None = None,
) -> WriteSummary:
    """Upsert everything in `data` inside the caller's transaction (all or nothing)."""
    writer = _Writer(
        session,
        data=data,
        clock=clock,
        actor=actor,
        counsellor_id=counsellor_id,
        progress=progress or NoProgress(),
    )
    return await writer.run()


async def slug_owners(session: AsyncSession, model: Any, slugs: list[str]) -> dict[str, uuid.UUID]:
    """Which record holds each of these slugs in the database."""
    owners: dict[str, uuid.UUID] = {}
    for chunk in _chunks(slugs):
        for slug, record_id in await session.execute(
            select(model.slug, model.id).where(model.slug.in_(chunk))
        ):
            owners[slug] = record_id
    return owners
