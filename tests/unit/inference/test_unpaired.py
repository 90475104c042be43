"""Tests of unpaired_comparison against scipy's Welch and Mann-Whitney."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.unpaired import unpaired_comparison


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
