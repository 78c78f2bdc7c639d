"""Offer schemas for the referral engine and the APIs."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict


class OfferPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    organisation: str
    description: str
    needs: list[str]
    roles: list[str]
    delivery: list[str]
    coverage: str
    radius_km: int | None
    city: str | None
    federal_state: str | None
    latitude: float | None
    longitude: float | None
    phone: str | None
    website: str | None
    source: str
    last_checked: date
