"""Tests of pytest_quantgate.inference against published values, scipy, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference import (
    SequentialTest,
    group_sequential_boundaries,
    hsd_spending,
    iterations_needed,
    mcnemar,
    paired_noninferiority,
    quality_noninferiority,
    sequential_decision,
    speed_delta,
    stratified_difference_bounds,
    unpaired_comparison,
)
from pytest_quantgate.inference.paired import _tango_statistic

POINTS = {"L1": 25.0, "L2": 25.0, "L3": 25.0, "L4": 15.0, "L5": 10.0}


def runs(passed: int, n: int) -> list[bool]:
    return [True] * passed + [False] * (n - passed)


def levels(counts: dict[str, int], n: int = 15) -> dict[str, list[bool]]:
    return {lv: runs(k, n) for lv, k in counts.items()}


ALL_PASS = levels(dict.fromkeys(POINTS, 15))


# ----------------------------------------------------------------------------------------------------
# Quality non-inferiority (stratified MOVER-Wilson)
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Matched items
# ----------------------------------------------------------------------------------------------------


def pairs_from(b: int, c: int, both_right: int = 0, both_wrong: int = 0) -> list[tuple[bool, bool]]:
    return [(True, False)] * b + [(False, True)] * c + [(True, True)] * both_right + [(False, False)] * both_wrong


def test_mcnemar_exact_b1_c9():
    res = mcnemar(pairs_from(1, 9, 30, 5))
    # 2 * P(X <= 1 | Bin(10, 1/2)) = 2 * 11 / 1024
    assert res.p_value == pytest.approx(22 / 1024)
    assert (res.b, res.c, res.n_pairs, res.statistic) == (1, 9, 45, 1.0)
    assert "exact" in res.method
    assert res.p_value == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue)


def test_mcnemar_chi_squared_above_25_discordant():
    res = mcnemar(pairs_from(8, 24, 124, 44))
    assert res.statistic == pytest.approx((16 - 1) ** 2 / 32)
    assert res.p_value == pytest.approx(stats.chi2.sf(225 / 32, 1))
    assert res.p_value == pytest.approx(0.0080, abs=5e-5)
    assert "chi-squared" in res.method


def test_mcnemar_switches_at_25_discordant():
    assert "exact" in mcnemar(pairs_from(10, 15)).method
    assert "chi-squared" in mcnemar(pairs_from(10, 16)).method


def test_mcnemar_no_discordant_pairs_and_empty_input():
    res = mcnemar(pairs_from(0, 0, 10, 3))
    assert res.p_value == 1.0
    with pytest.raises(SpecError, match="no matched items"):
        mcnemar([])


def test_docs_example_unpaired_loses_power_on_paired_items():
    """The synthetic data of docs/statistics.md: 200 items, baseline 132 right, candidate 148."""
    pairs = pairs_from(8, 24, 124, 44)
    n = len(pairs)
    xb, xc = sum(b for b, _ in pairs), sum(c for _, c in pairs)
    assert (n, xb, xc) == (200, 132, 148)
    pooled = (xb + xc) / (2 * n)
    z = (xc - xb) / n / math.sqrt(pooled * (1 - pooled) * 2 / n)
    assert 2 * stats.norm.sf(z) == pytest.approx(0.081, abs=5e-4)
    assert mcnemar(pairs).p_value == pytest.approx(0.008, abs=5e-4)


def _tango_reference(delta: float, up: int, down: int, n: int) -> float:
    """Tango's statistic with the restricted MLE found numerically instead of by the closed form."""
    same = n - up - down

    def neg_loglik(q_down: float) -> float:
        q_up = q_down + delta
        rest = 1 - q_down - q_up
        terms = [(down, q_down), (up, q_up), (same, rest)]
        return -sum(k * math.log(q) for k, q in terms if k > 0)

    lo, hi = max(0.0, -delta) + 1e-12, (1 - delta) / 2 - 1e-12
    q = optimize.minimize_scalar(neg_loglik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}).x
    return (up - down - n * delta) / math.sqrt(n * (2 * q + delta * (1 - delta)))


@pytest.mark.parametrize(("up", "down", "n"), [(24, 8, 200), (6, 16, 161), (1, 7, 21), (3, 0, 40)])
@pytest.mark.parametrize("delta", [-0.2, -0.05, 0.0, 0.03, 0.1])
def test_tango_closed_form_matches_numeric_restricted_mle(up, down, n, delta):
    assert _tango_statistic(delta, up, down, n) == pytest.approx(_tango_reference(delta, up, down, n), rel=1e-5)


def test_paired_noninferiority_bounds_invert_the_score_test():
    res = paired_noninferiority(pairs_from(8, 24, 124, 44), margin=2.0, alpha=0.05)
    z = stats.norm.isf(0.05)
    assert res.difference == pytest.approx(8.0)
    assert _tango_statistic(res.lower_bound / 100, 24, 8, 200) == pytest.approx(z, abs=1e-6)
    assert _tango_statistic(res.upper_bound / 100, 24, 8, 200) == pytest.approx(-z, abs=1e-6)
    assert res.non_inferior
    assert res.lower_bound < res.difference < res.upper_bound


def test_paired_noninferiority_edge_cases():
    identical = paired_noninferiority(pairs_from(0, 0, 50, 0), margin=2.0)
    assert identical.difference == 0.0
    assert -10 < identical.lower_bound < 0 < identical.upper_bound < 10
    assert not identical.non_inferior  # 50 items cannot rule out a 2 pp loss
    assert paired_noninferiority(pairs_from(0, 0, 2000, 0), margin=2.0).non_inferior
    all_lost = paired_noninferiority(pairs_from(10, 0), margin=2.0)
    assert all_lost.difference == -100.0 and all_lost.lower_bound == -100.0


@settings(max_examples=100, deadline=None)
@given(
    b=st.integers(0, 40),
    c=st.integers(0, 40),
    same=st.integers(0, 60),
    alpha=st.sampled_from([0.025, 0.05, 0.1]),
)
def test_paired_properties(b, c, same, alpha):
    if b + c + same == 0:
        same = 1
    pairs = pairs_from(b, c, same)
    res = paired_noninferiority(pairs, margin=2.0, alpha=alpha)
    assert -100.0 <= res.lower_bound <= res.difference <= res.upper_bound <= 100.0
    mirrored = paired_noninferiority(pairs_from(c, b, same), margin=2.0, alpha=alpha)
    assert mirrored.lower_bound == pytest.approx(-res.upper_bound, abs=1e-6)
    assert 0.0 <= mcnemar(pairs).p_value <= 1.0


# ----------------------------------------------------------------------------------------------------
# Unpaired
# ----------------------------------------------------------------------------------------------------


def test_unpaired_matches_scipy_welch_and_mann_whitney():
    base = [80.0, 75.0, 85.0, 90.0, 70.0, 80.0, 85.0]
    cand = [70.0, 65.0, 80.0, 75.0, 60.0, 72.5]
    res = unpaired_comparison(base, cand, margin=5.0)
    assert res.unpaired is True
    assert res.difference == pytest.approx(np.mean(cand) - np.mean(base))
    assert res.welch_p_value == pytest.approx(stats.ttest_ind(cand, base, equal_var=False).pvalue)
    assert res.mann_whitney_p_value == pytest.approx(stats.mannwhitneyu(cand, base).pvalue)
    welch = stats.ttest_ind(cand, base, equal_var=False, alternative="greater")
    lower = welch.confidence_interval(0.95).low
    assert res.lower_bound == pytest.approx(lower)
    assert res.non_inferior is False


def test_unpaired_zero_spread_and_too_few_values():
    same = unpaired_comparison([100.0] * 5, [100.0] * 5, margin=2.0)
    assert (same.difference, same.lower_bound, same.welch_p_value, same.mann_whitney_p_value) == (0.0, 0.0, 1.0, 1.0)
    assert same.non_inferior is True
    differ = unpaired_comparison([100.0] * 5, [90.0] * 5)
    assert differ.welch_p_value == 0.0 and differ.non_inferior is None
    with pytest.raises(SpecError, match="at least 2 scores per preset"):
        unpaired_comparison([90.0], [91.0, 92.0])
    with pytest.raises(SpecError, match="NaN"):
        unpaired_comparison([90.0, math.nan], [91.0, 92.0])


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.floats(0, 100), min_size=2, max_size=15),
    cand=st.lists(st.floats(0, 100), min_size=2, max_size=15),
)
def test_unpaired_p_values_in_unit_interval(base, cand):
    res = unpaired_comparison(base, cand, margin=2.0)
    assert 0.0 <= res.welch_p_value <= 1.0
    assert 0.0 <= res.mann_whitney_p_value <= 1.0
    assert res.lower_bound <= res.difference + 1e-9 <= res.upper_bound + 2e-9


# ----------------------------------------------------------------------------------------------------
# Speed / memory
# ----------------------------------------------------------------------------------------------------

BASE_TPS = [50.1, 49.8, 50.4, 50.0, 49.6, 50.3, 50.2, 49.9, 50.5, 49.7, 50.0, 50.1, 49.8, 50.2, 50.0]


def test_speed_clearly_faster():
    res = speed_delta(BASE_TPS, [v * 1.2 for v in BASE_TPS])
    assert res.verdict == "faster" and res.significant and res.beyond_floor
    assert res.relative_change == pytest.approx(0.2)


def test_speed_clearly_slower():
    assert speed_delta(BASE_TPS, [v * 0.8 for v in BASE_TPS]).verdict == "slower"


def test_ttft_lower_is_better_reads_faster():
    ttft = [120.0 + i for i in range(15)]
    res = speed_delta(ttft, [v * 0.7 for v in ttft], higher_is_better=False)
    assert res.relative_change < 0 and res.verdict == "faster"
    mem = speed_delta(
        ttft, [v * 1.3 for v in ttft], higher_is_better=False, better_label="smaller", worse_label="larger"
    )
    assert mem.verdict == "larger"


def test_significant_but_below_floor():
    res = speed_delta(BASE_TPS, [v * 1.02 for v in BASE_TPS])
    assert res.significant and not res.beyond_floor
    assert res.verdict == "no change (below floor)"


def test_large_but_noisy_change_is_noise():
    base = [50.0, 20.0, 80.0, 35.0, 65.0]
    cand = [60.0, 25.0, 90.0, 40.0, 70.0]
    res = speed_delta(base, cand)
    assert res.beyond_floor and not res.significant
    assert res.verdict == "no change (noise)"


def test_speed_edge_cases():
    assert speed_delta([50.0], [80.0]).verdict == "no change (noise)"
    assert speed_delta([50.0] * 5, [50.0] * 5).p_value == 1.0
    with pytest.raises(SpecError, match="baseline median is 0"):
        speed_delta([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(SpecError, match="values on both sides"):
        speed_delta([], [1.0])
    with pytest.raises(SpecError, match="floor"):
        speed_delta([1.0], [1.0], floor=-0.1)


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.floats(1, 1000), min_size=1, max_size=20),
    cand=st.lists(st.floats(1, 1000), min_size=1, max_size=20),
)
def test_speed_p_value_in_unit_interval_and_verdict_consistent(base, cand):
    res = speed_delta(base, cand)
    assert 0.0 <= res.p_value <= 1.0
    if res.verdict in ("faster", "slower"):
        assert res.significant and res.beyond_floor


# ----------------------------------------------------------------------------------------------------
# Iterations needed
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------------------------------------


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
