"""Tests of pytest_quantgate.render.comparison: the comparison as terminal text."""

from __future__ import annotations

from result_builders import base, cand

from pytest_quantgate.compare import compare
from pytest_quantgate.render.comparison import render


def test_render_has_both_rows_levels_recommendation_caveats_and_verdict() -> None:
    c = cand(misses={"test_add3": 10}, context_size=8192, memory_ceiling_mb=5000.0)
    text = render(compare(base(), c))
    assert "tiny-f16 (baseline)" in text and "tiny-q4_0 (candidate)" in text
    assert "Δ candidate − baseline" in text
    assert "per-level pass rates" in text and "test_add3" in text and "worse" in text
    for criterion in ("quality (score, margin 2)", "tokens/s", "TTFT", "memory MB", "memory ceiling", "load"):
        assert criterion in text
    assert "caveats (the runs differ in more than the model):\n  - context size: 4096 → 8192" in text
    assert text.rstrip().splitlines()[-1].startswith("verdict keep: ")
