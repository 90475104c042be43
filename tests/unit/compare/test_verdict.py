"""Tests of pytest_quantgate.compare.verdict: the verdict, its message, and the limits it reports."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from result_builders import TINY_POINTS, base, cand, make_result, tiny_levels, with_samples

from pytest_quantgate.compare import CompareOptions, compare
from pytest_quantgate.inference import SequentialDecision, SequentialTest
from pytest_quantgate.levels import aggregate
from pytest_quantgate.render.comparison import render

TINY = list(TINY_POINTS)


# -- verdicts -------------------------------------------------------------------------------------------


def test_equal_presets_with_enough_iterations_swap() -> None:
    result = compare(base(100), cand(100))
    assert result.verdict == "swap"
    assert result.passed
    assert result.more_iterations is None
    assert result.quality.lower_bound > -2.0
    assert result.message.startswith("verdict swap: score Δ +0.0 pts, lower bound −")
    assert result.message.endswith("preset tiny-q4_0 vs tiny-f16")


def test_candidate_clearly_worse_on_one_level_is_kept_and_the_level_named() -> None:
    result = compare(base(), cand(misses={"test_add3": 10}))
    assert result.verdict == "keep"
    assert not result.passed
    assert result.more_iterations is None
    assert result.quality.upper_bound < -2.0
    assert "levels test_add3 −67 pts" in result.message
    assert "test_copy" not in result.message
    add3 = next(lv for lv in result.quality.levels if lv.level.endswith("test_add3"))
    assert add3.upper < 0


def test_small_n_is_inconclusive_and_says_how_many_more_iterations() -> None:
    result = compare(base(5), cand(5))
    assert result.verdict == "inconclusive"
    assert result.more_iterations is not None and result.more_iterations > 0
    assert f"about {result.more_iterations} more iterations needed" in result.message
    assert "vs margin −2.0 at n=5" in result.message
    assert result.planning is not None and result.planning.per_preset == 5 + result.more_iterations


def test_more_iterations_shrink_as_iterations_grow() -> None:
    few = compare(base(5), cand(5)).more_iterations
    more = compare(base(30), cand(30)).more_iterations
    assert few is not None and more is not None and more < few


def test_a_wide_margin_settles_what_a_narrow_one_cannot() -> None:
    assert compare(base(), cand(), CompareOptions(margin=10)).verdict == "swap"
    assert compare(base(), cand(), CompareOptions(margin=2)).verdict == "inconclusive"


def test_worse_but_not_beyond_the_margin_with_upper_bound_below_zero_is_kept() -> None:
    # Every level loses a little and consistently: shown worse (upper < 0) though not beyond a wide margin.
    b = make_result("a", tiny_levels(60))
    c = make_result("b", tiny_levels(60, {name: 12 for name in ("test_copy", "test_reverse", "test_add2")}))
    result = compare(b, c, CompareOptions(margin=16))
    assert result.quality.upper_bound < 0
    assert not result.quality.non_inferior
    assert result.verdict == "keep"
    assert "upper bound" in result.message and "< 0 (shown worse)" in result.message


def test_require_faster() -> None:
    wide = {"margin": 10.0, "require_faster": True}
    faster = compare(base(), cand(tps=130.0), CompareOptions(**wide))
    assert faster.verdict == "swap"
    assert faster.tps is not None and faster.tps.verdict == "faster"
    slower = compare(base(), cand(tps=70.0), CompareOptions(**wide))
    assert slower.verdict == "keep"
    assert "tok/s −30.0% slower (--require-faster)" in slower.message
    same = compare(base(), cand(), CompareOptions(**wide))
    assert same.verdict == "inconclusive"
    assert same.more_iterations is None
    assert "quality non-inferior" in same.message and "no change (noise)" in same.message
    # Without the option, speed informs but does not decide.
    assert compare(base(), cand(tps=70.0), CompareOptions(margin=10)).verdict == "swap"


def test_speed_below_the_floor_is_no_change() -> None:
    result = compare(base(), cand(tps=103.0), CompareOptions(margin=10, speed_floor=0.05))
    assert result.tps is not None and result.tps.verdict == "no change (below floor)"
    assert compare(base(), cand(tps=103.0), CompareOptions(margin=10, speed_floor=0.01)).tps.verdict == "faster"


def test_ttft_and_memory_lower_is_better() -> None:
    result = compare(base(), cand(ttft_s=0.02, memory_mb=600.0), CompareOptions(margin=10))
    assert result.ttft is not None and result.ttft.verdict == "faster"
    assert result.memory is not None and result.memory.verdict == "smaller"


def test_memory_ceiling_exceeded_is_kept_whatever_the_quality() -> None:
    result = compare(base(), cand(memory_mb=1000.0, memory_ceiling_mb=900.0), CompareOptions(margin=10))
    assert result.verdict == "keep"
    assert result.ceiling is not None and result.ceiling.within is False
    assert "memory 1,015 MB (nvml-process) > ceiling 900 MB" in result.message


def test_the_ceiling_reads_llama_cpp_s_report_when_there_is_one() -> None:
    # The measured peak (1,015 MB, device-wide) is over the ceiling; what llama.cpp says it allocated is not:
    # the ceiling reads the report, the same on every machine, and the table shows both with their sources.
    reported = cand(memory_mb=1000.0, memory_ceiling_mb=900.0, memory_source="nvml-device")
    reported.server.llama_memory_mb, reported.server.llama_memory_scope = 850.0, "CUDA0"
    result = compare(base(), reported, CompareOptions(margin=10))
    assert result.ceiling is not None and result.ceiling.within is True
    assert (result.ceiling.peak_mb, result.ceiling.source) == (850.0, "llama.cpp (CUDA0)")
    text = render(result)
    assert "850 llama.cpp (CUDA0)" in text and "1,015 nvml-device" in text
    assert "memory per iteration MB (nvml-device)" in text  # the measured series says what it measured
    over = cand(memory_mb=1000.0, memory_ceiling_mb=800.0)
    over.server.llama_memory_mb, over.server.llama_memory_scope = 850.0, "CUDA0"
    assert "memory 850 MB (llama.cpp (CUDA0)) > ceiling 800 MB" in compare(base(), over).message


def test_memory_ceiling_kept_is_a_swap() -> None:
    result = compare(base(), cand(memory_mb=1000.0, memory_ceiling_mb=2000.0), CompareOptions(margin=10))
    assert result.verdict == "swap"
    assert result.ceiling is not None and result.ceiling.within is True


def test_memory_ceiling_without_a_reading_blocks_the_swap() -> None:
    result = compare(base(), cand(memory_mb=None, memory_ceiling_mb=2000.0), CompareOptions(margin=10))
    assert result.verdict == "inconclusive"
    assert result.ceiling is not None and result.ceiling.within is None
    assert any("cannot be checked" in p for p in result.problems)


def test_same_preset_in_two_runs_is_labelled_by_run() -> None:
    result = compare(base(run_id="r1"), base(run_id="r2"))
    assert result.baseline_label == "tiny-f16@r1"
    assert result.candidate_label == "tiny-f16@r2"
    assert "preset tiny-f16@r2 vs tiny-f16@r1" in result.message


# -- problems -------------------------------------------------------------------------------------------


def test_baseline_with_a_single_iteration() -> None:
    result = compare(base(1), cand())
    assert any(p.startswith("baseline has a single iteration") for p in result.problems)
    assert result.unpaired is None
    assert result.verdict == "inconclusive"
    assert "n=1–15" in result.message


def test_errored_level_runs_are_a_problem() -> None:
    b = base()
    samples = list(b.samples)
    samples[0] = type(samples[0])(**{**samples[0].to_dict(), "outcome": "error", "requests": ()})
    result = compare(with_samples(b, samples), cand())
    assert any(p.startswith("baseline had 1 errored level run(s)") for p in result.problems)


def test_comparing_a_run_with_itself_is_a_problem() -> None:
    result = compare(base(), base())
    assert any("same run" in p for p in result.problems)
    assert result.verdict != "keep"


# -- properties -----------------------------------------------------------------------------------------


counts = st.lists(st.integers(min_value=0, max_value=8), min_size=5, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts, counts, st.sampled_from([0.0, 2.0, 10.0]))
def test_compare_both_ways_is_consistent(misses_a, misses_b, margin) -> None:
    """Swapping the roles mirrors the quality analysis exactly, and two presets can never each be shown
    to be the worse one: "keep" both ways would mean each is worse than the other."""
    a = make_result("a", tiny_levels(8, dict(zip(TINY, misses_a, strict=True))))
    b = make_result("b", tiny_levels(8, dict(zip(TINY, misses_b, strict=True))))
    options = CompareOptions(margin=margin)
    ab, ba = compare(a, b, options), compare(b, a, options)
    assert ab.quality.difference == pytest.approx(-ba.quality.difference, abs=1e-9)
    assert ab.quality.lower_bound == pytest.approx(-ba.quality.upper_bound, abs=1e-9)
    assert not (ab.verdict == "keep" and ba.verdict == "keep")
    if ab.verdict == "swap" and ba.verdict == "keep":
        assert ab.quality.difference > 0  # only a clearly better candidate wins one way and loses the other
    # A wider margin never turns a swap into something else.
    if ab.verdict == "swap":
        assert compare(a, b, CompareOptions(margin=margin + 5)).verdict == "swap"


# -- with the sequential test ---------------------------------------------------------------------------


def decision(kind: str, iterations: int = 9, reason: str = "because") -> SequentialDecision:
    return SequentialDecision(kind, iterations, -1.0, 1.0, 2.2, 1.9, False, reason)  # type: ignore[arg-type]


def test_sequential_decision_rules_the_swap() -> None:
    b, c, options = base(), cand(), CompareOptions(margin=10)
    assert compare(b, c, options).verdict == "swap"  # the fixed analysis alone would swap
    held = compare(b, c, options, sequential=decision("continue", reason="lower bound −8.1 pp <= −10 pp"))
    assert held.verdict == "inconclusive"  # a fixed bound after repeated looks would inflate false swaps
    assert "sequential test: lower bound −8.1 pp" in held.message
    kept = compare(b, c, options, sequential=decision("keep", reason="futility"))
    assert kept.verdict == "keep" and "sequential test after 9 iterations: futility" in kept.message


def test_a_real_sequential_decision_swaps_an_equal_candidate_at_a_wide_margin() -> None:
    b, c = base(), cand()
    agg_b, agg_c = (aggregate(r.preset.id, r.samples) for r in (b, c))
    test = SequentialTest.create(18.0)
    made = test.decide(
        {lv.level: lv.outcomes for lv in agg_b.levels},
        {lv.level: lv.outcomes for lv in agg_c.levels},
        {lv.level: lv.points for lv in agg_b.levels},
    )
    assert made.decision == "swap"
    result = compare(b, c, CompareOptions(margin=18), sequential=made)
    assert result.verdict == "swap" and result.sequential is made
    assert "sequential test: swap after 15 iterations" in render(result)
