"""Tests of pytest_quantgate.levels: the level mark, samples, and how a run adds up."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.completion import Completion, Timings
from pytest_quantgate.errors import SpecError
from pytest_quantgate.levels import (
    LEVEL_MARK_KWARGS,
    IterationTally,
    LevelSpec,
    RequestRecord,
    Sample,
    aggregate,
    iteration_scores,
    iteration_tokens_per_s,
)
from pytest_quantgate.measures import ItemOutcome, Measurement
from pytest_quantgate.stats import wilson

WHERE = "tests/test_suite.py::test_add3"


def sample(level: str, iteration: int, outcome: str = "passed", points: float = 1.0, **kw) -> Sample:
    return Sample(
        preset=kw.pop("preset", "p"),
        level=level,
        name=kw.pop("name", level.rpartition("::")[2]),
        iteration=iteration,
        points=points,
        outcome=outcome,  # type: ignore[arg-type]
        duration_s=kw.pop("duration_s", 0.1),
        **kw,
    )


def req(**kw) -> RequestRecord:
    return RequestRecord(endpoint="/v1/chat/completions", wall_s=kw.pop("wall_s", 1.0), **kw)


# -- the mark ---------------------------------------------------------------------------------------------


def test_from_mark_reads_every_argument() -> None:
    kwargs = {"points": 25, "name": "L1", "iterations": 3, "max_tokens": 64, "timeout_s": 9.5}
    spec = LevelSpec.from_mark((), kwargs, WHERE)
    assert spec == LevelSpec(points=25.0, name="L1", iterations=3, max_tokens=64, timeout_s=9.5)
    assert isinstance(spec.points, float)


def test_from_mark_defaults_and_positional_points() -> None:
    assert LevelSpec.from_mark((), {}, WHERE) == LevelSpec(points=1.0)
    assert LevelSpec.from_mark((2.5,), {}, WHERE).points == 2.5
    assert LevelSpec.from_mark((0,), {}, WHERE).points == 0.0


def test_from_mark_names_unknown_arguments_and_the_allowed_ones() -> None:
    with pytest.raises(SpecError) as info:
        LevelSpec.from_mark((), {"pionts": 3, "iters": 2}, WHERE)
    message = str(info.value)
    assert message.startswith(f"{WHERE}: unknown argument(s) 'iters', 'pionts' to @pytest.mark.level")
    assert f"allowed: {', '.join(LEVEL_MARK_KWARGS)}" in message


def test_from_mark_takes_one_positional_argument_at_most() -> None:
    with pytest.raises(SpecError, match="at most one positional argument"):
        LevelSpec.from_mark((1, 2), {}, WHERE)


@pytest.mark.parametrize("points", [-1, "10", None, True, [1]])
def test_from_mark_rejects_bad_points(points: object) -> None:
    with pytest.raises(SpecError, match=re.escape(f"{WHERE}: level points must be a number >= 0, got {points!r}")):
        LevelSpec.from_mark((), {"points": points}, WHERE)


@pytest.mark.parametrize("iterations", [0, -3, 1.5, "2", True])
def test_from_mark_rejects_bad_iterations(iterations: object) -> None:
    with pytest.raises(SpecError, match=re.escape(f"level iterations must be an integer >= 1, got {iterations!r}")):
        LevelSpec.from_mark((), {"iterations": iterations}, WHERE)


BAD_MARK_VALUES = [
    ("timeout_s", 0, "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", -5, "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", math.nan, "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", math.inf, "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", 10**400, "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", 1e10, "a number of seconds > 0 and <= 1e9"),  # httpx: OverflowError at request time
    ("timeout_s", "30", "a number of seconds > 0 and <= 1e9"),
    ("timeout_s", True, "a number of seconds > 0 and <= 1e9"),
    ("max_tokens", 0, "an integer >= 1"),
    ("max_tokens", -1, "an integer >= 1"),
    ("max_tokens", 64.0, "an integer >= 1"),
    ("max_tokens", "64", "an integer >= 1"),
    ("max_tokens", True, "an integer >= 1"),
    ("name", 3, "a string"),
    ("name", b"L1", "a string"),
    ("name", ["L1"], "a string"),
    ("points", math.inf, "a number >= 0"),
    ("points", -math.inf, "a number >= 0"),
    ("points", math.nan, "a number >= 0"),
    ("points", 10**400, "a number >= 0"),
]


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    BAD_MARK_VALUES,
    ids=[
        f"{argument}={value!r}" if len(repr(value)) < 15 else f"{argument}=10**400"
        for argument, value, _ in BAD_MARK_VALUES
    ],
)
def test_from_mark_rejects_values_that_would_fail_at_request_time(argument: str, value: object, expected: str) -> None:
    """Caught at collection, naming the test, the argument and the value (not later, from httpcore)."""
    with pytest.raises(SpecError) as info:
        LevelSpec.from_mark((), {argument: value}, WHERE)
    assert str(info.value).startswith(f"{WHERE}: level {argument} must be {expected}, got {value!r}")


def test_from_mark_keeps_whole_seconds_and_large_token_counts() -> None:
    spec = LevelSpec.from_mark((), {"timeout_s": 30, "max_tokens": 131072, "name": "L1"}, WHERE)
    assert (spec.timeout_s, spec.max_tokens, spec.name) == (30.0, 131072, "L1")
    assert isinstance(spec.timeout_s, float)


_ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.complex_numbers(),
    st.decimals(),
    st.fractions(),
)


@settings(max_examples=300, deadline=None)
@given(
    kwargs=st.dictionaries(st.sampled_from(LEVEL_MARK_KWARGS), _ANYTHING, max_size=len(LEVEL_MARK_KWARGS)),
    args=st.lists(_ANYTHING, max_size=2).map(tuple),
)
def test_any_mark_arguments_give_a_usable_spec_or_a_spec_error(kwargs: dict[str, object], args: tuple) -> None:
    try:
        spec = LevelSpec.from_mark(args, kwargs, WHERE)
    except SpecError as exc:
        assert str(exc).startswith(f"{WHERE}: ")
        return
    assert type(spec.points) is float and math.isfinite(spec.points) and spec.points >= 0
    assert spec.name is None or type(spec.name) is str
    assert spec.iterations is None or (type(spec.iterations) is int and spec.iterations >= 1)
    assert spec.max_tokens is None or (type(spec.max_tokens) is int and spec.max_tokens >= 1)
    assert spec.timeout_s is None or (type(spec.timeout_s) is float and 0 < spec.timeout_s <= 1e9)


# -- scores -----------------------------------------------------------------------------------------------


def test_an_iteration_scores_the_points_of_the_levels_it_passed() -> None:
    samples = [
        sample("L1", 1, points=70), sample("L2", 1, points=20), sample("L3", 1, points=10),
        sample("L1", 2, points=70), sample("L2", 2, points=20), sample("L3", 2, "failed", points=10),
        sample("L1", 3, points=70), sample("L2", 3, "error", points=20, error="boom"), sample("L3", 3, points=10),
    ]  # fmt: skip
    agg = aggregate("p", samples)
    assert agg.max_points == 100
    assert [(it.iteration, it.raw, it.percent, it.errors) for it in agg.iterations] == [
        (1, 100, 100.0, 0), (2, 90, 90.0, 0), (3, 80, 80.0, 1),
    ]  # fmt: skip
    assert agg.score is not None and agg.score_raw is not None
    assert (agg.score.n, agg.score.mean, agg.score.sd) == (3, 90.0, 10.0)
    assert agg.errors == 1
    assert agg.n_samples == 9


def test_percent_is_of_the_maximum_not_of_the_raw_points() -> None:
    agg = aggregate("p", [sample("a", 1, points=3), sample("b", 1, "failed", points=1)])
    assert (agg.iterations[0].raw, agg.iterations[0].percent) == (3, 75.0)
    assert agg.score_raw is not None and agg.score_raw.mean == 3


def test_skipped_samples_and_other_presets_are_left_out() -> None:
    samples = [
        sample("a", 1), sample("b", 1, "skipped", points=100),
        sample("a", 1, "failed", preset="other"),
    ]  # fmt: skip
    agg = aggregate("p", samples)
    assert agg.max_points == 1
    assert agg.n_samples == 1
    assert [lv.level for lv in agg.levels] == ["a"]
    assert agg.iterations[0].percent == 100.0


def test_nothing_judged_means_no_score() -> None:
    agg = aggregate("p", [sample("a", 1, "skipped")])
    assert agg.score is None and agg.tps is None and agg.ttft_ms is None
    assert agg.iterations == () and agg.levels == ()
    assert agg.ttft_first_ms is None and agg.memory_peak_mb is None and agg.memory_idle_mb is None


def test_zero_point_levels_do_not_divide_by_zero() -> None:
    agg = aggregate("p", [sample("a", 1, points=0)])
    assert agg.iterations[0].percent == 0.0


def test_each_level_gets_its_wilson_rate_and_outcomes_in_iteration_order() -> None:
    samples = [sample("L1", k, "failed" if k == 2 else "passed", name="first") for k in (3, 1, 2)]
    samples += [sample("L2", k, "failed") for k in (1, 2, 3)]
    agg = aggregate("p", samples, load_s=4.5)
    l1, l2 = agg.levels
    assert (l1.level, l1.name, l1.points) == ("L1", "first", 1.0)
    assert l1.outcomes == (True, False, True)
    assert l1.rate == wilson(2, 3)
    assert l2.rate == wilson(0, 3)
    assert agg.load_s == 4.5


# -- speed, TTFT, memory ----------------------------------------------------------------------------------


def test_tokens_per_second_is_sum_of_tokens_over_sum_of_decode_time() -> None:
    s = sample(
        "a", 1,
        requests=(req(predicted_n=100, predicted_ms=1000.0, tokens_per_s=1.0),
                  req(predicted_n=300, predicted_ms=1000.0, tokens_per_s=1.0)),
    )  # fmt: skip
    # 400 tokens in 2 s: 200 tok/s, not the mean of the per-request rates (100 and 300 → 200 here too) …
    assert iteration_tokens_per_s([s]) == 200.0
    s2 = sample("b", 1, requests=(req(predicted_n=10, predicted_ms=1000.0), req(predicted_n=90, predicted_ms=100.0)))
    # … and here the difference shows: 100 tokens / 1.1 s = 90.9, whereas the mean of 10 and 900 is 455.
    assert iteration_tokens_per_s([s2]) == pytest.approx(100 / 1.1)


def test_single_token_completions_do_not_count_towards_the_decode_rate() -> None:
    s = sample("a", 1, requests=(req(predicted_n=1, predicted_ms=0.001), req(predicted_n=50, predicted_ms=500.0)))
    assert iteration_tokens_per_s([s]) == 100.0


def test_client_side_rates_are_the_fallback_without_server_timings() -> None:
    s = sample("a", 1, requests=(req(tokens_per_s=10.0), req(tokens_per_s=30.0), req()))
    assert iteration_tokens_per_s([s]) == 20.0
    assert iteration_tokens_per_s([sample("b", 1)]) is None


def test_the_run_decode_rate_is_summarised_over_iterations() -> None:
    samples = [sample("a", k, requests=(req(predicted_n=10 * k, predicted_ms=1000.0),)) for k in (1, 2, 3)]
    agg = aggregate("p", samples)
    assert [it.tokens_per_s for it in agg.iterations] == [10.0, 20.0, 30.0]
    assert agg.tps is not None and (agg.tps.mean, agg.tps.min, agg.tps.max) == (20.0, 10.0, 30.0)


def test_ttft_first_is_the_first_streamed_request_of_the_first_iteration() -> None:
    samples = [
        sample("b", 2, requests=(req(ttft_s=0.010),)),
        sample("a", 1, requests=(req(ttft_s=None), req(ttft_s=0.500), req(ttft_s=0.020))),
        sample("c", 1, requests=(req(ttft_s=0.030),)),
    ]
    agg = aggregate("p", samples)
    assert agg.ttft_first_ms == 500.0
    assert agg.ttft_ms is not None
    assert agg.ttft_ms.n == 4
    assert agg.ttft_ms.median == pytest.approx(25.0)


def test_memory_peak_is_the_highest_reading_and_idle_the_median_after_iteration_one() -> None:
    samples = [
        sample("a", 1, memory_mb=900.0, memory_peak_mb=1500.0, memory_source="rss"),
        sample("a", 2, memory_mb=1000.0, memory_peak_mb=1200.0),
        sample("a", 3, memory_mb=1100.0),
        sample("a", 4, memory_mb=1300.0),
    ]
    agg = aggregate("p", samples)
    assert agg.memory_peak_mb == 1500.0
    assert agg.memory_idle_mb == 1100.0  # median of 1000, 1100, 1300; the cold 900 is left out
    assert agg.memory_source == "rss"


def test_idle_memory_falls_back_to_iteration_one_when_there_is_only_one() -> None:
    agg = aggregate("p", [sample("a", 1, memory_mb=700.0), sample("b", 1, memory_mb=800.0)])
    assert agg.memory_idle_mb == 750.0


def test_request_record_of_a_completion_keeps_the_server_timings() -> None:
    completion = Completion(
        content="4", reasoning="2+2 is", finish_reason="stop", wall_s=2.0, ttft_s=0.5, prompt_tokens=12,
        completion_tokens=31, endpoint="/v1/chat/completions",
        timings=Timings(prompt_n=12, prompt_ms=50.0, prompt_per_second=240.0, predicted_n=31, predicted_ms=1500.0,
                        predicted_per_second=20.0, cache_n=3, draft_n=8, draft_n_accepted=6),
    )  # fmt: skip
    r = RequestRecord.of(completion)
    assert r == RequestRecord(
        endpoint="/v1/chat/completions", wall_s=2.0, ttft_s=0.5, prompt_tokens=12, completion_tokens=31,
        prompt_ms=50.0, predicted_ms=1500.0, predicted_n=31, predicted_per_second=20.0,
        prompt_per_second=240.0, cache_n=3, draft_n=8, draft_n_accepted=6, tokens_per_s=20.0,
        content_chars=1, reasoning_chars=6,
    )  # fmt: skip
    bare = RequestRecord.of(Completion("x", "", None, wall_s=1.0, ttft_s=0.5, completion_tokens=11))
    assert bare.predicted_n is None and bare.tokens_per_s == 20.0  # 10 tokens after the first in 0.5 s


# -- round trip -------------------------------------------------------------------------------------------

_OPT_FLOAT = st.none() | st.floats(0, 1e6, allow_nan=False)
_OPT_INT = st.none() | st.integers(0, 10**6)
_REQUESTS = st.builds(
    RequestRecord,
    endpoint=st.sampled_from(["/v1/chat/completions", "/v1/completions"]),
    wall_s=st.floats(0, 1e4, allow_nan=False),
    ttft_s=_OPT_FLOAT, prompt_tokens=_OPT_INT, completion_tokens=_OPT_INT, prompt_ms=_OPT_FLOAT,
    predicted_ms=_OPT_FLOAT, predicted_n=_OPT_INT, predicted_per_second=_OPT_FLOAT, prompt_per_second=_OPT_FLOAT,
    cache_n=_OPT_INT, draft_n=_OPT_INT, draft_n_accepted=_OPT_INT, tokens_per_s=_OPT_FLOAT,
)  # fmt: skip
SAMPLES = st.builds(
    Sample,
    preset=st.text(min_size=1, max_size=10),
    level=st.text(min_size=1, max_size=30),
    name=st.text(max_size=10),
    iteration=st.integers(1, 100),
    points=st.floats(0, 100, allow_nan=False),
    outcome=st.sampled_from(["passed", "failed", "error", "skipped"]),
    duration_s=st.floats(0, 1e4, allow_nan=False),
    error=st.none() | st.text(max_size=40),
    requests=st.lists(_REQUESTS, max_size=3).map(tuple),
    memory_mb=_OPT_FLOAT,
    memory_peak_mb=_OPT_FLOAT,
    memory_source=st.sampled_from([None, "rss", "nvml"]),
    gates=st.lists(st.sampled_from(["pass_rate>=80", "score_mean>=95"]), max_size=2).map(tuple),
    measures=st.lists(
        st.builds(
            Measurement,
            name=st.sampled_from(["chars_per_s", "words"]),
            value=st.floats(-1e9, 1e9),
            unit=st.sampled_from(["", "chars/s"]),
            better=st.sampled_from(["higher", "lower"]),
        ),
        max_size=3,
    ).map(tuple),
    items=st.lists(
        st.builds(ItemOutcome, id=st.text(min_size=1, max_size=8), score=st.floats(0, 1), weight=st.floats(0.1, 10)),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(s=SAMPLES)
def test_sample_round_trips_through_a_dict(s: Sample) -> None:
    import dataclasses
    import json

    data = json.loads(json.dumps(s.to_dict()))  # as it travels through a result file
    assert Sample.from_dict(data) == s
    nested = {
        "requests": [dataclasses.asdict(r) for r in s.requests],
        "gates": list(s.gates),
        "measures": [dataclasses.asdict(m) for m in s.measures],
        "items": [dataclasses.asdict(i) for i in s.items],
    }
    assert s.to_dict() == dataclasses.asdict(s) | nested


_RUN_SAMPLES = st.lists(
    st.builds(
        sample,
        level=st.sampled_from(["L1", "L2", "L3", "L4"]),
        iteration=st.integers(1, 5),
        outcome=st.sampled_from(["passed", "failed", "error", "skipped"]),
        points=st.sampled_from([0.0, 1.0, 10.0, 25.0]),
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda s: (s.level, s.iteration),  # one sample per level per iteration, as a run makes them
)


@settings(max_examples=100, deadline=None)
@given(samples=_RUN_SAMPLES)
def test_iteration_scores_stay_within_0_and_100_percent(samples: list[Sample]) -> None:
    agg = aggregate("p", samples)
    for it in agg.iterations:
        assert 0.0 <= it.percent <= 100.0 + 1e-9
        assert it.raw <= agg.max_points
    assert agg.n_samples == sum(s.outcome != "skipped" for s in samples)
    assert agg.errors == sum(s.outcome == "error" for s in samples)
    for lv in agg.levels:
        judged = [s for s in samples if s.level == lv.level and s.outcome != "skipped"]
        assert (lv.rate.passed, lv.rate.n) == (sum(s.passed for s in judged), len(judged))


@settings(max_examples=100, deadline=None)
@given(samples=_RUN_SAMPLES)
def test_the_progress_lines_iteration_scores_are_the_aggregates(samples: list[Sample]) -> None:
    assert iteration_scores("p", samples) == list(aggregate("p", samples).iterations)


_TALLIED = st.lists(
    st.builds(
        sample,
        level=st.sampled_from(["L1", "L2", "L3"]),
        iteration=st.integers(1, 4),
        outcome=st.sampled_from(["passed", "failed", "error", "skipped"]),
        points=st.sampled_from([0.1, 0.2, 0.7, 1.0, 25.0]),  # sums that floating point rounds
        requests=st.lists(
            st.builds(req, predicted_n=st.integers(0, 600), predicted_ms=st.floats(0.0, 5000.0)), max_size=2
        ).map(tuple),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(samples=_TALLIED)
def test_the_tally_gives_the_progress_line_what_iteration_scores_gives_it(samples: list[Sample]) -> None:
    tally = IterationTally()
    for n, s in enumerate(samples, 1):
        tally.add(s)
        scores = iteration_scores("p", samples[:n])
        for k in range(1, 5):
            assert tally.score(k) == next((it for it in scores if it.iteration == k), None)
        mean = sum(it.percent for it in scores) / len(scores) if scores else None
        assert tally.mean_percent() == mean  # the very same float, not merely close
