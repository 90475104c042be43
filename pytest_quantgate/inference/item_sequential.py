"""Sequential early stopping on items: swap / keep / continue after each iteration, capped.

:class:`ItemSequentialTest` runs the group-sequential design of
:class:`~pytest_quantgate.inference.sequential.SequentialTest` (looks after every iteration,
Hwang-Shih-DeCani error spending, non-binding futility, a cap at 15 iterations, the same boundaries)
on the item-clustered bounds of :mod:`~pytest_quantgate.inference.items`, and adds one rule that
repeated items need: when more iterations could add little information (greedy decoding repeats the
same answers), the current look is declared the final one and decides with all error still unspent.
:func:`item_sequential_decision` is the one-call form; :meth:`ItemSequentialTest.simulate` the
vectorised form for benchmarks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.items import (
    ItemComparison,
    ItemTable,
    clustered_moments,
    comparison_from_table,
    effective_items,
    item_quantile,
    item_table,
    score_distances,
)
from pytest_quantgate.inference.sequential import (
    Decision,
    SequentialTest,
    group_sequential_boundaries,
    hsd_spending,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ItemSequentialDecision:
    """One look of the item sequential test: "swap", "keep" or "continue", and why.

    Fields as in :class:`~pytest_quantgate.inference.sequential.SequentialDecision`: ``lower_bound``
    (pp) is the item bound at the z the decision used (``efficacy_z``, or the final-look z when the
    look was declared final), ``upper_bound`` the bound at ``futility_z``; both None before the first
    look. ``final`` is True when this look ended the test (cap reached, or little information left).
    ``information`` estimates the share of the information at ``max_iterations`` that is in hand now
    (1.0 when further iterations cannot narrow the bounds). ``comparison`` is the fixed analysis at
    the design's alpha, for display (difference, per-item view, items that changed between iterations).
    """

    decision: Decision
    iterations: int
    lower_bound: float | None
    upper_bound: float | None
    efficacy_z: float | None
    futility_z: float | None
    final: bool
    information: float | None
    reason: str
    comparison: ItemComparison


@functools.cache
def _final_look_z(alpha: float, gamma: float, min_iterations: int, max_iterations: int) -> tuple[float, ...]:
    # The boundary at look k when k is declared the last look: the looks before it spent as
    # designed, look k spends everything left (Lan & DeMets 1983: the spending function may be
    # cut short at any look).
    looks = [n / max_iterations for n in range(min_iterations, max_iterations + 1)]
    spent = [hsd_spending(t, alpha, gamma) for t in looks]
    return tuple(group_sequential_boundaries(looks[: k + 1], [*spent[:k], alpha])[-1] for k in range(len(looks)))


def _normal_sf(z: npt.ArrayLike) -> FloatArray:
    from scipy.special import ndtr

    return np.asarray(ndtr(-np.asarray(z, dtype=np.float64)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ItemSequentialTest:
    """Group-sequential item non-inferiority with a look after every iteration and a hard cap.

    At look k (n iterations per item and side), with the item bounds of
    :func:`~pytest_quantgate.inference.items.item_noninferiority` at the look's z:

    * **swap** when the lower bound at ``efficacy_z[k]`` is > -margin (alpha spent by an HSD function
      of n / max_iterations, as :class:`SequentialTest`);
    * **final look** when n reaches ``max_iterations``, or when the estimated information fraction
      (information now / projected information at ``max_iterations``) is ≥ ``stop_information``:
      swap iff the lower bound at ``final_z[k]`` (all alpha not yet spent) is > -margin, else keep.
      The projection removes from the clustered variance the within-item part that more iterations
      would average away, estimated from each item's spread after its first iteration (a cold prompt
      cache makes the first unlike the rest); with greedy repeats nothing is left to average away,
      so the test stops at the first look instead of re-reading the same answers until the cap;
    * **keep** (futility, non-binding) when the upper bound at ``futility_z[k]`` is < 0, or when the
      margin is out of reach: were the current estimate the truth, the chance that the bound clears
      -margin by the cap (stochastic curtailment; Lan, Simon & Halperin 1982) is below
      ``curtail_power``. This matters when the items cannot resolve the margin at all (100 items
      cannot show 2 pp: even perfect agreement leaves a bound near -2.7 pp);
    * else continue.

    Why the design's error rates hold: the looks' statistics are more strongly correlated than the
    design assumes (item means over n iterations share all earlier iterations, and the between-item
    part never shrinks), which by Slepian's inequality can only lower the chance of ever crossing;
    stopping early on the variance (not the estimate) only cuts the spending short; and every other
    early stop is a "keep", which cannot make a swap more likely. Checked by
    simulation in ``benchmarks/bench_items.py`` (``docs/statistics.md``). Build with :meth:`create`.
    """

    margin: float
    alpha: float
    beta: float
    min_iterations: int
    max_iterations: int
    efficacy_gamma: float
    futility_gamma: float
    stop_information: float
    curtail_power: float
    efficacy_z: tuple[float, ...]
    futility_z: tuple[float, ...]
    final_z: tuple[float, ...]

    @classmethod
    def create(
        cls,
        margin: float,
        alpha: float = 0.05,
        beta: float = 0.10,
        min_iterations: int = 3,
        max_iterations: int = 15,
        efficacy_gamma: float = 0.0,
        futility_gamma: float = 0.0,
        stop_information: float = 0.8,
        curtail_power: float = 0.1,
    ) -> ItemSequentialTest:
        """Compute the boundaries for looks at n = min_iterations, …, max_iterations (about 1-2 s,
        once; keep the instance for the run)."""
        if not 0.0 < stop_information <= 1.0:
            raise SpecError(
                f"stop_information={stop_information!r} must lie in (0, 1]: the information fraction at which "
                "a look becomes the final one (1 stops only when further iterations cannot change the bounds)"
            )
        if not 0.0 <= curtail_power < 1.0:
            raise SpecError(
                f"curtail_power={curtail_power!r} must lie in [0, 1): keep early when the chance of a swap by the "
                "cap, were the current estimate the truth, is below it (0 turns this off)"
            )
        design = SequentialTest.create(
            margin,
            alpha=alpha,
            beta=beta,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            efficacy_gamma=efficacy_gamma,
            futility_gamma=futility_gamma,
        )
        return cls(
            margin=design.margin,
            alpha=alpha,
            beta=beta,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            efficacy_gamma=efficacy_gamma,
            futility_gamma=futility_gamma,
            stop_information=stop_information,
            curtail_power=curtail_power,
            efficacy_z=design.efficacy_z,
            futility_z=design.futility_z,
            final_z=_final_look_z(alpha, efficacy_gamma, min_iterations, max_iterations),
        )

    def look_index(self, iterations: int) -> int | None:
        """Index into the boundaries for *iterations* done, or None before the first look."""
        if iterations < self.min_iterations:
            return None
        return min(iterations, self.max_iterations) - self.min_iterations

    def information_fraction(self, table: ItemTable) -> float:
        """Estimated information now / projected information at ``max_iterations``, in (0, 1]."""
        diff, variance = clustered_moments(table.differences, table.weights)
        n_eff = effective_items(table.weights)
        removable = _removable_variance(table, self.max_iterations)
        return float(_information(diff, variance, removable, n_eff, float(item_quantile(self.alpha, table.weights))))

    def decide(
        self,
        baseline: Mapping[str, Sequence[float]],
        candidate: Mapping[str, Sequence[float]],
        weights: Mapping[str, float] | None = None,
        iterations: int | None = None,
    ) -> ItemSequentialDecision:
        """Decide after the latest iteration, from every item's scores so far (as for
        :func:`~pytest_quantgate.inference.items.item_noninferiority`).

        The look is *iterations* when given, else the fewest iterations any paired item has on either
        side; running past ``max_iterations`` is analysed as the final look (conservative).
        """
        table = item_table(baseline, candidate, weights)
        comparison = comparison_from_table(table, self.margin, self.alpha)
        n = int(min(table.baseline.n.min(), table.candidate.n.min())) if iterations is None else iterations
        k = self.look_index(n)
        if k is None:
            return ItemSequentialDecision(
                decision="continue",
                iterations=n,
                lower_bound=None,
                upper_bound=None,
                efficacy_z=None,
                futility_z=None,
                final=False,
                information=None,
                reason=f"first look after {self.min_iterations} iterations per preset",
                comparison=comparison,
            )
        w = table.weights
        n_eff = effective_items(w)
        diff, variance = clustered_moments(table.differences, w)
        removable = _removable_variance(table, self.max_iterations)
        growth = _item_growth(table, n, self.max_iterations)
        q_alpha = float(item_quantile(self.alpha, w))
        information = float(_information(diff, variance, removable, n_eff, q_alpha, growth))
        capped = n >= self.max_iterations
        final = capped or information >= self.stop_information
        ze, zf = (self.final_z[k] if final else self.efficacy_z[k]), self.futility_z[k]
        q = item_quantile(_normal_sf([ze, zf, self.final_z[k]]), w)
        down, _ = score_distances(diff, variance, n_eff, q[0])
        _, up = score_distances(diff, variance, n_eff, q[1])
        lo = max(-100.0, 100.0 * float(diff - down))
        hi = min(100.0, 100.0 * float(diff + up))
        power = float(_conditional_power(diff, variance, removable, n_eff, q[2], self.margin, growth))
        decision: Decision
        why_final = (
            f"cap of {self.max_iterations} iterations reached"
            if capped
            else f"more iterations would add little (information {information:.0%} of the cap's)"
        )
        if lo > -self.margin:
            decision = "swap"
            reason = f"lower bound {lo:+.2f} pp > -{self.margin:g} pp at look {n} (z = {ze:.3f})"
            if final:
                reason += f"; final look: {why_final}"
        elif final:
            decision = "keep"
            reason = f"{why_final}; lower bound {lo:+.2f} pp <= -{self.margin:g} pp (final look, z = {ze:.3f})"
        elif hi < 0.0:
            decision = "keep"
            reason = f"futility: upper bound {hi:+.2f} pp < 0 at look {n} (z = {zf:.3f}); the candidate is worse"
        elif power < self.curtail_power:
            decision = "keep"
            reason = (
                f"futility: were the current difference {100.0 * float(diff):+.2f} pp the truth, a swap by the cap "
                f"would have a chance of {power:.0%} (< {self.curtail_power:.0%}); the margin is out of reach"
            )
        else:
            decision = "continue"
            reason = f"lower bound {lo:+.2f} pp <= -{self.margin:g} pp and upper bound {hi:+.2f} pp >= 0"
        return ItemSequentialDecision(
            decision=decision,
            iterations=n,
            lower_bound=lo,
            upper_bound=hi,
            efficacy_z=ze,
            futility_z=zf,
            final=final,
            information=information,
            reason=reason,
            comparison=comparison,
        )

    def simulate(
        self,
        baseline_scores: npt.ArrayLike,
        candidate_scores: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        chunk: int = 512,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Run the test on many simulated histories at once (for benchmarks and design checks).

        Score arrays have shape (trials, iterations ≥ ``max_iterations``, items), values in [0, 1];
        *weights* one per item (default 1). Returns (swapped, iterations used) per trial, with the
        decisions :meth:`decide` would take after each iteration (every item seen every iteration).
        """
        sb = np.asarray(baseline_scores, dtype=np.float64)
        sc = np.asarray(candidate_scores, dtype=np.float64)
        if sb.ndim != 3 or sb.shape != sc.shape or sb.shape[1] < self.max_iterations:
            raise SpecError(
                "score arrays must both have shape (trials, iterations >= max_iterations, items); got "
                f"{sb.shape} and {sc.shape}"
            )
        w = np.ones(sb.shape[2]) if weights is None else np.asarray(weights, dtype=np.float64)
        n_eff = effective_items(w)
        looks = np.arange(self.min_iterations, self.max_iterations + 1)
        q_eff = item_quantile(_normal_sf(self.efficacy_z), w)
        q_fut = item_quantile(_normal_sf(self.futility_z), w)
        q_fin = item_quantile(_normal_sf(self.final_z), w)
        q_info = float(item_quantile(self.alpha, w))
        swapped = np.empty(sb.shape[0], dtype=bool)
        used = np.empty(sb.shape[0], dtype=np.int64)
        for start in range(0, sb.shape[0], chunk):
            part = slice(start, start + chunk)
            mean_b, var_b = _running_item_stats(sb[part, : self.max_iterations], looks)
            mean_c, var_c = _running_item_stats(sc[part, : self.max_iterations], looks)
            diff, variance = clustered_moments(mean_c - mean_b, w)
            n = looks.astype(np.float64)[:, np.newaxis]
            shrink = (var_b + var_c) * (1.0 / n - 1.0 / self.max_iterations)
            removable = np.sum(w * w * shrink, axis=-1) / float(w.sum()) ** 2
            final = _information(diff, variance, removable, n_eff, q_info) >= self.stop_information
            final[:, -1] = True
            down_eff, _ = score_distances(diff, variance, n_eff, q_eff)
            down_fin, _ = score_distances(diff, variance, n_eff, q_fin)
            _, up = score_distances(diff, variance, n_eff, q_fut)
            swap_eff = 100.0 * (diff - down_eff) > -self.margin
            swap_fin = 100.0 * (diff - down_fin) > -self.margin
            swap = np.where(final, swap_fin, swap_eff)
            futile = (100.0 * (diff + up) < 0.0) | (
                _conditional_power(diff, variance, removable, n_eff, q_fin, self.margin) < self.curtail_power
            )
            stop = swap | final | futile
            first = np.argmax(stop, axis=1)
            rows = np.arange(first.size)
            swapped[part] = swap[rows, first]
            used[part] = looks[first]
        return swapped, used


def _removable_variance(table: ItemTable, max_iterations: int) -> float:
    # The part of the clustered variance that averaging each item up to max_iterations would remove.
    w = table.weights
    b, c = table.baseline, table.candidate
    k = float(max_iterations)
    shrink = b.variance_after_first * (1.0 / b.n - 1.0 / np.maximum(b.n, k)) + c.variance_after_first * (
        1.0 / c.n - 1.0 / np.maximum(c.n, k)
    )
    return float(np.sum(w * w * shrink)) / float(w.sum()) ** 2


def _item_growth(table: ItemTable, look: int, max_iterations: int) -> float:
    """How many times more items the cap will pair than this look has: 1 when every item is asked in every
    iteration (a fixed item set), up to max_iterations / look when each iteration asks fresh items (a suite
    that draws new questions per iteration, as the tiny suite does). Read off how often the paired items
    were seen: on average ``look`` times for a fixed set, once for fresh draws."""
    if look <= 1 or look >= max_iterations:
        return 1.0
    seen = float(np.mean(np.minimum(table.baseline.n, table.candidate.n)))
    fresh = min(max((look - seen) / (look - 1), 0.0), 1.0)
    return 1.0 + fresh * (max_iterations - look) / look


def _conditional_power(
    diff: npt.ArrayLike,
    variance: npt.ArrayLike,
    removable: npt.ArrayLike,
    n_eff: float,
    q_final: npt.ArrayLike,
    margin: float,
    growth: float = 1.0,
) -> FloatArray:
    # Chance that the cap's lower bound clears -margin were the current estimate the truth: the
    # estimate still moves by the removable variance (and, with new items to come, by their average:
    # (G - 1)/G² of the rest); the bound uses the variance left at the cap over G times the items.
    # Optimistic on purpose (the loosest final z from here on), since it only ever stops to keep.
    from scipy.special import ndtr

    d = np.asarray(diff, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    within = np.minimum(np.asarray(removable, dtype=np.float64), v)
    r = within + (v - within) * (growth - 1.0) / growth**2
    down, _ = score_distances(d, (v - within) / growth, n_eff * growth, q_final)
    gap = d - down + margin / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(r > 0.0, gap / np.sqrt(r), np.where(gap > 0.0, np.inf, -np.inf))
    return np.asarray(ndtr(z), dtype=np.float64)


def _information(
    diff: npt.ArrayLike,
    variance: npt.ArrayLike,
    removable: npt.ArrayLike,
    n_eff: float,
    q: float,
    growth: float = 1.0,
) -> FloatArray:
    # Information ~ 1 / (bound distance)², now and at the cap: the averageable within-item variance gone,
    # and the items *growth* times as many (each iteration drawing fresh ones).
    v = np.asarray(variance, dtype=np.float64)
    now, _ = score_distances(diff, v, n_eff, q)
    left = np.maximum(v - np.asarray(removable, dtype=np.float64), 0.0) / growth
    later, _ = score_distances(diff, left, n_eff * growth, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(now > 0.0, (later / now) ** 2, 1.0)
    return np.asarray(np.clip(ratio, 0.0, 1.0), dtype=np.float64)


def _running_item_stats(scores: FloatArray, looks: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """Per look: each item's mean over the first n iterations, and the within-item variance that
    :func:`~pytest_quantgate.inference.items.item_table` would report (after the first iteration
    when two or more follow it, else over all). Shapes (trials, looks, items)."""
    total = np.cumsum(scores, axis=1)[:, looks - 1]
    n = looks.astype(np.float64)[:, np.newaxis]
    mean = total / n
    rest = scores[:, 1:]
    rest_sum = np.concatenate([np.zeros_like(scores[:, :1]), np.cumsum(rest, axis=1)], axis=1)[:, looks - 1]
    rest_sq = np.concatenate([np.zeros_like(scores[:, :1]), np.cumsum(rest * rest, axis=1)], axis=1)[:, looks - 1]
    m = n - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        var_rest = (rest_sq - rest_sum**2 / m) / (m - 1.0)
        all_sq = np.cumsum(scores * scores, axis=1)[:, looks - 1]
        var_all = (all_sq - total**2 / n) / (n - 1.0)
    variance = np.where(m >= 2.0, var_rest, np.where(n >= 2.0, var_all, 0.0))
    return mean, np.maximum(np.nan_to_num(variance), 0.0)


def item_sequential_decision(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    margin: float,
    alpha: float = 0.05,
    beta: float = 0.10,
    max_iterations: int = 15,
    weights: Mapping[str, float] | None = None,
) -> ItemSequentialDecision:
    """One-call form of :class:`ItemSequentialTest` with the default design (boundaries are cached per
    design, but keep an :class:`ItemSequentialTest` around when deciding after every iteration)."""
    test = ItemSequentialTest.create(margin, alpha=alpha, beta=beta, max_iterations=max_iterations)
    return test.decide(baseline, candidate, weights)
