"""The lane suite: one preset's speed at fixed lengths, each figure a measurement (gate it, compare it).

    pytest example_suites/perf --preset tiny-f16
    pytest example_suites/perf --preset my-lane --gate "decode_tps_mean >= 50" --gate "draft_acceptance_mean >= 0.8"

Prompts are token ids built with the server's own /tokenize, so 1,150 tokens are 1,150 on any tokenizer;
outputs are forced to their length with ``ignore_eos``. A figure the server cannot give (no timings, no
/tokenize, no draft, fewer slots than asked) is skipped with a message naming the preset and the figure,
and shown as n/a; the other figures are still measured. Load-to-listening is the built-in ``load_s``.
"""

from __future__ import annotations

import warnings

import pytest

from pytest_quantgate import lanes
from pytest_quantgate.errors import ClientError
from pytest_quantgate.lanes import LaneUnavailable, LaneWarning


def _or_skip(figure):
    """The figure's value, or the level skipped with the reason (shown as n/a in the tables)."""
    __tracebackhide__ = True
    try:
        return figure()
    except LaneUnavailable as exc:
        pytest.skip(str(exc))


def _ask(llm, ids, output, *, stream=False):
    """A request of exactly len(ids) tokens in and *output* out. Streamed only where a figure needs the
    tokens' arrival times (the slots' TTFT and ITL): a whole answer costs the client less to read."""
    return llm.complete(ids, max_tokens=output, ignore_eos=True, cache_prompt=False, stream=stream)


@pytest.mark.level(points=1)
def test_prefill(llm, measure, lane_server, lane_lengths, quantgate_preset):
    """Prompt tokens/s of an exact-length prompt, evaluated from scratch (cache_prompt false)."""
    n = lane_lengths.used.prompt
    ids = _or_skip(lambda: lane_server.prompt(n, "prefill_tps"))
    answer = llm.complete(ids, max_tokens=1, cache_prompt=False, stream=False)
    measure("prefill_tps", _or_skip(lambda: lanes.prefill_tps(answer, preset=quantgate_preset.id)), unit="tok/s")
    timings = answer.timings
    assert timings is not None and timings.prompt_n == n, (
        f"preset {quantgate_preset.id}: the server evaluated {timings and timings.prompt_n} prompt tokens of the "
        f"{n} sent (cache_n {timings and timings.cache_n}): prefill_tps would not be of a {n}-token prompt"
    )


@pytest.mark.level(points=1)
def test_fixed_request(llm, measure, lane_server, lane_lengths, quantgate_preset):
    """The fixed request (default 1,150 in / 2,000 out): client-side wall time and decode tokens/s."""
    used = lane_lengths.used
    ids = _or_skip(lambda: lane_server.prompt(used.prompt, "fixed_wall_s and decode_tps"))
    answer = _ask(llm, ids, used.output)
    produced = lanes.generated(answer)
    assert produced == used.output, (
        f"preset {quantgate_preset.id}: the fixed request generated {produced} tokens, not {used.output} "
        f"(finish_reason {answer.finish_reason!r}): the server ignored ignore_eos or ran out of context"
    )
    measure("fixed_wall_s", answer.wall_s, unit="s", better="lower")
    measure("fixed_prompt_tokens", used.prompt, unit="tokens", better="neither")
    measure("fixed_output_tokens", used.output, unit="tokens", better="neither")
    try:
        measure("decode_tps", lanes.decode_tps(answer, preset=quantgate_preset.id), unit="tok/s")
    except LaneUnavailable as exc:
        warnings.warn(LaneWarning(str(exc)), stacklevel=1)


@pytest.mark.level(points=1)
def test_slots(llm, measure, lane_server, lane_lengths, lane_slots, quantgate_preset):
    """N concurrent streams: aggregate and per-stream tokens/s, TTFT and inter-token latency percentiles."""
    total = lane_server.total_slots
    if total is not None and total < lane_slots:
        pytest.skip(
            f"preset {quantgate_preset.id}: slots_aggregate_tps cannot be measured with {lane_slots} streams: the "
            f"server runs {total} slot(s) (raise the preset's parallel, or --lane-slots {total})"
        )
    used = lane_lengths.used
    ids = _or_skip(lambda: lane_server.prompt(used.prompt, "slots_aggregate_tps"))
    run = lanes.run_concurrently(lambda _: _ask(llm, ids, used.output, stream=True), lane_slots)
    measure("slots_aggregate_tps", run.aggregate_tps, unit="tok/s")
    measure("slots_stream_tps", run.stream_tps, unit="tok/s")
    measure("slots_n", lane_slots, unit="streams", better="neither")
    latencies = {**lanes.percentiles(run.ttft_ms(), "ttft_ms"), **lanes.percentiles(run.itl_ms(), "itl_ms")}
    for name, value in latencies.items():
        measure(name, value, unit="ms", better="lower")
    if not latencies:
        warnings.warn(
            LaneWarning(
                f"preset {quantgate_preset.id}: TTFT and ITL percentiles cannot be measured: the answers were not "
                "streamed"
            ),
            stacklevel=1,
        )


@pytest.mark.level(points=1)
def test_speculative(llm, measure, lane_server, lane_lengths, lane_client, quantgate_preset):
    """Draft acceptance, Σ draft_n_accepted / Σ draft_n, cross-checked against /metrics when it is on."""
    if not lane_server.speculation:
        why = (
            "speculative decoding is off (no draft model or --spec-type on the server)"
            if lane_server.speculation is False
            else "the server does not say whether it runs speculative decoding (no /props or /slots)"
        )
        pytest.skip(f"preset {quantgate_preset.id}: draft_acceptance is not applicable: {why}")
    used = lane_lengths.used
    ids = _or_skip(lambda: lane_server.prompt(used.prompt, "draft_acceptance"))
    before = _counters(lane_client)
    answer = _ask(llm, ids, used.output)
    after = _counters(lane_client)
    ours = lanes.acceptance([answer])
    if ours.rate is None:
        pytest.skip(
            f"preset {quantgate_preset.id}: draft_acceptance cannot be measured: speculative decoding is on but "
            f"the answer reports no drafted tokens (timings.draft_n)"
        )
    measure("draft_acceptance", ours.rate, unit="fraction")
    if before is not None and after is not None:
        drafted, accepted = after.drafted - before.drafted, after.accepted - before.accepted
        if drafted == ours.drafted:  # nobody else used the server meanwhile: the two accounts must agree
            assert accepted == ours.accepted, (
                f"preset {quantgate_preset.id}: timings say {ours.accepted}/{ours.drafted} draft tokens accepted, "
                f"/metrics counted {accepted}/{drafted}"
            )


def _counters(client):
    try:
        return lanes.metrics_acceptance(client.metrics())
    except ClientError:  # no --metrics: the cross-check is left out
        return None
