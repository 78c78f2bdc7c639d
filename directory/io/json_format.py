"""HSDS 3.0-style JSON: organizations with nested services, locations and phones; our prisons
in a top-level `prisons` array.

Reading unnests the document into the same flat tables as CSV, remembering for every record the
path where it was found (organizations[0].services[2]) so that problems can point at it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from directory.io.problems import Problem
from directory.io.tables import (
    RawRow,
    RawTables,
    attribute_rows,
    derived_id,
    language_row,
    state_area,
)
from directory.schemas import DirectoryPublic, LocationPublic, ServicePublic

HSDS_VERSION = "3.0"
_TOP_LEVEL = {"hsds_version", "generator", "note", "organizations", "prisons"}
_ADDRESS_FIELDS = ("address_1", "city", "postal_code", "state_province", "country")
_ADDRESS_ALIASES = {name: f"addresses[0].{name}" for name in _ADDRESS_FIELDS}
_TERM_ALIASES = {"taxonomy": "taxonomy_term.taxonomy", "code": "taxonomy_term.code"}


def _decode(name: str, content: bytes, problems: list[Problem]) -> Any:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        byte = content[error.start]
        problems.append(
            Problem(name, line, None, f"not UTF-8 (byte 0x{byte:02X}); save the file as UTF-8")
        )
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problems.append(Problem(name, error.lineno, None, f"malformed JSON: {error.msg}"))
        return None


class _Unnester:
    def __init__(self, name: str, raw: RawTables, problems: list[Problem]) -> None:
        self.name = name
        self.raw = raw
        self.problems = problems

    def problem(self, path: str | None, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.name, path, field, message))

    def objects(self, container: dict[str, Any], key: str, path: str) -> list[tuple[str, dict]]:
        """The objects in container[key] with their paths; anything else is reported."""
        items = container.pop(key, None)
        if items is None:
            return []
        here = f"{path}.{key}" if path else key
        if not isinstance(items, list):
            self.problem(path or None, key, "must be a list")
            return []
        found = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                found.append((f"{here}[{index}]", dict(item)))
            else:
                self.problem(f"{here}[{index}]", None, "must be an object")
        return found

    def add(self, table: str, path: str, data: dict[str, Any], aliases: Any = None) -> None:
        self.raw.add(table, RawRow(self.name, path, data, aliases or {}))

    def children(
        self, parent: dict[str, Any], path: str, key: str, table: str, owner: dict
    ) -> None:
        for child_path, child in self.objects(parent, key, path):
            self.add(table, child_path, {**child, **owner})

    # -- the document --------------------------------------------------------------------------

    def document(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            self.problem(None, None, "the document must be an object with `organizations`")
            return
        for key in doc:
            if key not in _TOP_LEVEL:
                self.problem(None, key, "unknown field (not part of the Lotse directory format)")
        for path, org in self.objects(doc, "organizations", ""):
            self.organization(path, org)
        for path, prison in self.objects(doc, "prisons", ""):
            self.add("prisons", path, prison)

    def organization(self, path: str, org: dict[str, Any]) -> None:
        owner = {"organization_id": org.get("id")}
        services = self.objects(org, "services", path)
        locations = self.objects(org, "locations", path)
        self.children(org, path, "phones", "phones", owner)
        self.add("organizations", path, org)
        for location_path, location in locations:
            self.location(location_path, {**location, **owner})
        for service_path, service in services:
            self.service(service_path, {**service, **owner})

    def location(self, path: str, location: dict[str, Any]) -> None:
        owner = {"location_id": location.get("id")}
        self.children(location, path, "phones", "phones", owner)
        self.children(location, path, "schedules", "schedules", owner)
        self.children(location, path, "accessibility", "accessibility", owner)
        addresses = self.objects(location, "addresses", path)
        if len(addresses) > 1:
            self.problem(path, "addresses", "one address per location is supported")
        for _, address in addresses[:1]:
            for key, value in address.items():
                if key in _ADDRESS_FIELDS:
                    location[key] = value
                elif key not in ("id", "location_id", "address_type") and value not in (None, ""):
                    self.problem(path, f"addresses[0].{key}", "unknown field")
        self.add("locations", path, location, _ADDRESS_ALIASES)

    def service(self, path: str, service: dict[str, Any]) -> None:
        owner = {"service_id": service.get("id")}
        for key, table in (
            ("phones", "phones"),
            ("schedules", "schedules"),
            ("service_areas", "service_areas"),
            ("languages", "languages"),
            ("service_at_locations", "service_at_locations"),
        ):
            self.children(service, path, key, table, owner)
        for attribute_path, attribute in self.objects(service, "attributes", path):
            self.add(
                "attributes", attribute_path, self.attribute(attribute, service), _TERM_ALIASES
            )
        self.prison_links(path, service)
        self.add("services", path, service)

    @staticmethod
    def attribute(attribute: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
        term = attribute.pop("taxonomy_term", None)
        flat = {**attribute, "link_id": service.get("id")}
        if isinstance(term, dict):
            flat.setdefault("taxonomy", term.get("taxonomy"))
            flat.setdefault("code", term.get("code"))
            flat.setdefault("taxonomy_term_id", term.get("id"))
        return flat

    def prison_links(self, path: str, service: dict[str, Any]) -> None:
        ids = service.pop("prison_ids", None)
        if ids is None:
            return
        if not isinstance(ids, list):
            self.problem(path, "prison_ids", "must be a list")
            return
        for index, prison_id in enumerate(ids):
            data = {"service_id": service.get("id"), "prison_id": prison_id}
            self.add("service_prisons", f"{path}.prison_ids[{index}]", data)


def read_json(path: Path) -> tuple[RawTables, list[Problem]]:
    raw, problems = RawTables(), []
    doc = _decode(path.name, path.read_bytes(), problems)
    if doc is not None:
        _Unnester(path.name, raw, problems).document(doc)
    if not problems and not raw.total():
        problems.append(Problem(path.name, None, None, "no organizations or prisons found"))
    return raw, problems


# -- writing -----------------------------------------------------------------------------------


def _nested_attribute(row: dict[str, Any]) -> dict[str, Any]:
    taxonomy, code = row.pop("taxonomy"), row.pop("code")
    row["taxonomy_term"] = {
        "id": row["taxonomy_term_id"],
        "code": code,
        "name": code,
        "taxonomy": taxonomy,
    }
    return row


def _location(location: LocationPublic, by_owner: dict) -> dict[str, Any]:
    body = location.model_dump(mode="json", exclude={*_ADDRESS_FIELDS, "organization_id"})
    address = location.model_dump(mode="json", include=set(_ADDRESS_FIELDS))
    if any(value for key, value in address.items() if key != "country"):
        body["addresses"] = [
            {"id": str(derived_id(location.id, "address")), "address_type": "physical", **address}
        ]
    key = ("location_id", location.id)
    body["phones"] = by_owner["phones"].get(key, [])
    body["schedules"] = by_owner["schedules"].get(key, [])
    body["accessibility"] = by_owner["accessibility"].get(key, [])
    return body


def _service(service: ServicePublic, by_owner: dict) -> dict[str, Any]:
    lists = {"target_groups", "needs", "delivery", "languages", "coverage_states", "prison_ids"}
    body = service.model_dump(mode="json", exclude={*lists, "organization_id"})
    key = ("service_id", service.id)
    body["phones"] = by_owner["phones"].get(key, [])
    body["schedules"] = by_owner["schedules"].get(key, [])
    body["service_at_locations"] = by_owner["service_at_locations"].get(key, [])
    body["service_areas"] = [state_area(service.id, s) for s in service.coverage_states]
    body["languages"] = [language_row(service.id, code) for code in service.languages]
    body["attributes"] = [
        _nested_attribute(row) for row in attribute_rows(service.id, service.model_dump())
    ]
    body["prison_ids"] = [str(prison) for prison in service.prison_ids]
    return body


def _by_owner(data: DirectoryPublic) -> dict[str, dict[tuple[str, Any], list[dict]]]:
    """Child records grouped by (owner field, owner id), dumped without the owner field."""
    owners = ("organization_id", "service_id", "location_id")
    grouped: dict[str, dict[tuple[str, Any], list[dict]]] = {}
    for table in ("phones", "schedules", "accessibility", "service_at_locations"):
        groups: dict[tuple[str, Any], list[dict]] = {}
        for item in getattr(data, table):
            owner = next(f for f in owners if getattr(item, f, None) is not None)
            body = item.model_dump(mode="json")
            del body[owner]
            for other in owners:
                if body.get(other, "") is None:
                    del body[other]
            groups.setdefault((owner, getattr(item, owner)), []).append(body)
        grouped[table] = groups
    return grouped


def json_document(data: DirectoryPublic) -> dict[str, Any]:
    by_owner = _by_owner(data)
    locations: dict[Any, list[LocationPublic]] = {}
    for location in data.locations:
        locations.setdefault(location.organization_id, []).append(location)
    services: dict[Any, list[ServicePublic]] = {}
    for service in data.services:
        services.setdefault(service.organization_id, []).append(service)
    organizations = []
    for org in data.organizations:
        body = org.model_dump(mode="json")
        body["phones"] = by_owner["phones"].get(("organization_id", org.id), [])
        body["locations"] = [_location(loc, by_owner) for loc in locations.get(org.id, [])]
        body["services"] = [_service(service, by_owner) for service in services.get(org.id, [])]
        organizations.append(body)
    return {
        "hsds_version": HSDS_VERSION,
        "generator": "lotse",
        "organizations": organizations,
        "prisons": [prison.model_dump(mode="json") for prison in data.prisons],
    }


def write_json(data: DirectoryPublic, path: Path) -> None:
    text = json.dumps(json_document(data), ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
