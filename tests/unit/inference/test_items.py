"""Tests of the item-level comparison: paired by item id, clustered by item."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.items import (
    clustered_difference_bounds,
    item_noninferiority,
    item_quantile,
    item_table,
    score_distances,
)


def q_t(n: int, alpha: float = 0.05) -> float:
    return float(stats.t.isf(alpha, n - 1))


def single(scores: dict[str, float]) -> dict[str, list[float]]:
    """One iteration per item."""
    return {item: [score] for item, score in scores.items()}


def test_all_items_agree_gives_the_finite_item_bound_not_zero_width():
    # 100 items, every one right on both sides: D = 0 and the bounds are ±q²/(n + q²), Wilson's
    # bound for "0 of 100 items differ" (q = t_99 at 0.95 = 1.6604, q² = 2.7570: 2.7570 / 102.757).
    same = single({f"i{k}": 1.0 for k in range(100)})
    res = item_noninferiority(same, same, margin=2.0)
    q = q_t(100)
    assert res.difference == 0.0
    assert res.lower_bound == pytest.approx(-100 * q * q / (100 + q * q))
    assert res.lower_bound == pytest.approx(-2.683, abs=1e-3)
    assert res.upper_bound == pytest.approx(-res.lower_bound)
    assert not res.non_inferior  # 100 items cannot show a 2 pp margin, however much they agree
    assert item_noninferiority(same, same, margin=3.0).non_inferior


def test_pass_fail_items_lost_one_way_give_wilson_for_the_share_lost():
    # One iteration, 7 of 100 items lost by the candidate, none gained: the lower bound is minus the
    # upper Wilson (score) limit for 7/100 at the same quantile.
    base = single({f"i{k}": 1.0 for k in range(100)})
    cand = single({f"i{k}": 0.0 if k < 7 else 1.0 for k in range(100)})
    res = item_noninferiority(base, cand, margin=5.0)
    q, x, n = q_t(100), 7.0, 100.0
    wilson_hi = (x + q * q / 2 + q * math.sqrt(x * (n - x) / n + q * q / 4)) / (n + q * q)
    assert res.difference == pytest.approx(-7.0)
    assert res.lower_bound == pytest.approx(-100 * wilson_hi)
    assert res.lower_bound == pytest.approx(-12.49, abs=0.01)
    assert res.worse == tuple(f"i{k}" for k in range(7)) and res.better == ()
    assert not res.non_inferior


def test_hand_computed_four_items():
    # d = (1, 0, 0, 0): D = 0.25, clustered V = Σ(d - D)²/n² = 0.75/16 = 0.046875, q = t_3 = 2.353363.
    # Lower bound: x = D - δ solves (1 + q²/n)x² - q²((1 + D)/n - V/(1 + D))x - q²V = 0,
    # i.e. 2.384582x² - 1.523045x - 0.259608 = 0, x = 0.778541: δ = -0.528541.
    base = single({"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0})
    cand = single({"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0})
    res = item_noninferiority(base, cand, margin=5.0)
    assert res.difference == pytest.approx(25.0)
    assert res.lower_bound == pytest.approx(-52.854, abs=1e-3)
    assert res.upper_bound == pytest.approx(75.563, abs=1e-3)
    assert res.standard_error == pytest.approx(100 * math.sqrt(0.046875))


def test_the_bound_solves_the_score_equation_of_its_worst_case_null():
    # The closed form is a root of (D - δ)² = q² Var_δ / n, Var_δ being the variance of the data
    # mixed with mass ε at -1 so that the mean is δ: check against that mixture built explicitly.
    rng = np.random.default_rng(5)
    d = np.clip(rng.normal(-0.05, 0.3, 40), -1, 1)
    q = 1.9
    diff = d.mean()
    variance = np.mean((d - diff) ** 2) / d.size
    down, up = score_distances(diff, variance, d.size, q)
    delta = diff - float(down)
    eps = (diff - delta) / (1 + diff)
    values = np.append(d, -1.0)
    probs = np.append(np.full(d.size, (1 - eps) / d.size), eps)
    assert float(np.sum(probs * values)) == pytest.approx(delta)
    var_null = float(np.sum(probs * (values - delta) ** 2))
    assert (diff - delta) ** 2 == pytest.approx(q * q * var_null / d.size)
    # ... and the upper bound with the mass at +1.
    delta_up = diff + float(up)
    eps_up = (delta_up - diff) / (1 - diff)
    values_up = np.append(d, 1.0)
    probs_up = np.append(np.full(d.size, (1 - eps_up) / d.size), eps_up)
    var_null_up = float(np.sum(probs_up * (values_up - delta_up) ** 2))
    assert (delta_up - diff) ** 2 == pytest.approx(q * q * var_null_up / d.size)


def test_greedy_repeats_add_no_evidence():
    rng = np.random.default_rng(1)
    base1 = {f"i{k}": float(rng.random() < 0.7) for k in range(60)}
    cand1 = {k: (1.0 - v if rng.random() < 0.1 else v) for k, v in base1.items()}
    once = item_noninferiority(single(base1), single(cand1), margin=5.0)
    assert once.n_pairs == once.n_items == 60
    for k in (2, 5, 15):
        repeated = item_noninferiority(
            {i: [v] * k for i, v in base1.items()}, {i: [v] * k for i, v in cand1.items()}, margin=5.0
        )
        assert (repeated.difference, repeated.lower_bound, repeated.upper_bound) == (
            once.difference,
            once.lower_bound,
            once.upper_bound,
        )
        assert repeated.n_items == 60 and repeated.n_pairs == 60 * k
        assert repeated.baseline_changed == repeated.candidate_changed == 0


def test_two_identical_greedy_iterations_do_not_give_a_point_interval():
    # The reported bug: sigma = 0 from greedy repeats gave "95 % CI [27.1, 27.1]" from n = 2.
    base = {"a": [1.0, 1.0], "b": [0.0, 0.0], "c": [0.0, 0.0]}
    cand = {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [0.0, 0.0]}
    res = item_noninferiority(base, cand, margin=5.0)
    assert res.difference == pytest.approx(100 / 3)
    assert res.upper_bound - res.lower_bound > 50.0
    assert res.lower_bound < 0.0 < res.difference


def test_identical_sides_give_a_finite_interval_around_zero():
    rng = np.random.default_rng(2)
    runs = {f"i{k}": list(rng.random(4)) for k in range(30)}
    res = item_noninferiority(runs, runs, margin=5.0)
    assert res.difference == 0.0
    assert math.isfinite(res.lower_bound) and math.isfinite(res.upper_bound)
    assert res.lower_bound < 0.0 < res.upper_bound
    assert res.better == res.worse == ()


def test_swapping_the_presets_mirrors_the_result():
    rng = np.random.default_rng(3)
    base = {f"i{k}": list(rng.random(3)) for k in range(25)}
    cand = {f"i{k}": list(rng.random(2)) for k in range(25)}
    ab = item_noninferiority(base, cand, margin=5.0)
    ba = item_noninferiority(cand, base, margin=5.0)
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.lower_bound == pytest.approx(-ab.upper_bound)
    assert ba.upper_bound == pytest.approx(-ab.lower_bound)


def test_items_on_one_side_are_reported_not_used():
    base = {"a": [1.0], "b": [0.0, 1.0], "old": [1.0], "empty": []}
    cand = {"a": [0.0], "b": [1.0], "new": [0.0], "empty": [1.0]}
    res = item_noninferiority(base, cand, margin=5.0)
    paired = item_noninferiority({"a": [1.0], "b": [0.0, 1.0]}, {"a": [0.0], "b": [1.0]}, margin=5.0)
    assert res.baseline_only == ("old",)
    assert res.candidate_only == ("new", "empty")
    assert (res.difference, res.lower_bound, res.upper_bound) == (
        paired.difference,
        paired.lower_bound,
        paired.upper_bound,
    )
    assert res.n_items == 2


def test_item_means_use_each_sides_own_iterations():
    # b: baseline 0, 1 (mean 0.5) vs candidate 1 (mean 1): +50 pp; a: -100 pp. Weighted 3:1.
    res = item_noninferiority(
        {"a": [1.0], "b": [0.0, 1.0]}, {"a": [0.0], "b": [1.0]}, margin=5.0, weights={"a": 1.0, "b": 3.0}
    )
    assert res.difference == pytest.approx((1 * -100 + 3 * 50) / 4)
    assert res.baseline_score == pytest.approx((1 * 100 + 3 * 50) / 4)
    assert res.candidate_score == pytest.approx((1 * 0 + 3 * 100) / 4)
    assert res.n_pairs == 2
    by_name = {item.item: item for item in res.items}
    assert by_name["b"].baseline_n == 2 and by_name["b"].candidate_n == 1
    assert by_name["b"].difference == pytest.approx(50.0)
    assert res.better == ("b",) and res.worse == ("a",)


def test_weights_are_scale_free_and_zero_weight_items_do_not_count():
    rng = np.random.default_rng(4)
    base = {f"i{k}": list(rng.random(2)) for k in range(12)}
    cand = {f"i{k}": list(rng.random(2)) for k in range(12)}
    w = {f"i{k}": float(1 + k % 3) for k in range(12)}
    res = item_noninferiority(base, cand, margin=5.0, weights=w)
    scaled = item_noninferiority(base, cand, margin=5.0, weights={k: 10 * v for k, v in w.items()})
    assert scaled.lower_bound == pytest.approx(res.lower_bound)
    assert scaled.upper_bound == pytest.approx(res.upper_bound)
    # A zero-weight item is shown in the per-item view but changes nothing.
    with_zero = item_noninferiority({**base, "z": [0.0]}, {**cand, "z": [1.0]}, margin=5.0, weights={**w, "z": 0.0})
    assert with_zero.lower_bound == pytest.approx(res.lower_bound)
    assert with_zero.n_items == 12 and len(with_zero.items) == 13


def test_unequal_weights_shrink_the_effective_number_of_items():
    # Five heavy items and a hundred light ones carry about as much information as ~10 items: the
    # bounds must be as wide as that, not as wide as 105 items would allow.
    base = {f"h{k}": [1.0] for k in range(5)} | {f"l{k}": [1.0] for k in range(100)}
    weights = {f"h{k}": 5.0 for k in range(5)} | {f"l{k}": 0.1 for k in range(100)}
    res = item_noninferiority(base, base, margin=5.0, weights=weights)
    assert res.effective_items == pytest.approx(35.0**2 / 126.0)
    assert res.lower_bound < -15.0


def test_few_heavy_items_set_the_degrees_of_freedom():
    # Five items of weight 5 among a hundred of weight 0.1: the variance rests on about five items,
    # df = (Σw²)²/Σw⁴ - 1 = 126²/3125.01 - 1 ≈ 4.08, not Kish's 9.7 - 1 or the item count's 104.
    w = np.r_[np.full(5, 5.0), np.full(100, 0.1)]
    assert float(item_quantile(0.05, w)) == pytest.approx(stats.t.isf(0.05, 126.0**2 / 3125.01 - 1.0))
    # With 40 % of items lost (each heavy item lost or not as a block), the one-sided bound still
    # holds its level; with Kish's df it missed 8 % of the time.
    rng = np.random.default_rng(14)
    d = np.where(rng.random((8000, 105)) < 0.4, -1.0, 0.0)
    _diff, lower, _upper = clustered_difference_bounds(d, w, item_quantile(0.05, w))
    assert float(np.mean(lower > -40.0)) < 0.05


def test_changed_items_count_the_remaining_nondeterminism():
    base = {
        "stable": [1.0, 1.0, 1.0],
        "cold_cache": [0.0, 1.0, 1.0],  # only the first iteration differs
        "flaky": [1.0, 1.0, 0.0],
    }
    cand = {"stable": [1.0] * 3, "cold_cache": [1.0] * 3, "flaky": [0.5, 0.5, 0.5]}
    res = item_noninferiority(base, cand, margin=5.0)
    assert res.baseline_changed == 2 and res.baseline_changed_after_first == 1
    assert res.candidate_changed == res.candidate_changed_after_first == 0
    table = item_table(base, cand)
    # The within-item spread used for planning ignores the cold first iteration.
    assert table.baseline.variance_after_first.tolist() == pytest.approx([0.0, 0.0, 0.5])


def test_partial_credit_computed_two_ways_is_not_a_change():
    res = item_noninferiority({"a": [0.1 + 0.2, 0.3]}, {"a": [0.3, 0.3]}, margin=5.0)
    assert res.baseline_changed == 0 and res.better == res.worse == ()


def test_vectorised_core_matches_the_function():
    rng = np.random.default_rng(6)
    base = {f"i{k}": list(rng.random(3)) for k in range(20)}
    cand = {f"i{k}": list(rng.random(3)) for k in range(20)}
    res = item_noninferiority(base, cand, margin=5.0, alpha=0.1)
    d = np.array([np.mean(cand[k]) - np.mean(base[k]) for k in base])
    diff, lower, upper = clustered_difference_bounds(np.stack([d, d]), np.ones(20), q_t(20, 0.1))
    assert diff.tolist() == pytest.approx([res.difference] * 2)
    assert lower.tolist() == pytest.approx([res.lower_bound] * 2)
    assert upper.tolist() == pytest.approx([res.upper_bound] * 2)


@pytest.mark.parametrize(
    ("base", "cand", "weights", "match"),
    [
        ({"a": [1.2]}, {"a": [1.0]}, None, r"baseline item 'a' has score 1\.2 in iteration 1"),
        ({"a": [1.0]}, {"a": [0.5, float("nan")]}, None, "candidate item 'a' has score nan in iteration 2"),
        ({"a": [1.0]}, {"b": [1.0]}, None, "no item was seen on both presets"),
        ({"a": [1.0], "b": [1.0]}, {"a": [1.0], "b": [1.0]}, {"a": 1.0}, r"no weight given for item\(s\) \['b'\]"),
        ({"a": [1.0]}, {"a": [1.0]}, {"a": -1.0}, "weights must be finite"),
        ({"a": [1.0]}, {"a": [1.0]}, {"a": 0.0}, "not all 0"),
    ],
)
def test_bad_inputs_name_the_item(base, cand, weights, match):
    with pytest.raises(SpecError, match=match):
        item_noninferiority(base, cand, margin=5.0, weights=weights)


def test_quantile_needs_one_weight_per_item():
    with pytest.raises(SpecError, match="one per item"):
        item_quantile(0.05, 5.0)


def test_bad_margin_and_alpha():
    ok = {"a": [1.0]}
    with pytest.raises(SpecError, match="margin"):
        item_noninferiority(ok, ok, margin=-1.0)
    with pytest.raises(SpecError, match="alpha"):
        item_noninferiority(ok, ok, margin=1.0, alpha=0.7)


scores = st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0]), min_size=0, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    base=st.dictionaries(st.sampled_from("abcdefghij"), scores, min_size=1),
    cand=st.dictionaries(st.sampled_from("abcdefghij"), scores, min_size=1),
    weight=st.floats(0.01, 100.0),
    alpha=st.floats(0.001, 0.4),
)
def test_any_scores_give_finite_ordered_bounds(base, cand, weight, alpha):
    if not any(len(base[k]) and len(cand.get(k, [])) for k in base):
        return
    weights = {k: weight * (1 + ord(k) % 3) for k in "abcdefghij"}
    res = item_noninferiority(base, cand, margin=5.0, alpha=alpha, weights=weights)
    values = (res.difference, res.lower_bound, res.upper_bound, res.standard_error)
    assert all(math.isfinite(v) for v in values)
    assert -100.0 <= res.lower_bound <= res.difference <= res.upper_bound <= 100.0
    assert res.upper_bound > res.lower_bound
