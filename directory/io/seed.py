"""The shipped seed files (directory/seed/*.json) in their compact, hand-written shape.

organizations.json: {"organizations": [{slug, name, description, website, source, last_checked,
services: [{slug, name, ..., phones, locations, prisons: [prison slugs]}]}]};
prisons.json: {"prisons": [{slug, name, address, ..., visits: {...}, source, last_checked}]}.
Records are identified by slug: an existing record keeps its id, a new one gets an id derived
from its slug, so every installation gives the seed the same ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from directory.io.problems import Problem
from directory.io.tables import NAMESPACE, RawRow, RawTables, derived_id

_RENAMED = {"last_checked": "assured_date"}
_SERVICE_RENAMED = {
    **_RENAMED,
    "states": "coverage_states",
    "min_age": "minimum_age",
    "max_age": "maximum_age",
}
_LOCATION_RENAMED = {"address": "address_1", "federal_state": "state_province"}


def seed_id(kind: str, slug: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}:{slug}")


def _renamed(data: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names.get(key, key): value for key, value in data.items()}


class SeedReader:
    """Turns the seed documents into raw tables; `known` maps (table, slug) to existing ids."""

    def __init__(self, known: Mapping[tuple[str, str], uuid.UUID]) -> None:
        self.known = known
        self.raw = RawTables()
        self.problems: list[Problem] = []
        self.prison_ids: dict[str, uuid.UUID] = {}

    def _id(self, table: str, kind: str, item: dict[str, Any], file: str, path: str) -> uuid.UUID:
        slug = item.get("slug")
        if not isinstance(slug, str) or not slug:
            self.problems.append(Problem(file, path, "slug", "required"))
            return uuid.uuid4()
        return self.known.get((table, slug)) or seed_id(kind, slug)

    def _list(self, doc: Any, key: str, file: str) -> list[dict[str, Any]]:
        items = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            self.problems.append(Problem(file, None, key, "must be a list of objects"))
            return []
        return items

    def prisons(self, doc: Any, file: str) -> None:
        for index, prison in enumerate(self._list(doc, "prisons", file)):
            path = f"prisons[{index}]"
            prison_id = self._id("prisons", "prison", prison, file, path)
            self.prison_ids[str(prison.get("slug"))] = prison_id
            data = {
                **_renamed(prison, _RENAMED),
                "id": prison_id,
                "publication_status": "published",
            }
            self.raw.add("prisons", RawRow(file, path, data, {"assured_date": "last_checked"}))

    def organizations(self, doc: Any, file: str) -> None:
        for index, org in enumerate(self._list(doc, "organizations", file)):
            path = f"organizations[{index}]"
            body = dict(org)
            services = body.pop("services", [])
            org_id = self._id("organizations", "organization", body, file, path)
            data = {**_renamed(body, _RENAMED), "id": org_id}
            self.raw.add(
                "organizations", RawRow(file, path, data, {"assured_date": "last_checked"})
            )
            if not isinstance(services, list):
                self.problems.append(Problem(file, path, "services", "must be a list"))
                continue
            for number, service in enumerate(services):
                self.service(dict(service), org_id, file, f"{path}.services[{number}]")

    def service(self, service: dict[str, Any], org_id: uuid.UUID, file: str, path: str) -> None:
        service_id = self._id("services", "service", service, file, path)
        phones = service.pop("phones", None) or []
        locations = service.pop("locations", None) or []
        prisons = service.pop("prisons", None) or []
        schedule = service.pop("schedule_description", None)
        for index, phone in enumerate(phones):
            data = {
                **phone,
                "id": derived_id(service_id, f"phone:{index}"),
                "service_id": service_id,
            }
            self.raw.add("phones", RawRow(file, f"{path}.phones[{index}]", data))
        if schedule:
            data = {"id": derived_id(service_id, "schedule"), "service_id": service_id}
            data["description"] = schedule
            self.raw.add(
                "schedules", RawRow(file, path, data, {"description": "schedule_description"})
            )
        for index, location in enumerate(locations):
            self.location(location, org_id, service_id, file, f"{path}.locations[{index}]", index)
        for index, slug in enumerate(prisons):
            prison_id = self.prison_ids.get(str(slug))
            if prison_id is None:
                self.problems.append(
                    Problem(
                        file, path, f"prisons[{index}]", "no prison with this slug in the seed"
                    )
                )
                continue
            link = {"service_id": service_id, "prison_id": prison_id}
            self.raw.add("service_prisons", RawRow(file, f"{path}.prisons[{index}]", link))
        data = {
            **_renamed(service, _SERVICE_RENAMED),
            "id": service_id,
            "organization_id": org_id,
            "status": "active",
            "publication_status": "published",
        }
        aliases = {new: old for old, new in _SERVICE_RENAMED.items()}
        self.raw.add("services", RawRow(file, path, data, aliases))

    def location(
        self,
        location: dict[str, Any],
        org_id: uuid.UUID,
        service_id: uuid.UUID,
        file: str,
        path: str,
        index: int,
    ) -> None:
        location_id = derived_id(service_id, f"location:{index}")
        data = {**_renamed(location, _LOCATION_RENAMED), "id": location_id}
        data["organization_id"] = org_id
        aliases = {new: old for old, new in _LOCATION_RENAMED.items()}
        self.raw.add("locations", RawRow(file, path, data, aliases))
        link = {
            "id": derived_id(service_id, f"service_at_location:{index}"),
            "service_id": service_id,
            "location_id": location_id,
        }
        self.raw.add("service_at_locations", RawRow(file, path, link))


def read_seed(
    directory: Path, known: Mapping[tuple[str, str], uuid.UUID]
) -> tuple[RawTables, list[Problem]]:
    """Raw tables from prisons.json (first: services refer to prisons) and organizations.json."""
    reader = SeedReader(known)
    for name, read in (
        ("prisons.json", reader.prisons),
        ("organizations.json", reader.organizations),
    ):
        path = directory / name
        if path.exists():
            read(json.loads(path.read_text(encoding="utf-8")), name)
    return reader.raw, reader.problems
