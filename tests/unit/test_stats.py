"""Tests of pytest_quantgate.stats against numpy/scipy, published Wilson values, and properties."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pytest_quantgate.errors import SpecError
from pytest_quantgate.stats import clopper_pearson_interval, mean_ci, percentile, summarize, wilson, wilson_interval

FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
CONFIDENCE = st.floats(min_value=0.5, max_value=0.999)


def test_summarize_matches_numpy_and_scipy_on_fifteen_scores() -> None:
    scores = [100, 95, 90, 100, 85, 100, 75, 95, 90, 100, 80, 95, 100, 90, 85]
    s = summarize(scores)
    assert s is not None
    arr = np.array(scores, dtype=float)
    assert s.n == 15
    assert s.mean == pytest.approx(arr.mean(), rel=1e-12)
    assert s.sd == pytest.approx(arr.std(ddof=1), rel=1e-12)
    low, high = sps.t.interval(0.95, 14, loc=arr.mean(), scale=arr.std(ddof=1) / math.sqrt(15))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    assert (s.min, s.max) == (75, 100)
    assert s.median == np.median(arr)
    assert s.p95 == pytest.approx(np.percentile(arr, 95))
    assert s.ci_defined


def test_summarize_honours_the_confidence() -> None:
    s = summarize([1.0, 2.0, 4.0, 8.0], confidence=0.9)
    assert s is not None and s.confidence == 0.9
    low, high = sps.t.interval(0.9, 3, loc=3.75, scale=np.std([1, 2, 4, 8], ddof=1) / 2)
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_one_value_gives_an_infinite_interval_not_a_made_up_one() -> None:
    s = summarize([42.0])
    assert s is not None
    assert (s.n, s.mean, s.sd, s.median, s.p95) == (1, 42.0, 0.0, 42.0, 42.0)
    assert (s.ci_low, s.ci_high) == (-math.inf, math.inf)
    assert not s.ci_defined


def test_identical_values_collapse_the_interval_without_nan() -> None:
    s = summarize([100.0] * 15)
    assert s is not None
    assert (s.mean, s.sd, s.ci_low, s.ci_high) == (100.0, 0.0, 100.0, 100.0)


def test_no_values_is_none_and_non_finite_values_are_left_out() -> None:
    assert summarize([]) is None
    assert summarize([math.nan, math.inf]) is None
    s = summarize([1.0, math.nan, 3.0, -math.inf])
    assert s is not None and (s.n, s.mean) == (2, 2.0)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FINITE, min_size=1, max_size=40), q=st.floats(0, 100))
def test_percentile_equals_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 15, 0.0119, 0.2982),
        (2, 3, 0.2077, 0.9385),
    ],
)
def test_wilson_matches_published_values(passed: int, n: int, low: float, high: float) -> None:
    r = wilson(passed, n)
    assert (r.passed, r.n) == (passed, n)
    assert r.rate == passed / n
    assert r.low == pytest.approx(low, abs=1e-4)
    assert r.high == pytest.approx(high, abs=1e-4)


def test_wilson_of_no_trials_is_the_whole_range_with_an_undefined_rate() -> None:
    r = wilson(0, 0)
    assert (r.low, r.high) == (0.0, 1.0)
    assert math.isnan(r.rate)


@pytest.mark.parametrize(("passed", "n"), [(-1, 5), (6, 5), (1, -1)])
def test_wilson_rejects_impossible_counts(passed: int, n: int) -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, n="):
        wilson(passed, n)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FINITE, min_size=2, max_size=30), confidence=CONFIDENCE)
def test_the_t_interval_contains_the_mean(values: list[float], confidence: float) -> None:
    s = summarize(values, confidence)
    assert s is not None
    assert s.ci_low <= s.mean <= s.ci_high
    assert not math.isnan(s.ci_low) and not math.isnan(s.ci_high)
    assert s.min <= s.median <= s.max
    assert s.min <= s.p95 <= s.max


@settings(max_examples=100, deadline=None)
@given(values=st.lists(FINITE, min_size=2, max_size=30), a=CONFIDENCE, b=CONFIDENCE)
def test_the_t_interval_widens_with_the_confidence(values: list[float], a: float, b: float) -> None:
    lo_c, hi_c = sorted((a, b))
    narrow, wide = summarize(values, lo_c), summarize(values, hi_c)
    assert narrow is not None and wide is not None
    assert wide.ci_low <= narrow.ci_low + 1e-9
    assert wide.ci_high >= narrow.ci_high - 1e-9


@st.composite
def counts(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 500))
    return draw(st.integers(0, n)), n


@settings(max_examples=200, deadline=None)
@given(pn=counts(), confidence=CONFIDENCE)
def test_the_wilson_interval_lies_in_0_1_and_contains_the_rate(pn: tuple[int, int], confidence: float) -> None:
    passed, n = pn
    r = wilson(passed, n, confidence)
    assert 0.0 <= r.low <= r.rate <= r.high <= 1.0
    if passed == 0:
        assert r.low == 0.0
    if passed == n:
        assert r.high == 1.0


@settings(max_examples=100, deadline=None)
@given(pn=counts(), a=CONFIDENCE, b=CONFIDENCE)
def test_the_wilson_interval_widens_with_the_confidence(pn: tuple[int, int], a: float, b: float) -> None:
    lo_c, hi_c = sorted((a, b))
    narrow, wide = wilson(*pn, lo_c), wilson(*pn, hi_c)
    assert wide.low <= narrow.low + 1e-12
    assert wide.high >= narrow.high - 1e-12


# One-sample intervals (Interval)


@pytest.mark.parametrize(
    ("x", "n", "lo", "hi"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Wilson score method.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_published_values(x: int, n: int, lo: float, hi: float) -> None:
    ci = wilson_interval(x, n)
    assert ci.lower == pytest.approx(lo, abs=5e-5)
    assert ci.upper == pytest.approx(hi, abs=5e-5)
    assert ci.estimate == x / n


@pytest.mark.parametrize(("x", "n"), [(0, 10), (10, 10), (5, 10), (1, 29), (81, 263)])
def test_clopper_pearson_matches_scipy(x: int, n: int) -> None:
    ci = clopper_pearson_interval(x, n, 0.9)
    ref = sps.binomtest(x, n).proportion_ci(confidence_level=0.9, method="exact")
    assert ci.lower == pytest.approx(ref.low, abs=1e-10)
    assert ci.upper == pytest.approx(ref.high, abs=1e-10)


def test_interval_argument_errors_name_the_problem() -> None:
    with pytest.raises(SpecError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(SpecError, match="between 0 and n=5"):
        clopper_pearson_interval(6, 5)
    with pytest.raises(SpecError, match="confidence"):
        wilson_interval(1, 5, confidence=95)


def test_mean_ci_matches_scipy_t_interval() -> None:
    xs = [71.0, 74.5, 69.0, 80.0, 77.5, 72.0]
    ci = mean_ci(xs, 0.95)
    lo, hi = sps.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=sps.sem(xs))
    assert (ci.lower, ci.upper) == pytest.approx((lo, hi))


def test_mean_ci_zero_spread_is_degenerate_not_nan() -> None:
    ci = mean_ci([88.0] * 15)
    assert (ci.estimate, ci.lower, ci.upper) == (88.0, 88.0, 88.0)


def test_mean_ci_single_value_raises_clear_error() -> None:
    with pytest.raises(SpecError, match="at least 2 values, got 1"):
        mean_ci([42.0])


def test_stats_does_not_import_inference() -> None:
    """Imports run one way: inference builds on stats, so stats must work without it (and stay light)."""
    code = (
        "import sys\n"
        "from pytest_quantgate.stats import wilson\n"
        "wilson(3, 5)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pytest_quantgate.inference', 'scipy.stats'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
