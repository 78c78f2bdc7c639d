"""Rank offers for one user: hard filters first (role, coverage), then a score.

The walking skeleton ranks the small seed directory in a single pass; the directory issue replaces
the pass with a spatial index without changing this interface.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from referral.gazetteer import Area
from referral.records import OfferRecord

EARTH_RADIUS_KM = 6371.0
DEFAULT_RADIUS_KM = 50


@dataclass(frozen=True)
class Match:
    offer: OfferRecord
    distance_km: float | None
    matched_needs: tuple[str, ...]
    score: float


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def _reach(offer: OfferRecord, area: Area | None) -> tuple[bool, float | None]:
    """Whether the offer covers the area, and how far it is when that matters."""
    if offer.coverage in ("national", "online"):
        return True, None
    if offer.coverage == "states":
        return area is not None and area.federal_state in offer.states, None
    if area is None or offer.latitude is None or offer.longitude is None:
        return False, None
    km = distance_km(area.latitude, area.longitude, offer.latitude, offer.longitude)
    return km <= (offer.radius_km or DEFAULT_RADIUS_KM), km


def _best_per_service(ranked: list[Match]) -> list[Match]:
    """A service with several places comes as one record per place: keep its best-ranked one."""
    seen: set[str] = set()
    best = []
    for match in ranked:
        if match.offer.service_id not in seen:
            seen.add(match.offer.service_id)
            best.append(match)
    return best


def rank(
    offers: Iterable[OfferRecord],
    *,
    area: Area | None,
    role: str | None,
    needs: Sequence[str],
    limit: int = 3,
) -> list[Match]:
    candidates: list[Match] = []
    for offer in offers:
        if role and role not in offer.target_groups:
            continue
        covered, km = _reach(offer, area)
        if not covered:
            continue
        matched = tuple(need for need in needs if need in offer.needs)
        closeness = math.exp(-km / 30) if km is not None else 0.4
        score = 2.0 * bool(matched) + closeness + (0.5 if offer.coverage == "states" else 0.0)
        candidates.append(Match(offer, km, matched, score))
    candidates.sort(key=lambda m: (-m.score, m.distance_km or 0.0, m.offer.name))
    candidates = _best_per_service(candidates)
    chosen = candidates[:limit]
    # A nationwide phone or online offer is always there as a fallback, whatever else matched.
    if not any(m.offer.coverage == "national" for m in chosen):
        fallback = next((m for m in candidates if m.offer.coverage == "national"), None)
        if fallback is not None:
            chosen = [*chosen[: limit - 1], fallback]
    return chosen
