"""Small-cell suppression: what a role other than ``ops`` may see of a table of counts.

A published table is a *cube*: counts of a base grid (say buurt by category by month) and every
total along every dimension's hierarchy (buurt → wijk → city, category → all, month → quarter
→ year). Each total is an equation, ``parent = sum of children``, and an attacker may use any
of them to subtract the visible cells from a visible total.

- Primary suppression: a count of 1 to 4 is shown as ``<5``. A zero is shown as 0: an empty
  cell identifies no one, and hiding zeros would hide most of a sparse table.
- Secondary suppression: for every equation, every suppressed cell must keep a range of
  possible values of more than one value, given what is visible (a primary cell is 1..4, a
  secondary one is 5 or more, as its marker ``x`` tells). Where one is pinned down, the
  smallest visible cell of that equation is suppressed too (``x``), and all equations are
  checked again, until none pins a cell down.

Every view of a role other than ops is cut from one suppressed cube (per family and calendar
year, see :mod:`services.analytics.stats`), so two views never disagree about a cell and no
total of one view unlocks a cell of another.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product

SMALL = 5
SMALL_MARK = "<5"
SECONDARY_MARK = "x"
ALL = "*"

Key = tuple[str, ...]
Shown = int | str
"""A published count: the number, ``<5`` (a count of 1 to 4) or ``x`` (hidden to protect
a small count elsewhere)."""


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    parent: Callable[[str], str | None]
    """The parent of a value in the hierarchy; None at the top (``*``, everything)."""


def flat(name: str) -> Dimension:
    """A dimension of codes with one total above them (``*``)."""
    return Dimension(name, lambda value: None if value == ALL else ALL)


def _ancestry(dimension: Dimension, value: str) -> list[str]:
    chain = [value]
    while (up := dimension.parent(chain[-1])) is not None:
        chain.append(up)
    return chain


def aggregate(base: Mapping[Key, int], dimensions: Sequence[Dimension]) -> dict[Key, int]:
    """Every cell of the cube: the base cells and all their totals (zeros left out)."""
    cells: dict[Key, int] = defaultdict(int)
    for key, n in base.items():
        if n:
            chains = [_ancestry(d, v) for d, v in zip(dimensions, key, strict=True)]
            for cell in product(*chains):
                cells[cell] += n
    return dict(cells)


def _equations(
    cells: Iterable[Key], dimensions: Sequence[Dimension]
) -> list[tuple[Key, list[Key]]]:
    """Each total along one dimension with the non-zero cells that add up to it."""
    equations: dict[tuple[Key, int], list[Key]] = defaultdict(list)
    for cell in cells:
        for i, dimension in enumerate(dimensions):
            up = dimension.parent(cell[i])
            if up is not None:
                equations[((*cell[:i], up, *cell[i + 1 :]), i)].append(cell)
    return [(parent, sorted(children)) for (parent, _), children in sorted(equations.items())]


Range = tuple[float, float]


def _pinned(terms: list[tuple[Key, int]], ranges: list[Range], hidden: set[Key]) -> bool:
    """Whether ``sum(sign * value) == 0`` leaves some hidden cell only one possible value."""
    for i, (cell, sign) in enumerate(terms):
        if cell not in hidden:
            continue
        # sign_i * x_i = -(sum of the other signed terms): bound it from the others' ranges.
        low = high = 0.0
        for j, (_, other_sign) in enumerate(terms):
            if j != i:
                lo, hi = ranges[j]
                low += -hi if other_sign > 0 else lo
                high += -lo if other_sign > 0 else hi
        if sign < 0:
            low, high = -high, -low
        lo, hi = ranges[i]
        if max(lo, low) >= min(hi, high):
            return True
    return False


def suppress(cells: Mapping[Key, int], dimensions: Sequence[Dimension]) -> dict[Key, str]:
    """The hidden cells of a cube and their marks (``<5`` or ``x``).

    What an attacker knows of a hidden cell: 1..4 for ``<5``; for ``x`` 5 or more, and at
    most the grand total while that is shown. A total whose terms are all small and hidden can
    still pin them (a wijk of ``<5`` with four buurten of ``<5``: one each); nothing visible is
    left to hide there, and every cell in it is below 5 anyway.
    """
    primary = {cell for cell, n in cells.items() if 0 < n < SMALL}
    hidden = set(primary)
    top = next(
        (k for k in cells if all(d.parent(v) is None for d, v in zip(dimensions, k, strict=True))),
        None,
    )

    def known(cell: Key) -> Range:
        if cell not in hidden:
            return cells.get(cell, 0), cells.get(cell, 0)
        if cell in primary:
            return 1, SMALL - 1
        return SMALL, math.inf if top is None or top in hidden else cells[top]

    equations = _equations(cells, dimensions)
    containing: dict[Key, list[int]] = defaultdict(list)
    for n, (parent, children) in enumerate(equations):
        for cell in (parent, *children):
            containing[cell].append(n)
    # A worklist: only the totals a newly hidden cell is part of need another look.
    todo = sorted({n for cell in hidden for n in containing[cell]}, reverse=True)

    def hide(cell: Key) -> None:
        hidden.add(cell)
        todo.extend(containing[cell])

    while todo:
        parent, children = equations[todo.pop()]
        terms = [(parent, -1)] + [(child, 1) for child in children]
        if not _pinned(terms, [known(t) for t, _ in terms], hidden):
            continue
        # Hide the smallest visible cell, a child before the total it adds up to; with none
        # left, the grand total that bounds the hidden ones.
        visible = [t for t, _ in terms if t not in hidden and cells.get(t, 0) > 0]
        if visible:
            hide(min(visible, key=lambda t: (cells[t], t == parent, t)))
        elif top is not None and top not in hidden:
            # The grand total bounds every x cell: all totals need another look.
            hide(top)
            todo.extend(range(len(equations)))
    return {cell: SMALL_MARK if cell in primary else SECONDARY_MARK for cell in hidden}


@dataclass(frozen=True, slots=True)
class Cube:
    """A cube as one role may see it."""

    dimensions: tuple[Dimension, ...]
    cells: dict[Key, int]
    hidden: dict[Key, str]

    @classmethod
    def build(
        cls, base: Mapping[Key, int], dimensions: Sequence[Dimension], *, exact: bool
    ) -> Cube:
        cells = aggregate(base, dimensions)
        return cls(tuple(dimensions), cells, {} if exact else suppress(cells, dimensions))

    def shown(self, *key: str) -> Shown:
        return self.hidden.get(key, self.cells.get(key, 0))

    def known(self, *key: str) -> int | None:
        """The exact count when it is shown, else None (for trends and sorting)."""
        return None if key in self.hidden else self.cells.get(key, 0)
