"""Quality non-inferiority from pass/fail per level per iteration: stratified MOVER-Wilson.

Levels are strata, iterations repeated draws within a level; :func:`quality_noninferiority` bounds the
points-weighted difference of pass rates in pp of the maximum score. :func:`stratified_difference_bounds`
is its vectorised core, shared with :mod:`~pytest_quantgate.inference.planning`,
:mod:`~pytest_quantgate.inference.sequential` and the benchmark; :func:`level_counts` checks and counts
the per-level inputs for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin
from pytest_quantgate.stats import normal_isf, wilson_bounds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LevelDifference:
    """One level's pass-rate difference (candidate - baseline), in pp of that level's pass rate.

    ``lower``/``upper`` are Newcombe's hybrid score interval at two-sided confidence 1 - 2*alpha, so
    ``lower`` is the level's one-sided (1 - alpha) lower bound. ``contribution`` is the level's share of the
    score difference: ``weight x difference`` (pp of the maximum score).
    """

    level: str
    points: float
    weight: float
    baseline_passed: int
    baseline_n: int
    candidate_passed: int
    candidate_n: int
    difference: float
    lower: float
    upper: float
    contribution: float


@dataclass(frozen=True, slots=True)
class NonInferiorityResult:
    """Quality non-inferiority of candidate vs baseline, stratified by level.

    ``difference`` is the estimated expected-score difference candidate - baseline in pp of the maximum
    score; ``lower_bound``/``upper_bound`` are one-sided (1 - alpha) confidence bounds for it.
    ``non_inferior`` is ``lower_bound > -margin``. ``n_baseline``/``n_candidate`` are the fewest
    iterations any level has on that side (each level's own counts are in ``levels``).
    """

    difference: float
    lower_bound: float
    upper_bound: float
    margin: float
    alpha: float
    non_inferior: bool
    baseline_score: float
    candidate_score: float
    levels: tuple[LevelDifference, ...]
    n_baseline: int
    n_candidate: int
    method: str


def stratified_difference_bounds(
    baseline_passed: npt.ArrayLike,
    baseline_n: npt.ArrayLike,
    candidate_passed: npt.ArrayLike,
    candidate_n: npt.ArrayLike,
    weights: npt.ArrayLike,
    z_lower: npt.ArrayLike,
    z_upper: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vectorised core of :func:`quality_noninferiority` (also used by the benchmark).

    The last axis of the count arrays indexes levels; ``weights`` (one per level) are normalised to sum
    to 1. ``z_lower``/``z_upper`` (broadcast against the leading axes) are the normal quantiles of the
    lower and upper bound; ``z_upper`` defaults to ``z_lower``. Returns (difference, lower, upper) of
    Σ wₗ (p_cand,ₗ - p_base,ₗ) in pp (x100).

    Method: MOVER (Zou & Donner 2008; Zou, Huang & Zhang 2009) with Wilson limits per proportion. For
    a linear combination Σ cᵢ θᵢ of independent proportions it recovers each term's variance from its
    own Wilson limit on the side that matters:
    L = Σ cᵢθ̂ᵢ - √Σ cᵢ²(θ̂ᵢ - lᵢ*)², with lᵢ* the lower Wilson limit where cᵢ > 0 and the upper one
    where cᵢ < 0 (U symmetrically). With one level it is exactly Newcombe's (1998) method 10.
    """
    xb = np.asarray(baseline_passed, dtype=np.float64)
    nb = np.asarray(baseline_n, dtype=np.float64)
    xc = np.asarray(candidate_passed, dtype=np.float64)
    nc = np.asarray(candidate_n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    zl = np.asarray(z_lower, dtype=np.float64)[..., np.newaxis]
    zu = zl if z_upper is None else np.asarray(z_upper, dtype=np.float64)[..., np.newaxis]
    pb = xb / nb
    pc = xc / nc
    # The lower bound uses the candidate's lower and the baseline's upper Wilson limit, and vice versa.
    _, base_hi = wilson_bounds(xb, nb, zl)
    cand_lo, _ = wilson_bounds(xc, nc, zl)
    base_lo, _ = wilson_bounds(xb, nb, zu)
    _, cand_hi = wilson_bounds(xc, nc, zu)
    diff = np.sum(w * (pc - pb), axis=-1)
    down = np.sqrt(np.sum(w * w * ((pc - cand_lo) ** 2 + (base_hi - pb) ** 2), axis=-1))
    up = np.sqrt(np.sum(w * w * ((cand_hi - pc) ** 2 + (pb - base_lo) ** 2), axis=-1))
    return 100.0 * diff, 100.0 * (diff - down), 100.0 * (diff + up)


def level_counts(
    baseline: Mapping[str, Sequence[bool]],
    candidate: Mapping[str, Sequence[bool]],
    points: Mapping[str, float],
) -> tuple[list[str], FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validate the per-level inputs; return names, passes and counts per side, and points."""
    base_only = sorted(set(baseline) - set(candidate))
    cand_only = sorted(set(candidate) - set(baseline))
    if base_only or cand_only:
        raise SpecError(
            "baseline and candidate must have the same levels; only in baseline: "
            f"{base_only or 'none'}, only in candidate: {cand_only or 'none'}. "
            "Compare the common levels by passing only those."
        )
    if not baseline:
        raise SpecError("no levels to compare: both runs have no level results")
    levels = list(baseline)
    missing = [lv for lv in levels if lv not in points]
    if missing:
        raise SpecError(f"no points given for level(s) {missing}; every compared level needs its points")
    pts = np.asarray([float(points[lv]) for lv in levels], dtype=np.float64)
    if not np.all(np.isfinite(pts)) or np.any(pts < 0) or pts.sum() <= 0:
        raise SpecError(
            f"level points {dict(zip(levels, pts.tolist(), strict=True))} must be finite, ≥ 0, and not all 0"
        )
    empty = [
        f"{lv} ({side})"
        for lv in levels
        for side, runs in (("baseline", baseline), ("candidate", candidate))
        if len(runs[lv]) == 0
    ]
    if empty:
        raise SpecError(f"level(s) without any iteration: {', '.join(empty)}; run at least one iteration")
    xb = np.asarray([sum(bool(v) for v in baseline[lv]) for lv in levels], dtype=np.float64)
    nb = np.asarray([len(baseline[lv]) for lv in levels], dtype=np.float64)
    xc = np.asarray([sum(bool(v) for v in candidate[lv]) for lv in levels], dtype=np.float64)
    nc = np.asarray([len(candidate[lv]) for lv in levels], dtype=np.float64)
    return levels, xb, nb, xc, nc, pts


def quality_noninferiority(
    baseline: Mapping[str, Sequence[bool]],
    candidate: Mapping[str, Sequence[bool]],
    points: Mapping[str, float],
    margin: float,
    alpha: float = 0.05,
) -> NonInferiorityResult:
    """Is the candidate's expected score at most *margin* pp below the baseline's?

    *baseline*/*candidate* map level name → pass/fail per iteration; *points* maps level → its points.
    The expected score is 100·Σ wₗ pₗ with wₗ = pointsₗ / Σ points and pₗ the level's true pass
    probability, so the difference is in pp of the maximum score.

    Levels are strata: the same fixed levels run on both presets, and the iterations are repeated
    Bernoulli draws within a level. The one-sided (1 - alpha) lower bound of Σ wₗ (p_c - p_b) is the MOVER
    combination of per-level Wilson limits (see :func:`stratified_difference_bounds`). Why this method:

    * valid at small n — Wilson limits keep close to nominal coverage at n = 15, where Wald intervals
      are too narrow, and stay inside [0, 1];
    * defined at 0 % and 100 %: 15/15 on both sides gives a finite, honest bound, not NaN and not 0;
    * exact symmetry: swapping the presets gives (-d, -U, -L);
    * closed form, so the 10,000-trial simulations in ``benchmarks/bench_sequential.py`` that check its
      error rates are cheap.

    What a user sees when everything passes (15/15 on every level, both sides, points 25/25/25/15/10,
    alpha = 0.05): difference 0.0 pp, lower bound about -7.2 pp — 15/15 is consistent with a true pass rate
    near 85 %, so only a drop larger than ~7 pp can be ruled out; a 2 pp margin needs roughly 60+
    iterations per preset (see :func:`iterations_needed`).

    Assumes levels are independent of each other within an iteration; strongly correlated levels
    (one bad iteration failing several levels) make the bound too narrow — compare with
    :func:`unpaired_comparison` on the iteration scores.
    """
    check_margin(margin)
    check_alpha(alpha)
    levels, xb, nb, xc, nc, pts = level_counts(baseline, candidate, points)
    z = normal_isf(alpha)
    diff, lower, upper = stratified_difference_bounds(xb, nb, xc, nc, pts, z)
    weights = pts / pts.sum()
    per_level: list[LevelDifference] = []
    for i, lv in enumerate(levels):
        d, lo, hi = stratified_difference_bounds(xb[i : i + 1], nb[i : i + 1], xc[i : i + 1], nc[i : i + 1], [1.0], z)
        per_level.append(
            LevelDifference(
                level=lv,
                points=float(pts[i]),
                weight=float(weights[i]),
                baseline_passed=int(xb[i]),
                baseline_n=int(nb[i]),
                candidate_passed=int(xc[i]),
                candidate_n=int(nc[i]),
                difference=float(d),
                lower=float(lo),
                upper=float(hi),
                contribution=float(weights[i] * d),
            )
        )
    lower_f = float(lower)
    return NonInferiorityResult(
        difference=float(diff),
        lower_bound=lower_f,
        upper_bound=float(upper),
        margin=float(margin),
        alpha=alpha,
        non_inferior=lower_f > -margin,
        baseline_score=float(100.0 * np.sum(weights * xb / nb)),
        candidate_score=float(100.0 * np.sum(weights * xc / nc)),
        levels=tuple(per_level),
        n_baseline=int(nb.min()),
        n_candidate=int(nc.min()),
        method="stratified MOVER-Wilson (Newcombe hybrid score per level)",
    )
