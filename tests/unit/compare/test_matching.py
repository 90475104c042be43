"""Tests of pytest_quantgate.compare.matching: common levels, loosely matched levels, paired items."""

from __future__ import annotations

import pytest
from result_builders import TINY_POINTS, base, cand, item_levels, make_result, renamed, tiny_levels

from pytest_quantgate.compare import compare
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.render.comparison import render

TINY = list(TINY_POINTS)


def test_partial_overlap_compares_the_common_levels_and_names_the_missing_ones() -> None:
    b = tiny_levels()
    b["test_tiny.py::test_old"] = (5.0, [True] * 15)
    c = tiny_levels()
    del c["test_tiny.py::test_mul"]
    c["test_tiny.py::test_new"] = (5.0, [True] * 15)
    result = compare(make_result("a", b), make_result("b", c))
    assert {lv.level for lv in result.quality.levels} == {f"test_tiny.py::{n}" for n in list(TINY)[:4]}
    assert result.only_in_baseline == ("test_tiny.py::test_mul", "test_tiny.py::test_old")
    assert result.only_in_candidate == ("test_tiny.py::test_new",)
    problem = next(p for p in result.problems if p.startswith("different level sets"))
    assert "compared on the 4 common level(s) only" in problem
    assert "only in the baseline: test_tiny.py::test_mul, test_tiny.py::test_old" in problem
    assert "only in the candidate: test_tiny.py::test_new" in problem
    assert result.baseline_aggregate.max_points == 90.0


def test_no_level_in_common_is_refused_with_both_level_lists() -> None:
    other = make_result("b", item_levels(3, 5))
    with pytest.raises(ResultsError) as info:
        compare(base(), other)
    text = str(info.value)
    assert "share no level" in text and "different suites" in text
    assert "test_tiny.py::test_copy" in text and "test_knowledge.py::test_question[q01]" in text
    assert "Run the same suite on both presets" in text


def test_levels_with_changed_points_are_a_caveat() -> None:
    levels = tiny_levels()
    levels["test_tiny.py::test_mul"] = (20.0, levels["test_tiny.py::test_mul"][1])
    result = compare(base(), make_result("tiny-q4_0", levels))
    assert any("test_mul is worth 10 points in the baseline and 20 in the candidate" in c for c in result.caveats)
    assert next(lv for lv in result.quality.levels if lv.level.endswith("test_mul")).points == 20.0


def test_suite_run_from_another_directory_matches_by_file_and_test_name() -> None:
    result = compare(renamed(base(), "example_suites/tiny"), cand())
    assert len(result.quality.levels) == 5
    assert result.only_in_baseline == result.only_in_candidate == ()
    assert any("5 level(s) matched by file and test name" in c for c in result.caveats)


def test_parametrized_items_are_paired_and_flipped_items_listed() -> None:
    b = make_result("a", item_levels(20, 3))
    c = make_result("b", item_levels(20, 3, wrong={"q03": [1, 2, 3], "q07": [2]}))
    result = compare(b, c)
    assert result.items is not None  # each parameter an item: items decide
    assert result.items.n_items == 20 and result.items.n_pairs == 60
    names = [result.item_names[k] for k in result.items.worse]
    assert names == ["test_question[q03]", "test_question[q07]"]  # the item lost every time first
    assert result.items.better == ()
    assert result.items.margin == 2.0
    text = render(result)
    assert "over 20 paired items" in text and "60 item-iterations, but each item counts once" in text
    assert "items worse: test_question[q03], test_question[q07]" in text


def test_plain_levels_are_not_items() -> None:
    assert compare(base(), cand()).items is None
