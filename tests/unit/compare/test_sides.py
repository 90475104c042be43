"""Tests of pytest_quantgate.compare.sides: a result read from its samples or from its summary alone."""

from __future__ import annotations

import pytest
from result_builders import base, cand, summary_only, with_samples

from pytest_quantgate.compare import compare
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.render.comparison import render


def test_baseline_with_only_a_summary_uses_its_level_counts() -> None:
    full = base()
    worse = cand(misses={"test_add3": 10})
    expected = compare(full, worse)
    result = compare(summary_only(full), worse)
    assert any(p.startswith("baseline has no per-iteration samples") for p in result.problems)
    assert result.quality.lower_bound == pytest.approx(expected.quality.lower_bound)
    assert result.verdict == expected.verdict == "keep"
    assert result.unpaired is not None and result.unpaired.unpaired
    assert result.ttft is None and result.items is None
    assert any(p.startswith("TTFT not compared: the baseline recorded none") for p in result.problems)
    assert "verdict keep" in render(result)


def test_baseline_with_no_level_data_at_all_is_refused() -> None:
    empty = with_samples(base(), [])
    with pytest.raises(ResultsError, match=r"holds no level results.*re-run the suite"):
        compare(empty, cand())
