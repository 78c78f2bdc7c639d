"""Directory tables, aligned with Open Referral HSDS 3.0, plus prisons and a change history.

HSDS names are kept (organizations, services, locations, service_at_locations, phones,
schedules, accessibility; assured_date, status, minimum_age ...). Where we deviate, on purpose:

- The facets (target groups, needs, delivery) and the service languages are JSON lists of codes on
  the service instead of attribute/taxonomy_term and language rows: the vocabularies are small
  and fixed, and the referral engine reads whole services anyway. Import and export map them to
  and from HSDS `attributes` and `languages`.
- Coverage is three columns on the service (coverage, radius_km, coverage_states); exports write
  the listed states as HSDS `service_areas`.
- One address per location, inline (address_1, city, postal_code, state_province, country).
- Prisons are our own extension: visit rules as data, every unknown left empty.

Every record carries its source and the date an editor last checked it (HSDS `assured_date`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UTCDateTime
from core.models import new_id

service_prisons = Table(
    "service_prisons",
    Base.metadata,
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
    Column("prison_id", ForeignKey("prisons.id", ondelete="CASCADE"), primary_key=True),
)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # Stable handle for seed data; records from other HSDS sources may have none.
    slug: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    # Where the facts come from: one or more addresses or a publication, as editors write it.
    source: Mapped[str] = mapped_column(Text)
    assured_date: Mapped[date | None] = mapped_column(Date)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    services: Mapped[list[Service]] = relationship(back_populates="organization")
    phones: Mapped[list[Phone]] = relationship(
        primaryjoin="Organization.id == Phone.organization_id", viewonly=True
    )


class Service(Base):
    __tablename__ = "services"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(254))
    # HSDS status (active, inactive, defunct, temporarily closed) says whether the service runs;
    # publication_status (draft, published) says whether an editor has released the entry.
    status: Mapped[str] = mapped_column(String(20), default="active")
    publication_status: Mapped[str] = mapped_column(String(20), default="draft")
    minimum_age: Mapped[int | None] = mapped_column(Integer)
    maximum_age: Mapped[int | None] = mapped_column(Integer)
    eligibility_description: Mapped[str | None] = mapped_column(Text)
    target_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)
    delivery: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    coverage: Mapped[str] = mapped_column(String(20))
    radius_km: Mapped[float | None] = mapped_column(Float)
    coverage_states: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(Text)
    assured_date: Mapped[date] = mapped_column(Date)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship(back_populates="services")
    service_at_locations: Mapped[list[ServiceAtLocation]] = relationship(viewonly=True)
    phones: Mapped[list[Phone]] = relationship(
        primaryjoin="Service.id == Phone.service_id", viewonly=True
    )
    prisons: Mapped[list[Prison]] = relationship(secondary=service_prisons, viewonly=True)


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    location_type: Mapped[str] = mapped_column(String(20), default="physical")
    name: Mapped[str | None] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    transportation: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address_1: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    # Two-letter code of the federal state (see referral.records.FEDERAL_STATES).
    state_province: Mapped[str | None] = mapped_column(String(2))
    country: Mapped[str] = mapped_column(String(2), default="DE")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceAtLocation(Base):
    __tablename__ = "service_at_locations"
    __table_args__ = (UniqueConstraint("service_id", "location_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text)

    location: Mapped[Location] = relationship(viewonly=True)


class Phone(Base):
    """Belongs to exactly one of organization, service or location."""

    __tablename__ = "phones"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(100))
    extension: Mapped[str | None] = mapped_column(String(20))
    type: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)


class Schedule(Base):
    """HSDS 3.0 schedule (RFC 5545 recurrence fields); belongs to a service or a location."""

    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), index=True
    )
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    dtstart: Mapped[date | None] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)
    freq: Mapped[str | None] = mapped_column(String(10))
    interval: Mapped[int | None] = mapped_column(Integer)
    byday: Mapped[str | None] = mapped_column(String(50))
    bymonthday: Mapped[str | None] = mapped_column(String(100))
    # Local time in Germany (Europe/Berlin); HSDS's UTC offset would be wrong half the year.
    opens_at: Mapped[time | None] = mapped_column(Time)
    closes_at: Mapped[time | None] = mapped_column(Time)
    description: Mapped[str | None] = mapped_column(Text)
    schedule_link: Mapped[str | None] = mapped_column(String(500))
    attending_type: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)


class Accessibility(Base):
    __tablename__ = "accessibility"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))


class Prison(Base):
    """A prison (JVA). Visit rules are data; a column left empty means "not known"."""

    __tablename__ = "prisons"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(100))
    federal_state: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # How the coordinates were obtained (e.g. geocoded from the address), so editors can judge.
    coordinates_note: Mapped[str | None] = mapped_column(Text)
    prison_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    website: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(100))
    visit_regular_times: Mapped[str | None] = mapped_column(Text)
    visit_booking: Mapped[str | None] = mapped_column(Text)
    visit_booking_lead_time: Mapped[str | None] = mapped_column(Text)
    visit_children_rules: Mapped[str | None] = mapped_column(Text)
    visit_family_rooms: Mapped[bool | None] = mapped_column(Boolean)
    visit_family_days: Mapped[str | None] = mapped_column(Text)
    visit_video_visits: Mapped[bool | None] = mapped_column(Boolean)
    visit_special_visits_minors: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    assured_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active")
    publication_status: Mapped[str] = mapped_column(String(20), default="draft")
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DirectoryChange(Base):
    """Who changed which record when, and how: {field: [old, new]} (HSDS `metadata`, condensed).

    entity_id has no foreign key on purpose: the history outlives a deleted record.
    """

    __tablename__ = "directory_changes"
    __table_args__ = (Index("ix_directory_changes_entity", "entity_type", "entity_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(10))  # create | update | delete
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # "seed", "import" or an editor's login; counsellor_id points to the editor while one exists.
    actor: Mapped[str] = mapped_column(String(100))
    counsellor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), index=True
    )
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
