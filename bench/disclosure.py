"""Disclosure control benchmark: time to protect one synthetic monthly report.

    .venv/bin/python -m bench.disclosure                # 8 tables, seeds 1..5
    .venv/bin/python -m bench.disclosure --seeds 20 --scale 0.5

The report has two measures (conversations, contacts), each broken down by state (16 states and
"unknown") against four attributes of six values each. The four tables of a measure share its
state margin and its grand total, and contacts are at most conversations per state (every
contact has had a conversation), so the whole report is one linked component of about 900
keys. Counts are Poisson around state population times attribute share, so small states and
rare attributes give many cells under 5, as in a real month.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from core.disclosure import AtMost, Key, Status, Sum, protect

# Population in millions: the expected share of each state.
STATES = {
    "BW": 11.3, "BY": 13.4, "BE": 3.9, "BB": 2.6, "HB": 0.7, "HH": 1.9, "HE": 6.4, "MV": 1.6,
    "NI": 8.1, "NW": 18.1, "RP": 4.2, "SL": 1.0, "SN": 4.1, "ST": 2.2, "SH": 3.0, "TH": 2.1,
    "unknown": 0.6,
}  # fmt: skip
ATTRIBUTES = {
    "role": {"teen": 35, "child": 15, "parent": 25, "carer": 10, "professional": 10, "other": 5},
    "age": {"<10": 10, "10-12": 20, "13-15": 30, "16-17": 20, "18-21": 12, "adult": 8},
    "topic": {"visits": 30, "school": 20, "feelings": 25, "money": 10, "release": 10, "law": 5},
    "channel": {"telegram": 55, "web": 30, "referral": 6, "phone": 5, "mail": 3, "other": 1},
}


def build_report(
    *, rng: np.random.Generator, scale: float
) -> tuple[dict[Key, int], list[Sum], list[AtMost]]:
    values: dict[Key, int] = {}
    sums: list[Sum] = []
    at_most: list[AtMost] = []
    weights = np.array(list(STATES.values()))
    conversations = rng.poisson(weights / weights.sum() * 1200 * scale)
    for measure, per_state in (
        ("conversation", conversations),
        ("contact", rng.binomial(conversations, 0.7)),
    ):
        state_keys = [(measure, (("state", state),)) for state in STATES]
        grand = (measure, ())
        values.update(zip(state_keys, (int(n) for n in per_state), strict=True))
        values[grand] = int(per_state.sum())
        sums.append(Sum(total=grand, parts=tuple(state_keys)))
        for attribute, shares in ATTRIBUTES.items():
            p = np.array(list(shares.values()), dtype=float)
            cells = np.array([rng.multinomial(n, p / p.sum()) for n in per_state])
            column_keys = [(measure, ((attribute, v),)) for v in shares]
            grid = [[(measure, (("state", s), (attribute, v))) for v in shares] for s in STATES]
            for row, counts in zip(grid, cells, strict=True):
                values.update(zip(row, (int(n) for n in counts), strict=True))
            values.update(zip(column_keys, (int(n) for n in cells.sum(axis=0)), strict=True))
            sums.extend(
                Sum(total=total, parts=tuple(row))
                for total, row in zip(state_keys, grid, strict=True)
            )
            sums.extend(
                Sum(total=total, parts=tuple(row[j] for row in grid))
                for j, total in enumerate(column_keys)
            )
            sums.append(Sum(total=grand, parts=tuple(column_keys)))
    for state in STATES:
        at_most.append(
            AtMost(
                part=("contact", (("state", state),)), whole=("conversation", (("state", state),))
            )
        )
    at_most.append(AtMost(part=("contact", ()), whole=("conversation", ())))
    return values, sums, at_most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="reports to protect (seeds 1..N)")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the month")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    timings = []
    for seed in range(1, args.seeds + 1):
        values, sums, at_most = build_report(rng=np.random.default_rng(seed), scale=args.scale)
        started = time.perf_counter()
        statuses = protect(values=values, sums=sums, at_most=at_most)
        elapsed = time.perf_counter() - started
        timings.append(elapsed)
        count = {status: 0 for status in Status}
        for status in statuses.values():
            count[status] += 1
        print(
            f"seed {seed}: {len(values)} keys, {len(sums)} sums, "
            f"{count[Status.SMALL]} small, {count[Status.WITHHELD]} withheld, "
            f"{count[Status.SHOWN]} shown: {elapsed * 1000:.0f} ms"
        )
    print(f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
