"""Tests of pytest_quantgate.gates: parsing gate expressions and judging a run's aggregates."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import SpecError
from pytest_quantgate.gates import METRICS, GateSpec, dedupe, evaluate, parse_gate
from pytest_quantgate.levels import RequestRecord, Sample, aggregate

PRESET = "gemma4-26b-a4b-qat-q4"
ADD3 = "suite/test_math.py::test_add3"
FIZZ = "suite/test_code.py::test_fizzbuzz"
DATE = "suite/test_text.py::test_date"


def sample(level: str, iteration: int, outcome: str = "passed", points: float = 1.0, **kw) -> Sample:
    return Sample(
        preset=PRESET,
        level=level,
        name=level.rpartition("::")[2],
        iteration=iteration,
        points=points,
        outcome=outcome,  # type: ignore[arg-type]
        duration_s=0.1,
        **kw,
    )


def three_iterations(**kw):
    """Iteration scores 100, 90, 80 % (mean 90, σ 10); test_fizzbuzz passes 2 of 3."""
    samples = [
        sample(ADD3, 1, points=70), sample(FIZZ, 1, points=20), sample(DATE, 1, points=10),
        sample(ADD3, 2, points=70), sample(FIZZ, 2, points=20), sample(DATE, 2, "failed", points=10),
        sample(ADD3, 3, points=70), sample(FIZZ, 3, "failed", points=20), sample(DATE, 3, points=10),
    ]  # fmt: skip
    return aggregate(PRESET, samples, **kw)


def judge(expr: str, agg, **kw):
    (outcome,) = evaluate([parse_gate(expr)], agg, **kw)
    return outcome


# -- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound", "level"),
    [
        ("score_mean>=95", "score_mean", ">=", 95.0, None),
        ("  score_mean   >=   95  ", "score_mean", ">=", 95.0, None),
        ("score_mean >= 95%", "score_mean", ">=", 95.0, None),
        ("score_mean >= 95.5 %", "score_mean", ">=", 95.5, None),
        ("tps_mean > 12.5", "tps_mean", ">", 12.5, None),
        ("ttft_p95_ms <= 250", "ttft_p95_ms", "<=", 250.0, None),
        ("score_sigma < 5", "score_sigma", "<", 5.0, None),
        ("errors == 0", "errors", "==", 0.0, None),
        ("memory_peak_mb <= 2.5e4", "memory_peak_mb", "<=", 25000.0, None),
        ("score_min >= -.5", "score_min", ">=", -0.5, None),
        ("pass_rate[test_x] >= 80", "pass_rate", ">=", 80.0, "test_x"),
        ("pass_rate[ test_x[a-1] ]>=80%", "pass_rate", ">=", 80.0, "test_x[a-1]"),  # a parametrized level
        ("pass_rate_low[suite/t.py::test_y] > 50", "pass_rate_low", ">", 50.0, "suite/t.py::test_y"),
        ("pass_rate >= 80", "pass_rate", ">=", 80.0, None),
    ],
)
def test_parse_gate(text: str, metric: str, op: str, bound: float, level: str | None) -> None:
    spec = parse_gate(text, "ini")
    assert (spec.metric, spec.op, spec.bound, spec.level, spec.source) == (metric, op, bound, level, "ini")


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as info:
        parse_gate("score_avg >= 95", where="pytest.ini")
    message = str(info.value)
    assert message.startswith("pytest.ini: gate 'score_avg >= 95' names unknown metric 'score_avg'")
    assert f"known metrics: {', '.join(METRICS)}" in message


def test_a_suite_metric_takes_no_level() -> None:
    with pytest.raises(SpecError, match=r"score_mean is a suite metric and takes no \[level\]"):
        parse_gate("score_mean[test_x] >= 95")


GARBAGE = ["", "score_mean", "score_mean >= ", "score_mean => 95", "score_mean ≥ 95", "95 <= score_mean",
           "score_mean >= 9 5", "score_mean >= abc", "Score_Mean >= 95"]  # fmt: skip


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_is_an_error_showing_the_expected_form(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_gate(text, where="--quantgate-gate")
    message = str(info.value)
    assert message.startswith(f"--quantgate-gate: cannot read gate {text!r}")
    assert "METRIC OP NUMBER, e.g. 'score_mean >= 95' (OP one of >=, <=, >, <, ==)" in message


@pytest.mark.parametrize("text", ["score_mean >= 1e999", "tps_mean < -1E400", "pass_rate[test_x] <= 2e308%"])
def test_a_bound_beyond_floats_range_is_an_error_not_infinity(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_gate(text, where="--quantgate-gate")
    assert str(info.value).startswith(f"--quantgate-gate: gate {text!r}: the bound ")
    assert "is not a finite number" in str(info.value)


@pytest.mark.parametrize("text", ["score_mean >= nan", "score_mean >= NaN", "score_mean >= inf", "score_mean <= -inf"])
def test_nan_and_infinity_are_not_bounds(text: str) -> None:
    with pytest.raises(SpecError, match="cannot read gate"):
        parse_gate(text)


_GATE_PIECES = st.sampled_from(
    ["score_mean", "pass_rate", "tps_mean", "[", "]", "test_x", " ", ">=", "<=", "==", ">", "<", "=", "%", "-",
     "+", ".", "e", "E", "1", "95", "1e999", "nan", "inf", "0x10", "١٢", "\n", "\x00", "≥"]
)  # fmt: skip


_NUMBER = st.one_of(
    st.floats().map(repr), st.from_regex(r"[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]{1,4})?", fullmatch=True)
)
_WELL_FORMED = st.builds("{} {} {}".format, st.sampled_from(["score_mean", "pass_rate[test_x]", "tps_sigma"]),
                         st.sampled_from([">=", "<", "=="]), _NUMBER)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.lists(_GATE_PIECES, max_size=8).map("".join), _WELL_FORMED))
def test_any_text_gives_a_gate_or_a_spec_error(text: str) -> None:
    try:
        spec = parse_gate(text, where="--quantgate-gate")
    except SpecError as exc:
        assert str(exc).startswith("--quantgate-gate: ")
        return
    assert spec.metric in METRICS and math.isfinite(spec.bound)
    assert parse_gate(spec.expr) == spec  # what a mark gate travels as reads back the same


@pytest.mark.parametrize(
    "bound", ["95", "12.34567", "1234567", "0.001", "131072.5", "-3", "1000000000000001", "0.1234567890123456"]
)
def test_the_normalised_expression_keeps_the_bound_exactly(bound: str) -> None:
    # Mark gates travel on samples as their .expr and are parsed again: the bound must survive.
    spec = parse_gate(f"tps_mean >= {bound}")
    assert parse_gate(spec.expr) == spec
    assert spec.expr == f"tps_mean>={bound}"
    assert parse_gate(f"pass_rate[{ADD3}] < {bound}").expr == f"pass_rate[{ADD3}]<{bound}"


def test_dedupe_keeps_the_first_of_equal_gates() -> None:
    a = parse_gate("score_mean >= 95", "ini")
    b = parse_gate("score_mean>=95.0%", "option")
    c = parse_gate("score_mean >= 96", "option")
    assert dedupe([a, b, c]) == [a, c]


# -- judging suite metrics --------------------------------------------------------------------------------


def test_a_failing_gate_says_what_was_seen_against_what_in_the_house_style() -> None:
    out = judge("score_mean >= 95", three_iterations())
    assert not out.passed
    assert out.observed == 90.0
    assert out.message == f"score mean 90.0 < 95.0 (n=3, σ=10.0, 95% CI [65.2, 100.0], preset {PRESET})"
    assert (out.preset, out.level, out.id) == (PRESET, None, "score_mean>=95")


def test_a_passing_gate_keeps_its_operator() -> None:
    out = judge("score_mean >= 85", three_iterations())
    assert out.passed
    assert out.message == f"score mean 90.0 >= 85.0 (n=3, σ=10.0, 95% CI [65.2, 100.0], preset {PRESET})"


@pytest.mark.parametrize(
    ("expr", "passed", "shown"),
    [
        ("score_sigma <= 10", True, "score σ 10.0 <= 10.0"),
        ("score_sigma < 10", False, "score σ 10.0 >= 10.0"),
        ("score_min > 80", False, "score min 80.0 <= 80.0"),
        ("score_max == 100", True, "score max 100.0 == 100.0"),
        ("score_max == 99", False, "score max 100.0 != 99.0"),
        ("score_ci_low >= 60", True, "score CI low 65.2 >= 60.0"),
        ("score_ci_high < 100", False, "score CI high 100.0 >= 100.0"),  # clipped: a score never exceeds 100
    ],
)
def test_every_operator_and_its_negation(expr: str, passed: bool, shown: str) -> None:
    out = judge(expr, three_iterations())
    assert out.passed is passed
    assert out.message.startswith(shown + " (n=3, σ=10.0, 95% CI [65.2, 100.0]")


def test_errors_gate() -> None:
    agg = aggregate(PRESET, [sample(ADD3, 1), sample(FIZZ, 1, "error", error="ClientError: HTTP 500")])
    out = judge("errors == 0", agg)
    assert not out.passed
    assert out.message == f"errors 1.0 != 0.0 (2 level runs, preset {PRESET})"


def test_speed_and_latency_gates() -> None:
    samples = [
        sample(ADD3, k, requests=(RequestRecord("/v1/chat/completions", 1.0, ttft_s=t, predicted_n=n,
                                                predicted_ms=1000.0),))
        for k, t, n in ((1, 0.400, 20), (2, 0.100, 30), (3, 0.100, 40))
    ]  # fmt: skip
    agg = aggregate(PRESET, samples, load_s=3.25)
    out = judge("tps_mean >= 25", agg)
    assert out.passed and out.message == f"tok/s mean 30.0 >= 25.0 (n=3, σ=10.0, 95% CI [5.2, 54.8], preset {PRESET})"
    assert judge("tps_min >= 25", agg).message.startswith("tok/s min 20.0 < 25.0")
    assert judge("ttft_first_ms <= 300", agg).message == f"TTFT first 400.0 > 300.0 (preset {PRESET})"
    assert judge("ttft_median_ms <= 150", agg).message.startswith("TTFT median 100.0 <= 150.0 (n=3,")
    assert judge("load_s < 5", agg).message == f"load time 3.2 < 5.0 (preset {PRESET})"


def test_the_memory_ceiling_gate() -> None:
    over = aggregate(PRESET, [sample(ADD3, 1, memory_mb=120.0, memory_peak_mb=150.0, memory_source="rss")])
    ceiling = GateSpec("memory_peak_mb", "<=", 128.0, source="ceiling")
    (out,) = evaluate([ceiling], over)
    assert not out.passed
    assert out.observed == 150.0
    assert out.message == f"memory peak 150.0 > 128.0 (source rss, preset {PRESET})"
    under = aggregate(PRESET, [sample(ADD3, 1, memory_mb=100.0, memory_source="nvml")])
    (ok,) = evaluate([ceiling], under)
    assert ok.passed and ok.message == f"memory peak 100.0 <= 128.0 (source nvml, preset {PRESET})"


def test_the_memory_gate_reads_llama_cpp_s_report_with_the_measured_peak_beside_it() -> None:
    samples = [sample(ADD3, 1, memory_mb=120.0, memory_peak_mb=150.0, memory_source="rss")]
    reported = aggregate(PRESET, samples, memory_reported=(0.83, "CPU"))
    (out,) = evaluate([GateSpec("memory_mb", "<=", 128.0, source="ceiling")], reported)
    assert out.passed and out.observed == 0.83
    assert out.message == f"memory 0.83 <= 128.0 (source llama.cpp (CPU); measured peak 150 MB (rss), preset {PRESET})"
    # no report (verbosity too low, another server): the measured peak, labelled, and why
    (fallback,) = evaluate([GateSpec("memory_mb", "<=", 128.0, source="ceiling")], aggregate(PRESET, samples))
    assert not fallback.passed and fallback.observed == 150.0
    assert "source rss, no llama.cpp buffer report" in fallback.message


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("memory_mb <= 100", "no llama.cpp buffer report and no memory reading (attached server?)"),
        ("score_mean >= 95", "no level ran: nothing to score"),
        ("score_ci_low >= 95", "no level ran: nothing to score"),
        ("tps_mean >= 10", "no decode rate was measured"),
        ("ttft_median_ms <= 100", "no TTFT (requests must stream) was measured"),
        ("ttft_first_ms <= 100", "no streamed request"),
        ("load_s <= 10", "the server was not started by this run"),
        ("memory_peak_mb <= 100", "no memory reading (attached server?)"),
        ("memory_idle_mb <= 100", "no idle reading"),
    ],
)
def test_a_gate_without_data_fails_and_says_why(expr: str, why: str) -> None:
    agg = aggregate(PRESET, [sample(ADD3, 1, "skipped")])
    out = judge(expr, agg)
    assert not out.passed
    assert out.observed is None
    spec = parse_gate(expr)
    assert out.message == f"{METRICS[spec.metric].label}: cannot evaluate {spec.expr}: {why} (preset {PRESET})"


def test_a_confidence_interval_gate_needs_two_iterations() -> None:
    agg = aggregate(PRESET, [sample(ADD3, 1)])
    out = judge("score_ci_low >= 90", agg)
    assert not out.passed
    assert "needs at least 2 iterations (run with --iterations 2 or more)" in out.message
    single = judge("score_mean >= 90", agg)
    assert single.passed
    assert single.message == f"score mean 100.0 >= 90.0 (n=1, σ=0.0, CI undefined at n=1, preset {PRESET})"


def test_identical_iterations_give_no_zero_width_interval() -> None:
    agg = aggregate(PRESET, [sample(ADD3, 1), sample(ADD3, 2)])  # greedy: the same answers twice
    out = judge("score_ci_low >= 90", agg)
    assert not out.passed and out.observed is None
    assert "all 2 iterations gave the same value: no spread to build an interval from" in out.message
    assert "[100.0, 100.0]" not in judge("score_mean >= 90", agg).message


# -- judging levels ---------------------------------------------------------------------------------------


def test_a_gate_on_one_level_by_name_or_key() -> None:
    agg = three_iterations()
    by_name = judge("pass_rate[test_fizzbuzz] >= 80", agg)
    assert not by_name.passed
    assert by_name.observed == pytest.approx(200 / 3)
    assert by_name.message == (
        f"pass rate of test_fizzbuzz 66.7 < 80.0 (2/3 passed, 95% Wilson CI [20.8, 93.9], preset {PRESET})"
    )
    assert by_name.level == "test_fizzbuzz"
    assert by_name.id == "pass_rate[test_fizzbuzz]>=80"
    assert judge(f"pass_rate[{FIZZ}] >= 80", agg).message == by_name.message


def test_a_gate_on_a_parametrized_level() -> None:
    key = "suite/test_math.py::test_add[3-4]"
    agg = aggregate(PRESET, [sample(key, 1), sample(key, 2, "failed"), sample(ADD3, 1), sample(ADD3, 2)])
    out = judge("pass_rate[test_add[3-4]] >= 50", agg)
    assert out.passed and out.level == "test_add[3-4]"
    assert out.message.startswith("pass rate of test_add[3-4] 50.0 >= 50.0 (1/2 passed")
    assert out.id == "pass_rate[test_add[3-4]]>=50"


def test_a_level_gate_without_a_level_judges_every_level() -> None:
    outs = evaluate([parse_gate("pass_rate_low >= 20")], three_iterations())
    assert [(o.level, o.passed) for o in outs] == [("test_add3", True), ("test_fizzbuzz", True), ("test_date", True)]
    assert outs[0].message == f"pass rate CI low of test_add3 43.9 >= 20.0 (3/3 passed, 95% Wilson CI [43.9, 100.0], preset {PRESET})"  # noqa: E501
    assert outs[0].id == "pass_rate_low[test_add3]>=20"


def test_a_gate_on_a_level_that_did_not_run_fails() -> None:
    out = judge("pass_rate[test_nope] >= 80", three_iterations())
    assert not out.passed
    assert out.message == f"pass rate: cannot evaluate pass_rate[test_nope]>=80: no level named 'test_nope' ran (preset {PRESET})"  # noqa: E501


def test_level_gates_from_a_mark_apply_to_their_level_only() -> None:
    mark_gate = parse_gate("pass_rate >= 90", "mark", FIZZ)
    outs = evaluate([parse_gate("score_mean >= 80")], three_iterations(), level_gates={FIZZ: (mark_gate,)})
    assert [(o.spec.metric, o.level, o.passed) for o in outs] == [
        ("score_mean", None, True),
        ("pass_rate", "test_fizzbuzz", False),
    ]
    assert outs[1].spec.source == "mark"


# -- properties -------------------------------------------------------------------------------------------

_LEVELS = [ADD3, FIZZ, DATE]
_SAMPLES = st.lists(
    st.builds(
        sample,
        level=st.sampled_from(_LEVELS),
        iteration=st.integers(1, 6),
        outcome=st.sampled_from(["passed", "failed", "error", "skipped"]),
        points=st.sampled_from([0.0, 1.0, 5.0, 25.0]),
        requests=st.lists(
            st.builds(
                RequestRecord,
                endpoint=st.just("/v1/chat/completions"),
                wall_s=st.floats(0.01, 10),
                ttft_s=st.none() | st.floats(0.001, 5),
                predicted_n=st.none() | st.integers(0, 500),
                predicted_ms=st.none() | st.floats(0.1, 1e4),
                tokens_per_s=st.none() | st.floats(0.1, 1e3),
            ),
            max_size=2,
        ).map(tuple),
        memory_mb=st.none() | st.floats(1, 1e5),
        memory_peak_mb=st.none() | st.floats(1, 1e5),
    ),
    max_size=15,
    unique_by=lambda s: (s.level, s.iteration),
)
_OPPOSITES = [(">=", "<"), (">", "<="), ("<", ">="), ("<=", ">")]


@settings(max_examples=150, deadline=None)
@given(
    samples=_SAMPLES,
    load_s=st.none() | st.floats(0, 600),
    metric=st.sampled_from(list(METRICS)),
    ops=st.sampled_from(_OPPOSITES),
    bound=st.floats(-1e3, 1e5, allow_nan=False) | st.sampled_from([0.0, 50.0, 100.0]),
)
def test_a_gate_and_its_opposite_never_both_pass(samples, load_s, metric, ops, bound) -> None:
    agg = aggregate(PRESET, samples, load_s=load_s)
    level = f"[{_LEVELS[0]}]" if METRICS[metric].per_level else ""
    a, b = (evaluate([parse_gate(f"{metric}{level} {op} {bound!r}")], agg) for op in ops)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert not (x.passed and y.passed), (x.message, y.message)
        if x.observed is not None and not math.isnan(x.observed):
            assert x.passed != y.passed  # with data, exactly one of them holds
        else:
            assert not x.passed and not y.passed
        assert re.search(rf"preset {re.escape(PRESET)}\)$", x.message)


# -- recorded measurements ---------------------------------------------------------------------------------


def _measured(values_by_iteration):
    from pytest_quantgate.measures import Measurement

    samples = [
        sample(ADD3, k, measures=tuple(Measurement("chars_per_s", v, "chars/s") for v in values))
        for k, values in values_by_iteration.items()
    ]
    return aggregate(PRESET, samples)


def test_a_recorded_measurement_is_gated_like_a_builtin() -> None:
    agg = _measured({1: [100.0, 120.0], 2: [90.0], 3: [80.0]})  # per iteration 110, 90, 80
    ok = judge("chars_per_s_mean >= 90", agg)
    assert ok.passed and ok.observed == pytest.approx(280 / 3)
    bad = judge("chars_per_s_min > 85", agg)
    assert not bad.passed
    assert bad.message.startswith("chars_per_s min 80.0 <= 85.0 (n=3, σ=15.3, 95% CI [")
    assert bad.message.endswith(f"preset {PRESET})")
    assert judge("chars_per_s_p95 <= 200", agg).passed


def test_a_gate_on_a_measurement_nobody_recorded_fails_and_names_what_was_recorded() -> None:
    agg = _measured({1: [1.0], 2: [2.0]})
    out = judge("words_mean >= 1", agg)
    assert not out.passed and out.observed is None
    assert "no level recorded a measurement named 'words'; recorded: chars_per_s" in out.message


def test_a_measurement_interval_needs_two_iterations() -> None:
    out = judge("chars_per_s_ci_low >= 0", _measured({1: [5.0]}))
    assert not out.passed and "at least 2 iterations" in out.message


def test_a_measurement_name_is_not_a_level_metric() -> None:
    with pytest.raises(SpecError, match="suite metric and takes no"):
        parse_gate("chars_per_s_mean[test_x] >= 1")


def test_a_small_figure_keeps_its_digits_in_the_message() -> None:
    """A KL divergence of 0.1003 against 0.05 read "0.1 > 0.1" with one decimal."""
    from pytest_quantgate.gates import _fmt

    assert [_fmt(v) for v in (0.1003, 0.05, 0.0, 95.0, 1.5, 2e6)] == ["0.1", "0.05", "0.0", "95.0", "1.5", "2e+06"]
