"""The flat tables both formats read into: the CSV files, and the JSON objects once unnested.

A RawRow is one record as found in the file (cells or JSON values, not yet validated) together
with where it was found, so that every problem can name its file and row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from directory import vocab

# Derived HSDS objects (attributes, languages, service areas, addresses) get ids computed from
# their owner, so that exporting twice gives the same file.
NAMESPACE = uuid.UUID("6f1c0f4e-2b1d-4c55-9d0a-5b1f0d7e3a21")


def derived_id(owner: uuid.UUID, kind: str) -> uuid.UUID:
    return uuid.uuid5(owner, kind)


def term_id(taxonomy: str, code: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{taxonomy}:{code}")


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    # Columns that hold a ';'-separated list in CSV.
    lists: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return f"{self.name}.csv"


_VISIT_FIELDS = (
    "regular_times",
    "booking",
    "booking_lead_time",
    "children_rules",
    "family_rooms",
    "family_days",
    "video_visits",
    "special_visits_minors",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "organizations",
            (
                "id",
                "slug",
                "name",
                "alternate_name",
                "description",
                "email",
                "website",
                "source",
                "assured_date",
                "synthetic",
            ),
            ("id", "name", "source"),
        ),
        TableSpec(
            "services",
            (
                "id",
                "organization_id",
                "slug",
                "name",
                "alternate_name",
                "description",
                "url",
                "email",
                "status",
                "publication_status",
                "minimum_age",
                "maximum_age",
                "eligibility_description",
                "coverage",
                "radius_km",
                "source",
                "assured_date",
                "synthetic",
            ),
            ("id", "organization_id", "name", "coverage", "source", "assured_date"),
        ),
        TableSpec(
            "locations",
            (
                "id",
                "organization_id",
                "location_type",
                "name",
                "alternate_name",
                "description",
                "transportation",
                "url",
                "latitude",
                "longitude",
                "address_1",
                "city",
                "postal_code",
                "state_province",
                "country",
            ),
            ("id", "organization_id"),
        ),
        TableSpec(
            "service_at_locations",
            ("id", "service_id", "location_id", "description"),
            ("id", "service_id", "location_id"),
        ),
        TableSpec(
            "phones",
            (
                "id",
                "organization_id",
                "service_id",
                "location_id",
                "number",
                "extension",
                "type",
                "description",
            ),
            ("id", "number"),
        ),
        TableSpec(
            "schedules",
            (
                "id",
                "service_id",
                "location_id",
                "valid_from",
                "valid_to",
                "dtstart",
                "until",
                "freq",
                "interval",
                "byday",
                "bymonthday",
                "opens_at",
                "closes_at",
                "description",
                "schedule_link",
                "attending_type",
                "notes",
            ),
            ("id",),
        ),
        TableSpec(
            "service_areas",
            ("id", "service_id", "name", "description"),
            ("id", "service_id", "name"),
        ),
        TableSpec(
            "languages",
            ("id", "service_id", "name", "code"),
            ("id", "service_id", "code"),
        ),
        TableSpec(
            "attributes",
            (
                "id",
                "link_id",
                "link_entity",
                "link_type",
                "taxonomy",
                "code",
                "taxonomy_term_id",
                "label",
            ),
            ("id", "link_id", "taxonomy", "code"),
        ),
        TableSpec(
            "accessibility",
            ("id", "location_id", "description", "details", "url"),
            ("id", "location_id"),
        ),
        TableSpec(
            "service_prisons",
            ("service_id", "prison_id"),
            ("service_id", "prison_id"),
        ),
        TableSpec(
            "prisons",
            (
                "id",
                "slug",
                "name",
                "address",
                "postal_code",
                "city",
                "federal_state",
                "latitude",
                "longitude",
                "coordinates_note",
                "prison_types",
                "website",
                "phone",
                *(f"visit_{name}" for name in _VISIT_FIELDS),
                "source",
                "assured_date",
                "status",
                "publication_status",
                "synthetic",
            ),
            ("id", "slug", "name", "federal_state", "source", "assured_date"),
            lists=("prison_types",),
        ),
    )
}

# In CSV the prison's visit rules are columns visit_<name>; everywhere else a nested `visits`.
PRISON_CSV_ALIASES = {f"visits.{name}": f"visit_{name}" for name in _VISIT_FIELDS}


@dataclass(slots=True)
class RawRow:
    file: str
    row: int | str | None
    data: dict[str, Any]
    # Field names as the file spells them, where they differ from the flat names.
    aliases: Mapping[str, str] = field(default_factory=dict)

    def field_name(self, name: str | None) -> str | None:
        if name is None:
            return None
        return self.aliases.get(name, name)


@dataclass
class RawTables:
    """Rows per table. `unreadable` tables could not be read at all (no ids known);
    `unchecked` tables were read but have header problems, so their rows are not validated."""

    rows: dict[str, list[RawRow]] = field(default_factory=lambda: {name: [] for name in TABLES})
    unreadable: set[str] = field(default_factory=set)
    unchecked: set[str] = field(default_factory=set)

    def add(self, table: str, row: RawRow) -> None:
        self.rows[table].append(row)

    def total(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def csv_row_to_raw(table: str, cells: dict[str, str]) -> dict[str, Any]:
    """CSV cells (empty ones already dropped) to the flat form the validator reads."""
    spec = TABLES[table]
    data: dict[str, Any] = {}
    visits: dict[str, Any] = {}
    for column, value in cells.items():
        if column in spec.lists:
            data[column] = [part.strip() for part in value.split(";") if part.strip()]
        elif table == "prisons" and column.startswith("visit_"):
            visits[column.removeprefix("visit_")] = value
        else:
            data[column] = value
    if visits:
        data["visits"] = visits
    return data


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(str(item) for item in value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def state_area(service_id: uuid.UUID, state: str) -> dict[str, Any]:
    return {
        "id": str(derived_id(service_id, f"service_area:{state}")),
        "service_id": str(service_id),
        "name": state,
        "description": vocab.STATE_NAMES[state],
    }


def language_row(service_id: uuid.UUID, code: str) -> dict[str, Any]:
    return {
        "id": str(derived_id(service_id, f"language:{code}")),
        "service_id": str(service_id),
        "name": _language_name(code),
        "code": code,
    }


def attribute_rows(service_id: uuid.UUID, facets: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """The service's facets as HSDS attributes, one per code, flat (as in attributes.csv)."""
    rows = []
    for taxonomy, facet in vocab.FACET_OF_TAXONOMY.items():
        for code in facets[facet]:
            rows.append(
                {
                    "id": str(derived_id(service_id, f"attribute:{taxonomy}:{code}")),
                    "link_id": str(service_id),
                    "link_entity": "service",
                    "link_type": taxonomy,
                    "taxonomy": taxonomy,
                    "code": code,
                    "taxonomy_term_id": str(term_id(taxonomy, code)),
                }
            )
    return rows


def _language_name(code: str) -> str | None:
    from babel import Locale

    return Locale("de").languages.get(code)
