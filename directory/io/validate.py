"""Validation of raw tables: every row, every reference, every rule; all problems at once.

Rows are validated one by one with the directory schemas (types, codes, ranges, coordinates in
Germany, dates). Then the rules that span records: duplicate ids and slugs, references that
point nowhere, radius coverage without a located place. Only a file without any problem becomes
a DirectoryPublic.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from directory import vocab
from directory.io.problems import Problem, ValidationFailed, from_validation_error
from directory.io.tables import TABLES, RawRow, RawTables, term_id
from directory.progress import NoProgress, Progress
from directory.schemas import (
    AccessibilityPublic,
    DirectoryPublic,
    LanguageCode,
    LocationPublic,
    OrganizationPublic,
    PhonePublic,
    PrisonPublic,
    SchedulePublic,
    ServiceAtLocationPublic,
    ServicePublic,
    StateCode,
    field_error,
)

Taxonomy = Literal[tuple(vocab.TAXONOMIES)]  # type: ignore[valid-type]


class _LinkRow(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeRow(_LinkRow):
    id: uuid.UUID
    link_id: uuid.UUID
    link_entity: Literal["service"] = "service"
    link_type: str | None = None
    taxonomy: Taxonomy
    code: str
    taxonomy_term_id: uuid.UUID | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _known_term(self) -> AttributeRow:
        codes = vocab.TAXONOMIES[self.taxonomy]
        if self.code not in codes:
            raise field_error("code", f"unknown code; expected one of: {', '.join(codes)}", "code")
        if self.taxonomy_term_id not in (None, term_id(self.taxonomy, self.code)):
            raise field_error("term", "does not match taxonomy and code", "taxonomy_term_id")
        return self


class LanguageRow(_LinkRow):
    id: uuid.UUID
    service_id: uuid.UUID
    code: LanguageCode
    # Derived from the code on export; ignored on import.
    name: str | None = None


class ServiceAreaRow(_LinkRow):
    id: uuid.UUID
    service_id: uuid.UUID
    # A federal state, as code or German name; other areas are expressed by `coverage`.
    name: StateCode
    description: str | None = None


class ServicePrisonRow(_LinkRow):
    service_id: uuid.UUID
    prison_id: uuid.UUID


ROW_MODELS: dict[str, type[BaseModel]] = {
    "organizations": OrganizationPublic,
    "services": ServicePublic,
    "locations": LocationPublic,
    "service_at_locations": ServiceAtLocationPublic,
    "phones": PhonePublic,
    "schedules": SchedulePublic,
    "accessibility": AccessibilityPublic,
    "prisons": PrisonPublic,
    "attributes": AttributeRow,
    "languages": LanguageRow,
    "service_areas": ServiceAreaRow,
    "service_prisons": ServicePrisonRow,
}

REFERENCES = (
    ("services", "organization_id", "organizations"),
    ("locations", "organization_id", "organizations"),
    ("service_at_locations", "service_id", "services"),
    ("service_at_locations", "location_id", "locations"),
    ("phones", "organization_id", "organizations"),
    ("phones", "service_id", "services"),
    ("phones", "location_id", "locations"),
    ("schedules", "service_id", "services"),
    ("schedules", "location_id", "locations"),
    ("accessibility", "location_id", "locations"),
    ("attributes", "link_id", "services"),
    ("languages", "service_id", "services"),
    ("service_areas", "service_id", "services"),
    ("service_prisons", "service_id", "services"),
    ("service_prisons", "prison_id", "prisons"),
)

_SINGULAR = {
    "organizations": "organization",
    "services": "service",
    "locations": "location",
    "prisons": "prison",
}
_LINK_TABLES = ("attributes", "languages", "service_areas", "service_prisons")
_FACETS = ("target_groups", "needs", "delivery", "languages", "coverage_states", "prison_ids")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _key(value: Any) -> str | None:
    """An id as comparable text: canonical for UUIDs, trimmed lower-case text otherwise."""
    if value is None or value == "":
        return None
    # Most ids are already canonical; parsing each of them would dominate large files.
    if isinstance(value, str) and _CANONICAL_UUID.match(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value).strip().lower()


def _is_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and _CANONICAL_UUID.match(value)):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _position(problem: Problem) -> tuple[Any, ...]:
    """File, then row in natural order (row 9 before row 10, services[2] before services[10])."""
    row = "" if problem.row is None else str(problem.row)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", row))
    return (problem.file, parts)


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    # Null and blank mean "not given" in both formats: defaults apply, required fields say so.
    return {k: v for k, v in data.items() if v is not None and v != ""}


class _Validation:
    def __init__(self, raw: RawTables, progress: Progress) -> None:
        self.raw = raw
        self.progress = progress
        self.problems: list[Problem] = []
        self.ids = {
            table: {key for row in rows if (key := _key(row.data.get("id")))}
            for table, rows in raw.rows.items()
        }

    def report(self, row: RawRow, field: str | None, message: str) -> None:
        self.problems.append(Problem(row.file, row.row, row.field_name(field), message))

    def run(self) -> DirectoryPublic:
        self._duplicates()
        self._references()
        self.progress.start("validate", self.raw.total())
        facets = self._link_facets()
        valid = {
            table: self._rows(table, facets if table == "services" else None)
            for table in ROW_MODELS
            if table not in _LINK_TABLES
        }
        self.progress.finish()
        self._radius_needs_a_place(valid["services"])
        if self.problems:
            raise ValidationFailed(sorted(self.problems, key=_position))
        return DirectoryPublic(
            **{table: [model for _, model in rows] for table, rows in valid.items()}
        )

    # -- single rows ---------------------------------------------------------------------------

    def _rows(
        self, table: str, facets: dict[str, dict[str, list[Any]]] | None = None
    ) -> list[tuple[RawRow, Any]]:
        model = ROW_MODELS[table]
        valid = []
        unchecked = table in self.raw.unchecked
        for row in self.raw.rows[table]:
            self.progress.advance()
            if unchecked:
                continue
            data = _clean(row.data)
            if facets is not None:
                data = self._with_facets(data, facets.get(_key(data.get("id")) or "", {}))
            try:
                valid.append((row, model.model_validate(data)))
            except ValidationError as error:
                self._report_error(row, error)
        return valid

    def _report_error(self, row: RawRow, error: ValidationError) -> None:
        for problem in from_validation_error(error, file=row.file, row=row.row):
            self.report(row, problem.field, problem.message)

    @staticmethod
    def _with_facets(data: dict[str, Any], facets: dict[str, list[Any]]) -> dict[str, Any]:
        merged = dict(data)
        for name, values in facets.items():
            given = merged.get(name)
            merged[name] = [*(given if isinstance(given, list) else []), *values]
        return merged

    def _link_facets(self) -> dict[str, dict[str, list[Any]]]:
        """Attributes, languages, service areas and prison links, collected per service."""
        facets: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {f: [] for f in _FACETS})
        for table in _LINK_TABLES:
            for _, link in self._rows(table):
                if isinstance(link, AttributeRow):
                    target = facets[str(link.link_id)][vocab.FACET_OF_TAXONOMY[link.taxonomy]]
                    target.append(link.code)
                elif isinstance(link, LanguageRow):
                    facets[str(link.service_id)]["languages"].append(link.code)
                elif isinstance(link, ServiceAreaRow):
                    facets[str(link.service_id)]["coverage_states"].append(link.name)
                elif isinstance(link, ServicePrisonRow):
                    facets[str(link.service_id)]["prison_ids"].append(link.prison_id)
        return facets

    # -- rules across records ------------------------------------------------------------------

    def _duplicates(self) -> None:
        for table, rows in self.raw.rows.items():
            fields = ("slug",) if table in ("organizations", "services", "prisons") else ()
            for field in ("id", *fields):
                self._unique(rows, field)
        self._unique_pairs("service_prisons", ("service_id", "prison_id"))
        self._unique_pairs("service_at_locations", ("service_id", "location_id"))

    def _unique(self, rows: list[RawRow], field: str) -> None:
        seen: dict[str, RawRow] = {}
        for row in rows:
            key = _key(row.data.get(field))
            if key is None:
                continue
            first = seen.setdefault(key, row)
            if first is not row:
                self.report(row, field, f"duplicate {field} (first in row {first.row})")

    def _unique_pairs(self, table: str, fields: tuple[str, str]) -> None:
        seen: dict[tuple[str | None, ...], RawRow] = {}
        for row in self.raw.rows[table]:
            pair = tuple(_key(row.data.get(field)) for field in fields)
            if None in pair:
                continue
            first = seen.setdefault(pair, row)
            if first is not row:
                self.report(row, fields[1], f"duplicate link (first in row {first.row})")

    def _references(self) -> None:
        for table, field, target in REFERENCES:
            # Without readable rows of the target table, every reference would look dangling.
            if target in self.raw.unreadable:
                continue
            for row in self.raw.rows[table]:
                value = row.data.get(field)
                if value in (None, "") or not _is_uuid(value):
                    continue
                if _key(value) not in self.ids[target]:
                    self.report(row, field, f"no {_SINGULAR[target]} with this id in the file")

    def _radius_needs_a_place(self, services: list[tuple[RawRow, ServicePublic]]) -> None:
        located = {
            _key(row.data.get("id"))
            for row in self.raw.rows["locations"]
            if row.data.get("latitude") not in (None, "")
            and row.data.get("longitude") not in (None, "")
        }
        places: dict[str | None, int] = defaultdict(int)
        for row in self.raw.rows["service_at_locations"]:
            if _key(row.data.get("location_id")) in located:
                places[_key(row.data.get("service_id"))] += 1
        for row, service in services:
            if service.coverage == "radius" and not places[str(service.id)]:
                self.report(row, "coverage", "coverage 'radius' needs a location with coordinates")


def validate_tables(raw: RawTables, *, progress: Progress | None = None) -> DirectoryPublic:
    """The validated directory, or ValidationFailed with every problem found."""
    return _Validation(raw, progress or NoProgress()).run()


__all__ = ["TABLES", "validate_tables"]
