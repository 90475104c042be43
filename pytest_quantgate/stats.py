"""Descriptive statistics of one run: means with t intervals, pass rates with Wilson intervals, percentiles.

Comparisons between two runs live in :mod:`pytest_quantgate.inference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class Summary:
    """Mean, spread and a two-sided confidence interval of one metric over iterations."""

    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); 0.0 when n == 1
    min: float
    max: float
    ci_low: float
    ci_high: float
    median: float
    p95: float
    confidence: float = 0.95

    @property
    def ci_defined(self) -> bool:
        """False for n == 1: one value says nothing about the spread, so the interval is (-inf, inf)."""
        return self.n > 1


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary | None:
    """Summary of *values*, or None when there are none.

    The interval is Student's t, which is right for small n (the field's 15 iterations) where a normal
    interval is too narrow. With n == 1 it is infinite rather than a made-up width; with σ == 0 it
    collapses to the mean (no NaN).
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return None
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    if n == 1:
        low, high = -math.inf, math.inf
    else:
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return Summary(
        n=n,
        mean=mean,
        sd=sd,
        min=min(xs),
        max=max(xs),
        ci_low=low,
        ci_high=high,
        median=percentile(xs, 50),
        p95=percentile(xs, 95),
        confidence=confidence,
    )


def t_quantile(p: float, df: int) -> float:
    # scipy.special rather than scipy.stats: the same quantile (stats.t.ppf calls it), a third of the
    # import time on every run's path; imported here to keep `pytest --help` fast.
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), *q* in [0, 100]."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    if len(xs) == 1:
        return xs[0]
    rank = (len(xs) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


@dataclass(frozen=True, slots=True)
class Rate:
    """A pass rate with its Wilson score interval (valid at small n and at 0 % or 100 %)."""

    passed: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.passed / self.n if self.n else math.nan


def wilson(passed: int, n: int, confidence: float = 0.95) -> Rate:
    if n < 0 or not 0 <= passed <= n:
        raise ValueError(f"passed={passed} must lie in [0, n={n}]")
    if n == 0:
        return Rate(0, 0, 0.0, 1.0)
    from pytest_quantgate.inference import wilson_interval  # the one Wilson implementation

    interval = wilson_interval(passed, n, confidence)
    return Rate(passed, n, interval.lower, interval.upper)
