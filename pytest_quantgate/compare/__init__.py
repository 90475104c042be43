"""May the candidate replace the baseline? Two result files in, one verdict out, with its evidence.

:func:`compare` is pure: it reads two :class:`~pytest_quantgate.results.ResultFile` objects (finished or
interrupted, from this run or from disk) and returns a :class:`Comparison`. The statistics come from
:mod:`pytest_quantgate.inference` (see ``docs/statistics.md``); this package decides which of them apply
to the data at hand, what the data cannot support (``problems``) and what differs between the two runs
besides the model (``caveats``). ``docs/baselines.md`` explains the verdicts for users.

Verdict (quality ``Δ`` and its one-sided bounds are in points of the maximum score):

* **swap** — quality non-inferior (lower bound > −margin), within the candidate's memory ceiling when
  it has one, and faster when ``require_faster`` is set;
* **keep** — quality shown inferior (upper bound < −margin, or upper bound < 0 while the lower bound
  is not above −margin: the candidate is worse and not shown to be within the margin — the fixed
  analysis' version of :class:`~pytest_quantgate.inference.SequentialTest`'s futility rule), the memory
  ceiling exceeded, or slower when ``require_faster`` is set;
* **inconclusive** — anything else, with ``more_iterations`` from
  :func:`~pytest_quantgate.inference.iterations_needed` when more quality data would settle it.

The modules, in the order the data passes through them: :mod:`.options` (how strict), :mod:`.sides` (one
result read into samples or summary counts), :mod:`.matching` (common levels, paired items),
:mod:`.caveats` (provenance differences), :mod:`.verdict` (the decision and its message), :mod:`.files`
(result files by path or preset id). Rendering lives in :mod:`pytest_quantgate.render.comparison`.
"""

from __future__ import annotations

from pytest_quantgate.compare.files import compare_files, default_results_dir, resolve_result
from pytest_quantgate.compare.options import CompareOptions
from pytest_quantgate.compare.sides import result_aggregate
from pytest_quantgate.compare.verdict import CeilingCheck, Comparison, MeasureChange, Verdict, compare

__all__ = [
    "CeilingCheck",
    "CompareOptions",
    "Comparison",
    "MeasureChange",
    "Verdict",
    "compare",
    "compare_files",
    "default_results_dir",
    "resolve_result",
    "result_aggregate",
]
