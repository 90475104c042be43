"""Speed and memory between two runs: a change counts only when significant AND beyond a noise floor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.unpaired import mann_whitney_p
from pytest_quantgate.stats import finite_array

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class SpeedDelta:
    """A speed or memory change, counted only when significant AND larger than the noise floor.

    ``relative_change`` is median(candidate) / median(baseline) - 1 (positive: the value went up,
    whatever ``higher_is_better`` says). ``verdict`` is the better-label ("faster" by default) when the
    candidate is better, the worse-label ("slower") when worse, else "no change (noise)" (not
    significant) or "no change (below floor)" (significant but smaller than the floor).
    """

    baseline_median: float
    candidate_median: float
    relative_change: float
    p_value: float
    significant: bool
    beyond_floor: bool
    verdict: str
    floor: float
    alpha: float
    higher_is_better: bool
    n_baseline: int
    n_candidate: int
    method: str


def speed_delta(
    baseline_values: Sequence[float],
    candidate_values: Sequence[float],
    floor: float = 0.05,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    better_label: str = "faster",
    worse_label: str = "slower",
) -> SpeedDelta:
    """Did speed (tokens/s; ``higher_is_better=True``) or latency/memory (``False``) really change?

    A change counts only when it is significant — two-sided Mann-Whitney U over the iteration (or
    request) values at *alpha*; two-sided because either direction is reported, and a one-sided test
    in the direction the data happen to point would double the false-alarm rate — AND its size,
    |median(candidate) / median(baseline) - 1|, exceeds *floor* (default 5 %): with hundreds of TTFT
    samples a 0.5 % shift becomes significant but is not worth reporting, and machine noise
    (thermal state, other load) routinely moves medians by a few percent.

    For TTFT and memory (lower is better) a decrease is reported as *better_label* ("faster"); pass
    e.g. ``better_label="smaller", worse_label="larger"`` for memory. With 1 value per side the test
    can never be significant (p = 1) and the verdict is "no change (noise)".
    """
    if not (math.isfinite(floor) and floor >= 0.0):
        raise SpecError(f"floor={floor!r} must be a finite fraction ≥ 0, e.g. 0.05 for 5 %")
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"alpha={alpha!r} must lie strictly between 0 and 1, e.g. 0.05")
    xb = finite_array(baseline_values, "baseline_values")
    xc = finite_array(candidate_values, "candidate_values")
    if xb.size == 0 or xc.size == 0:
        raise SpecError(f"speed comparison needs values on both sides, got baseline {xb.size}, candidate {xc.size}")
    mb, mc = float(np.median(xb)), float(np.median(xc))
    if mb == 0.0:
        raise SpecError(
            "the baseline median is 0, so a relative change is undefined; check that the baseline run "
            "recorded this metric (the absolute values are still comparable)"
        )
    rel = mc / mb - 1.0
    p = mann_whitney_p(xb, xc)
    significant = p < alpha
    beyond = abs(rel) > floor
    if not significant:
        verdict = "no change (noise)"
    elif not beyond:
        verdict = "no change (below floor)"
    else:
        went_up = rel > 0.0
        verdict = better_label if went_up == higher_is_better else worse_label
    return SpeedDelta(
        baseline_median=mb,
        candidate_median=mc,
        relative_change=rel,
        p_value=p,
        significant=significant,
        beyond_floor=beyond,
        verdict=verdict,
        floor=floor,
        alpha=alpha,
        higher_is_better=higher_is_better,
        n_baseline=int(xb.size),
        n_candidate=int(xc.size),
        method="Mann-Whitney U (two-sided) + ratio of medians vs floor",
    )
