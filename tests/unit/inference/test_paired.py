"""Tests of mcnemar and paired_noninferiority (Tango) against published values, scipy and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.paired import _tango_statistic, mcnemar, paired_noninferiority


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
