"""Small-cell suppression: what roles other than ops see of a cube of counts."""

from __future__ import annotations

from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.suppression import (
    ALL,
    SECONDARY_MARK,
    SMALL_MARK,
    Cube,
    Dimension,
    Key,
    flat,
)

WIJK_OF = {"b1": "w1", "b2": "w1", "b3": "w1", "b4": "w2", "b5": "w2"}
AREA = Dimension("area", lambda v: None if v == ALL else ALL if v.startswith("w") else WIJK_OF[v])
CATEGORY = flat("category")


def cube(base: dict[Key, int], *, exact: bool = False) -> Cube:
    return Cube.build(base, (AREA, CATEGORY), exact=exact)


def test_small_counts_show_as_less_than_5_and_zero_as_zero() -> None:
    c = cube({("b1", "a"): 3, ("b2", "a"): 3, ("b4", "a"): 9})
    assert c.shown("b1", "a") == c.shown("b2", "a") == SMALL_MARK
    assert c.shown("b3", "a") == 0  # nothing there: an empty cell identifies no one
    assert c.shown("b4", "a") == 9
    assert c.known("b1", "a") is None and c.known("b4", "a") == 9


def test_ops_sees_every_count() -> None:
    c = cube({("b1", "a"): 3, ("b2", "a"): 12}, exact=True)
    assert c.shown("b1", "a") == 3 and c.shown("w1", "a") == 15 and not c.hidden


def test_the_total_cannot_be_used_to_recover_a_single_small_cell() -> None:
    c = cube({("b1", "a"): 3, ("b2", "a"): 12, ("b3", "a"): 6, ("b4", "a"): 7})
    assert c.shown("w1", "a") == 21
    assert c.shown("b1", "a") == SMALL_MARK
    # 21 - 12 - 6 would be 3: the smallest visible neighbour is hidden too.
    assert c.shown("b3", "a") == SECONDARY_MARK
    assert c.shown("b2", "a") == 12
    # ... and everywhere b3's 6 would give it away again (its own total over categories).
    assert c.shown("b3", ALL) == SECONDARY_MARK


def _equations(c: Cube) -> list[tuple[Key, list[Key]]]:
    dims = c.dimensions
    out = []
    for parent in c.cells:
        for i, dim in enumerate(dims):
            children = [
                k
                for k in c.cells
                if dim.parent(k[i]) == parent[i]
                and k[:i] + k[i + 1 :] == parent[:i] + parent[i + 1 :]
            ]
            if children:
                out.append((parent, children))
    return out


def _values(c: Cube, key: Key, ceiling: int) -> range:
    """What an attacker knows of a cell from its mark."""
    mark = c.shown(*key)
    if mark == SMALL_MARK:
        return range(1, 5)
    if mark == SECONDARY_MARK:
        return range(5, ceiling + 1)
    return range(int(mark), int(mark) + 1)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(sorted(WIJK_OF)), st.sampled_from(["a", "b"])),
        st.integers(min_value=0, max_value=12),
        max_size=10,
    )
)
def test_no_total_pins_down_a_hidden_count(base: dict[Key, int]) -> None:
    """Brute force, total by total, knowing the grand total when it is shown: every hidden
    cell keeps two or more possible values, unless all of a total's terms are below 5."""
    c = cube(base)
    ceiling = c.shown(ALL, ALL) if isinstance(c.shown(ALL, ALL), int) else 60
    for cell, n in c.cells.items():
        shown = c.shown(*cell)
        assert shown == SMALL_MARK if 0 < n < 5 else shown in (n, SECONDARY_MARK)
    for parent, children in _equations(c):
        terms = [parent, *children]
        hidden = [t for t in terms if t in c.hidden]
        if not hidden or all(c.hidden.get(t) == SMALL_MARK for t in terms):
            continue
        possible: dict[Key, set[int]] = {t: set() for t in hidden}
        for values in product(*(_values(c, t, ceiling) for t in terms)):
            if values[0] == sum(values[1:]):
                for t, v in zip(terms, values, strict=True):
                    if t in possible:
                        possible[t].add(v)
        for t, seen in possible.items():
            assert len(seen) >= 2, (t, c.cells[t], seen, terms)
