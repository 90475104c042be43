"""Statistics of one run: summaries with t intervals, percentiles, and one-sample intervals.

* :func:`summarize` / :class:`Summary`: mean, spread, median, p95 and a Student-t interval, for display;
* :func:`wilson` / :class:`Rate`: a pass rate with its Wilson interval;
* :func:`wilson_interval` (the one Wilson implementation, vectorised in :func:`wilson_bounds`),
  :func:`clopper_pearson_interval` and :func:`mean_ci`, returning an :class:`Interval`.

Comparisons between two runs live in :mod:`pytest_quantgate.inference`, which builds on this module;
this module never imports it. numpy, scipy and the standard library's ``statistics`` are imported
inside the functions that need them: :mod:`pytest_quantgate.levels` imports this module on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


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
        """False for n == 1 (one value says nothing about the spread) and for identical values: a t interval
        of zero width from, say, greedy iterations that repeat the same answers would claim a certainty the
        repeats do not give (they are not independent draws)."""
        return self.n > 1 and self.sd > 0

    @property
    def why_no_ci(self) -> str:
        """Why :attr:`ci_defined` is False, for a message ("" when it is defined)."""
        if self.n <= 1:
            return "a confidence interval needs at least 2 iterations (run with --iterations 2 or more)"
        if self.sd == 0:
            return (
                f"all {self.n} iterations gave the same value: no spread to build an interval from (greedy "
                "decoding repeats its answers, so repeats are not independent evidence)"
            )
        return ""


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
    interval = wilson_interval(passed, n, confidence)
    return Rate(passed, n, interval.lower, interval.upper)


# --------------------------------------------------------------------------------------------------
# One-sample intervals valid at small n
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    method: str


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise SpecError(f"confidence={confidence!r} must lie strictly between 0 and 1, e.g. 0.95")


def _check_count(successes: int, n: int) -> None:
    if n < 1:
        raise SpecError(f"n={n} trials: an interval needs at least one trial")
    if not 0 <= successes <= n:
        raise SpecError(f"successes={successes} must lie between 0 and n={n}")


def normal_isf(one_sided_level: float) -> float:
    """The standard normal quantile z with P(Z > z) = *one_sided_level* (scipy's ``norm.isf``)."""
    # The standard library's normal quantile (Wichura's AS241, as accurate as scipy's) spares the
    # ~0.5 s import of scipy.stats on a run's path: a Wilson interval is computed for every level.
    from statistics import NormalDist

    return -NormalDist().inv_cdf(one_sided_level)


def finite_array(values: Sequence[float], what: str) -> FloatArray:
    """*values* as a float array; :class:`SpecError` naming *what* if any is NaN or infinite."""
    import numpy as np

    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{what} contains NaN or infinite values; drop failed iterations before comparing")
    return arr


def wilson_bounds(x: FloatArray, n: FloatArray, z: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Wilson score bounds at normal quantile *z*, vectorised; x may be fractional (used for sample-size
    projection)."""
    import numpy as np

    z2 = z * z
    denom = n + z2
    centre = (x + z2 / 2.0) / denom
    # max(0, ·) guards against -1e-17 from rounding when x is 0 or n.
    half = z * np.sqrt(np.maximum(x * (n - x) / n + z2 / 4.0, 0.0)) / denom
    # At 0/n and n/n the bound is exactly 0 or 1; rounding (0.9999999999999999) must not leave the
    # observed proportion outside its own interval.
    lo = np.where(x <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(x >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return lo, hi


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (Wilson 1927; Newcombe 1998 method 3).

    Good coverage from n ≈ 5 on and sensible at 0/n and n/n, where the Wald interval collapses to a
    point. Proportions as fractions (0-1).
    """
    _check_count(successes, n)
    _check_confidence(confidence)
    import numpy as np

    z = np.asarray(normal_isf((1.0 - confidence) / 2.0), dtype=np.float64)
    lo, hi = wilson_bounds(np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64), z)
    return Interval(successes / n, float(lo), float(hi), confidence, "Wilson score")


def clopper_pearson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Exact (Clopper-Pearson) interval from Beta quantiles; never below nominal coverage, hence wide."""
    _check_count(successes, n)
    _check_confidence(confidence)
    from scipy import stats

    a = (1.0 - confidence) / 2.0
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(a, successes, n - successes + 1))
    hi = 1.0 if successes == n else float(stats.beta.isf(a, successes + 1, n - successes))
    return Interval(successes / n, lo, hi, confidence, "Clopper-Pearson exact")


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval for a mean.

    With sd = 0 the interval is the point (no NaN). With fewer than 2 values it raises
    :class:`SpecError`: one value says nothing about the spread, and an invented width would be read as
    evidence. (:func:`summarize` reports an infinite interval instead, for display.)
    """
    _check_confidence(confidence)
    xs = finite_array(values, "values")
    n = xs.size
    if n < 2:
        raise SpecError(
            f"a confidence interval for a mean needs at least 2 values, got {n}; run at least 2 iterations "
            "(the mean itself is still available)"
        )
    mean = float(xs.mean())
    sd = float(xs.std(ddof=1))
    if sd == 0.0:
        return Interval(mean, mean, mean, confidence, "Student t (sd = 0: degenerate)")
    from scipy import stats

    half = float(stats.t.isf((1.0 - confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, confidence, "Student t")
