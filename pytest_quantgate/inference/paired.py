"""Matched items (the same item answered by both presets): McNemar's test and Tango's non-inferiority.

Only discordant items carry information: *b* items the baseline got right and the candidate wrong,
*c* the reverse. :func:`mcnemar` tests b = c; :func:`paired_noninferiority` bounds the difference of
correct-rates with Tango's score interval, in pp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin
from pytest_quantgate.stats import normal_isf

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar's test on matched items.

    ``b``: items the baseline got right and the candidate wrong; ``c``: the reverse. ``statistic`` is
    min(b, c) for the exact binomial test and the continuity-corrected χ² (1 df) otherwise; the p-value
    is two-sided.
    """

    b: int
    c: int
    n_pairs: int
    statistic: float
    p_value: float
    method: str


@dataclass(frozen=True, slots=True)
class PairedNonInferiorityResult:
    """Non-inferiority on matched items: difference of correct-rates candidate - baseline (pp).

    Bounds are one-sided (1 - alpha) Tango score bounds; ``non_inferior`` is ``lower_bound > -margin``.
    """

    difference: float
    lower_bound: float
    upper_bound: float
    margin: float
    alpha: float
    non_inferior: bool
    b: int
    c: int
    n_pairs: int
    method: str


_EXACT_MCNEMAR_MAX_DISCORDANT = 25


def _discordant(pairs: Sequence[tuple[bool, bool]]) -> tuple[int, int, int]:
    if len(pairs) == 0:
        raise SpecError("no matched items: a paired comparison needs at least one (baseline, candidate) pair")
    b = sum(1 for base, cand in pairs if bool(base) and not bool(cand))
    c = sum(1 for base, cand in pairs if not bool(base) and bool(cand))
    return b, c, len(pairs)


def mcnemar(pairs: Sequence[tuple[bool, bool]]) -> McNemarResult:
    """McNemar's test for matched items; each pair is (baseline correct, candidate correct).

    Only discordant items carry information. With b + c ≤ 25 the exact two-sided binomial test
    (c ~ Bin(b + c, ½)) is used, because the χ² approximation is poor for few discordant pairs;
    above that, χ² with continuity correction, (|b - c| - 1)² / (b + c), 1 df.
    """
    b, c, n = _discordant(pairs)
    m = b + c
    if m == 0:
        return McNemarResult(b, c, n, 0.0, 1.0, "McNemar exact binomial (no discordant pairs)")
    from scipy import stats

    if m <= _EXACT_MCNEMAR_MAX_DISCORDANT:
        k = min(b, c)
        p = min(1.0, 2.0 * float(stats.binom.cdf(k, m, 0.5)))
        return McNemarResult(b, c, n, float(k), p, "McNemar exact binomial")
    stat = (abs(b - c) - 1.0) ** 2 / m if abs(b - c) >= 1 else 0.0
    return McNemarResult(b, c, n, stat, float(stats.chi2.sf(stat, 1)), "McNemar chi-squared, continuity-corrected")


def _tango_statistic(delta: float, up: int, down: int, n: int) -> float:
    """Tango's (1998) score statistic for H: p_cand - p_base = delta.

    *up*: items only the candidate got right; *down*: only the baseline. The nuisance parameter (the
    probability of a *down* item) is replaced by its maximum-likelihood value under H (closed form).
    """
    a = 2.0 * n
    bq = -up - down + (2.0 * n - up + down) * delta
    cq = -down * delta * (1.0 - delta)
    q_down = (math.sqrt(max(bq * bq - 4.0 * a * cq, 0.0)) - bq) / (2.0 * a)
    var = n * (2.0 * q_down + delta * (1.0 - delta))
    num = up - down - n * delta
    if var <= 0.0:
        # Only reachable at |delta| = 1 with matching data; the sign is what root-finding needs.
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def _tango_bounds(up: int, down: int, n: int, z: float) -> tuple[float, float]:
    """Bounds of Tango's interval at normal quantile *z*, as fractions in [-1, 1]."""
    from scipy import optimize

    est = (up - down) / n
    eps = 1e-12

    def stat(d: float) -> float:
        return _tango_statistic(d, up, down, n)

    # The statistic decreases in delta; each bound is where it crosses ±z, or the edge of [-1, 1]
    # when it never does there (e.g. every item lost by the candidate).
    lower = -1.0
    if est > -1.0 and stat(-1.0 + eps) > z:
        lower = float(optimize.brentq(lambda d: stat(d) - z, -1.0 + eps, est, xtol=1e-12))
    upper = 1.0
    if est < 1.0 and stat(1.0 - eps) < -z:
        upper = float(optimize.brentq(lambda d: stat(d) + z, est, 1.0 - eps, xtol=1e-12))
    return min(lower, est), max(upper, est)


def paired_noninferiority(
    pairs: Sequence[tuple[bool, bool]],
    margin: float,
    alpha: float = 0.05,
) -> PairedNonInferiorityResult:
    """Non-inferiority on matched items (pair = (baseline correct, candidate correct)), margin in pp.

    Uses Tango's (1998) asymptotic score interval for the difference of paired proportions. Why: the
    estimate (c - b)/n depends on both discordant counts *and* n, so an exact conditional test on
    c | b + c (which answers "is c/(b+c) = ½?") cannot test a non-zero margin; Tango's interval inverts
    a score test for the difference itself, stays inside [-1, 1], is defined with zero discordant items,
    and keeps close to nominal coverage at small n (Tango 1998; Fagerland, Lydersen & Laake 2014, who
    recommend it for paired differences).
    """
    check_margin(margin)
    check_alpha(alpha)
    b, c, n = _discordant(pairs)
    lo, hi = _tango_bounds(c, b, n, normal_isf(alpha))
    lower, upper = 100.0 * lo, 100.0 * hi
    return PairedNonInferiorityResult(
        difference=100.0 * (c - b) / n,
        lower_bound=lower,
        upper_bound=upper,
        margin=float(margin),
        alpha=alpha,
        non_inferior=lower > -margin,
        b=b,
        c=c,
        n_pairs=n,
        method="Tango score interval (paired)",
    )
