"""How many iterations per preset the quality non-inferiority decision needs for a given power."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin
from pytest_quantgate.inference.quality import level_counts, stratified_difference_bounds
from pytest_quantgate.stats import normal_isf

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


@dataclass(frozen=True, slots=True)
class IterationsNeeded:
    """How many iterations per preset the quality non-inferiority decision needs for the given power.

    ``per_preset`` is None when no number up to ``max_iterations`` is enough (e.g. a planning
    difference at or below -margin); ``additional`` is then None as well.
    """

    per_preset: int | None
    additional: int | None
    current: int
    margin: float
    alpha: float
    power: float
    planning_difference: float
    method: str


def iterations_needed(
    baseline: Mapping[str, Sequence[bool]],
    candidate: Mapping[str, Sequence[bool]],
    points: Mapping[str, float],
    margin: float,
    alpha: float = 0.05,
    power: float = 0.80,
    planning_difference: float = 0.0,
    max_iterations: int = 10_000,
) -> IterationsNeeded:
    """Iterations per preset for :func:`quality_noninferiority` to show non-inferiority with *power*.

    Per-level pass rates are estimated from both presets pooled (the planning assumption is that the
    candidate is truly *planning_difference* pp from the baseline, 0 = truly equal, the conventional
    choice; pass the observed difference to plan pessimistically). At n iterations the lower bound is
    about (estimate - h(n)), with h(n) the MOVER-Wilson halfwidth at the expected counts and the
    estimate normal with sd s(n) = 100 * sqrt(sum w^2 * 2p(1-p) / n); the answer is the smallest n with
    planning_difference - h(n) - z_power * s(n) > -margin. Levels at 100 % have s = 0 but h(n) still
    shrinks only like z^2/(n + z^2), so all-pass levels correctly ask for more iterations instead of
    claiming zero variance. Checked against simulation in the tests; an approximation (about +-20 %),
    meant for "inconclusive — about N more iterations needed".
    """
    check_margin(margin)
    check_alpha(alpha)
    if not 0.5 <= power < 1.0:
        raise SpecError(f"power={power!r} must lie in [0.5, 1), e.g. 0.8")
    if max_iterations < 1:
        raise SpecError(f"max_iterations={max_iterations} must be ≥ 1")
    _levels, xb, nb, xc, nc, pts = level_counts(baseline, candidate, points)
    current = int(min(nb.min(), nc.min()))
    pooled = (xb + xc) / (nb + nc)
    weights = pts / pts.sum()
    z_alpha, z_power = normal_isf(alpha), normal_isf(1.0 - power)
    method = "projected MOVER-Wilson bound + normal spread of the estimate, pooled per-level rates"

    def enough(n: int) -> bool:
        # The bound is roughly (estimate - halfwidth): the halfwidth at the expected counts is nearly
        # fixed, the estimate varies with sd `spread`. Power = P(bound > -margin).
        nn = np.full_like(pooled, float(n))
        _d, lo, _u = stratified_difference_bounds(pooled * nn, nn, pooled * nn, nn, pts, z_alpha)
        spread = 100.0 * math.sqrt(float(np.sum(weights**2 * 2.0 * pooled * (1.0 - pooled))) / n)
        return planning_difference + float(lo) - z_power * spread > -margin

    if not enough(max_iterations):
        return IterationsNeeded(None, None, current, float(margin), alpha, power, planning_difference, method)
    lo_n, hi_n = 1, max_iterations
    # halfwidth(n) decreases in n, so bisection finds the first n that is enough.
    while lo_n < hi_n:
        mid = (lo_n + hi_n) // 2
        if enough(mid):
            hi_n = mid
        else:
            lo_n = mid + 1
    return IterationsNeeded(
        lo_n, max(0, lo_n - current), current, float(margin), alpha, power, planning_difference, method
    )
