"""Quality on items: candidate and baseline paired by item id, the item as the unit of analysis.

A level reports items (a stable id, a score in [0, 1] with partial credit, a weight), and each item
is seen once per iteration. :func:`item_noninferiority` pairs the two presets by item id, averages
each item's iterations per side first, and bounds the weighted mean difference (candidate - baseline,
pp of the maximum score) with a score-type bound over items (:func:`score_distances`). Repeats of an
item are therefore never counted as independent evidence: k identical (greedy) iterations give
exactly the bounds of one, and when all items agree the bounds still have the width that a finite
number of items allows.

:func:`item_table` checks and condenses the per-item inputs; :func:`clustered_moments`,
:func:`score_distances` and :func:`clustered_difference_bounds` are the vectorised core, shared with
:mod:`~pytest_quantgate.inference.item_sequential` and ``benchmarks/bench_items.py``. Why this method
and what it costs is in ``docs/statistics.md``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]
    IntArray = npt.NDArray[np.int64]

# Scores are compared with this tolerance: partial credit computed two ways (0.1 + 0.2 vs 0.3) is
# the same answer, not a change.
_SAME = 1e-9

METHOD = "paired by item, clustered by item: score bound for a bounded mean (worst-case mass at ±1), t quantile"


@dataclass(frozen=True, slots=True)
class ItemDifference:
    """One item, both presets: its mean score per side over the iterations it was seen (pp of the
    item's maximum) and their difference. A description, not evidence: no per-item interval or
    "significance" is claimed, because an item's repeats are not independent draws (greedy decoding
    repeats the same answer), so a per-item test would count the same answer k times."""

    item: str
    weight: float
    baseline_score: float
    candidate_score: float
    difference: float
    baseline_n: int
    candidate_n: int
    baseline_changed: bool
    candidate_changed: bool


@dataclass(frozen=True, slots=True)
class ItemComparison:
    """Item-level non-inferiority of candidate vs baseline.

    ``difference``: weighted mean over paired items of (candidate mean - baseline mean), pp of the
    maximum score; ``baseline_score``/``candidate_score`` the weighted means themselves (pp).
    ``lower_bound``/``upper_bound``: one-sided (1 - alpha) bounds each, clustered by item;
    ``non_inferior`` is ``lower_bound > -margin``. ``standard_error`` (pp): the clustered (sandwich)
    one at the estimate, for display (the bounds use the variance under the null).
    ``n_items``: paired items with positive weight; ``effective_items``: Kish's (Σw)² / Σw², the
    sample size of the bounds (= ``n_items`` with equal weights). ``n_pairs``: paired (item,
    iteration) observations, Σ min(baseline_n, candidate_n) - shown so a reader sees how many repeats
    were NOT counted as evidence. ``baseline_changed``/``candidate_changed``: paired items whose score
    changed between iterations on that side; ``*_changed_after_first``: the same ignoring the first
    iteration (a cold prompt cache makes iteration 1 unlike the rest under greedy decoding), i.e. the
    remaining nondeterminism. ``better``/``worse``: paired items whose mean score differs, largest
    change first. ``baseline_only``/``candidate_only``: items seen on one side only, reported and not
    used. ``items``: the per-item view, in the baseline's order.
    """

    difference: float
    lower_bound: float
    upper_bound: float
    margin: float
    alpha: float
    non_inferior: bool
    baseline_score: float
    candidate_score: float
    standard_error: float
    n_items: int
    effective_items: float
    n_pairs: int
    baseline_changed: int
    candidate_changed: int
    baseline_changed_after_first: int
    candidate_changed_after_first: int
    better: tuple[str, ...]
    worse: tuple[str, ...]
    baseline_only: tuple[str, ...]
    candidate_only: tuple[str, ...]
    items: tuple[ItemDifference, ...]
    method: str


@dataclass(frozen=True, slots=True)
class SideItems:
    """One preset's paired items condensed: per item the number of iterations, the mean score, the
    sample variance of the scores after the first iteration (of all of them with two iterations; 0
    with one), and whether the score changed between any two iterations / any two after the first."""

    n: IntArray
    mean: FloatArray
    variance_after_first: FloatArray
    changed: BoolArray
    changed_after_first: BoolArray


@dataclass(frozen=True, slots=True)
class ItemTable:
    """Paired items (in the baseline's order) with their weights, and the items seen on one side only."""

    names: tuple[str, ...]
    weights: FloatArray
    baseline: SideItems
    candidate: SideItems
    baseline_only: tuple[str, ...]
    candidate_only: tuple[str, ...]

    @property
    def differences(self) -> FloatArray:
        """Per-item mean difference candidate - baseline, as fractions in [-1, 1]."""
        return self.candidate.mean - self.baseline.mean


def _condense(side: str, names: Sequence[str], runs: Mapping[str, Sequence[float]]) -> SideItems:
    seqs = [runs[name] for name in names]
    n = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.float64, count=int(n.sum()))
    bad = ~(np.isfinite(flat) & (flat >= 0.0) & (flat <= 1.0))
    if bad.any():
        first_bad = int(np.argmax(bad))
        ends = np.cumsum(n)
        where = int(np.searchsorted(ends, first_bad, side="right"))
        iteration = first_bad - int(ends[where] - n[where]) + 1
        raise SpecError(
            f"{side} item {names[where]!r} has score {float(flat[first_bad])!r} in iteration {iteration}; item "
            "scores must be finite and lie in [0, 1] (1 = full credit)"
        )
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    total = np.add.reduceat(flat, starts)
    changed = (np.maximum.reduceat(flat, starts) - np.minimum.reduceat(flat, starts)) > _SAME
    # After the first iteration: drop each item's first score; items seen once have nothing left.
    rest = np.delete(flat, starts)
    rest_n = n - 1
    has_rest = rest_n > 0
    rest_sum = total - flat[starts]
    rest_changed = np.zeros(n.size, dtype=bool)
    rest_sq = np.zeros(n.size)
    if rest.size:
        kept = rest_n[has_rest]
        rest_starts = np.concatenate([[0], np.cumsum(kept)[:-1]])
        spread = np.maximum.reduceat(rest, rest_starts) - np.minimum.reduceat(rest, rest_starts)
        rest_changed[has_rest] = spread > _SAME
        rest_sq[has_rest] = np.add.reduceat(rest * rest, rest_starts)
    # Within-item variance, for projecting what more iterations could add: from the iterations after
    # the first when there are two or more of them (the first may differ systematically), else all.
    var_rest = np.where(rest_n >= 2, (rest_sq - rest_sum**2 / np.maximum(rest_n, 1)) / np.maximum(rest_n - 1, 1), 0.0)
    all_sq = np.add.reduceat(flat * flat, starts)
    var_all = np.where(n >= 2, (all_sq - total**2 / n) / np.maximum(n - 1, 1), 0.0)
    variance = np.where(rest_n >= 2, np.where(rest_changed, var_rest, 0.0), np.where(changed, var_all, 0.0))
    return SideItems(
        n=n,
        mean=total / n,
        variance_after_first=np.maximum(variance, 0.0),
        changed=changed,
        changed_after_first=rest_changed,
    )


def item_table(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    weights: Mapping[str, float] | None = None,
) -> ItemTable:
    """Pair *baseline* and *candidate* (item id → scores in [0, 1], one per iteration, in iteration
    order) by item id and condense each side; *weights* (item id → weight ≥ 0) default to 1.

    Items with no score on a side count as not seen there. Raises :class:`SpecError` when no item is
    seen on both sides, a score is outside [0, 1] or not finite, or a weight is missing, negative or
    not finite, or all paired weights are 0.
    """
    names = tuple(name for name, scores in baseline.items() if len(scores) and len(candidate.get(name, ())))
    paired = set(names)
    baseline_only = tuple(name for name, scores in baseline.items() if len(scores) and name not in paired)
    candidate_only = tuple(name for name, scores in candidate.items() if len(scores) and name not in paired)
    if not names:
        raise SpecError(
            f"no item was seen on both presets ({len(baseline_only)} baseline-only, {len(candidate_only)} "
            "candidate-only items): an item comparison needs the same item ids on both sides; check that "
            "both runs used the same suite version"
        )
    if weights is None:
        w = np.ones(len(names))
    else:
        missing = [name for name in names if name not in weights]
        if missing:
            raise SpecError(f"no weight given for item(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        w = np.fromiter((float(weights[name]) for name in names), dtype=np.float64, count=len(names))
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            bad = [name for name, v in zip(names, w.tolist(), strict=True) if not (math.isfinite(v) and v >= 0)]
            raise SpecError(
                f"item weights must be finite, ≥ 0 and not all 0 over the paired items; offending: "
                f"{bad[:5] or 'all are 0'}"
            )
    return ItemTable(
        names=names,
        weights=w,
        baseline=_condense("baseline", names, baseline),
        candidate=_condense("candidate", names, candidate),
        baseline_only=baseline_only,
        candidate_only=candidate_only,
    )


def clustered_moments(differences: npt.ArrayLike, weights: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(weighted mean difference, its cluster-robust variance), as fractions; vectorised.

    The last axis of *differences* (per-item mean differences in [-1, 1]) indexes items; *weights*
    has one entry per item (≥ 0, scale-free; zero-weight items do not count). The item is the unit:
    the variance is the sandwich Σ wᵢ²(dᵢ - D)² / (Σ w)² over items, whatever happened inside an item.
    """
    d = np.asarray(differences, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    diff = np.sum(w * d, axis=-1) / total
    variance = np.sum(w * w * (d - diff[..., np.newaxis]) ** 2, axis=-1) / (total * total)
    return diff, variance


def effective_items(weights: npt.ArrayLike) -> float:
    """Kish's effective number of items, (Σ w)² / Σ w² (the item count when weights are equal)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / np.sum(w * w))


def item_quantile(alpha: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """One-sided Student-t quantile for a bound at level *alpha* (vectorised) over items with *weights*.

    df = (Σw²)² / Σw⁴ - 1, at least 1: n - 1 with equal weights; with unequal weights the number of
    items that really carry the variance (five heavy items among a hundred light ones give df ≈ 4, not
    the 104 of the item count or the 9 of Kish's effective n). With one or two items the bounds are
    correspondingly wide.
    """
    from scipy.special import stdtrit

    w2 = np.asarray(weights, dtype=np.float64) ** 2
    if w2.ndim != 1 or not np.any(w2 > 0):
        raise SpecError(f"item weights must be one per item, not all 0; got an array of shape {w2.shape}")
    df = max(float(w2.sum() ** 2 / np.sum(w2 * w2)) - 1.0, 1.0)
    return np.asarray(stdtrit(df, 1.0 - np.asarray(alpha, dtype=np.float64)), dtype=np.float64)


def score_distances(
    difference: npt.ArrayLike,
    variance: npt.ArrayLike,
    n_effective: float,
    q_lower: npt.ArrayLike,
    q_upper: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Distances (fractions) from *difference* down to the lower and up to the upper score bound.

    The lower bound is the value δ < D at which (D - δ)² = q² Var_δ, where Var_δ is the variance of
    the estimate under the null distribution closest to the data that has mean δ when the missing
    mass is put at the worst place, -1 (a mixture (1 - ε)·F̂ + ε·{-1}, ε = (D - δ)/(1 + D)):

      Var_δ = (1 - ε)(V + (D - δ)²/n) + ε(1 + δ)²/n    (V the clustered variance, n effective items)

    which is a quadratic in D - δ with one root in [0, 1 + D]; symmetrically with +1 for the upper
    bound. For pass/fail items that only move one way this is exactly Wilson's score bound for the
    share of items lost; when every item agrees (V = 0) it is q²/(n + q²), never 0.
    """
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ql = np.asarray(q_lower, dtype=np.float64)
    qu = ql if q_upper is None else np.asarray(q_upper, dtype=np.float64)
    n = float(n_effective)
    out: list[FloatArray] = []
    for room, q in ((1.0 + d, ql), (1.0 - d, qu)):
        # Solve k·x² + b·x - c = 0 for x = |D - δ| ≥ 0, in the form that avoids cancellation.
        room = np.maximum(room, 0.0)
        q2 = q * q
        k = 1.0 + q2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            b = -q2 * (room / n - np.where(room > 0.0, v / room, 0.0))
            c = q2 * v
            root = np.sqrt(b * b + 4.0 * k * c)
            x = np.where(b > 0.0, 2.0 * c / (b + root), (root - b) / (2.0 * k))
        out.append(np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0), 0.0, room))
    return out[0], out[1]


def clustered_difference_bounds(
    differences: npt.ArrayLike,
    weights: npt.ArrayLike,
    q_lower: npt.ArrayLike,
    q_upper: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vectorised core of :func:`item_noninferiority`: (difference, lower, upper) in pp.

    *differences*: per-item mean differences (candidate - baseline) in [-1, 1], items on the last
    axis; *weights*: one per item. *q_lower*/*q_upper* (broadcast against the leading axes) are the
    quantiles of the two bounds, e.g. from :func:`item_quantile`. See :func:`score_distances`.
    """
    diff, variance = clustered_moments(differences, weights)
    down, up = score_distances(diff, variance, effective_items(weights), q_lower, q_upper)
    return 100.0 * diff, 100.0 * (diff - down), 100.0 * (diff + up)


def item_noninferiority(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    margin: float,
    alpha: float = 0.05,
    weights: Mapping[str, float] | None = None,
) -> ItemComparison:
    """Is the candidate's weighted mean item score at most *margin* pp below the baseline's?

    *baseline*/*candidate* map item id → scores in [0, 1] (partial credit allowed), one per iteration
    the item was seen, in iteration order; counts may differ per side and item. *weights* maps item
    id → weight (default 1 each). Items are paired by id; items seen on one side only are reported in
    ``baseline_only``/``candidate_only`` and not used.

    The item is the unit of analysis. Each item's iterations are averaged per side, dᵢ = c̄ᵢ - b̄ᵢ;
    the weighted mean D = Σ wᵢdᵢ / Σ wᵢ gets one-sided score bounds (:func:`score_distances`) from the
    cluster-robust variance over items, with a Student-t quantile (:func:`item_quantile`). So:

    * with one iteration it is the plain paired analysis of the items; for pass/fail items that only
      move one way the lower bound is minus Wilson's upper bound for the share of items lost;
    * repeats never add evidence: k identical iterations give exactly the bounds of one; repeats that
      vary make each item's mean more precise, which the spread over items then shows;
    * no zero width: 100 items that all agree give 0.0 pp with bounds of about ±2.7 pp (alpha 0.05),
      q²/(n + q²) — what 100 items can show, however often each was repeated;
    * bounds always bracket the difference, stay in [-100, 100] and are never NaN.
    """
    check_margin(margin)
    check_alpha(alpha)
    return comparison_from_table(item_table(baseline, candidate, weights), margin, alpha)


def comparison_from_table(table: ItemTable, margin: float, alpha: float = 0.05) -> ItemComparison:
    """:func:`item_noninferiority` on items already paired and condensed by :func:`item_table`."""
    check_margin(margin)
    check_alpha(alpha)
    w = table.weights
    d = table.differences
    n_effective = effective_items(w)
    q = item_quantile(alpha, w)
    diff_f, variance = clustered_moments(d, w)
    down, up = score_distances(diff_f, variance, n_effective, q)
    diff = float(diff_f)
    lower = max(-100.0, 100.0 * (diff - float(down)))
    upper = min(100.0, 100.0 * (diff + float(up)))
    base, cand = table.baseline, table.candidate
    # Lists first: building a thousand values from numpy scalars one by one costs milliseconds.
    per_item = tuple(
        ItemDifference(
            item=name,
            weight=weight,
            baseline_score=100.0 * b_mean,
            candidate_score=100.0 * c_mean,
            difference=100.0 * (c_mean - b_mean),
            baseline_n=b_n,
            candidate_n=c_n,
            baseline_changed=b_changed,
            candidate_changed=c_changed,
        )
        for name, weight, b_mean, c_mean, b_n, c_n, b_changed, c_changed in zip(
            table.names,
            w.tolist(),
            base.mean.tolist(),
            cand.mean.tolist(),
            base.n.tolist(),
            cand.n.tolist(),
            base.changed.tolist(),
            cand.changed.tolist(),
            strict=True,
        )
    )
    moved = [item for item in per_item if abs(item.difference) > 100.0 * _SAME]
    better = tuple(item.item for item in sorted(moved, key=lambda x: -x.difference) if item.difference > 0)
    worse = tuple(item.item for item in sorted(moved, key=lambda x: x.difference) if item.difference < 0)
    total = float(w.sum())
    return ItemComparison(
        difference=100.0 * diff,
        lower_bound=lower,
        upper_bound=upper,
        margin=float(margin),
        alpha=alpha,
        non_inferior=lower > -margin,
        baseline_score=100.0 * float(np.sum(w * base.mean)) / total,
        candidate_score=100.0 * float(np.sum(w * cand.mean)) / total,
        standard_error=100.0 * math.sqrt(float(variance)),
        n_items=int(np.count_nonzero(w > 0)),
        effective_items=n_effective,
        n_pairs=int(np.minimum(base.n, cand.n).sum()),
        baseline_changed=int(base.changed.sum()),
        candidate_changed=int(cand.changed.sum()),
        baseline_changed_after_first=int(base.changed_after_first.sum()),
        candidate_changed_after_first=int(cand.changed_after_first.sum()),
        better=better,
        worse=worse,
        baseline_only=table.baseline_only,
        candidate_only=table.candidate_only,
        items=per_item,
        method=METHOD,
    )
