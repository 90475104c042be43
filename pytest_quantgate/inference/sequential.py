"""Sequential early stopping: a group-sequential non-inferiority test with error spending, capped.

:func:`hsd_spending` and :func:`group_sequential_boundaries` compute the design;
:class:`SequentialTest` decides "swap", "keep" or "continue" after each iteration on the bounds of
:mod:`~pytest_quantgate.inference.quality`; :func:`sequential_decision` is its one-call form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference._checks import check_alpha, check_margin
from pytest_quantgate.inference.quality import level_counts, stratified_difference_bounds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


Decision = Literal["swap", "keep", "continue"]


@dataclass(frozen=True, slots=True)
class SequentialDecision:
    """One look of the sequential test: "swap", "keep" or "continue", and why.

    ``lower_bound`` is the MOVER lower bound at this look's efficacy level (swap iff > -margin),
    ``upper_bound`` the upper bound at the futility level (keep iff < 0); both None before the first
    look. ``final`` is True at the cap, where the decision is the fixed analysis at the adjusted level.
    """

    decision: Decision
    iterations: int
    lower_bound: float | None
    upper_bound: float | None
    efficacy_z: float | None
    futility_z: float | None
    final: bool
    reason: str


def hsd_spending(t: float, total: float, gamma: float) -> float:
    """Hwang-Shih-DeCani error-spending function: error spent by information fraction *t* ∈ [0, 1].

    gamma = -4 resembles O'Brien-Fleming (spends little early), gamma = 1 resembles Pocock (spends
    evenly), gamma = 0 is linear.
    """
    if t <= 0.0:
        return 0.0
    t = min(t, 1.0)
    if gamma == 0.0:
        return total * t
    return total * (1.0 - math.exp(-gamma * t)) / (1.0 - math.exp(-gamma))


def group_sequential_boundaries(
    information: Sequence[float],
    cumulative_spend: Sequence[float],
    grid_points: int = 401,
) -> tuple[float, ...]:
    """One-sided upper boundaries z₁…z_K for a group-sequential test.

    *information* are increasing information fractions (last = 1 for a planned maximum),
    *cumulative_spend* the error to have spent by each look. Boundaries satisfy
    P₀(Z₁ < z₁, …, Z_{k-1} < z_{k-1}, Z_k ≥ z_k) = spend_k - spend_{k-1} under the canonical joint
    distribution (Z_k = S_k / √t_k, S a standard Brownian motion), computed by recursive numerical
    integration (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19) with Simpson's rule.
    A look that spends nothing gets +inf.
    """
    from scipy import optimize, stats

    t = np.asarray(information, dtype=np.float64)
    cum = np.asarray(cumulative_spend, dtype=np.float64)
    if t.size == 0 or t.size != cum.size or np.any(np.diff(t) <= 0) or t[0] <= 0:
        raise SpecError("information fractions must be positive and increasing, one spend value per look")
    if np.any(np.diff(cum) < -1e-15) or cum[0] < 0 or cum[-1] >= 0.5:
        raise SpecError("cumulative spend must be non-decreasing, ≥ 0 and < 0.5")
    m = grid_points | 1  # Simpson's rule needs an odd number of points
    simpson = np.ones(m)
    simpson[1:-1:2] = 4.0
    simpson[2:-1:2] = 2.0
    spend = np.diff(np.concatenate([[0.0], cum]))
    bounds: list[float] = []
    # Sub-density of S_{k-1} on the continuation region, as integration weights on its grid.
    grid = np.zeros(1)
    mass = np.ones(1)
    sd_step = 1.0
    for k in range(t.size):
        sd_k = math.sqrt(t[k])
        sd_step = sd_k if k == 0 else math.sqrt(t[k] - t[k - 1])
        lo_s = -10.0 * sd_k  # mass below -10 sd is negligible under the null (drift 0)
        target = float(spend[k])

        def excess(
            b: float,
            grid: FloatArray = grid,
            mass: FloatArray = mass,
            sd: float = sd_step,
            target: float = target,
        ) -> float:
            # P(continued so far and S_k >= b) minus the error this look may spend.
            return float(np.sum(mass * stats.norm.sf((b - grid) / sd))) - target

        if target <= 1e-15:
            b_k, top = math.inf, 10.0 * sd_k
        else:
            b_k = float(optimize.brentq(excess, lo_s, 15.0 * sd_k, xtol=1e-10))
            top = b_k
        bounds.append(b_k / sd_k)
        new_grid = np.linspace(lo_s, top, m)
        kernel = stats.norm.pdf((new_grid[np.newaxis, :] - grid[:, np.newaxis]) / sd_step) / sd_step
        dens = np.asarray(mass @ kernel, dtype=np.float64)
        grid, mass = new_grid, dens * simpson * (new_grid[1] - new_grid[0]) / 3.0
    return tuple(bounds)


@dataclass(frozen=True, slots=True)
class SequentialTest:
    """Group-sequential non-inferiority test with a look after every iteration and a hard cap.

    Two one-sided group-sequential tests run side by side on the MOVER-Wilson bounds of
    :func:`quality_noninferiority`, with information fraction t = n / max_iterations:

    * **swap** (efficacy) at look k when the lower bound at z = ``efficacy_z[k]`` is > -margin. The
      boundaries spend ``alpha`` with a Hwang-Shih-DeCani function (``efficacy_gamma``), so the
      probability of ever swapping a candidate that is truly worse by the margin is ≤ alpha.
    * **keep** (futility) at look k when the upper bound at z = ``futility_z[k]`` is < 0, i.e. the data
      reject "the candidate is truly as good" by a group-sequential test of level ``beta``. This is
      non-binding: ignoring it never raises the false-swap rate, and it costs at most ``beta`` power
      when the candidate is truly equal.
    * at ``max_iterations`` the fixed analysis decides: swap iff the lower bound at the final,
      spending-adjusted efficacy level is > -margin, else keep.

    Error rates rely on the usual asymptotics (independent increments); at n ≤ 15 they are checked by
    simulation in ``benchmarks/bench_sequential.py`` (see ``docs/statistics.md``). Build with
    :meth:`create`, which computes the boundaries once.
    """

    margin: float
    alpha: float
    beta: float
    min_iterations: int
    max_iterations: int
    efficacy_gamma: float
    futility_gamma: float
    efficacy_z: tuple[float, ...]
    futility_z: tuple[float, ...]

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
    ) -> SequentialTest:
        """Compute the boundaries for looks at n = min_iterations, …, max_iterations."""
        check_margin(margin)
        check_alpha(alpha)
        check_alpha(beta, "beta")
        if not 1 <= min_iterations <= max_iterations:
            raise SpecError(f"need 1 ≤ min_iterations ({min_iterations}) ≤ max_iterations ({max_iterations})")
        looks = [n / max_iterations for n in range(min_iterations, max_iterations + 1)]
        eff = group_sequential_boundaries(looks, [hsd_spending(t, alpha, efficacy_gamma) for t in looks])
        fut = group_sequential_boundaries(looks, [hsd_spending(t, beta, futility_gamma) for t in looks])
        return cls(
            margin=float(margin),
            alpha=alpha,
            beta=beta,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            efficacy_gamma=efficacy_gamma,
            futility_gamma=futility_gamma,
            efficacy_z=eff,
            futility_z=fut,
        )

    def look_index(self, iterations: int) -> int | None:
        """Index into the boundaries for *iterations* done, or None before the first look."""
        if iterations < self.min_iterations:
            return None
        return min(iterations, self.max_iterations) - self.min_iterations

    def decide(
        self,
        baseline: Mapping[str, Sequence[bool]],
        candidate: Mapping[str, Sequence[bool]],
        points: Mapping[str, float],
    ) -> SequentialDecision:
        """Decide after the latest iteration. The look is the fewest iterations any level has on either
        side; running past ``max_iterations`` is analysed as the final look (conservative)."""
        _levels, xb, nb, xc, nc, pts = level_counts(baseline, candidate, points)
        n = int(min(nb.min(), nc.min()))
        k = self.look_index(n)
        if k is None:
            return SequentialDecision(
                decision="continue",
                iterations=n,
                lower_bound=None,
                upper_bound=None,
                efficacy_z=None,
                futility_z=None,
                final=False,
                reason=f"first look after {self.min_iterations} iterations per preset",
            )
        final = n >= self.max_iterations
        ze, zf = self.efficacy_z[k], self.futility_z[k]
        _d, lower, _u = stratified_difference_bounds(xb, nb, xc, nc, pts, ze)
        _d, _l, upper = stratified_difference_bounds(xb, nb, xc, nc, pts, zf)
        lo, hi = float(lower), float(upper)
        decision: Decision
        if lo > -self.margin:
            decision = "swap"
            reason = f"lower bound {lo:+.2f} pp > -{self.margin:g} pp at look {n} (z = {ze:.3f})"
        elif final:
            decision = "keep"
            reason = (
                f"cap of {self.max_iterations} iterations reached; lower bound {lo:+.2f} pp <= "
                f"-{self.margin:g} pp (fixed analysis at z = {ze:.3f})"
            )
        elif hi < 0.0:
            decision = "keep"
            reason = f"futility: upper bound {hi:+.2f} pp < 0 at look {n} (z = {zf:.3f}); the candidate is worse"
        else:
            decision = "continue"
            reason = f"lower bound {lo:+.2f} pp <= -{self.margin:g} pp and upper bound {hi:+.2f} pp >= 0"
        return SequentialDecision(
            decision=decision,
            iterations=n,
            lower_bound=lo,
            upper_bound=hi,
            efficacy_z=ze,
            futility_z=zf,
            final=final,
            reason=reason,
        )

    def simulate(
        self,
        baseline_outcomes: npt.ArrayLike,
        candidate_outcomes: npt.ArrayLike,
        points: npt.ArrayLike,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Run the test on many simulated histories at once (for benchmarks and design checks).

        Outcome arrays are booleans of shape (trials, iterations, levels) with iterations ≥
        ``max_iterations``; *points* has one entry per level. Returns (swapped, iterations used) per
        trial, with exactly the decisions :meth:`decide` would take after each iteration.
        """
        ob = np.asarray(baseline_outcomes, dtype=bool)
        oc = np.asarray(candidate_outcomes, dtype=bool)
        if ob.ndim != 3 or ob.shape != oc.shape or ob.shape[1] < self.max_iterations:
            raise SpecError(
                "outcome arrays must both have shape (trials, iterations >= max_iterations, levels); got "
                f"{ob.shape} and {oc.shape}"
            )
        looks = np.arange(self.min_iterations, self.max_iterations + 1)
        xb = ob.cumsum(axis=1, dtype=np.float64)[:, looks - 1]
        xc = oc.cumsum(axis=1, dtype=np.float64)[:, looks - 1]
        n = np.broadcast_to(looks.astype(np.float64)[:, np.newaxis], xb.shape[1:])
        _d, lower, _u = stratified_difference_bounds(xb, n, xc, n, points, np.asarray(self.efficacy_z))
        _d, _l, upper = stratified_difference_bounds(xb, n, xc, n, points, np.asarray(self.futility_z))
        swap = lower > -self.margin
        keep = upper < 0.0
        keep[:, -1] = ~swap[:, -1]  # the cap: the fixed analysis decides
        first = np.argmax(swap | keep, axis=1)
        trials = np.arange(ob.shape[0])
        return swap[trials, first], looks[first].astype(np.int64)


def sequential_decision(
    baseline: Mapping[str, Sequence[bool]],
    candidate: Mapping[str, Sequence[bool]],
    points: Mapping[str, float],
    margin: float,
    alpha: float = 0.05,
    beta: float = 0.10,
    max_iterations: int = 15,
) -> SequentialDecision:
    """One-call form of :class:`SequentialTest` with the default design (builds boundaries each call;
    keep a :class:`SequentialTest` around when deciding after every iteration)."""
    test = SequentialTest.create(margin, alpha=alpha, beta=beta, max_iterations=max_iterations)
    return test.decide(baseline, candidate, points)
