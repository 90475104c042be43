"""Tests of quality_noninferiority and its core stratified_difference_bounds: Newcombe's values, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pass_fail_runs import ALL_PASS, POINTS, levels, runs
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.quality import quality_noninferiority, stratified_difference_bounds


@pytest.mark.parametrize(
    ("xc", "nc", "xb", "nb", "lo", "hi"),
    [
        # Newcombe (1998), "Interval estimation for the difference between independent proportions",
        # method 10 (hybrid score), 95 % two-sided; our single-level MOVER-Wilson is that method.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
        (10, 10, 0, 10, 0.6075, 1.0),
    ],
)
def test_single_level_is_newcombe_method_10(xc, nc, xb, nb, lo, hi):
    _d, lower, upper = stratified_difference_bounds([xb], [nb], [xc], [nc], [1.0], stats.norm.isf(0.025))
    assert float(lower) / 100 == pytest.approx(lo, abs=5e-5)
    assert float(upper) / 100 == pytest.approx(hi, abs=5e-5)


def test_level_intervals_are_newcombe_at_one_sided_alpha():
    base = {"a": runs(48, 80)}
    cand = {"a": runs(56, 70)}
    res = quality_noninferiority(base, cand, {"a": 1.0}, margin=2.0, alpha=0.025)
    (lv,) = res.levels
    assert lv.difference == pytest.approx(20.0)
    assert (lv.lower, lv.upper) == pytest.approx((5.24, 33.39), abs=5e-3)
    # One level: the overall bound is the level's.
    assert res.lower_bound == pytest.approx(lv.lower)


def test_all_pass_both_sides_gives_finite_honest_bound():
    res = quality_noninferiority(ALL_PASS, ALL_PASS, POINTS, margin=2.0)
    assert res.difference == 0.0
    assert res.baseline_score == res.candidate_score == 100.0
    # 15/15 does not prove 100 %: the one-sided 95 % Wilson lower limit is 15 / (15 + 1.645^2) = 0.847
    # per level, combined over the points weights: -15.3 pp * sqrt(sum w^2) = -7.17 pp.
    w = np.array(list(POINTS.values())) / 100
    expected = -100 * (1 - 15 / (15 + stats.norm.isf(0.05) ** 2)) * math.sqrt(float(np.sum(w**2)))
    assert res.lower_bound == pytest.approx(expected)
    assert res.lower_bound == pytest.approx(-7.17, abs=0.01)
    assert not res.non_inferior
    assert quality_noninferiority(ALL_PASS, ALL_PASS, POINTS, margin=7.2).non_inferior
    for lv in res.levels:
        assert all(math.isfinite(v) for v in (lv.difference, lv.lower, lv.upper))


def test_clear_regression_is_not_non_inferior_and_contributions_add_up():
    base = levels({"L1": 15, "L2": 14, "L3": 14, "L4": 12, "L5": 10})
    cand = levels({"L1": 9, "L2": 8, "L3": 10, "L4": 6, "L5": 4})
    res = quality_noninferiority(base, cand, POINTS, margin=5.0)
    assert res.difference == pytest.approx(res.candidate_score - res.baseline_score)
    assert res.difference == pytest.approx(sum(lv.contribution for lv in res.levels))
    assert res.upper_bound < -5.0
    assert not res.non_inferior
    assert (res.n_baseline, res.n_candidate) == (15, 15)
    assert "MOVER" in res.method


def test_mismatched_levels_and_bad_arguments_raise_spec_error():
    with pytest.raises(SpecError, match="only in baseline: \\['L5'\\]"):
        quality_noninferiority(ALL_PASS, {k: v for k, v in ALL_PASS.items() if k != "L5"}, POINTS, 2.0)
    with pytest.raises(SpecError, match="no points given"):
        quality_noninferiority(ALL_PASS, ALL_PASS, {"L1": 25.0}, 2.0)
    with pytest.raises(SpecError, match="margin"):
        quality_noninferiority(ALL_PASS, ALL_PASS, POINTS, -1.0)
    with pytest.raises(SpecError, match="alpha"):
        quality_noninferiority(ALL_PASS, ALL_PASS, POINTS, 2.0, alpha=0.95)
    with pytest.raises(SpecError, match="without any iteration"):
        quality_noninferiority({"a": []}, {"a": [True]}, {"a": 1.0}, 2.0)


level_runs = st.lists(st.booleans(), min_size=1, max_size=20)


@st.composite
def two_runs(draw):
    names = draw(st.lists(st.sampled_from(["L1", "L2", "L3", "L4", "L5"]), min_size=1, max_size=5, unique=True))
    base = {lv: draw(level_runs) for lv in names}
    cand = {lv: draw(level_runs) for lv in names}
    points = {lv: draw(st.floats(min_value=0.5, max_value=100.0)) for lv in names}
    return base, cand, points


@settings(max_examples=150, deadline=None)
@given(data=two_runs(), alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_quality_properties(data, alpha):
    base, cand, points = data
    res = quality_noninferiority(base, cand, points, margin=2.0, alpha=alpha)
    values = [res.difference, res.lower_bound, res.upper_bound]
    assert all(math.isfinite(v) for v in values)  # no NaN, also at sd = 0 and n = 1
    assert res.lower_bound <= res.difference + 1e-9 <= res.upper_bound + 2e-9
    assert res.lower_bound >= -100.0 - 1e-9 and res.upper_bound <= 100.0 + 1e-9
    for lv in res.levels:
        assert lv.lower <= lv.difference + 1e-9 <= lv.upper + 2e-9
    # Symmetry: swapping the presets negates the difference and mirrors the bounds.
    swapped = quality_noninferiority(cand, base, points, margin=2.0, alpha=alpha)
    assert swapped.difference == pytest.approx(-res.difference, abs=1e-9)
    assert swapped.lower_bound == pytest.approx(-res.upper_bound, abs=1e-9)
    assert swapped.upper_bound == pytest.approx(-res.lower_bound, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(data=two_runs(), m1=st.floats(0.0, 50.0), m2=st.floats(0.0, 50.0))
def test_larger_margin_never_turns_non_inferior_into_not(data, m1, m2):
    base, cand, points = data
    small, large = sorted((m1, m2))
    if quality_noninferiority(base, cand, points, margin=small).non_inferior:
        assert quality_noninferiority(base, cand, points, margin=large).non_inferior


def test_more_confidence_widens_the_bounds():
    base = levels({"L1": 15, "L2": 13, "L3": 12, "L4": 11, "L5": 9})
    cand = levels({"L1": 14, "L2": 14, "L3": 11, "L4": 10, "L5": 10})
    a = quality_noninferiority(base, cand, POINTS, 5.0, alpha=0.10)
    b = quality_noninferiority(base, cand, POINTS, 5.0, alpha=0.01)
    assert b.lower_bound < a.lower_bound and b.upper_bound > a.upper_bound
