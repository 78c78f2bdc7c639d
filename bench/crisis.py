"""Crisis detection on the held-out part of the corpus: recall per category, language and group,
false alarms, and the time per message. `python -m bench.crisis` (after `python -m
bot.crisis_build` when the corpus changed).

Each layer is measured on its own (lexicon, model) and together (what the bot runs). The
held-out rows are the ones bot/crisis_build.py never trains on (a fifth, chosen by a hash of the
text). `--all` measures on the whole corpus instead (training rows included: optimistic), and
`--corpus DIR` on another directory of TSV files in the same format, such as an independent set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.crisis_build import CORPUS_DIR, Row, read_corpus, split
from bot.crisis_model import LEVELS
from bot.crisis_triage import Assessment, CrisisTriage


@dataclass
class Scores:
    crises: int = 0
    caught: int = 0
    safe: int = 0
    alarms: int = 0
    right_category: int = 0
    right_level: int = 0

    @property
    def recall(self) -> float:
        return self.caught / self.crises if self.crises else float("nan")

    @property
    def false_alarms(self) -> float:
        return self.alarms / self.safe if self.safe else float("nan")


def evaluate(
    rows: Sequence[Row], assess: Callable[[str], Assessment | None]
) -> dict[str, dict[str, Scores]]:
    """Scores by dimension ("all", "category", "level", "lang", "group") and value."""
    table: dict[str, dict[str, Scores]] = defaultdict(lambda: defaultdict(Scores))
    for row in rows:
        found = assess(row.text)
        keys = [("all", "all"), ("lang", row.lang), ("group", row.group)]
        if row.crisis:
            keys += [("category", row.label), ("level", row.level or "")]
        for dimension, value in keys:
            scores = table[dimension][value]
            if row.crisis:
                scores.crises += 1
                scores.caught += found is not None
                scores.right_category += found is not None and found.category == row.label
                scores.right_level += found is not None and found.level == row.level
            else:
                scores.safe += 1
                scores.alarms += found is not None
    return table


def layers(triage: CrisisTriage) -> dict[str, Callable[[str], Assessment | None]]:
    def lexicon(text: str) -> Assessment | None:
        hit = triage.lexicon.detect(text)
        return None if hit is None else Assessment(hit.category, "high", "lexicon")

    def model(text: str) -> Assessment | None:
        reading = triage.model.read(text)
        if reading.crisis < triage.threshold:
            return None
        return Assessment(reading.category, reading.level, "model")

    return {"lexicon": lexicon, "model": model, "together": triage.assess}


def latency(rows: Sequence[Row], assess: Callable[[str], object]) -> tuple[float, float, float]:
    times = []
    for row in rows:
        started = time.perf_counter()
        assess(row.text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return (
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
        times[-1],
    )


def _pct(value: float) -> str:
    return "  -  " if value != value else f"{value * 100:5.1f}"


def report(table: dict[str, dict[str, Scores]], out) -> None:
    total = table["all"]["all"]
    out.write(
        f"  overall: recall {_pct(total.recall)} %  false alarms {_pct(total.false_alarms)} %"
        f"  ({total.crises} crises, {total.safe} safe)"
        f"  category right {_pct(total.right_category / max(total.crises, 1))} %"
        f"  level right {_pct(total.right_level / max(total.crises, 1))} %\n"
    )
    for dimension in ("level", "category", "lang", "group"):
        values = table.get(dimension, {})
        order = LEVELS if dimension == "level" else sorted(values)
        for value in order:
            if value not in values:
                continue
            s = values[value]
            alarms = f"  false alarms {_pct(s.false_alarms)} % of {s.safe}" if s.safe else ""
            recall = f"recall {_pct(s.recall)} % of {s.crises:>4}"
            out.write(f"  {dimension:<8} {value:<16} {recall}{alarms}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="the whole corpus, not the held-out")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--layers", action="store_true", help="also each layer on its own")
    args = parser.parse_args(argv)
    rows = read_corpus(args.corpus)
    if not args.all and args.corpus == CORPUS_DIR:
        _, rows = split(rows)
    started = time.perf_counter()
    triage = CrisisTriage()
    triage.assess("warm up")
    out = sys.stdout
    out.write(f"loaded lexicon and model in {(time.perf_counter() - started) * 1000:.0f} ms\n")
    out.write(
        f"{len(rows)} rows ({'all' if args.all else 'held-out'}), threshold "
        f"{triage.threshold:.3f}\n"
    )
    chosen = layers(triage)
    for name, assess in chosen.items():
        if name != "together" and not args.layers:
            continue
        out.write(f"\n{name}\n")
        report(evaluate(rows, assess), out)
    p50, p99, worst = latency(rows, triage.assess)
    out.write(
        f"\nper message (together): p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {worst:.2f} ms\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
