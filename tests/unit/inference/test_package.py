"""Tests of the inference package's public surface: what ``from pytest_quantgate.inference import X`` offers."""

from __future__ import annotations

import pytest_quantgate.inference as inference
from pytest_quantgate import stats

# The names callers imported from the single module before it became a package, and the item-level
# decisions added since.
PUBLIC = {
    "ItemComparison",
    "ItemDifference",
    "ItemSequentialDecision",
    "ItemSequentialTest",
    "clustered_difference_bounds",
    "item_noninferiority",
    "item_sequential_decision",
    "Decision",
    "Interval",
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
    "group_sequential_boundaries",
    "hsd_spending",
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
}


def test_the_package_exports_every_public_name():
    assert set(inference.__all__) == PUBLIC
    missing = [name for name in PUBLIC if not hasattr(inference, name)]
    assert missing == []


def test_one_sample_intervals_are_the_ones_in_stats():
    # One Wilson implementation: the package re-exports stats' functions, it does not wrap them.
    assert inference.wilson_interval is stats.wilson_interval
    assert inference.clopper_pearson_interval is stats.clopper_pearson_interval
    assert inference.mean_ci is stats.mean_ci
    assert inference.Interval is stats.Interval
