from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_quantgate.errors import SpecError
from pytest_quantgate.measures import (
    BUILTIN_METRICS,
    STATS,
    Measurement,
    measurement,
    resolve_metric,
    series,
)


def test_measurement_is_validated():
    assert measurement("chars_per_s", 12, "chars/s", "higher") == Measurement("chars_per_s", 12.0, "chars/s", "higher")
    with pytest.raises(SpecError, match="'Chars'"):
        measurement("Chars", 1)
    with pytest.raises(SpecError, match="built-in"):
        measurement("score", 1)
    with pytest.raises(SpecError, match="not a finite number"):
        measurement("x", math.nan)
    with pytest.raises(SpecError, match="not a finite number"):
        measurement("x", True)
    with pytest.raises(SpecError, match="better='up'"):
        measurement("x", 1, better="up")
    with pytest.raises(SpecError, match="unit"):
        measurement("x", 1, unit=3)


@given(st.from_type(object) | st.text() | st.floats(), st.from_type(object) | st.floats())
def test_measurement_raises_only_spec_errors(name, value):
    try:
        m = measurement(name, value)
    except SpecError:
        return
    assert math.isfinite(m.value) and isinstance(m.name, str)


def test_builtin_metric_names_keep_their_meaning():
    assert resolve_metric("score_mean").measure == "score"
    assert resolve_metric("ttft_p95_ms").stat == "p95"
    assert resolve_metric("ttft_first_ms").stat == "first"
    assert resolve_metric("memory_peak_mb").stat == "value"
    assert resolve_metric("pass_rate_low").per_level
    assert resolve_metric("score_ci_low").label == "score CI low"


def test_recorded_metric_names_split_at_the_statistic():
    ref = resolve_metric("chars_per_s_mean")
    assert (ref.measure, ref.stat, ref.builtin) == ("chars_per_s", "mean", False)
    assert resolve_metric("x_ci_low").measure == "x"
    assert resolve_metric("foo_min_max").measure == "foo_min"
    with pytest.raises(SpecError, match="NAME_STAT"):
        resolve_metric("chars_per_s")
    with pytest.raises(SpecError, match="unknown metric 'load_mean'"):
        resolve_metric("load_mean")  # "load" is a built-in scalar: its gate is load_s


@given(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.sampled_from(sorted(STATS)))
def test_any_recordable_name_can_be_gated(name, stat):
    try:
        measurement(name, 1.0)
    except SpecError:
        return
    ref = resolve_metric(f"{name}_{stat}")
    if f"{name}_{stat}" not in BUILTIN_METRICS:
        assert (ref.measure, ref.stat) == (name, stat)


def test_series_average_within_an_iteration_and_summarise_over_iterations():
    m = lambda v: Measurement("chars_per_s", v, "chars/s")  # noqa: E731
    out = series([(1, m(10)), (1, m(20)), (2, m(30)), (3, m(40))])
    s = out["chars_per_s"]
    assert s.per_iteration == ((1, 15.0), (2, 30.0), (3, 40.0))
    assert s.count == 4
    assert s.stat("mean") == pytest.approx(85 / 3)
    assert s.stat("max") == 40.0
    assert s.stat("ci_low") is not None


def test_series_of_one_iteration_has_no_interval():
    s = series([(1, Measurement("x", 5.0))])["x"]
    assert s.stat("mean") == 5.0
    assert s.stat("sigma") == 0.0
    assert s.stat("ci_low") is None
