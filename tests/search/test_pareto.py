"""Pareto utilities against brute force on random points."""

from __future__ import annotations

import itertools

import numpy as np
from archlore.search.pareto import (
    crowding_distance,
    hypervolume_2d,
    non_dominated_mask,
    non_dominated_sort,
    normalised_hypervolume,
    objectives,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# small integer grids make ties and duplicates common, which is where sorts go wrong
coords = st.integers(0, 6).map(float)
point_lists = st.lists(st.tuples(coords, coords), min_size=0, max_size=25)


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def brute_mask(pts) -> list[bool]:
    return [not any(dominates(q, p) for q in pts) for p in pts]


def brute_ranks(pts) -> list[int]:
    ranks = [-1] * len(pts)
    left = set(range(len(pts)))
    r = 0
    while left:
        front = {i for i in left if not any(dominates(pts[j], pts[i]) for j in left)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def brute_hv(pts, ref) -> float:
    """Exact area by summing the cells of the coordinate grid covered by some point's box."""
    pts = [p for p in pts if p[0] < ref[0] and p[1] < ref[1]]
    xs = sorted({p[0] for p in pts} | {ref[0]})
    ys = sorted({p[1] for p in pts} | {ref[1]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:], strict=False), zip(ys, ys[1:], strict=False)):
        if any(p[0] <= x0 and p[1] <= y0 for p in pts):
            area += (x1 - x0) * (y1 - y0)
    return area


@settings(max_examples=200, deadline=None)
@given(point_lists)
def test_mask_and_sort_match_brute_force(pts):
    assert non_dominated_mask(np.array(pts).reshape(-1, 2)).tolist() == brute_mask(pts)
    assert non_dominated_sort(np.array(pts).reshape(-1, 2)).tolist() == brute_ranks(pts)


@settings(max_examples=200, deadline=None)
@given(point_lists, st.tuples(st.integers(3, 8).map(float), st.integers(3, 8).map(float)))
def test_hypervolume_matches_grid_area(pts, ref):
    assert abs(hypervolume_2d(np.array(pts).reshape(-1, 2), ref) - brute_hv(pts, ref)) < 1e-9


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=20, unique=True))
def test_crowding_distance_matches_definition(pts):
    p = np.array(pts)
    got = crowding_distance(p)
    want = np.zeros(len(p))
    for k in range(2):
        order = sorted(range(len(p)), key=lambda i: p[i, k])
        span = p[order[-1], k] - p[order[0], k]
        want[order[0]] = want[order[-1]] = np.inf
        for j in range(1, len(p) - 1):
            if np.isfinite(want[order[j]]):
                want[order[j]] += (p[order[j + 1], k] - p[order[j - 1], k]) / span if span else 0
    assert np.allclose(np.where(np.isinf(got), -1, got), np.where(np.isinf(want), -1, want))


def test_objectives_and_normalised_hypervolume():
    # one model with 90 % accuracy at 0.5 of the reference MACs covers 0.9 * 0.5 of the box
    assert normalised_hypervolume([0.9], [5.0], 0.0, 10.0) == 0.45
    assert objectives([0.9, 0.8], [1.0, 2.0]).tolist() == [[-0.9, 1.0], [-0.8, 2.0]]
    # a dominated model adds nothing; a model beyond the reference adds nothing
    assert normalised_hypervolume([0.9, 0.8, 0.99], [5.0, 6.0, 20.0], 0.0, 10.0) == 0.45
