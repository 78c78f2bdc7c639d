"""Statistical disclosure control for published counts: which figures Lotse may print.

Lotse publishes counts of anonymous events (conversations by state and role, topics, ...). A
count under the threshold (5) could point at a single child, so it is printed as "<5" (primary
suppression, `Status.SMALL`). That alone is not enough, because a reader has more than the cell:

- Differencing. A row total minus the printed cells of its row is the one hidden cell. Margins,
  grand totals and tables that share a margin give the reader many such equations.
- Bounds from the label. "<5" says 0..4. Two hidden cells of a row whose printed total is 8 are
  4 and 4; a hidden cell next to another hidden one whose pair adds to 0 is 0.
- The difference between the symbols. A cell withheld only to protect a neighbour
  (`Status.WITHHELD`, secondary suppression) is printed with another symbol than "<5", so the
  reader knows it is at least 5. Next to a withheld 5, a hidden 0 is pinned again: 0 + 5 = 5
  and the 5 cannot have been smaller.

The reader's best knowledge of a hidden cell is therefore the minimum and the maximum of that
cell over all tables consistent with what is printed: printed cells fixed, "<5" cells in
[0, threshold - 1], withheld cells in [threshold, inf), every count >= 0, every `Sum` an
equality and every `AtMost` an inequality. `protect` withholds more cells until no "<5" cell has
a single possible value in that sense, and `ranges` is the same attack, for the report and the
tests to show.

Why linear programming and not integer enumeration: the attack is a pair of LPs per cell, which
is fast. For one two-way table with margins the equations form a transportation problem, whose
matrix is totally unimodular; with integer bounds every vertex of the LP is an integer table, so
the LP bounds are attained by real tables and are exactly what a reader with integer arithmetic
gets. When tables are linked more loosely (several tables sharing margins, `AtMost` between
tables) that guarantee can be lost and the LP bounds are the outer envelope of the integer ones:
then a cell the LP calls protected has at least an LP-feasible alternative, and a reader who
solves integer programs may in rare cases narrow it further.

Pure and synchronous: no database, no I/O. The result is reproducible for the same input: every
choice is ordered by value and then by `repr` of the key, never by hash order.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

Key: TypeAlias = Hashable

# LP solutions are floats; a cell counts as protected when its interval is at least this wide.
_TOLERANCE = 1e-6


class Status(StrEnum):
    SHOWN = "shown"  # published exactly
    SMALL = "small"  # primary suppression: the true value is 0..threshold-1, published as "<5"
    WITHHELD = "withheld"  # secondary suppression: value >= threshold, hides a small cell


@dataclass(frozen=True)
class Sum:
    """value[total] == sum(value[p] for p in parts)."""

    total: Key
    parts: tuple[Key, ...]


@dataclass(frozen=True)
class AtMost:
    """value[part] <= value[whole], e.g. "teens who talked about school" <= "teens"."""

    part: Key
    whole: Key


class UnprotectableError(ValueError):
    """A small count stays pinned even with every other count of its tables withheld.

    This happens when the symbols alone give it away, e.g. with threshold 2 a withheld total
    of two "<2" cells says 2 = 1 + 1. Publishing anything from such tables would disclose it.
    """

    def __init__(self, key: Key) -> None:
        super().__init__(f"the small count {key!r} cannot be protected")
        self.key = key


def protect(
    *,
    values: Mapping[Key, int],
    sums: Sequence[Sum] = (),
    at_most: Sequence[AtMost] = (),
    threshold: int = 5,
    priority: Callable[[Key], int] | None = None,
) -> dict[Key, Status]:
    """The status of every key: counts under `threshold` are SMALL, and enough other counts are
    WITHHELD that no SMALL count can be worked out to a single value from what is shown.

    First a cheap pass over the lines (a `Sum` with exactly one hidden key gives it away by
    subtraction), then the LP audit of each connected component, withholding one more key per
    pinned count and auditing again. The key withheld is taken from the pinned count's own
    lines if possible, then from lines further out: an interior cell before a total, then
    the smallest value, then by repr. `priority` replaces "interior before total": keys with
    a lower priority are withheld first (the caller knows which totals readers need most).

    Raises ValueError when the values contradict `sums` or `at_most`, and UnprotectableError
    when a small count cannot be protected at all.
    """
    _check_threshold(threshold)
    counts = {key: _count(key, value) for key, value in values.items()}
    structure = _Structure(keys=counts, sums=sums, at_most=at_most)
    structure.check(counts)
    statuses = {
        key: Status.SMALL if value < threshold else Status.SHOWN for key, value in counts.items()
    }
    protector = _Protector(
        values=counts,
        statuses=statuses,
        structure=structure,
        threshold=threshold,
        priority=priority or (lambda key: int(key in structure.totals)),
    )
    protector.close_lines(range(len(structure.sums)))
    for component in structure.components:
        protector.audit(component)
        protector.release(component)
    return statuses


def ranges(
    *,
    published: Mapping[Key, int | None],
    statuses: Mapping[Key, Status],
    sums: Sequence[Sum] = (),
    at_most: Sequence[AtMost] = (),
    threshold: int = 5,
) -> dict[Key, tuple[float, float]]:
    """What a reader can derive: (min, max) for every key; (value, value) for SHOWN keys.

    `published` holds the printed value of every SHOWN key; the values of other keys are not
    read. The maximum of a WITHHELD key may be inf. Raises ValueError when the published
    figures contradict each other.
    """
    _check_threshold(threshold)
    shown: dict[Key, float] = {}
    for key, status in statuses.items():
        if status is Status.SHOWN:
            value = published.get(key)
            if value is None:
                raise ValueError(f"the shown key {key!r} has no published value")
            shown[key] = _count(key, value)
    structure = _Structure(keys=statuses, sums=sums, at_most=at_most)
    result = {key: (float(value), float(value)) for key, value in shown.items()}
    for component in structure.components:
        hidden = [key for key in component.keys if key not in shown]
        lp = _ReaderLP(
            component=component,
            structure=structure,
            shown=shown,
            statuses=statuses,
            threshold=threshold,
        )
        if lp.solve({}) is None:
            raise ValueError("the published figures contradict each other")
        for key in hidden:
            low = lp.solve({key: 1.0})
            high = lp.solve({key: -1.0})
            assert low is not None  # every count is >= 0, so a minimum exists
            result[key] = (
                _snap(low[lp.index[key]]),
                float("inf") if high is None else _snap(high[lp.index[key]]),
            )
    return {key: result[key] for key in statuses}


def _check_threshold(threshold: int) -> None:
    # With threshold 1 the only small value is 0, and "<1" says exactly that.
    if threshold < 2:
        raise ValueError("the threshold must be at least 2")


def _count(key: Key, value: int) -> int:
    count = operator.index(value)
    if count < 0:
        raise ValueError(f"the count {key!r} is negative")
    return count


def _snap(value: float) -> float:
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < _TOLERANCE else float(value)


@dataclass(frozen=True)
class _Component:
    """Keys linked by sums or at_most; no constraint crosses components, so each is attacked
    and protected on its own."""

    keys: tuple[Key, ...]
    sums: tuple[int, ...]
    at_most: tuple[int, ...]


class _Structure:
    """The constraints, indexed once: lines per key, totals, connected components."""

    def __init__(
        self, *, keys: Iterable[Key], sums: Sequence[Sum], at_most: Sequence[AtMost]
    ) -> None:
        self.keys = list(keys)
        self.sums = list(sums)
        self.at_most = list(at_most)
        known = set(self.keys)
        for line in self.sums:
            for key in (line.total, *line.parts):
                if key not in known:
                    raise ValueError(f"the sum for {line.total!r} names the unknown key {key!r}")
        for bound in self.at_most:
            for key in (bound.part, bound.whole):
                if key not in known:
                    raise ValueError(f"an at_most names the unknown key {key!r}")
        self.totals = {line.total for line in self.sums}
        # Distinct members, total first, so a key listed twice counts once as "hidden".
        self.members = [tuple(dict.fromkeys((line.total, *line.parts))) for line in self.sums]
        self.lines_of: dict[Key, list[int]] = {key: [] for key in self.keys}
        for index, members in enumerate(self.members):
            for key in members:
                self.lines_of[key].append(index)
        self.coefficients = [
            _coefficients([(line.total, 1), *((part, -1) for part in line.parts)])
            for line in self.sums
        ]
        self.bound_coefficients = [
            _coefficients([(bound.part, 1), (bound.whole, -1)]) for bound in self.at_most
        ]
        self.components = self._components()

    def check(self, values: Mapping[Key, int]) -> None:
        for line in self.sums:
            if values[line.total] != sum(values[part] for part in line.parts):
                raise ValueError(f"the parts of {line.total!r} do not add up to it")
        for bound in self.at_most:
            if values[bound.part] > values[bound.whole]:
                raise ValueError(f"{bound.part!r} is larger than {bound.whole!r}")

    def _components(self) -> list[_Component]:
        parent = {key: key for key in self.keys}

        def root(key: Key) -> Key:
            while parent[key] != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        groups = [*self.members, *((b.part, b.whole) for b in self.at_most)]
        for group in groups:
            first = root(group[0])
            for key in group[1:]:
                parent[root(key)] = first
        order: dict[Key, int] = {}
        keys: list[list[Key]] = []
        for key in self.keys:
            number = order.setdefault(root(key), len(keys))
            if number == len(keys):
                keys.append([])
            keys[number].append(key)
        sums: list[list[int]] = [[] for _ in keys]
        for index, members in enumerate(self.members):
            sums[order[root(members[0])]].append(index)
        bounds: list[list[int]] = [[] for _ in keys]
        for index, bound in enumerate(self.at_most):
            bounds[order[root(bound.part)]].append(index)
        return [
            _Component(keys=tuple(k), sums=tuple(s), at_most=tuple(b))
            for k, s, b in zip(keys, sums, bounds, strict=True)
        ]


def _coefficients(terms: Iterable[tuple[Key, int]]) -> dict[Key, int]:
    # A key on both sides cancels out instead of appearing twice in a row of the matrix.
    result: dict[Key, int] = {}
    for key, coefficient in terms:
        result[key] = result.get(key, 0) + coefficient
    return {key: c for key, c in result.items() if c}


class _ReaderLP:
    """The reader's linear program for one component: one variable per key not shown."""

    def __init__(
        self,
        *,
        component: _Component,
        structure: _Structure,
        shown: Mapping[Key, float],
        statuses: Mapping[Key, Status],
        threshold: int,
    ) -> None:
        self.keys = [key for key in component.keys if key not in shown]
        self.index = {key: number for number, key in enumerate(self.keys)}
        self.bounds = np.array(
            [
                (0.0, threshold - 1.0) if statuses[key] is Status.SMALL else (threshold, np.inf)
                for key in self.keys
            ]
        )
        self.consistent = True
        self.equal = self._rows(
            [structure.coefficients[i] for i in component.sums], shown, inequality=False
        )
        self.below = self._rows(
            [structure.bound_coefficients[i] for i in component.at_most], shown, inequality=True
        )

    def _rows(
        self, rows: Sequence[Mapping[Key, int]], shown: Mapping[Key, float], *, inequality: bool
    ) -> tuple[csr_array, np.ndarray] | None:
        """Sparse rows over the variables; the shown keys go to the right-hand side."""
        row_of: list[int] = []
        column_of: list[int] = []
        data: list[float] = []
        right: list[float] = []
        for coefficients in rows:
            constant = 0.0
            entries: list[tuple[int, int]] = []
            for key, coefficient in coefficients.items():
                if key in shown:
                    constant += coefficient * shown[key]
                else:
                    entries.append((self.index[key], coefficient))
            if not entries:
                # Only shown keys: nothing for the reader to solve, but it must hold.
                if (constant > _TOLERANCE) if inequality else (abs(constant) > _TOLERANCE):
                    self.consistent = False
                continue
            for column, coefficient in entries:
                row_of.append(len(right))
                column_of.append(column)
                data.append(float(coefficient))
            right.append(-constant)
        if not right:
            return None
        matrix = csr_array((data, (row_of, column_of)), shape=(len(right), max(len(self.keys), 1)))
        return matrix, np.array(right)

    def solve(self, objective: Mapping[Key, float]) -> np.ndarray | None:
        """A solution minimising the objective, or None if infeasible or unbounded."""
        if not self.consistent:
            return None
        if not self.keys:
            return np.zeros(0)
        costs = np.zeros(len(self.keys))
        for key, weight in objective.items():
            costs[self.index[key]] = weight
        result = linprog(
            costs,
            A_ub=None if self.below is None else self.below[0],
            b_ub=None if self.below is None else self.below[1],
            A_eq=None if self.equal is None else self.equal[0],
            b_eq=None if self.equal is None else self.equal[1],
            bounds=self.bounds,
            method="highs",
        )
        if result.status == 0:
            return np.asarray(result.x)
        if result.status in (2, 3):
            return None
        raise RuntimeError(f"the LP solver failed: {result.message}")


class _Protector:
    """Secondary suppression: withholds shown keys in `statuses` (mutated) until it is safe."""

    def __init__(
        self,
        *,
        values: Mapping[Key, int],
        statuses: dict[Key, Status],
        structure: _Structure,
        threshold: int,
        priority: Callable[[Key], int],
    ) -> None:
        self.values = values
        self.statuses = statuses
        self.structure = structure
        self.threshold = threshold
        self.priority = priority

    def close_lines(self, lines: Iterable[int]) -> None:
        """The cheap pass: a line with exactly one hidden key gives that key away by
        subtraction, whatever its symbol, so another key of the line is withheld too."""
        structure = self.structure
        queue = deque(dict.fromkeys(lines))
        queued = set(queue)
        while queue:
            line = queue.popleft()
            queued.discard(line)
            members = structure.members[line]
            hidden = [key for key in members if self.statuses[key] is not Status.SHOWN]
            if len(hidden) != 1:
                continue
            others = [key for key in members if key != hidden[0]]
            total = members[0]
            # Rather another part than the total: the total is usually a margin elsewhere too.
            pool = [key for key in others if key != total] or others
            if not pool:
                continue  # a line of one key; the audit decides whether that key is pinned
            choice = self.best(pool, pinned=hidden[0])
            self.statuses[choice] = Status.WITHHELD
            for touched in structure.lines_of[choice]:
                if touched not in queued:
                    queued.add(touched)
                    queue.append(touched)

    def best(self, candidates: Iterable[Key], *, pinned: Key) -> Key:
        """The shown key to withhold: an interior cell before a total, one that can actually
        move the pinned key, the smallest value (least information lost), then by repr."""
        pinned_value = self.values[pinned]

        def rank(key: Key) -> tuple[int, bool, int, str]:
            value = self.values[key]
            # A withheld key is known to be >= threshold, so one printed at exactly the
            # threshold can only be thought larger: next to a 0 in a line it hides nothing.
            futile = pinned_value + value <= self.threshold
            return self.priority(key), futile, value, repr(key)

        return min(candidates, key=rank)

    def audit(self, component: _Component) -> None:
        """Withholds keys of the component until no SMALL key of it is pinned by the LP.

        Withholding a shown key only widens the reader's feasible set (its fixed value lies in
        [threshold, inf)), so a key once shown to be protected stays protected: only the keys
        not yet proven safe are audited again after each change."""
        if not component.sums and not component.at_most:
            return  # an isolated key: "<5" leaves it anywhere in 0..threshold-1
        pending = sorted(
            (key for key in component.keys if self.statuses[key] is Status.SMALL), key=repr
        )
        # The true table is always a feasible point; each LP solution adds another one.
        low = {key: float(self.values[key]) for key in pending}
        high = dict(low)

        def prove(solution: np.ndarray | None, lp: _ReaderLP) -> None:
            nonlocal pending
            assert solution is not None  # the true table is feasible and small keys bounded
            for key in pending:
                value = solution[lp.index[key]]
                low[key] = min(low[key], value)
                high[key] = max(high[key], value)
            pending = [key for key in pending if high[key] - low[key] < 1 - _TOLERANCE]

        first = True
        while pending:
            lp = self.reader_lp(component)
            if first:
                # LPs that push all pending keys at once, up and down in turn, prove most of
                # them in a few solves; they stop paying off once a round proves only a few.
                direction = -1.0
                while len(pending) > 1:
                    before = len(pending)
                    prove(lp.solve({key: direction for key in pending}), lp)
                    direction = -direction
                    if before - len(pending) < 3:
                        break
                first = False
            pinned = None
            while pending:
                key = pending[0]
                for direction in (-1.0, 1.0):
                    prove(lp.solve({key: direction}), lp)
                    if not pending or pending[0] != key:
                        break
                else:
                    pinned = key  # its LP minimum and maximum are less than 1 apart
                    break
            if pinned is None:
                return
            choice = self.candidate(pinned, component)
            if choice is None:
                raise UnprotectableError(pinned)
            self.statuses[choice] = Status.WITHHELD
            self.close_lines(self.structure.lines_of[choice])

    def release(self, component: _Component) -> None:
        """Shows again totals that greedy withholding made needless: one withheld early can be
        redundant after later choices. Tried with the most wanted first (highest priority,
        then largest value); each stays shown only if the whole component stays safe. Only
        keys ranked above the interior cells (priority > 0) are tried: each try is a full
        audit, and the totals are what readers need."""
        withheld = sorted(
            (
                key
                for key in component.keys
                if self.statuses[key] is Status.WITHHELD and self.priority(key) > 0
            ),
            key=lambda key: (-self.priority(key), -self.values[key], repr(key)),
        )
        for key in withheld:
            self.statuses[key] = Status.SHOWN
            if not self.safe(component):
                self.statuses[key] = Status.WITHHELD

    def safe(self, component: _Component) -> bool:
        """No SMALL key of the component is pinned by the reader's LP."""
        pending = sorted(
            (key for key in component.keys if self.statuses[key] is Status.SMALL), key=repr
        )
        if not pending:
            return True
        lp = self.reader_lp(component)
        low = {key: float(self.values[key]) for key in pending}
        high = dict(low)
        objectives: list[dict[Key, float]] = [
            {key: -1.0 for key in pending},
            {key: 1.0 for key in pending},
        ]
        while pending:
            objective = objectives.pop() if objectives else {pending[0]: -1.0}
            solution = lp.solve(objective)
            if solution is None:
                return False  # infeasible: cannot be, the true table is a solution
            for key in pending:
                value = solution[lp.index[key]]
                low[key] = min(low[key], value)
                high[key] = max(high[key], value)
            before = pending
            pending = [key for key in pending if high[key] - low[key] < 1 - _TOLERANCE]
            if not objectives and pending and pending == before:
                key = pending[0]
                if objective == {key: -1.0}:
                    objectives.append({key: 1.0})
                elif objective == {key: 1.0}:
                    return False  # both ends tried: pinned
        return True

    def candidate(self, pinned: Key, component: _Component) -> Key | None:
        """The next key to withhold for a pinned key: from the lines it is in, else from the
        lines next to those, ring by ring, and at last anywhere in the component."""
        structure = self.structure
        seen = {pinned}
        frontier = [pinned]
        while frontier:
            ring = []
            for key in frontier:
                for line in structure.lines_of[key]:
                    for member in structure.members[line]:
                        if member not in seen:
                            seen.add(member)
                            ring.append(member)
            shown = [key for key in ring if self.statuses[key] is Status.SHOWN]
            if shown:
                return self.best(shown, pinned=pinned)
            frontier = ring
        rest = [key for key in component.keys if self.statuses[key] is Status.SHOWN]
        return self.best(rest, pinned=pinned) if rest else None

    def reader_lp(self, component: _Component) -> _ReaderLP:
        shown = {
            key: float(self.values[key])
            for key in component.keys
            if self.statuses[key] is Status.SHOWN
        }
        return _ReaderLP(
            component=component,
            structure=self.structure,
            shown=shown,
            statuses=self.statuses,
            threshold=self.threshold,
        )
