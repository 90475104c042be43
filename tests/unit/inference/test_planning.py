"""Tests of iterations_needed, checked against simulation."""

from __future__ import annotations

import numpy as np
from pass_fail_runs import ALL_PASS, POINTS, levels, runs
from scipy import stats

from pytest_quantgate.inference.planning import iterations_needed
from pytest_quantgate.inference.quality import stratified_difference_bounds


def test_iterations_needed_all_pass_margin_2():
    need = iterations_needed(ALL_PASS, ALL_PASS, POINTS, margin=2.0)
    # All levels at 100 %: the estimate cannot move, only the Wilson width shrinks; the bound
    # -7.17 pp * 17.7 / (n + 2.7) reaches -2 pp at n = 61.
    assert need.per_preset == 61
    assert need.additional == 46
    assert need.current == 15


def test_iterations_needed_is_monotone_and_can_be_unreachable():
    base = levels({"L1": 15, "L2": 14, "L3": 14, "L4": 12, "L5": 10})
    ns = [iterations_needed(base, base, POINTS, m).per_preset for m in (2.0, 5.0, 10.0, 20.0)]
    assert all(n is not None for n in ns)
    assert ns == sorted(ns, reverse=True)
    assert iterations_needed(base, base, POINTS, 20.0).additional == 0
    hopeless = iterations_needed(base, base, POINTS, 2.0, planning_difference=-3.0)
    assert hopeless.per_preset is None and hopeless.additional is None


def test_iterations_needed_gives_the_promised_power():
    """Simulate the fixed analysis at the recommended n: power close to (not below) 80 %."""
    probs = np.array([1.0, 0.95, 0.9, 0.8, 0.7])
    obs = {lv: runs(round(1000 * p), 1000) for lv, p in zip(POINTS, probs, strict=True)}
    n = iterations_needed(obs, obs, POINTS, margin=10.0).per_preset
    assert n is not None
    rng = np.random.default_rng(5)
    xb = rng.binomial(n, probs, size=(20_000, 5))
    xc = rng.binomial(n, probs, size=(20_000, 5))
    _d, lower, _u = stratified_difference_bounds(xb, n, xc, n, list(POINTS.values()), stats.norm.isf(0.05))
    assert 0.78 <= float(np.mean(lower > -10.0)) <= 0.88
