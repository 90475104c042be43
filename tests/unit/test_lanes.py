"""Lane figures from fabricated answers: lengths, exact prompts, percentiles, acceptance, /metrics."""

from __future__ import annotations

import threading

import pytest

from pytest_quantgate import lanes
from pytest_quantgate.completion import Completion, Timings
from pytest_quantgate.lanes import LaneUnavailable, Lengths


def answer(**timings: float) -> Completion:
    return Completion("x", "", "length", wall_s=0.5, ttft_s=0.1, timings=Timings(**timings) if timings else None)  # type: ignore[arg-type]


def test_lengths_that_fit_are_kept() -> None:
    fitted = lanes.fit(Lengths(1150, 2000), 4096, preset="p")
    assert fitted.used == Lengths(1150, 2000) and fitted.note is None


def test_lengths_are_scaled_down_in_proportion_and_said_so() -> None:
    fitted = lanes.fit(Lengths(1150, 2000), 256, preset="tiny-f16")
    assert fitted.used.prompt + fitted.used.output <= 256
    assert fitted.used == Lengths(93, 162)
    assert fitted.note is not None and "preset tiny-f16" in fitted.note and "256" in fitted.note


def test_unknown_context_keeps_the_lengths() -> None:
    assert lanes.fit(Lengths(10, 20), None, preset="p").used == Lengths(10, 20)


def test_a_context_too_small_for_any_request_is_unavailable() -> None:
    with pytest.raises(LaneUnavailable, match="preset p"):
        lanes.fit(Lengths(10, 20), 1, preset="p")


def test_exact_prompt_repeats_and_cuts() -> None:
    assert lanes.exact_prompt([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1]
    assert len(lanes.exact_prompt([5], 1150)) == 1150


def test_rates_come_from_the_server_timings() -> None:
    done = answer(prompt_n=100, prompt_ms=50.0, predicted_n=200, predicted_ms=400.0)
    assert lanes.prefill_tps(done, preset="p") == pytest.approx(2000.0)
    assert lanes.decode_tps(done, preset="p") == pytest.approx(500.0)


def test_no_timings_is_unavailable_naming_preset_and_figure() -> None:
    with pytest.raises(LaneUnavailable, match="preset q: prefill_tps cannot be measured"):
        lanes.prefill_tps(answer(), preset="q")
    with pytest.raises(LaneUnavailable, match="preset q: decode_tps cannot be measured"):
        lanes.decode_tps(answer(), preset="q")


def test_acceptance_sums_over_requests_and_skips_undrafted_ones() -> None:
    answers = [answer(draft_n=40, draft_n_accepted=30), answer(predicted_n=5), answer(draft_n=10, draft_n_accepted=0)]
    got = lanes.acceptance(answers)
    assert (got.drafted, got.accepted) == (50, 30)
    assert got.rate == pytest.approx(0.6)
    assert lanes.acceptance([answer(predicted_n=5)]).rate is None


def test_metrics_counters_are_read_tolerantly() -> None:
    text = (
        "# HELP llamacpp:spec_decode_num_draft_tokens_total x\n"
        "llamacpp:spec_decode_num_draft_tokens_total 40\n"
        "llamacpp:spec_decode_num_accepted_tokens_total 4\n"
        'llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 4\n'
    )
    got = lanes.metrics_acceptance(text)
    assert got is not None and (got.drafted, got.accepted) == (40, 4)
    assert lanes.metrics_acceptance("llamacpp:prompt_tokens_total 7\n") is None


def test_percentiles_are_named_as_vllm_bench_serve_names_them() -> None:
    got = lanes.percentiles([float(v) for v in range(1, 101)], "itl_ms")
    assert set(got) == {"p50_itl_ms", "p95_itl_ms", "p99_itl_ms"}
    assert got["p50_itl_ms"] == pytest.approx(50.5)
    assert lanes.percentiles([], "itl_ms") == {}


def test_speculation_and_context_from_props_and_slots() -> None:
    settings = {"n_ctx": 512, "params": {"speculative.types": "draft-simple"}}
    props = {"total_slots": 2, "default_generation_settings": settings}
    assert lanes.speculation(props, None) is True
    off = {"default_generation_settings": {"params": {"speculative.types": "none"}}}
    assert lanes.speculation(off, None) is False
    assert lanes.speculation(None, [{"speculative": True}]) is True
    assert lanes.speculation(None, None) is None
    assert lanes.context_per_slot(props, [{"n_ctx": "256"}]) == 256
    assert lanes.context_per_slot(props, None) == 512
    assert lanes.total_slots(props, None) == 2
    assert lanes.total_slots(None, [{}, {}, {}]) == 3


def test_concurrent_streams_run_together_and_errors_surface() -> None:
    together = threading.Barrier(3)

    def ask(i: int) -> Completion:
        together.wait(timeout=60)  # passes only when all three streams are in flight at once
        times = (0.01, 0.02, 0.04)
        return Completion("x" * 10, "", "length", wall_s=0.05, ttft_s=0.01, completion_tokens=10, chunk_times_s=times)

    run = lanes.run_concurrently(ask, 3)
    assert len(run.completions) == 3
    assert run.aggregate_tps == pytest.approx(30 / run.wall_s)
    assert sorted(run.itl_ms()) == pytest.approx([10.0, 10.0, 10.0, 20.0, 20.0, 20.0])

    def failing(i: int) -> Completion:
        raise LaneUnavailable(f"stream {i}")

    with pytest.raises(LaneUnavailable, match="stream"):
        lanes.run_concurrently(failing, 2)
