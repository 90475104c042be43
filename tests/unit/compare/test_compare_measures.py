"""Recorded measurements against a baseline: compared like tokens/s (significance and a noise floor)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from result_builders import base, cand, summary_only

from pytest_quantgate.compare import compare
from pytest_quantgate.measures import Measurement
from pytest_quantgate.render.comparison import recommendation_rows, render

if TYPE_CHECKING:
    from pytest_quantgate.results import ResultFile


def measured(result: ResultFile, rate: float, *, name: str = "chars_per_s", better: str = "higher") -> ResultFile:
    """*result* with one measurement per sample: *rate* ± 1 % by iteration (the same jitter on both sides)."""
    samples = [
        dataclasses.replace(
            s, measures=(Measurement(name, rate * (1 + 0.01 * ((3 * s.iteration) % 3 - 1)), "chars/s", better),)
        )
        for s in result.samples
    ]
    return result.model_copy(update={"samples": samples})


def test_a_measurement_that_dropped_beyond_the_floor_is_reported_worse() -> None:
    c = compare(measured(base(), 100.0), measured(cand(), 80.0))
    (change,) = c.measures
    assert (change.name, change.unit, change.better) == ("chars_per_s", "chars/s", "higher")
    assert change.delta.verdict == "worse"
    assert change.delta.relative_change < -0.15
    row = next(r for r in recommendation_rows(c) if r[0].startswith("chars_per_s"))
    assert row[0] == "chars_per_s chars/s (median)" and row[3].startswith("−20.0%: worse")
    assert "chars_per_s chars/s (median)" in render(c)


def test_lower_is_better_and_neither_are_judged_accordingly() -> None:
    lower = compare(measured(base(), 100.0, better="lower"), measured(cand(), 80.0, better="lower"))
    assert lower.measures[0].delta.verdict == "better"
    neither = compare(measured(base(), 100.0, better="neither"), measured(cand(), 80.0, better="neither"))
    assert neither.measures[0].delta.verdict == "lower"


def test_equal_measurements_are_no_change() -> None:
    c = compare(measured(base(), 100.0), measured(cand(), 100.0))
    assert c.measures[0].delta.verdict.startswith("no change")


def test_a_measurement_on_one_side_only_is_a_stated_limit() -> None:
    c = compare(base(), measured(cand(), 80.0))
    assert c.measures == ()
    assert "measurement chars_per_s not compared: the baseline recorded none" in c.problems


def test_a_summary_only_baseline_still_compares_its_measurements() -> None:
    c = compare(summary_only(measured(base(), 100.0)), measured(cand(), 80.0))
    assert c.measures[0].delta.verdict == "worse"
