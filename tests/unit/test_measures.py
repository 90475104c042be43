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


# -- items -------------------------------------------------------------------------------------------------


def test_an_item_is_validated_and_a_boolean_scores_one_or_zero():
    from pytest_quantgate.measures import ItemOutcome, item_outcome

    assert item_outcome("12+30", True) == ItemOutcome("12+30", 1.0, 1.0)
    assert item_outcome("q1", 0.25, 2) == ItemOutcome("q1", 0.25, 2.0)
    for bad, match in (("", "non-empty"), (3, "non-empty"), ("x" * 201, "at most 200")):
        with pytest.raises(SpecError, match=match):
            item_outcome(bad, 1.0)
    for score in (1.5, -0.1, math.nan, "1"):
        with pytest.raises(SpecError, match="must be a number in"):
            item_outcome("q", score)
    for weight in (0, -1, math.inf, True):
        with pytest.raises(SpecError, match="weight"):
            item_outcome("q", 1.0, weight)


def test_the_measure_fixture_refuses_an_item_recorded_twice():
    from pytest_quantgate.measures import Measure

    m = Measure()
    m.item("a", True)
    m.item("b", 0.5, weight=2)
    with pytest.raises(SpecError, match="recorded twice"):
        m.item("a", False)
    assert [(i.id, i.score, i.weight) for i in m.items] == [("a", 1.0, 1.0), ("b", 0.5, 2.0)]


def test_a_measurement_keeps_one_unit_and_direction_per_name():
    from pytest_quantgate.measures import Measure

    m = Measure()
    m("x", 1.0, unit="s", better="lower")
    with pytest.raises(SpecError, match="one name, one unit and direction"):
        m("x", 2.0, unit="ms", better="lower")


def test_item_scores_share_a_levels_points_among_its_items_and_keeps_plain_levels_whole():
    from pytest_quantgate.levels import Sample, item_scores
    from pytest_quantgate.measures import ItemOutcome

    def sample(level, iteration, outcome="passed", items=(), points=10.0):
        return Sample(preset="p", level=level, name=level.rpartition("::")[2], iteration=iteration,
                      points=points, outcome=outcome, duration_s=0.1, items=items)  # fmt: skip

    items = (ItemOutcome("a", 1.0, 1.0), ItemOutcome("b", 0.0, 3.0))
    table = item_scores(
        [
            sample("t.py::test_x", 2, "failed", items),
            sample("t.py::test_x", 1, "passed", items),
            sample("t.py::test_plain", 1, "passed", points=5.0),
            sample("t.py::test_plain", 2, "error", points=5.0),
            sample("t.py::test_skipped", 1, "skipped"),
        ]
    )
    assert table.scores == {
        "t.py::test_x::a": (1.0, 1.0),
        "t.py::test_x::b": (0.0, 0.0),
        "t.py::test_plain": (1.0, 0.0),
    }
    assert table.weights == {"t.py::test_x::a": 2.5, "t.py::test_x::b": 7.5, "t.py::test_plain": 5.0}
    assert table.names["t.py::test_x::b"] == "test_x[b]"
