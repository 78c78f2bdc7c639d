"""The records the referral engine ranks: flat, immutable snapshots of published directory data.

The directory (directory/) turns its HSDS-aligned tables into these; the engine (referral/)
never touches the database. Vocabulary (codes, never display text):

- target_groups: child, teen, young_adult, caregiver, parent_in_prison, professional
- needs: visits, talking, school, money, rights, release, crisis, material, training
- delivery: in_person, phone, online, group
- coverage: radius (around latitude/longitude, radius_km), states (the listed federal states),
  national (all of Germany, phone or in person), online (no place at all)
- languages: ISO 639-1 codes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

TARGET_GROUPS = ("child", "teen", "young_adult", "caregiver", "parent_in_prison", "professional")
NEEDS = (
    "visits",
    "talking",
    "school",
    "money",
    "rights",
    "release",
    "crisis",
    "material",
    "training",
)
DELIVERY = ("in_person", "phone", "online", "group")
COVERAGE = ("radius", "states", "national", "online")
STATE_NAMES = {
    "BW": "Baden-Württemberg",
    "BY": "Bayern",
    "BE": "Berlin",
    "BB": "Brandenburg",
    "HB": "Bremen",
    "HH": "Hamburg",
    "HE": "Hessen",
    "MV": "Mecklenburg-Vorpommern",
    "NI": "Niedersachsen",
    "NW": "Nordrhein-Westfalen",
    "RP": "Rheinland-Pfalz",
    "SL": "Saarland",
    "SN": "Sachsen",
    "ST": "Sachsen-Anhalt",
    "SH": "Schleswig-Holstein",
    "TH": "Thüringen",
}
FEDERAL_STATES = tuple(STATE_NAMES)


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """One published service at one place (a service with two locations gives two records)."""

    service_id: str
    name: str
    organisation: str
    description: str
    target_groups: frozenset[str]
    needs: frozenset[str]
    delivery: frozenset[str]
    languages: frozenset[str]
    coverage: str
    source: str
    assured_date: date
    radius_km: float | None = None
    states: frozenset[str] = frozenset()
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    min_age: int | None = None
    max_age: int | None = None
    phone: str | None = None
    website: str | None = None
    prison_ids: frozenset[str] = frozenset()
    synthetic: bool = False


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """Visit rules of one prison as data; None means unknown (the bot says how to find out)."""

    regular_times: str | None = None
    booking: str | None = None
    booking_lead_time: str | None = None
    children_rules: str | None = None
    family_rooms: bool | None = None
    family_days: str | None = None
    video_visits: bool | None = None
    special_visits_minors: str | None = None


@dataclass(frozen=True, slots=True)
class PrisonRecord:
    prison_id: str
    slug: str
    name: str
    federal_state: str
    prison_types: frozenset[str]
    source: str
    assured_date: date
    # Unknown for prisons whose address no source gives: then only offers that name the prison
    # (prison_ids) count as "near the prison", never a guessed location.
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    address: str | None = None
    postal_code: str | None = None
    website: str | None = None
    phone: str | None = None
    visits: VisitInfo = field(default_factory=VisitInfo)
