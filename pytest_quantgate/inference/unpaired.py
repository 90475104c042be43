"""Two lists of iteration scores with nothing to match: Welch t and Mann-Whitney U, labelled unpaired.

:func:`mann_whitney_p` is also the significance test of :mod:`~pytest_quantgate.inference.speed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin
from pytest_quantgate.stats import finite_array

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class UnpairedComparison:
    """Comparison of two lists of iteration scores when nothing can be matched.

    ``unpaired`` is always True so that reports say the comparison ignored any pairing (and so may have
    less power than a paired one). ``difference`` is mean(candidate) - mean(baseline); the bounds are
    one-sided (1 - alpha) Welch bounds; p-values are two-sided. ``non_inferior`` is None without a margin.
    """

    difference: float
    lower_bound: float
    upper_bound: float
    welch_p_value: float
    mann_whitney_p_value: float
    margin: float | None
    alpha: float
    non_inferior: bool | None
    n_baseline: int
    n_candidate: int
    method: str
    unpaired: bool = True


def mann_whitney_p(xs: FloatArray, ys: FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is tied."""
    if np.unique(np.concatenate([xs, ys])).size == 1:
        # All values tied: no evidence of a shift (scipy's normal approximation divides by zero here).
        return 1.0
    from scipy import stats

    p = float(stats.mannwhitneyu(ys, xs, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


def unpaired_comparison(
    baseline_scores: Sequence[float],
    candidate_scores: Sequence[float],
    margin: float | None = None,
    alpha: float = 0.05,
) -> UnpairedComparison:
    """Compare two lists of iteration scores (0-100) without any pairing: Welch t and Mann-Whitney U.

    Use only when per-level or per-item data are missing: it ignores the level structure, and on
    matched items it loses much power against :func:`mcnemar`. Welch does not assume equal variances;
    Mann-Whitney is the distribution-free check. Needs ≥ 2 scores per side. When both sides have
    sd = 0 the Welch bounds collapse to the difference and its p-value is 1 (equal means) or 0.
    """
    if margin is not None:
        check_margin(margin)
    check_alpha(alpha)
    xb = finite_array(baseline_scores, "baseline_scores")
    xc = finite_array(candidate_scores, "candidate_scores")
    if xb.size < 2 or xc.size < 2:
        raise SpecError(
            f"an unpaired comparison needs at least 2 scores per preset, got baseline {xb.size}, candidate "
            f"{xc.size}; run more iterations"
        )
    from scipy import stats

    diff = float(xc.mean() - xb.mean())
    vb, vc = float(xb.var(ddof=1)) / xb.size, float(xc.var(ddof=1)) / xc.size
    se = math.sqrt(vb + vc)
    if se == 0.0:
        lower = upper = diff
        p_welch = 1.0 if diff == 0.0 else 0.0
    else:
        # Welch-Satterthwaite degrees of freedom; a zero-variance side contributes nothing.
        denominator = (vb * vb / (xb.size - 1) if vb else 0.0) + (vc * vc / (xc.size - 1) if vc else 0.0)
        # Variances so small that their squares underflow: the t distribution is the normal one.
        df = (vb + vc) ** 2 / denominator if denominator > 0 else math.inf
        t_crit = float(stats.t.isf(alpha, df))
        lower, upper = diff - t_crit * se, diff + t_crit * se
        p_welch = float(2.0 * stats.t.sf(abs(diff) / se, df))
    return UnpairedComparison(
        difference=diff,
        lower_bound=lower,
        upper_bound=upper,
        welch_p_value=min(p_welch, 1.0),
        mann_whitney_p_value=mann_whitney_p(xb, xc),
        margin=None if margin is None else float(margin),
        alpha=alpha,
        non_inferior=None if margin is None else lower > -margin,
        n_baseline=int(xb.size),
        n_candidate=int(xc.size),
        method="Welch t (bounds, p) and Mann-Whitney U (p), unpaired",
    )
