"""Tests of speed_delta: significance AND the noise floor."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference.speed import speed_delta

BASE_TPS = [50.1, 49.8, 50.4, 50.0, 49.6, 50.3, 50.2, 49.9, 50.5, 49.7, 50.0, 50.1, 49.8, 50.2, 50.0]


def test_speed_clearly_faster():
    res = speed_delta(BASE_TPS, [v * 1.2 for v in BASE_TPS])
    assert res.verdict == "faster" and res.significant and res.beyond_floor
    assert res.relative_change == pytest.approx(0.2)


def test_speed_clearly_slower():
    assert speed_delta(BASE_TPS, [v * 0.8 for v in BASE_TPS]).verdict == "slower"


def test_ttft_lower_is_better_reads_faster():
    ttft = [120.0 + i for i in range(15)]
    res = speed_delta(ttft, [v * 0.7 for v in ttft], higher_is_better=False)
    assert res.relative_change < 0 and res.verdict == "faster"
    mem = speed_delta(
        ttft, [v * 1.3 for v in ttft], higher_is_better=False, better_label="smaller", worse_label="larger"
    )
    assert mem.verdict == "larger"


def test_significant_but_below_floor():
    res = speed_delta(BASE_TPS, [v * 1.02 for v in BASE_TPS])
    assert res.significant and not res.beyond_floor
    assert res.verdict == "no change (below floor)"


def test_large_but_noisy_change_is_noise():
    base = [50.0, 20.0, 80.0, 35.0, 65.0]
    cand = [60.0, 25.0, 90.0, 40.0, 70.0]
    res = speed_delta(base, cand)
    assert res.beyond_floor and not res.significant
    assert res.verdict == "no change (noise)"


def test_speed_edge_cases():
    assert speed_delta([50.0], [80.0]).verdict == "no change (noise)"
    assert speed_delta([50.0] * 5, [50.0] * 5).p_value == 1.0
    with pytest.raises(SpecError, match="baseline median is 0"):
        speed_delta([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(SpecError, match="values on both sides"):
        speed_delta([], [1.0])
    with pytest.raises(SpecError, match="floor"):
        speed_delta([1.0], [1.0], floor=-0.1)


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.floats(1, 1000), min_size=1, max_size=20),
    cand=st.lists(st.floats(1, 1000), min_size=1, max_size=20),
)
def test_speed_p_value_in_unit_interval_and_verdict_consistent(base, cand):
    res = speed_delta(base, cand)
    assert 0.0 <= res.p_value <= 1.0
    if res.verdict in ("faster", "slower"):
        assert res.significant and res.beyond_floor
