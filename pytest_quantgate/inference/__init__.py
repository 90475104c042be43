"""Statistics between two runs: may the candidate preset replace the baseline?

Pure functions on numbers; the caller builds the inputs from result files. Which method answers which
question, and why, is explained in ``docs/statistics.md``. What lives where:

* :mod:`.quality` — quality (pass/fail per level per iteration): :func:`quality_noninferiority`, a
  stratified (levels are strata, iterations repeated draws within a level) MOVER-Wilson lower bound for
  the points-weighted difference — valid at n = 15, no NaN at 0 % or 100 %; its vectorised core
  :func:`stratified_difference_bounds`;
* :mod:`.items` — quality on items (the unit of every quality decision): :func:`item_noninferiority`,
  paired by item id and clustered by item (repeats of an item are not independent evidence), with its
  vectorised core :func:`clustered_difference_bounds`; :mod:`.item_sequential` —
  :class:`ItemSequentialTest` / :func:`item_sequential_decision`, early stopping on items;
* :mod:`.paired` — matched items (same item on both presets): :func:`mcnemar` and
  :func:`paired_noninferiority` (Tango's score interval);
* :mod:`.unpaired` — only aggregate scores: :func:`unpaired_comparison` (Welch t and Mann-Whitney,
  labelled unpaired);
* :mod:`.speed` — speed and memory: :func:`speed_delta`, significance AND a relative noise floor;
* :mod:`.planning` — how many more iterations: :func:`iterations_needed`;
* :mod:`.sequential` — early stopping: :class:`SequentialTest` / :func:`sequential_decision`, a
  group-sequential design with error spending (:func:`hsd_spending`,
  :func:`group_sequential_boundaries`), capped at 15 iterations;
* :mod:`._checks` — the argument checks they share.

The one-sample intervals (:func:`wilson_interval`, :func:`clopper_pearson_interval`, :func:`mean_ci`,
:class:`Interval`) live in :mod:`pytest_quantgate.stats` and are re-exported here; imports run one way,
from this package down to ``stats``.

Units: proportions are fractions internally; every difference, bound and margin a user sees is in
percentage points (pp) of the maximum score, i.e. on the 0-100 scale of the suite score.

scipy is imported inside the functions that need it: importing it costs ~0.3 s, and the plugin is
loaded on every ``pytest`` start, also for runs that never compare anything.
"""

from __future__ import annotations

from pytest_quantgate.inference.item_sequential import (
    ItemSequentialDecision,
    ItemSequentialTest,
    item_sequential_decision,
)
from pytest_quantgate.inference.items import (
    ItemComparison,
    ItemDifference,
    clustered_difference_bounds,
    item_noninferiority,
)
from pytest_quantgate.inference.paired import (
    McNemarResult,
    PairedNonInferiorityResult,
    mcnemar,
    paired_noninferiority,
)
from pytest_quantgate.inference.planning import IterationsNeeded, iterations_needed
from pytest_quantgate.inference.quality import (
    LevelDifference,
    NonInferiorityResult,
    quality_noninferiority,
    stratified_difference_bounds,
)
from pytest_quantgate.inference.sequential import (
    Decision,
    SequentialDecision,
    SequentialTest,
    group_sequential_boundaries,
    hsd_spending,
    sequential_decision,
)
from pytest_quantgate.inference.speed import SpeedDelta, speed_delta
from pytest_quantgate.inference.unpaired import UnpairedComparison, unpaired_comparison
from pytest_quantgate.stats import Interval, clopper_pearson_interval, mean_ci, wilson_interval

__all__ = [
    "Decision",
    "Interval",
    "ItemComparison",
    "ItemDifference",
    "ItemSequentialDecision",
    "ItemSequentialTest",
    "IterationsNeeded",
    "LevelDifference",
    "McNemarResult",
    "NonInferiorityResult",
    "PairedNonInferiorityResult",
    "SequentialDecision",
    "SequentialTest",
    "SpeedDelta",
    "UnpairedComparison",
    "clopper_pearson_interval",
    "clustered_difference_bounds",
    "group_sequential_boundaries",
    "hsd_spending",
    "item_noninferiority",
    "item_sequential_decision",
    "iterations_needed",
    "mcnemar",
    "mean_ci",
    "paired_noninferiority",
    "quality_noninferiority",
    "sequential_decision",
    "speed_delta",
    "stratified_difference_bounds",
    "unpaired_comparison",
    "wilson_interval",
]
