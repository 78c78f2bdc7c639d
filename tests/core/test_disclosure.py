"""Disclosure control: after `protect`, no "<5" count can be worked back out.

The attackers here are written independently of core.disclosure: a brute-force enumeration of
every integer table consistent with what is printed (tiny tables), and an LP over all keys with
scipy directly (bigger tables)."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from core.disclosure import AtMost, Status, Sum, UnprotectableError, protect, ranges

ROOT = Path(__file__).resolve().parents[2]
SMALL, SHOWN, WITHHELD = Status.SMALL, Status.SHOWN, Status.WITHHELD


def grid(cells, *, name="t", rows=None, row_totals=None, grand=None):
    """A two-way table with row, column and grand totals. Passing `row_totals` and `grand`
    (keys) lets several tables share their state margin and grand total."""
    rows = rows or [f"r{i}" for i in range(len(cells))]
    columns = [f"c{j}" for j in range(len(cells[0]))]
    row_totals = row_totals or [(name, row) for row in rows]
    grand = grand or (name, "all")
    keys = [[(name, row, column) for column in columns] for row in rows]
    column_totals = [(name, column) for column in columns]
    values = {}
    for row_keys, row_values in zip(keys, cells, strict=True):
        values.update(zip(row_keys, row_values, strict=True))
    values.update(zip(row_totals, (sum(row) for row in cells), strict=True))
    values.update(
        zip(column_totals, (sum(column) for column in zip(*cells, strict=True)), strict=True)
    )
    values[grand] = sum(map(sum, cells))
    sums = [Sum(total=t, parts=tuple(r)) for t, r in zip(row_totals, keys, strict=True)]
    sums += [
        Sum(total=t, parts=tuple(row[j] for row in keys)) for j, t in enumerate(column_totals)
    ]
    sums += [
        Sum(total=grand, parts=tuple(row_totals)),
        Sum(total=grand, parts=tuple(column_totals)),
    ]
    return values, sums, keys


def lp_attack(values, statuses, sums, at_most=(), threshold=5):
    """The reader's bounds for every small key: one variable per key, the shown ones fixed."""
    keys = list(statuses)
    column = {key: j for j, key in enumerate(keys)}
    bounds = []
    for key in keys:
        if statuses[key] is SHOWN:
            bounds.append((values[key], values[key]))
        elif statuses[key] is SMALL:
            bounds.append((0, threshold - 1))
        else:
            bounds.append((threshold, None))
    a_eq = np.zeros((max(len(sums), 1), len(keys)))
    for i, line in enumerate(sums):
        a_eq[i, column[line.total]] += 1
        for part in line.parts:
            a_eq[i, column[part]] -= 1
    a_ub = np.zeros((max(len(at_most), 1), len(keys)))
    for i, bound in enumerate(at_most):
        a_ub[i, column[bound.part]] = 1
        a_ub[i, column[bound.whole]] = -1
    found = {}
    for key in keys:
        if statuses[key] is not SMALL:
            continue
        ends = []
        for sign in (1, -1):
            objective = np.zeros(len(keys))
            objective[column[key]] = sign
            result = linprog(
                objective,
                A_ub=a_ub,
                b_ub=np.zeros(len(a_ub)),
                A_eq=a_eq,
                b_eq=np.zeros(len(a_eq)),
                bounds=bounds,
                method="highs",
            )
            assert result.status == 0, result.message
            ends.append(result.x[column[key]])
        found[key] = (ends[0], ends[1])
    return found


def pinned(found):
    return sorted((key for key, (low, high) in found.items() if high - low < 1 - 1e-6), key=repr)


def brute_force(values, statuses, keys, threshold=5, cap=40):
    """Every value each key can take over all integer two-row tables consistent with the
    publication (withheld cells searched up to `cap`, which only makes the attack weaker)."""
    top, bottom = keys

    def domain(key):
        if statuses[key] is SHOWN:
            return [values[key]]
        if statuses[key] is SMALL:
            return list(range(threshold))
        return list(range(threshold, cap + 1))

    def allowed(key, sums):
        if statuses[key] is SHOWN:
            return sums == values[key]
        if statuses[key] is SMALL:
            return sums < threshold
        return sums >= threshold

    def rows(row_keys, total):
        candidates = np.array(list(itertools.product(*map(domain, row_keys))))
        return candidates[allowed(total, candidates.sum(axis=1))]

    upper = rows(top, ("t", "r0"))
    lower = rows(bottom, ("t", "r1"))
    columns = upper[:, None, :] + lower[None, :, :]
    ok = np.ones(columns.shape[:2], dtype=bool)
    for j in range(len(top)):
        ok &= allowed(("t", f"c{j}"), columns[:, :, j])
    ok &= allowed(("t", "all"), columns.sum(axis=2))
    tops, bottoms = upper[ok.any(axis=1)], lower[ok.any(axis=0)]
    possible = {key: set(tops[:, j].tolist()) for j, key in enumerate(top)}
    possible |= {key: set(bottoms[:, j].tolist()) for j, key in enumerate(bottom)}
    return possible


def random_cells(rng, rows, columns, high):
    # Mostly small counts with a few large ones, as in a month of a small service.
    return rng.choice(np.arange(high + 1), size=(rows, columns), p=_weights(high)).tolist()


def _weights(high):
    weights = 1.0 / (1.0 + np.arange(high + 1)) ** 0.7
    return weights / weights.sum()


def test_counts_under_five_including_zero_are_small_and_unlinked_ones_shown():
    values = {"zero": 0, "one": 1, "four": 4, "five": 5, "many": 120}
    assert protect(values=values) == {
        "zero": SMALL,
        "one": SMALL,
        "four": SMALL,
        "five": SHOWN,
        "many": SHOWN,
    }


def test_a_lone_small_cell_in_a_row_gets_a_partner_and_stays_hidden():
    values = {"a": 3, "b": 10, "c": 7, "row": 20}
    sums = [Sum(total="row", parts=("a", "b", "c"))]
    statuses = protect(values=values, sums=sums)
    assert statuses == {"a": SMALL, "b": SHOWN, "c": WITHHELD, "row": SHOWN}
    assert lp_attack(values, statuses, sums)["a"] == pytest.approx((0, 4))


def test_a_zero_is_not_paired_with_a_five_which_could_only_be_thought_larger():
    # 0 + 5 = 5 and the withheld 5 is known to be >= 5: the 0 would be pinned.
    values = {"a": 0, "b": 5, "c": 9, "row": 14}
    sums = [Sum(total="row", parts=("a", "b", "c"))]
    statuses = protect(values=values, sums=sums)
    assert statuses == {"a": SMALL, "b": SHOWN, "c": WITHHELD, "row": SHOWN}
    assert pinned(lp_attack(values, statuses, sums)) == []


@pytest.mark.parametrize("seed", range(40))
def test_no_consistent_integer_table_pins_a_small_cell(seed):
    rng = np.random.default_rng(seed)
    values, sums, keys = grid(random_cells(rng, 2, 3, high=15))
    statuses = protect(values=values, sums=sums)
    possible = brute_force(values, statuses, keys)
    for key, options in possible.items():
        assert values[key] in options  # the true table is among them
        if statuses[key] is SMALL:
            assert len(options) >= 2, (key, options, statuses)
        if statuses[key] is SHOWN:
            assert options == {values[key]}


def test_two_small_cells_adding_up_to_eight_get_their_total_withheld_and_hidden_upstream():
    values = {"a": 4, "b": 4, "first": 8, "c": 10, "d": 12, "second": 22, "all": 30}
    sums = [
        Sum(total="first", parts=("a", "b")),
        Sum(total="second", parts=("c", "d")),
        Sum(total="all", parts=("first", "second")),
    ]
    statuses = protect(values=values, sums=sums)
    # "first" alone would be 30 - 22; "second" alone would be c + d.
    assert statuses == {
        "a": SMALL,
        "b": SMALL,
        "first": WITHHELD,
        "c": WITHHELD,
        "d": SHOWN,
        "second": WITHHELD,
        "all": SHOWN,
    }
    assert lp_attack(values, statuses, sums) == {"a": (1, 4), "b": (1, 4)}


@pytest.mark.parametrize("seed", range(25))
def test_random_tables_with_margins_leave_no_small_cell_pinned(seed):
    rng = np.random.default_rng(1000 + seed)
    shape = (int(rng.integers(3, 9)), int(rng.integers(2, 7)))
    values, sums, _ = grid(random_cells(rng, *shape, high=int(rng.integers(8, 40))))
    statuses = protect(values=values, sums=sums)
    assert statuses.keys() == values.keys()
    for key, value in values.items():
        assert (statuses[key] is SMALL) == (value < 5)
        if statuses[key] is WITHHELD:
            assert value >= 5
    found = lp_attack(values, statuses, sums)
    assert pinned(found) == []
    published = {key: values[key] if statuses[key] is SHOWN else None for key in values}
    derived = ranges(published=published, statuses=statuses, sums=sums)
    for key, status in statuses.items():
        if status is SHOWN:
            assert derived[key] == (values[key], values[key])
        elif status is SMALL:
            assert derived[key] == pytest.approx(found[key])


def shared_margin_tables():
    states = ["HB", "HH"]
    row_totals = [("state", state) for state in states]
    roles, role_sums, _ = grid(
        [[4, 4], [10, 12]], name="role", rows=states, row_totals=row_totals, grand="all"
    )
    channels, channel_sums, _ = grid(
        [[6, 2], [15, 7]], name="channel", rows=states, row_totals=row_totals, grand="all"
    )
    return roles, role_sums, channels, channel_sums


def test_tables_sharing_a_margin_are_protected_together():
    roles, role_sums, channels, channel_sums = shared_margin_tables()
    # One table at a time, Bremen's total (8 = 4 + 4) is withheld in the role table and
    # printed in the channel table, which gives the two 4s away.
    alone = protect(values=roles, sums=role_sums), protect(values=channels, sums=channel_sums)
    assert alone[0][("state", "HB")] is WITHHELD
    assert alone[1][("state", "HB")] is SHOWN

    values, sums = roles | channels, role_sums + channel_sums
    statuses = protect(values=values, sums=sums)
    assert statuses[("state", "HB")] is WITHHELD
    # Hamburg's total is withheld so Bremen's is not 30 minus it; then each table needs a
    # withheld cell in Hamburg's row, or that row would print its total by addition.
    assert statuses[("state", "HH")] is WITHHELD
    for table in ("role", "channel"):
        assert WITHHELD in {statuses[(table, "HH", column)] for column in ("c0", "c1")}
    assert pinned(lp_attack(values, statuses, sums)) == []


@pytest.mark.parametrize("seed", range(15))
def test_random_tables_sharing_their_state_margin_leave_no_small_cell_pinned(seed):
    rng = np.random.default_rng(2000 + seed)
    states = [f"s{i}" for i in range(int(rng.integers(3, 8)))]
    row_totals = [("state", state) for state in states]
    per_state = rng.choice(np.arange(40), size=len(states), p=_weights(39))
    values, sums = {}, []
    for table in ("role", "channel", "topic"):
        split = rng.dirichlet(np.ones(int(rng.integers(2, 5))) * 0.7, size=len(states))
        cells = [
            rng.multinomial(n, shares).tolist() for n, shares in zip(per_state, split, strict=True)
        ]
        table_values, table_sums, _ = grid(
            cells, name=table, rows=states, row_totals=row_totals, grand="all"
        )
        values |= table_values
        sums += table_sums
    statuses = protect(values=values, sums=sums)
    for key, value in values.items():
        assert (statuses[key] is SMALL) == (value < 5)
        assert statuses[key] is not WITHHELD or value >= 5
    assert pinned(lp_attack(values, statuses, sums)) == []


def at_most_case():
    # a + d = 6 with d withheld (so a <= 1), b + c = 5 with both small (so b >= 1), and
    # b <= a: together a = b = 1.
    values = {"a": 1, "d": 5, "A": 6, "b": 1, "c": 4, "S": 5}
    sums = [Sum(total="A", parts=("a", "d")), Sum(total="S", parts=("b", "c"))]
    return values, sums, [AtMost(part="b", whole="a")]


def test_at_most_counts_in_the_attack():
    values, sums, at_most = at_most_case()
    unaware = protect(values=values, sums=sums)
    assert unaware["A"] is SHOWN
    assert pinned(lp_attack(values, unaware, sums, at_most)) == ["a", "b", "c"]

    statuses = protect(values=values, sums=sums, at_most=at_most)
    assert statuses["A"] is WITHHELD
    assert pinned(lp_attack(values, statuses, sums, at_most)) == []


def test_ranges_shows_what_a_reader_derives():
    values = {"a": 3, "b": 10, "c": 7, "row": 20}
    sums = [Sum(total="row", parts=("a", "b", "c"))]
    statuses = protect(values=values, sums=sums)
    published = {key: values[key] if statuses[key] is SHOWN else None for key in values}
    assert ranges(published=published, statuses=statuses, sums=sums) == {
        "a": (0, 4),
        "b": (10, 10),
        "c": (6, 10),
        "row": (20, 20),
    }
    # Nothing bounds a withheld total from above.
    open_ended = ranges(
        published={"a": None, "b": None, "row": None},
        statuses={"a": SMALL, "b": WITHHELD, "row": WITHHELD},
        sums=[Sum(total="row", parts=("a", "b"))],
    )
    assert open_ended == {"a": (0, 4), "b": (5, float("inf")), "row": (5, float("inf"))}


def test_ranges_rejects_published_figures_that_contradict_each_other():
    with pytest.raises(ValueError, match="contradict"):
        ranges(
            published={"a": 10, "b": 10, "row": 15},
            statuses={"a": SHOWN, "b": SHOWN, "row": SHOWN},
            sums=[Sum(total="row", parts=("a", "b"))],
        )


def test_a_count_the_symbols_alone_give_away_is_refused():
    # With threshold 2, a withheld total says ">= 2", and two "<2" parts then must be 1 + 1.
    with pytest.raises(UnprotectableError) as raised:
        protect(
            values={"a": 1, "b": 1, "row": 2},
            sums=[Sum(total="row", parts=("a", "b"))],
            threshold=2,
        )
    assert raised.value.key == "a"


@pytest.mark.parametrize(
    ("values", "sums", "threshold", "message"),
    [
        ({"a": 1, "row": 2}, [Sum(total="row", parts=("a",))], 5, "do not add up"),
        ({"a": 1}, [Sum(total="row", parts=("a",))], 5, "unknown key"),
        ({"a": -1}, [], 5, "negative"),
        ({"a": 1}, [], 1, "threshold"),
    ],
)
def test_inconsistent_input_is_rejected(values, sums, threshold, message):
    with pytest.raises(ValueError, match=message):
        protect(values=values, sums=sums, threshold=threshold)


def test_same_input_same_output():
    rng = np.random.default_rng(7)
    values, sums, _ = grid(random_cells(rng, 8, 5, high=20))
    first = protect(values=values, sums=sums)
    assert list(protect(values=values, sums=sums).items()) == list(first.items())


def test_the_result_does_not_depend_on_the_hash_seed():
    # String keys hash differently in every process; no choice may follow set order.
    script = (
        "import numpy as np\n"
        "from tests.core.test_disclosure import grid, random_cells\n"
        "from core.disclosure import protect\n"
        "values, sums, _ = grid(random_cells(np.random.default_rng(3), 9, 6, high=25))\n"
        "print(sorted((repr(k), s.value) for k, s in protect(values=values, sums=sums).items()))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
