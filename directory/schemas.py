"""Directory schemas: what import/export and the console exchange, validated field by field.

`XCreate` is what an editor or an import file supplies (the id may be left out when creating);
`XPublic` always carries the id. Consistency rules that need several fields live in model
validators; rules that need several records (references, duplicates) live in directory.io.
Error messages never repeat the input value.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, time
from functools import lru_cache
from typing import Annotated, Any, Literal

from babel import Locale
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from directory import vocab

TargetGroup = Literal[vocab.TARGET_GROUPS]  # type: ignore[valid-type]
Need = Literal[vocab.NEEDS]  # type: ignore[valid-type]
Delivery = Literal[vocab.DELIVERY]  # type: ignore[valid-type]
Coverage = Literal[vocab.COVERAGE]  # type: ignore[valid-type]
ServiceStatus = Literal[vocab.SERVICE_STATUSES]  # type: ignore[valid-type]
PublicationStatus = Literal[vocab.PUBLICATION_STATUSES]  # type: ignore[valid-type]
LocationType = Literal[vocab.LOCATION_TYPES]  # type: ignore[valid-type]
PhoneType = Literal[vocab.PHONE_TYPES]  # type: ignore[valid-type]
Frequency = Literal[vocab.SCHEDULE_FREQUENCIES]  # type: ignore[valid-type]
PrisonType = Literal[vocab.PRISON_TYPES]  # type: ignore[valid-type]

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_BYDAY = re.compile(
    r"^(?:[+-]?\d{0,2}(?:MO|TU|WE|TH|FR|SA|SU))(?:,[+-]?\d{0,2}(?:MO|TU|WE|TH|FR|SA|SU))*$"
)


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def field_error(kind: str, message: str, field: str | None = None) -> PydanticCustomError:
    # The field rides in the error context so that model-level errors still name their field.
    return PydanticCustomError(kind, message, {"field": field} if field else None)


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise field_error("slug", "lower-case letters, digits and single hyphens only")
    return value


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or " " in value:
        raise field_error("url", "not a web address (must start with https:// or http://)")
    return value


def _email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value:
        raise field_error("email", "not an e-mail address")
    return value


def _latitude(value: float) -> float:
    low, high = vocab.LATITUDE_RANGE
    if not low <= value <= high:
        raise field_error("outside_germany", f"latitude outside Germany ({low}–{high})")
    return value


def _longitude(value: float) -> float:
    low, high = vocab.LONGITUDE_RANGE
    if not low <= value <= high:
        raise field_error("outside_germany", f"longitude outside Germany ({low}–{high})")
    return value


def _age(value: int) -> int:
    low, high = vocab.AGE_RANGE
    if not low <= value <= high:
        raise field_error("age_range", f"age out of range ({low}–{high})")
    return value


def _state(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        code = vocab.state_code(value)
        if code is None:
            raise field_error("federal_state", "unknown federal state (use a code such as NW)")
        return code
    return value


@lru_cache(maxsize=1)
def _known_languages() -> frozenset[str]:
    return frozenset(code for code in Locale("en").languages if _LANGUAGE.match(code))


def _language(value: str) -> str:
    if not _LANGUAGE.match(value) or value not in _known_languages():
        raise field_error("language", "not an ISO 639-1 language code (two lower-case letters)")
    return value


def _byday(value: str) -> str:
    if not _BYDAY.match(value):
        raise field_error("byday", "not an iCal BYDAY list such as MO,TU or 2MO")
    return value


def _postal_code(value: str) -> str:
    if not re.fullmatch(r"\d{5}", value):
        raise field_error("postal_code", "not a German postcode (five digits)")
    return value


def _optional(kind: Any) -> Any:
    """`kind | None` where a blank string counts as None (CSV cells, form fields)."""
    return Annotated[kind | None, BeforeValidator(_blank_to_none)]


Required = Annotated[str, BeforeValidator(_blank_to_none), StringConstraints(min_length=1)]
OptText = Annotated[str | None, BeforeValidator(_blank_to_none)]
Description = Annotated[str, BeforeValidator(_none_to_empty)]
Slug = Annotated[str, StringConstraints(max_length=100), AfterValidator(_slug)]
Url = Annotated[str, StringConstraints(max_length=500), AfterValidator(_url)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Latitude = Annotated[float, AfterValidator(_latitude)]
Longitude = Annotated[float, AfterValidator(_longitude)]
Age = Annotated[int, AfterValidator(_age)]
StateCode = Annotated[str, BeforeValidator(_state)]
LanguageCode = Annotated[str, AfterValidator(_language)]
PostalCode = Annotated[str, AfterValidator(_postal_code)]
ByDay = Annotated[str, AfterValidator(_byday)]
OptSlug = _optional(Slug)
OptUrl = _optional(Url)
OptEmail = _optional(Email)
OptPostalCode = _optional(PostalCode)
OptState = _optional(StateCode)
OptLatitude = _optional(Latitude)
OptLongitude = _optional(Longitude)
OptAge = _optional(Age)
OptByDay = _optional(ByDay)
OptExtension = _optional(Annotated[str, StringConstraints(max_length=20)])
OptPhone = _optional(Annotated[str, StringConstraints(max_length=100)])


class _Schema(BaseModel):
    # Unknown fields are refused, never dropped: a typo in a column name must not lose data.
    model_config = ConfigDict(extra="forbid", from_attributes=True)


def _coordinates_paired(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        missing = "longitude" if longitude is None else "latitude"
        raise field_error("coordinates", "latitude and longitude go together", missing)


# -- parts of a record -------------------------------------------------------------------------


class PhonePublic(_Schema):
    """A phone of exactly one organization, service or location."""

    id: uuid.UUID
    organization_id: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    number: Annotated[Required, StringConstraints(max_length=100)]
    extension: OptExtension = None
    type: PhoneType | None = None
    description: OptText = None

    @model_validator(mode="after")
    def _one_owner(self) -> PhonePublic:
        owners = [self.organization_id, self.service_id, self.location_id]
        if sum(owner is not None for owner in owners) != 1:
            raise field_error(
                "owner", "give exactly one of organization_id, service_id, location_id"
            )
        return self


class SchedulePublic(_Schema):
    """Opening hours (HSDS 3.0 schedule); times are local German time."""

    id: uuid.UUID
    service_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    dtstart: date | None = None
    until: date | None = None
    freq: Frequency | None = None
    interval: Annotated[int, Field(ge=1, le=52)] | None = None
    byday: OptByDay = None
    bymonthday: OptText = None
    opens_at: time | None = None
    closes_at: time | None = None
    description: OptText = None
    schedule_link: OptUrl = None
    attending_type: OptText = None
    notes: OptText = None

    @model_validator(mode="after")
    def _consistent(self) -> SchedulePublic:
        if (self.service_id is None) == (self.location_id is None):
            raise field_error("owner", "give exactly one of service_id, location_id")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise field_error("date_order", "valid_to is before valid_from", "valid_to")
        return self


class AccessibilityPublic(_Schema):
    id: uuid.UUID
    location_id: uuid.UUID
    description: OptText = None
    details: OptText = None
    url: OptUrl = None


class ServiceAtLocationPublic(_Schema):
    id: uuid.UUID
    service_id: uuid.UUID
    location_id: uuid.UUID
    description: OptText = None


# -- organizations -----------------------------------------------------------------------------


class OrganizationCreate(_Schema):
    id: uuid.UUID | None = None
    slug: OptSlug = None
    name: Annotated[Required, StringConstraints(max_length=300)]
    alternate_name: OptText = None
    description: Description = ""
    email: OptEmail = None
    website: OptUrl = None
    source: Required
    assured_date: date | None = None
    synthetic: bool = False


class OrganizationPublic(OrganizationCreate):
    id: uuid.UUID


# -- services ----------------------------------------------------------------------------------


class ServiceCreate(_Schema):
    id: uuid.UUID | None = None
    organization_id: uuid.UUID
    slug: OptSlug = None
    name: Annotated[Required, StringConstraints(max_length=300)]
    alternate_name: OptText = None
    description: Description = ""
    url: OptUrl = None
    email: OptEmail = None
    status: ServiceStatus = "active"
    publication_status: PublicationStatus = "draft"
    minimum_age: OptAge = None
    maximum_age: OptAge = None
    eligibility_description: OptText = None
    target_groups: list[TargetGroup] = []
    needs: list[Need] = []
    delivery: list[Delivery] = []
    languages: list[LanguageCode] = []
    coverage: Coverage
    radius_km: Annotated[float, Field(gt=0, le=1000)] | None = None
    coverage_states: list[StateCode] = []
    prison_ids: list[uuid.UUID] = []
    source: Required
    assured_date: date
    synthetic: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ServiceCreate:
        if None not in (self.minimum_age, self.maximum_age) and (
            self.minimum_age > self.maximum_age  # type: ignore[operator]
        ):
            raise field_error("age_order", "maximum_age is below minimum_age", "maximum_age")
        self._check_coverage()
        self.target_groups = vocab.in_vocabulary_order(self.target_groups, vocab.TARGET_GROUPS)
        self.needs = vocab.in_vocabulary_order(self.needs, vocab.NEEDS)
        self.delivery = vocab.in_vocabulary_order(self.delivery, vocab.DELIVERY)
        self.coverage_states = vocab.in_vocabulary_order(
            self.coverage_states, vocab.FEDERAL_STATES
        )
        self.languages = sorted(set(self.languages))
        self.prison_ids = sorted(set(self.prison_ids))
        return self

    def _check_coverage(self) -> None:
        if self.coverage == "radius" and self.radius_km is None:
            raise field_error("coverage", "required for coverage 'radius'", "radius_km")
        if self.coverage != "radius" and self.radius_km is not None:
            raise field_error("coverage", "only used with coverage 'radius'", "radius_km")
        if self.coverage == "states" and not self.coverage_states:
            raise field_error("coverage", "coverage 'states' needs at least one state", "coverage")
        if self.coverage != "states" and self.coverage_states:
            raise field_error(
                "coverage", "listed states are only used with coverage 'states'", "coverage"
            )


class ServicePublic(ServiceCreate):
    id: uuid.UUID


# -- locations ---------------------------------------------------------------------------------


class LocationCreate(_Schema):
    id: uuid.UUID | None = None
    # HSDS makes this optional; every place of ours belongs to the organization that runs it.
    organization_id: uuid.UUID
    location_type: LocationType = "physical"
    name: OptText = None
    alternate_name: OptText = None
    description: OptText = None
    transportation: OptText = None
    url: OptUrl = None
    latitude: OptLatitude = None
    longitude: OptLongitude = None
    address_1: OptText = None
    city: OptText = None
    postal_code: OptPostalCode = None
    state_province: OptState = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "DE"

    @model_validator(mode="after")
    def _paired(self) -> LocationCreate:
        _coordinates_paired(self.latitude, self.longitude)
        return self


class LocationPublic(LocationCreate):
    id: uuid.UUID


# -- prisons -----------------------------------------------------------------------------------


class VisitInfoSchema(_Schema):
    """Visit rules of one prison; None means unknown (the bot then says how to find out)."""

    regular_times: OptText = None
    booking: OptText = None
    booking_lead_time: OptText = None
    children_rules: OptText = None
    family_rooms: bool | None = None
    family_days: OptText = None
    video_visits: bool | None = None
    special_visits_minors: OptText = None


class PrisonCreate(_Schema):
    id: uuid.UUID | None = None
    slug: Slug
    name: Annotated[Required, StringConstraints(max_length=300)]
    address: OptText = None
    postal_code: OptPostalCode = None
    city: OptText = None
    federal_state: StateCode
    latitude: OptLatitude = None
    longitude: OptLongitude = None
    coordinates_note: OptText = None
    prison_types: list[PrisonType] = []
    website: OptUrl = None
    phone: OptPhone = None
    visits: VisitInfoSchema = VisitInfoSchema()
    source: Required
    assured_date: date
    status: ServiceStatus = "active"
    publication_status: PublicationStatus = "draft"
    synthetic: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PrisonCreate:
        _coordinates_paired(self.latitude, self.longitude)
        self.prison_types = vocab.in_vocabulary_order(self.prison_types, vocab.PRISON_TYPES)
        return self


class PrisonPublic(PrisonCreate):
    id: uuid.UUID


# -- what an editor changes in the console -----------------------------------------------------


class PhoneLine(_Schema):
    """A phone as the console edits it. Type and extension are optional here: a number that stays
    on the form keeps the ones it had (directory.curation)."""

    number: Annotated[Required, StringConstraints(max_length=100)]
    description: OptText = None
    type: PhoneType | None = None
    extension: OptExtension = None


class ServiceUpdate(_Schema):
    """The fields of a service an editor may change; the form sends all of them. The merged
    record is validated again as a ServicePublic, so an edit meets the same rules as an import.
    Publication and the check date have their own actions (directory.curation)."""

    name: Annotated[Required, StringConstraints(max_length=300)]
    description: Description = ""
    url: OptUrl = None
    email: OptEmail = None
    status: ServiceStatus = "active"
    minimum_age: OptAge = None
    maximum_age: OptAge = None
    eligibility_description: OptText = None
    target_groups: list[TargetGroup] = []
    needs: list[Need] = []
    delivery: list[Delivery] = []
    languages: list[LanguageCode] = []
    coverage: Coverage
    radius_km: Annotated[float, Field(gt=0, le=1000)] | None = None
    coverage_states: list[StateCode] = []
    source: Required
    phones: list[PhoneLine] = []


class PrisonUpdate(_Schema):
    """The fields of a prison an editor may change. Address and coordinates are left to imports:
    they travel together, and a moved point changes which offers are near the prison."""

    name: Annotated[Required, StringConstraints(max_length=300)]
    prison_types: list[PrisonType] = []
    website: OptUrl = None
    phone: OptPhone = None
    visits: VisitInfoSchema = VisitInfoSchema()
    source: Required
    status: ServiceStatus = "active"


# -- a whole directory -------------------------------------------------------------------------


class DirectoryPublic(_Schema):
    """A complete, validated directory in flat form: what export reads and import writes."""

    organizations: list[OrganizationPublic] = []
    services: list[ServicePublic] = []
    locations: list[LocationPublic] = []
    service_at_locations: list[ServiceAtLocationPublic] = []
    phones: list[PhonePublic] = []
    schedules: list[SchedulePublic] = []
    accessibility: list[AccessibilityPublic] = []
    prisons: list[PrisonPublic] = []

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in type(self).model_fields}
