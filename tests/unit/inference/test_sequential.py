"""Tests of the group-sequential design and SequentialTest's decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pass_fail_runs import ALL_PASS, POINTS, levels, runs
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.quality import quality_noninferiority
from pytest_quantgate.inference.sequential import (
    SequentialTest,
    group_sequential_boundaries,
    hsd_spending,
    sequential_decision,
)


def test_group_sequential_boundaries_lan_demets_obrien_fleming():
    # Lan-DeMets O'Brien-Fleming spending, 5 equally spaced looks, one-sided 0.025 (as in gsDesign).
    t = [0.2, 0.4, 0.6, 0.8, 1.0]
    z = stats.norm.isf(0.0125)
    spend = [2 * stats.norm.sf(z / math.sqrt(x)) for x in t]
    got = group_sequential_boundaries(t, spend)
    assert got == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-4)


def test_group_sequential_boundaries_single_look_is_fixed_test():
    assert group_sequential_boundaries([1.0], [0.05]) == pytest.approx((stats.norm.isf(0.05),))


def test_group_sequential_boundaries_spend_alpha_by_monte_carlo():
    looks = [n / 15 for n in range(3, 16)]
    bounds = np.array(group_sequential_boundaries(looks, [hsd_spending(t, 0.05, 0.0) for t in looks]))
    rng = np.random.default_rng(11)
    steps = rng.standard_normal((200_000, len(looks))) * np.sqrt(np.diff([0.0, *looks]))
    z = steps.cumsum(axis=1) / np.sqrt(looks)
    assert float(np.mean((z >= bounds).any(axis=1))) == pytest.approx(0.05, abs=0.002)


def test_hsd_spending_shape():
    assert hsd_spending(0.0, 0.05, -4) == 0.0
    assert hsd_spending(1.0, 0.05, -4) == pytest.approx(0.05)
    assert hsd_spending(0.5, 0.05, 0.0) == pytest.approx(0.025)
    assert hsd_spending(0.5, 0.05, -4) < hsd_spending(0.5, 0.05, 1.0)


@pytest.fixture(scope="module")
def seq_test() -> SequentialTest:
    return SequentialTest.create(margin=18.0)


def test_sequential_waits_for_first_look(seq_test):
    early = {lv: v[:2] for lv, v in ALL_PASS.items()}
    res = seq_test.decide(early, early, POINTS)
    assert res.decision == "continue" and res.lower_bound is None and res.iterations == 2


def test_sequential_swap_keep_continue(seq_test):
    # All-pass on both sides: 8/8 cannot yet rule out an 18 pp loss at the look-8 level, 9/9 can.
    first8 = {lv: v[:8] for lv, v in ALL_PASS.items()}
    assert seq_test.decide(first8, first8, POINTS).decision == "continue"
    first9 = {lv: v[:9] for lv, v in ALL_PASS.items()}
    swap = seq_test.decide(first9, first9, POINTS)
    assert swap.decision == "swap" and swap.lower_bound is not None and swap.lower_bound > -18.0
    broken = {lv: runs(1, 6) for lv in POINTS}
    keep = seq_test.decide({lv: v[:6] for lv, v in ALL_PASS.items()}, broken, POINTS)
    assert keep.decision == "keep" and not keep.final and "futility" in keep.reason


def test_sequential_cap_falls_back_to_fixed_analysis(seq_test):
    base = levels({"L1": 15, "L2": 14, "L3": 14, "L4": 12, "L5": 10})
    cand = levels({"L1": 13, "L2": 11, "L3": 11, "L4": 9, "L5": 7})
    res = seq_test.decide(base, cand, POINTS)
    assert res.final and res.decision in ("swap", "keep") and res.iterations == 15
    fixed_at_adjusted_level = quality_noninferiority(base, cand, POINTS, 18.0, alpha=stats.norm.sf(res.efficacy_z))
    assert res.lower_bound == pytest.approx(fixed_at_adjusted_level.lower_bound)
    assert (res.decision == "swap") == fixed_at_adjusted_level.non_inferior


def test_sequential_final_level_is_stricter_than_fixed(seq_test):
    assert seq_test.efficacy_z[-1] > stats.norm.isf(0.05)
    assert len(seq_test.efficacy_z) == len(seq_test.futility_z) == 13


def test_simulate_agrees_with_decide(seq_test):
    rng = np.random.default_rng(2)
    probs = np.array([1.0, 0.95, 0.9, 0.8, 0.7])
    base = rng.random((40, 15, 5)) < probs
    cand = rng.random((40, 15, 5)) < probs - 0.15
    swapped, used = seq_test.simulate(base, cand, list(POINTS.values()))
    names = list(POINTS)
    for i in range(40):
        for n in range(1, 16):
            b = {lv: list(base[i, :n, j]) for j, lv in enumerate(names)}
            c = {lv: list(cand[i, :n, j]) for j, lv in enumerate(names)}
            d = seq_test.decide(b, c, POINTS)
            if d.decision != "continue":
                assert n == used[i]
                assert (d.decision == "swap") == bool(swapped[i])
                break


def test_sequential_decision_function_and_bad_design():
    res = sequential_decision(ALL_PASS, ALL_PASS, POINTS, margin=18.0)
    assert res.decision == "swap"
    with pytest.raises(SpecError, match="min_iterations"):
        SequentialTest.create(2.0, min_iterations=20, max_iterations=15)
