"""Tests of pytest_quantgate.compare.caveats: what differs between the runs besides the model."""

from __future__ import annotations

import pytest
from result_builders import base, cand, make_result, tiny_levels

from pytest_quantgate.compare import CompareOptions, compare


def test_identical_provenance_has_no_caveats() -> None:
    assert compare(base(), cand()).caveats == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"binary_version": "version: 6100 (def456)", "binary_sha256": "sampled-sha256:cccc"},
         "server binary version: version: 6000 (abc123) → version: 6100 (def456)"),
        ({"binary_sha256": "sampled-sha256:cccc"}, "with the same --version (a rebuilt binary?)"),
        ({"binary": "/usr/local/bin/llama-server"}, "server binary path: /opt/llama.cpp/bin/llama-server →"),
        ({"sampler": {"temperature": 0.6, "top_p": 0.95}}, "sampler: temperature 1.0 → 0.6"),
        ({"sampler": {"temperature": 1.0}}, "sampler: top_p 0.95 → unset"),
        ({"extra_args": ["-ngl", "99", "--flash-attn", "on"]},
         "flags (extra_args): `-ngl 99` → `-ngl 99 --flash-attn on`"),
        ({"context_size": 8192}, "context size: 4096 → 8192"),
        ({"parallel": 4}, "parallel slots: 1 → 4"),
        ({"model": "/models/tiny-q4_0.gguf", "model_size_bytes": 1_000_000, "model_digest": "sha256:dddd"},
         "GGUF (expected): tiny-f16.gguf (3.8 MiB) → tiny-q4_0.gguf (976.6 KiB, −75% size)"),
        ({"model_digest": "sha256:eeee"}, "GGUF: same path tiny-f16.gguf but different content"),
        ({"host": {"gpu": "NVIDIA RTX 3090"}}, "host GPU: NVIDIA GeForce RTX 4090 (24564 MiB) → NVIDIA RTX 3090"),
        ({"host": {"cpu": "Intel Xeon"}}, "host CPU: AMD Ryzen 9 7950X → Intel Xeon"),
        ({"host": {"ram_mb": 64000}}, "host RAM (MB): 128000 → 64000"),
        ({"host": {"hostname": "other-box"}}, "host: gpu-box → other-box"),
        ({"plugin_version": "0.2.0"}, "pytest-quantgate version: 0.1.0 → 0.2.0"),
        ({"started_at": "2026-12-10T10:00:00+00:00"}, "runs 20.0 days apart"),
        ({"memory_source": "rss"}, "memory measured differently: nvml-process → rss"),
    ],
)  # fmt: skip
def test_each_provenance_difference_is_its_own_caveat(change, expected) -> None:
    change = dict(change)
    if "host" in change:
        from result_builders import HOST

        change["host"] = {**HOST, **change["host"]}
    result = compare(base(), cand(**change))
    matching = [c for c in result.caveats if expected in c]
    assert matching, result.caveats
    if len(change) == 1:
        assert len(result.caveats) == 1, result.caveats


def test_runs_within_max_age_have_no_age_caveat() -> None:
    later = cand(started_at="2026-11-30T10:00:00+00:00")
    assert not any("days apart" in c for c in compare(base(), later).caveats)
    assert any("days apart" in c for c in compare(base(), later, CompareOptions(max_age_days=7)).caveats)


def test_incomplete_baseline_is_a_caveat_and_still_compared() -> None:
    interrupted = make_result("tiny-f16", tiny_levels(9), complete=False)
    result = compare(interrupted, cand())
    assert any(c.startswith("baseline incomplete (interrupted run") and "9 iteration(s)" in c for c in result.caveats)
    assert any(c.startswith("different iteration counts: baseline 9, candidate 15") for c in result.caveats)
    assert result.quality.n_baseline == 9


def test_a_size_change_that_rounds_to_zero_carries_no_minus_sign() -> None:
    smaller = cand(model="/models/tiny-q4_0.gguf", model_size_bytes=3_999_000, model_digest="sha256:dddd")
    assert any(c.endswith("tiny-q4_0.gguf (3.8 MiB, +0% size)") for c in compare(base(), smaller).caveats)


def test_a_changed_prompt_cache_setting_is_a_caveat() -> None:
    from result_builders import base as base_result

    b = base_result()
    c = cand().model_copy(update={"preset": cand().preset.model_copy(update={"cache_prompt": True})})
    b = b.model_copy(update={"preset": b.preset.model_copy(update={"cache_prompt": False})})
    caveats = compare(b, c).caveats
    assert any(x.startswith("prompt cache (cache_prompt): False → True") for x in caveats)
