"""Tests of the item-level sequential test: the design, its decisions, and its vectorised form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.item_sequential import ItemSequentialTest, item_sequential_decision
from pytest_quantgate.inference.items import item_noninferiority, item_table
from pytest_quantgate.inference.sequential import SequentialTest


@pytest.fixture(scope="module")
def test5() -> ItemSequentialTest:
    return ItemSequentialTest.create(margin=5.0)


def histories(trials: int, items: int, rng: np.random.Generator, greedy: float, drop: float = 0.0):
    """Pass/fail (trials, 15, items): each item repeats one draw with probability *greedy*, else draws
    afresh each iteration; the candidate reuses the baseline's draw 90 % of the time and fails a
    *drop* share of the items the baseline would pass."""
    p = rng.beta(2.1, 0.9, (trials, 1, items))
    u = rng.random((trials, 15, items))
    own = rng.random((trials, 15, items))
    same = rng.random((trials, 15, items)) < 0.9
    fixed = rng.random((trials, 1, items)) < greedy
    for arr in (u, own, same):
        arr[:] = np.where(fixed, arr[:, :1], arr)
    v = np.where(same, u, own)
    return (u < p).astype(float), (v < p * (1 - drop)).astype(float)


def as_runs(scores: np.ndarray, n: int) -> dict[str, list[float]]:
    return {f"i{k}": scores[:n, k].tolist() for k in range(scores.shape[1])}


def test_boundaries_are_the_level_designs_plus_final_look_boundaries(test5):
    level = SequentialTest.create(margin=5.0)
    assert test5.efficacy_z == level.efficacy_z and test5.futility_z == level.futility_z
    # Declaring the first look final spends all of alpha there: the fixed test's z.
    assert test5.final_z[0] == pytest.approx(stats.norm.isf(0.05), abs=1e-6)
    assert test5.final_z[-1] == pytest.approx(test5.efficacy_z[-1])
    assert all(f <= e + 1e-9 for f, e in zip(test5.final_z, test5.efficacy_z, strict=True))
    assert list(test5.final_z) == sorted(test5.final_z)


def test_waits_for_the_first_look(test5):
    runs = {f"i{k}": [1.0, 1.0] for k in range(50)}
    res = test5.decide(runs, runs)
    assert res.decision == "continue" and res.lower_bound is None and res.iterations == 2
    assert res.comparison.n_items == 50


def test_greedy_repeats_end_the_test_at_the_first_look_as_the_fixed_analysis(test5):
    # Every item repeats its answer: three iterations hold all the information fifteen would, so
    # look 3 is final and decides as the fixed analysis at alpha (no iterations wasted to the cap).
    rng = np.random.default_rng(7)
    base = (rng.random(200) < 0.7).astype(float)
    cand = np.where(rng.random(200) < 0.01, 1.0 - base, base)
    b = {f"i{k}": [base[k]] * 3 for k in range(200)}
    c = {f"i{k}": [cand[k]] * 3 for k in range(200)}
    res = test5.decide(b, c)
    fixed = item_noninferiority(b, c, margin=5.0)
    assert res.final and res.information == 1.0 and res.iterations == 3
    assert res.lower_bound == pytest.approx(fixed.lower_bound)
    assert res.decision == ("swap" if fixed.non_inferior else "keep")
    assert "would add little" in res.reason


def test_fresh_draws_keep_looking_while_information_grows(test5):
    rng = np.random.default_rng(8)
    base, cand = histories(1, 100, rng, greedy=0.0)
    res = test5.decide(as_runs(base[0], 3), as_runs(cand[0], 3))
    assert res.information is not None and res.information < test5.stop_information
    assert not res.final
    assert res.efficacy_z == test5.efficacy_z[0]


def test_the_cap_is_final(test5):
    rng = np.random.default_rng(9)
    base, cand = histories(1, 100, rng, greedy=0.0)
    res = test5.decide(as_runs(base[0], 15), as_runs(cand[0], 15))
    assert res.final and res.iterations == 15 and res.decision in ("swap", "keep")
    assert res.efficacy_z == pytest.approx(test5.efficacy_z[-1])


def test_futility_keeps_a_clearly_worse_candidate_early(test5):
    rng = np.random.default_rng(10)
    base, cand = histories(1, 200, rng, greedy=0.0, drop=0.4)
    res = test5.decide(as_runs(base[0], 3), as_runs(cand[0], 3))
    assert res.decision == "keep" and not res.final and "futility" in res.reason


def test_a_margin_the_items_cannot_resolve_is_given_up_early():
    # 100 items cannot show 2 pp (perfect agreement still leaves a bound near -2.7 pp): when
    # averaging more iterations could not change that, keep now instead of running to the cap.
    test = ItemSequentialTest.create(margin=2.0)
    rng = np.random.default_rng(11)
    base, cand = histories(1, 100, rng, greedy=0.0)
    res = test.decide(as_runs(base[0], 4), as_runs(cand[0], 4))
    assert res.decision == "keep" and "out of reach" in res.reason


def test_information_fraction_of_a_cold_first_iteration_is_complete(test5):
    # Iteration 1 differs (cold prompt cache), the rest repeat: nothing left to average away.
    b = {f"i{k}": [float(k % 2), 1.0, 1.0, 1.0] for k in range(40)}
    c = {f"i{k}": [1.0, 1.0, 1.0, 1.0] for k in range(40)}
    assert test5.information_fraction(item_table(b, c)) == 1.0


def test_simulate_agrees_with_decide(test5):
    # Half the candidates equal, half losing 7 % of the items; half the items greedy: swaps and keeps
    # at looks from 3 to 10.
    rng = np.random.default_rng(12)
    equal = histories(15, 150, rng, greedy=0.5)
    worse = histories(15, 150, rng, greedy=0.5, drop=0.07)
    base, cand = (np.concatenate([e, w]) for e, w in zip(equal, worse, strict=True))
    trials = base.shape[0]
    swapped, used = test5.simulate(base, cand)
    assert 0 < swapped.sum() < trials and len(set(used.tolist())) > 4
    for i in range(trials):
        for n in range(1, 16):
            decision = test5.decide(as_runs(base[i], n), as_runs(cand[i], n))
            if decision.decision != "continue":
                assert n == used[i]
                assert (decision.decision == "swap") == bool(swapped[i])
                break


def test_one_call_form_and_bad_designs():
    runs = {f"i{k}": [1.0] * 3 for k in range(300)}
    res = item_sequential_decision(runs, runs, margin=5.0)
    assert res.decision == "swap" and res.final
    with pytest.raises(SpecError, match="stop_information"):
        ItemSequentialTest.create(margin=5.0, stop_information=0.0)
    with pytest.raises(SpecError, match="curtail_power"):
        ItemSequentialTest.create(margin=5.0, curtail_power=1.0)
    with pytest.raises(SpecError, match="margin"):
        ItemSequentialTest.create(margin=-1.0)
    with pytest.raises(SpecError, match="shape"):
        ItemSequentialTest.create(margin=5.0).simulate(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_fresh_items_each_iteration_count_as_information_still_to_come() -> None:
    """A suite that asks new items every iteration (the tiny suite) gains items with every iteration: after
    3 of 15 most of the information is still to come, so a near miss of the margin is no final keep."""
    test = ItemSequentialTest.create(margin=2.0)
    base = {f"{k}-{i}": [1.0] for k in range(1, 4) for i in range(100)}
    cand = dict(base) | {"2-7": [0.0], "3-9": [0.0]}  # two of 300 items lost: Δ -0.7 pp
    decision = test.decide(base, cand, iterations=3)
    assert decision.information is not None and decision.information < 0.5
    assert decision.decision == "continue", decision.reason
    fixed = {f"q{i}": [1.0, 1.0, 1.0] for i in range(300)}  # the same 300 items three times: nothing to come
    fixed_cand = dict(fixed) | {"q7": [0.0, 0.0, 0.0], "q9": [0.0, 0.0, 0.0]}
    assert test.decide(fixed, fixed_cand, iterations=3).information == 1.0
