"""The referral index: ranks published offers for one user in about a millisecond.

Built once from `OfferRecord`s and `PrisonRecord`s (referral/records.py), swapped whole when the
directory changes (`ReferralIndexHolder`). Offers become numpy columns: bitmasks for target
groups, needs, delivery, languages and states, ages, coordinates. An offer with a radius is also
listed in every cell of a 0.25 degree grid that its circle touches, so a query reads the one cell
under the user and computes exact distances only for the offers listed there. State, national and
online offers sit in short lists of their own. No query loops over all offers in Python.

A query: hard filters first (target group for the role, age within min/max, coverage), then a
score (need match, distance decay, language, delivery), sorted, one location per service, and a
nationwide offer always among the results (one with a phone number when no other result has
one). With the parent's prison, offers near the prison (visit support, or linked to that
prison) come as a second list. Every match carries a `Reason` made of codes and numbers;
callers render it through the translation catalogue (referral/cards.py).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from referral.gazetteer import Area
from referral.records import (
    COVERAGE,
    DELIVERY,
    FEDERAL_STATES,
    NEEDS,
    TARGET_GROUPS,
    OfferRecord,
    PrisonRecord,
)
from referral.text import Lexicon, default_lexicon

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
CELL_DEGREES = 0.25
DEFAULT_RADIUS_KM = 50.0
DEFAULT_LIMIT = 5
DEFAULT_NEAR_PRISON_LIMIT = 3
MAX_LIMIT = 50
MAX_AGE = 120
# Scoring weights. A requested need that an offer covers counts most; closeness decides among
# offers that help equally; language and delivery break near-ties. A state-wide offer scores like
# a local one about 20 km away, a nationwide one like a local one about 40 km away.
NEED_WEIGHT = 3.0
DISTANCE_WEIGHT = 1.5
DISTANCE_DECAY_KM = 25.0
STATE_SCORE = 0.6
NATIONWIDE_SCORE = 0.3
LANGUAGE_WEIGHT = 0.8
DELIVERY_WEIGHT = 0.4
PRISON_LINK_WEIGHT = 2.0
# Sorting only the best few candidates (times this factor) is enough for the top `limit`.
PRESELECT_FACTOR = 8
# The 64 most frequent languages get one bit each; rarer ones keep a list of their rows.
LANGUAGE_BITS = 64

RADIUS, STATES, NATIONAL, ONLINE = (COVERAGE.index(c) for c in COVERAGE)
# A record with a coverage code outside the vocabulary reaches nobody instead of failing the build.
UNUSABLE = 255
Scope = Literal["local", "state", "national", "online", "near_prison"]
_SCOPES: tuple[Scope, ...] = ("local", "state", "national", "online")

IntArray = npt.NDArray[np.integer[Any]]
FloatArray = npt.NDArray[np.float64]


class InvalidQuery(ValueError):
    """A query the index cannot answer; the message names the field, never the value."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class UnknownPrison(LookupError):
    """No prison with that slug or id in the index."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an offer fits, as codes and numbers for the translation catalogue.

    scope: local (its radius reaches the user), state (it covers the user's federal state),
    national, online, or near_prison (it supports visits at, or is linked to, the parent's
    prison). distance_km: from the user (or, for near_prison, from the prison) when the offer has
    a place. target_group: the role that made the offer eligible. needs: requested needs it
    covers. language / delivery: the requested ones it offers. state: the federal state for
    scope "state".
    """

    scope: Scope
    distance_km: float | None
    target_group: str | None
    needs: tuple[str, ...] = ()
    language: str | None = None
    delivery: tuple[str, ...] = ()
    state: str | None = None
    linked_prison: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    offer: OfferRecord
    score: float
    reason: Reason

    @property
    def distance_km(self) -> float | None:
        return self.reason.distance_km


@dataclass(frozen=True, slots=True)
class Referral:
    """The answer to one query. `needs` are the needs ranked for (buttons and free text),
    `needs_from_text` those that came from the free text alone."""

    matches: list[Match]
    needs: tuple[str, ...] = ()
    needs_from_text: tuple[str, ...] = ()
    prison: PrisonRecord | None = None
    near_prison: list[Match] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Query:
    role_bit: int
    role: str | None
    age: int | None
    needs: int
    need_count: int
    language_bit: int
    language: str | None
    delivery: int


@dataclass(frozen=True, slots=True)
class _Columns:
    """One row per offer record."""

    groups: npt.NDArray[np.uint8]
    needs: npt.NDArray[np.uint16]
    delivery: npt.NDArray[np.uint8]
    languages: npt.NDArray[np.uint64]
    min_age: npt.NDArray[np.int16]
    max_age: npt.NDArray[np.int16]
    coverage: npt.NDArray[np.uint8]
    lat: FloatArray
    lon: FloatArray
    cos_lat: FloatArray
    radius_km: FloatArray
    phone: npt.NDArray[np.bool_]
    service: npt.NDArray[np.int32]
    tiebreak: npt.NDArray[np.int32]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class _Grid:
    """Radius offers bucketed by the cells their circle touches: the offers of cell c are
    entries[starts[c]:starts[c + 1]]."""

    lat0: float
    lon0: float
    rows: int
    cols: int
    starts: npt.NDArray[np.int64]
    entries: npt.NDArray[np.int32]

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.entries.nbytes)

    def at(self, lat: float, lon: float) -> npt.NDArray[np.int32]:
        row = math.floor((lat - self.lat0) / CELL_DEGREES)
        col = math.floor((lon - self.lon0) / CELL_DEGREES)
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            return self.entries[:0]
        cell = row * self.cols + col
        return self.entries[self.starts[cell] : self.starts[cell + 1]]


@dataclass(frozen=True, slots=True)
class _Scored:
    """Candidates that passed the hard filters, with their scores and distances (NaN: none)."""

    rows: IntArray
    scores: FloatArray
    distances: FloatArray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, selector: npt.NDArray[Any] | slice) -> _Scored:
        return _Scored(self.rows[selector], self.scores[selector], self.distances[selector])

    def picks(self) -> list[tuple[int, float, float]]:
        return list(
            zip(self.rows.tolist(), self.scores.tolist(), self.distances.tolist(), strict=True)
        )


class ReferralIndex:
    """Immutable once built; share it between requests and threads."""

    def __init__(
        self,
        records: Sequence[OfferRecord],
        prisons: Sequence[PrisonRecord] = (),
        *,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.records = tuple(records)
        self.lexicon = lexicon or default_lexicon()
        self._languages = _language_bits(self.records)
        self._rare_languages = _rare_language_lists(self.records, self._languages)
        self._cols = _columns(self.records, self._languages)
        self._grid = _grid(self._cols)
        self._by_state = _state_lists(self.records, self._cols)
        nationwide = (self._cols.coverage == NATIONAL) | (self._cols.coverage == ONLINE)
        self._nationwide = np.flatnonzero(nationwide).astype(np.int32)
        self._by_prison = _prison_lists(self.records)
        self._prisons = {p.slug: p for p in prisons} | {p.prison_id: p for p in prisons}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def nbytes(self) -> int:
        """Bytes held in numpy arrays (columns, grid, lists); the records themselves excluded."""
        lists = [self._nationwide, *self._by_state.values(), *self._by_prison.values()]
        return self._cols.nbytes + self._grid.nbytes + sum(a.nbytes for a in lists)

    @property
    def grid_entries(self) -> int:
        return len(self._grid.entries)

    @property
    def prisons(self) -> list[PrisonRecord]:
        """Every prison once, in a stable order (by name)."""
        unique = {prison.prison_id: prison for prison in self._prisons.values()}
        return sorted(unique.values(), key=lambda prison: (prison.name, prison.prison_id))

    def prison(self, key: str) -> PrisonRecord:
        """A prison by slug or id."""
        try:
            return self._prisons[key]
        except KeyError:
            raise UnknownPrison() from None

    def search(
        self,
        *,
        area: Area | None = None,
        role: str | None = None,
        age: int | None = None,
        needs: Iterable[str] = (),
        text: str | None = None,
        language: str | None = None,
        delivery: Iterable[str] = (),
        prison: str | None = None,
        limit: int = DEFAULT_LIMIT,
        near_prison_limit: int = DEFAULT_NEAR_PRISON_LIMIT,
    ) -> Referral:
        """Rank offers for a user at `area` (None: nationwide and online offers only).

        Raises InvalidQuery for unknown codes or out-of-range numbers, UnknownPrison for a prison
        that is not in the index."""
        requested = _need_codes(needs)
        limit, near_prison_limit = _limit(limit), _limit(near_prison_limit)
        jail = self.prison(prison) if prison else None
        from_text = self.lexicon.needs(text) if text else frozenset()
        wanted = tuple(n for n in NEEDS if n in requested | from_text)
        query = self._query(role=role, age=age, needs=wanted, language=language, delivery=delivery)
        chosen = self._for_user(query, area, limit)
        matches = [self._match(pick, query, area) for pick in chosen]
        near: list[Match] = []
        if jail is not None:
            shown = {int(self._cols.service[row]) for row, _, _ in chosen}
            near = self._near_prison(query, jail, shown, near_prison_limit)
        return Referral(
            matches=matches,
            needs=wanted,
            needs_from_text=tuple(n for n in NEEDS if n in from_text),
            prison=jail,
            near_prison=near,
        )

    # -- the query ---------------------------------------------------------------------------

    def _query(
        self,
        *,
        role: str | None,
        age: int | None,
        needs: tuple[str, ...],
        language: str | None,
        delivery: Iterable[str],
    ) -> _Query:
        if role is not None and role not in TARGET_GROUPS:
            raise InvalidQuery("role", "unknown role")
        if age is not None and not 0 <= age <= MAX_AGE:
            raise InvalidQuery("age", f"age must be between 0 and {MAX_AGE}")
        modes = frozenset(delivery)
        if not modes <= set(DELIVERY):
            raise InvalidQuery("delivery", "unknown delivery mode")
        return _Query(
            role_bit=_mask([role], TARGET_GROUPS) if role else 0,
            role=role,
            age=age,
            needs=_mask(needs, NEEDS),
            need_count=len(needs),
            language_bit=self._languages.get(language, 0) if language else 0,
            language=language,
            delivery=_mask(modes, DELIVERY),
        )

    def _eligible(self, rows: IntArray, query: _Query) -> npt.NDArray[np.bool_]:
        cols = self._cols
        ok = np.ones(len(rows), dtype=bool)
        if query.role_bit:
            ok &= (cols.groups[rows] & query.role_bit) != 0
        if query.age is not None:
            ok &= (cols.min_age[rows] <= query.age) & (query.age <= cols.max_age[rows])
        return ok

    def _distances(self, rows: IntArray, lat: float, lon: float) -> FloatArray:
        """Haversine distance in km from a point (degrees) to the offers' places (NaN: none)."""
        cols = self._cols
        phi, lam = math.radians(lat), math.radians(lon)
        half_dphi = (cols.lat[rows] - phi) / 2
        half_dlam = (cols.lon[rows] - lam) / 2
        a = np.sin(half_dphi) ** 2 + math.cos(phi) * cols.cos_lat[rows] * np.sin(half_dlam) ** 2
        distances: FloatArray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        return distances

    def _score(self, rows: IntArray, query: _Query, distances: FloatArray) -> FloatArray:
        cols = self._cols
        coverage = cols.coverage[rows]
        closeness = np.where(
            coverage == RADIUS,
            DISTANCE_WEIGHT * np.exp(-np.nan_to_num(distances) / DISTANCE_DECAY_KM),
            np.where(coverage == STATES, STATE_SCORE, NATIONWIDE_SCORE),
        )
        score = closeness
        if query.need_count:
            covered = np.bitwise_count(cols.needs[rows] & np.uint16(query.needs))
            score = score + NEED_WEIGHT * covered / query.need_count
        if query.language is not None:
            score = score + LANGUAGE_WEIGHT * self._speaks(rows, query)
        if query.delivery:
            score = score + DELIVERY_WEIGHT * ((cols.delivery[rows] & query.delivery) != 0)
        return score

    def _best(self, scored: _Scored, keep: int) -> _Scored:
        """Best first (score, then distance, then name), one row per service, at most `keep`."""
        wide = keep * PRESELECT_FACTOR
        if len(scored) > wide:
            # Only rows that can reach the top need sorting; rows tied at the cut stay in, and
            # when services with many places leave too few, the full sort below takes over.
            cut = np.partition(scored.scores, len(scored) - wide)[len(scored) - wide]
            head = self._dedup_sorted(scored.take(scored.scores >= cut))
            if len(head) >= keep:
                return head.take(slice(keep))
        return self._dedup_sorted(scored).take(slice(keep))

    def _speaks(self, rows: IntArray, query: _Query) -> npt.NDArray[np.bool_]:
        if query.language_bit:
            return (self._cols.languages[rows] & np.uint64(query.language_bit)) != 0
        rare = self._rare_languages.get(query.language or "")
        return np.zeros(len(rows), dtype=bool) if rare is None else np.isin(rows, rare)

    def _dedup_sorted(self, scored: _Scored) -> _Scored:
        near_first = np.where(np.isnan(scored.distances), 0.0, scored.distances)
        order = np.lexsort((self._cols.tiebreak[scored.rows], near_first, -scored.scores))
        services = self._cols.service[scored.rows[order]]
        _, first = np.unique(services, return_index=True)
        return scored.take(order[np.sort(first)])

    def _nationwide_rows(self, rows: IntArray) -> npt.NDArray[np.bool_]:
        coverage = self._cols.coverage[rows]
        return (coverage == NATIONAL) | (coverage == ONLINE)

    # -- the user's place ----------------------------------------------------------------------

    def _for_user(
        self, query: _Query, area: Area | None, limit: int
    ) -> list[tuple[int, float, float]]:
        """(row, score, distance) of the best offers. The last place goes to a fitting
        nationwide offer when none made it on its own, and to a fitting nationwide offer with a
        phone number when the other places have no number: an online-only list leaves a child
        without a number to call, and a local list fails whoever cannot go there."""
        scored = self._scored_for_user(query, area)
        top = self._best(scored, limit)
        has_nationwide = bool(self._nationwide_rows(top.rows).any())
        if has_nationwide and self._cols.phone[top.rows].any():
            return top.picks()
        kept = top.take(slice(limit - 1))
        elsewhere = ~np.isin(self._cols.service[scored.rows], self._cols.service[top.rows])
        candidates = self._nationwide_rows(scored.rows) & elsewhere
        if not self._cols.phone[kept.rows].any():
            callable_ = candidates & self._cols.phone[scored.rows]
            if callable_.any():
                candidates = callable_
            elif has_nationwide:
                return top.picks()
        fallback = self._best(scored.take(candidates), 1)
        if not len(fallback):
            return top.picks()
        return [*kept.picks(), *fallback.picks()]

    def _scored_for_user(self, query: _Query, area: Area | None) -> _Scored:
        parts = [self._nationwide]
        if area is not None:
            parts.append(self._grid.at(area.latitude, area.longitude))
            if area.federal_state in self._by_state:
                parts.append(self._by_state[area.federal_state])
        rows = np.concatenate(parts).astype(np.int64)
        rows = rows[self._eligible(rows, query)]
        distances = np.full(len(rows), np.nan)
        if area is not None:
            local = self._cols.coverage[rows] == RADIUS
            distances[local] = self._distances(rows[local], area.latitude, area.longitude)
            reach = self._cols.radius_km[rows]
            inside = ~local | (distances <= reach)
            rows, distances = rows[inside], distances[inside]
        return _Scored(rows, self._score(rows, query, distances), distances)

    def _match(self, pick: tuple[int, float, float], query: _Query, area: Area | None) -> Match:
        row, score, distance = pick
        coverage = int(self._cols.coverage[row])
        reason = self._reason(
            row,
            query,
            scope=_SCOPES[coverage],
            distance=distance,
            state=area.federal_state if area is not None and coverage == STATES else None,
        )
        return Match(self.records[row], round(score, 4), reason)

    def _reason(
        self,
        row: int,
        query: _Query,
        *,
        scope: Scope,
        distance: float,
        state: str | None = None,
        linked: bool = False,
    ) -> Reason:
        offer = self.records[row]
        return Reason(
            scope=scope,
            distance_km=None if math.isnan(distance) else round(distance, 1),
            target_group=query.role,
            needs=_codes(int(self._cols.needs[row]) & query.needs, NEEDS),
            language=query.language if query.language in offer.languages else None,
            delivery=_codes(int(self._cols.delivery[row]) & query.delivery, DELIVERY),
            state=state,
            linked_prison=linked,
        )

    # -- the parent's prison -------------------------------------------------------------------

    def _near_prison(
        self, query: _Query, jail: PrisonRecord, shown: set[int], limit: int
    ) -> list[Match]:
        """Visit support whose area reaches the prison, and offers linked to the prison; the
        services already shown for the user's own place are left out. A prison without known
        coordinates is never placed by guessing: then only linked offers and visit support
        for its whole federal state count."""
        linked_rows = self._by_prison.get(jail.prison_id, np.empty(0, dtype=np.int32))
        rows = self._prison_candidates(jail, linked_rows)
        rows = rows[self._eligible(rows, query)]
        rows = rows[~np.isin(self._cols.service[rows], list(shown))]
        distances = np.full(len(rows), np.nan)
        local = self._cols.coverage[rows] == RADIUS
        if jail.latitude is not None and jail.longitude is not None:
            distances[local] = self._distances(rows[local], jail.latitude, jail.longitude)
        linked = np.isin(rows, linked_rows)
        # NaN compares false: a radius offer reaches no prison of unknown place.
        reaches = ~local | (distances <= self._cols.radius_km[rows])
        visits = (self._cols.needs[rows] & (1 << NEEDS.index("visits"))) != 0
        keep = linked | (reaches & visits)
        rows, distances, linked = rows[keep], distances[keep], linked[keep]
        scores = self._score(rows, query, distances) + PRISON_LINK_WEIGHT * linked
        best = self._best(_Scored(rows, scores, distances), limit)
        linked_ids = set(linked_rows.tolist())
        return [self._prison_match(pick, query, linked_ids) for pick in best.picks()]

    def _prison_candidates(self, jail: PrisonRecord, linked_rows: IntArray) -> IntArray:
        """Radius offers listed in the prison's cell, state offers for its state, linked offers;
        nationwide ones are already in the user's list."""
        parts: list[IntArray] = [
            self._by_state.get(jail.federal_state, np.empty(0, dtype=np.int32)),
            linked_rows,
        ]
        if jail.latitude is not None and jail.longitude is not None:
            parts.append(self._grid.at(jail.latitude, jail.longitude))
        rows = np.unique(np.concatenate(parts).astype(np.int64))
        return rows[self._cols.coverage[rows] <= STATES]

    def _prison_match(
        self, pick: tuple[int, float, float], query: _Query, linked: set[int]
    ) -> Match:
        row, score, distance = pick
        reason = self._reason(
            row, query, scope="near_prison", distance=distance, linked=row in linked
        )
        return Match(self.records[row], round(score, 4), reason)


class ReferralIndexHolder:
    """Holds the index in use; `rebuild` builds a new one and swaps it in with one assignment,
    so a request sees either the old or the new index, never a half-built one."""

    def __init__(self, index: ReferralIndex | None = None, *, lexicon: Lexicon | None = None):
        self._index = index
        self._lexicon = lexicon
        self._lock = threading.Lock()

    @property
    def current(self) -> ReferralIndex | None:
        return self._index

    def rebuild(
        self, records: Sequence[OfferRecord], prisons: Sequence[PrisonRecord] = ()
    ) -> ReferralIndex:
        # The lock only keeps two rebuilds from finishing out of order; readers never wait.
        with self._lock:
            index = ReferralIndex(records, prisons, lexicon=self._lexicon)
            self._index = index
        log.info("referral index built", extra={"offers": len(index), "bytes": index.nbytes})
        return index


# -- building ------------------------------------------------------------------------------------


def _mask(codes: Iterable[str | None], vocabulary: Sequence[str]) -> int:
    bits = 0
    for code in codes:
        if code in vocabulary:
            bits |= 1 << vocabulary.index(code)
    return bits


def _codes(bits: int, vocabulary: Sequence[str]) -> tuple[str, ...]:
    return tuple(code for i, code in enumerate(vocabulary) if bits >> i & 1)


def _need_codes(needs: Iterable[str]) -> frozenset[str]:
    codes = frozenset(needs)
    if not codes <= set(NEEDS):
        raise InvalidQuery("needs", "unknown need code")
    return codes


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("limit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _language_bits(records: Sequence[OfferRecord]) -> dict[str, int]:
    counts = Counter(code for record in records for code in record.languages)
    common = [code for code, _ in counts.most_common(LANGUAGE_BITS)]
    return {code: 1 << i for i, code in enumerate(common)}


def _rare_language_lists(
    records: Sequence[OfferRecord], bits: dict[str, int]
) -> dict[str, npt.NDArray[np.int32]]:
    lists: dict[str, list[int]] = {}
    for row, record in enumerate(records):
        for code in record.languages - bits.keys():
            lists.setdefault(code, []).append(row)
    return {code: np.array(found, dtype=np.int32) for code, found in lists.items()}


def _masks(
    values: Iterable[frozenset[str]], vocabulary: Sequence[str], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    cache: dict[frozenset[str], int] = {}
    out = [cache.get(v) or cache.setdefault(v, _mask(v, vocabulary)) for v in values]
    return np.array(out, dtype=dtype)


def _language_masks(
    records: Sequence[OfferRecord], bits: dict[str, int]
) -> npt.NDArray[np.uint64]:
    cache: dict[frozenset[str], int] = {}

    def mask(codes: frozenset[str]) -> int:
        if codes not in cache:
            cache[codes] = sum(bits.get(c, 0) for c in codes)
        return cache[codes]

    return np.array([mask(r.languages) for r in records], dtype=np.uint64)


def _columns(records: Sequence[OfferRecord], languages: dict[str, int]) -> _Columns:
    codes = {code: i for i, code in enumerate(COVERAGE)}
    coverage = np.array([codes.get(r.coverage, UNUSABLE) for r in records], dtype=np.uint8)
    lat = np.radians(np.array([r.latitude or 0.0 for r in records], dtype=np.float64))
    lon = np.radians(np.array([r.longitude or 0.0 for r in records], dtype=np.float64))
    placeless = np.array([r.latitude is None or r.longitude is None for r in records], dtype=bool)
    radius = np.array(
        [DEFAULT_RADIUS_KM if r.radius_km is None else r.radius_km for r in records],
        dtype=np.float64,
    )
    # A radius offer without a place can reach nobody: a negative radius keeps it out.
    radius[(coverage == RADIUS) & placeless] = -1.0
    services: dict[str, int] = {}
    names = sorted(range(len(records)), key=lambda i: (records[i].name, records[i].service_id))
    tiebreak = np.empty(len(records), dtype=np.int32)
    tiebreak[names] = np.arange(len(records), dtype=np.int32)
    return _Columns(
        groups=_masks((r.target_groups for r in records), TARGET_GROUPS, np.uint8),
        needs=_masks((r.needs for r in records), NEEDS, np.uint16),
        delivery=_masks((r.delivery for r in records), DELIVERY, np.uint8),
        languages=_language_masks(records, languages),
        min_age=np.array([r.min_age or 0 for r in records], dtype=np.int16),
        max_age=np.array(
            [MAX_AGE if r.max_age is None else r.max_age for r in records], dtype=np.int16
        ),
        coverage=coverage,
        lat=lat,
        lon=lon,
        cos_lat=np.cos(lat),
        radius_km=radius,
        phone=np.array([bool(r.phone) for r in records], dtype=bool),
        service=np.array(
            [services.setdefault(r.service_id, len(services)) for r in records], dtype=np.int32
        ),
        tiebreak=tiebreak,
    )


def _grid(cols: _Columns) -> _Grid:
    """Lists each radius offer in every cell that its circle's bounding box overlaps."""
    rows = np.flatnonzero((cols.coverage == RADIUS) & (cols.radius_km >= 0))
    if len(rows) == 0:
        return _Grid(0.0, 0.0, 0, 0, np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int32))
    lat, lon = np.degrees(cols.lat[rows]), np.degrees(cols.lon[rows])
    dlat = cols.radius_km[rows] / KM_PER_DEGREE
    # The circle is widest in longitude at its edge nearest the pole.
    widest = np.radians(np.minimum(np.abs(lat) + dlat, 89.0))
    dlon = dlat / np.cos(widest)
    lat0 = math.floor(float((lat - dlat).min()) / CELL_DEGREES) * CELL_DEGREES
    lon0 = math.floor(float((lon - dlon).min()) / CELL_DEGREES) * CELL_DEGREES
    r0 = np.floor((lat - dlat - lat0) / CELL_DEGREES).astype(np.int64)
    r1 = np.floor((lat + dlat - lat0) / CELL_DEGREES).astype(np.int64)
    c0 = np.floor((lon - dlon - lon0) / CELL_DEGREES).astype(np.int64)
    c1 = np.floor((lon + dlon - lon0) / CELL_DEGREES).astype(np.int64)
    n_rows, n_cols = int(r1.max()) + 1, int(c1.max()) + 1
    height, width = r1 - r0 + 1, c1 - c0 + 1
    counts = height * width
    owner = np.repeat(np.arange(len(rows)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    cells = (r0[owner] + k // width[owner]) * n_cols + c0[owner] + k % width[owner]
    order = np.argsort(cells, kind="stable")
    starts = np.searchsorted(cells[order], np.arange(n_rows * n_cols + 1))
    return _Grid(lat0, lon0, n_rows, n_cols, starts, rows[owner[order]].astype(np.int32))


def _state_lists(
    records: Sequence[OfferRecord], cols: _Columns
) -> dict[str, npt.NDArray[np.int32]]:
    rows = np.flatnonzero(cols.coverage == STATES)
    lists: dict[str, list[int]] = {}
    for row in rows.tolist():
        for state in records[row].states & set(FEDERAL_STATES):
            lists.setdefault(state, []).append(row)
    return {state: np.array(found, dtype=np.int32) for state, found in lists.items()}


def _prison_lists(records: Sequence[OfferRecord]) -> dict[str, npt.NDArray[np.int32]]:
    lists: dict[str, list[int]] = {}
    for row, record in enumerate(records):
        for prison_id in record.prison_ids:
            lists.setdefault(prison_id, []).append(row)
    return {key: np.array(found, dtype=np.int32) for key, found in lists.items()}
