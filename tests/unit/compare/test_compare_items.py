"""Suites that record items (``measure.item``): quality is decided on items paired by id, clustered by item."""

from __future__ import annotations

import dataclasses

import pytest
from result_builders import base, cand

from pytest_quantgate.compare import CompareOptions, compare
from pytest_quantgate.measures import ItemOutcome
from pytest_quantgate.render.comparison import recommendation_rows, render


def with_items(result, wrong=(), n_items=20, iterations=None):
    """*result* with every level asking the same *n_items* items in each iteration (greedy: identical answers
    each time); item numbers in *wrong* (counted over all levels, 0 … 5·n_items − 1) are answered wrongly."""
    levels = list(dict.fromkeys(s.level for s in result.samples))
    samples = []
    for s in result.samples:
        if iterations is not None and s.iteration > iterations:
            continue
        first = levels.index(s.level) * n_items
        items = tuple(ItemOutcome(f"q{i:02d}", 0.0 if first + i in wrong else 1.0) for i in range(n_items))
        samples.append(dataclasses.replace(s, items=items, outcome="passed"))
    return result.model_copy(update={"samples": samples})


def test_identical_items_swap_at_a_margin_a_hundred_items_can_show() -> None:
    c = compare(with_items(base()), with_items(cand()), CompareOptions(margin=5))
    assert c.items is not None and c.verdict == "swap"
    assert c.items.n_items == 100  # 5 levels × 20 items, each level's points shared among its items
    assert c.unpaired is None  # it would count repeats as evidence
    assert "items" in c.message and "pairs" in c.message


def test_a_tight_margin_says_how_many_more_items_not_iterations() -> None:
    c = compare(with_items(base()), with_items(cand()), CompareOptions(margin=1))
    assert c.verdict == "inconclusive"
    assert "more items needed" in c.message and "repeating the same items adds no evidence" in c.message


def test_items_lost_are_kept_and_named() -> None:
    c = compare(with_items(base()), with_items(cand(), wrong=range(0, 100, 4)), CompareOptions(margin=2))
    assert c.verdict == "keep"
    assert c.items is not None and len(c.items.worse) == 25
    assert "25 item(s) worse, e.g. test_copy[q00]" in c.message


def test_greedy_repeats_never_give_a_zero_width_interval_or_a_tiny_p_value() -> None:
    b, k = with_items(base(), iterations=2), with_items(cand(), iterations=2)
    c = compare(b, k, CompareOptions(margin=5))
    assert c.items is not None and c.items.lower_bound < 0 < c.items.upper_bound
    assert c.items.candidate_changed == c.items.baseline_changed == 0
    text = render(c)
    assert "p < 0.001" not in text
    assert "each item counts once" in text
    row = recommendation_rows(c)[0]
    assert row[0] == "quality (100 items, margin 5)"


@pytest.mark.parametrize("iterations", [1, 3, 15])
def test_repeating_identical_items_adds_no_evidence(iterations: int) -> None:
    one = compare(with_items(base(), iterations=1), with_items(cand(), iterations=1), CompareOptions(margin=5))
    many = compare(
        with_items(base(), iterations=iterations), with_items(cand(), iterations=iterations), CompareOptions(margin=5)
    )
    assert one.items is not None and many.items is not None
    assert many.items.lower_bound == pytest.approx(one.items.lower_bound)


def test_greedy_decoding_makes_each_level_an_item_and_says_so() -> None:
    greedy = {"sampler": {"temperature": 0.0, "top_k": 1}}
    b = base().model_copy(update={"preset": base().preset.model_copy(update=greedy)})
    c = cand().model_copy(update={"preset": cand().preset.model_copy(update=greedy)})
    result = compare(b, c)
    assert result.items is not None and result.items.n_items == 5  # five levels, no recorded items
    assert result.verdict == "inconclusive"  # five fixed prompts cannot show a 2-point margin, however repeated
    assert any(p.startswith("greedy decoding on the baseline and the candidate") for p in result.problems)
    assert compare(base(), cand()).items is None  # sampled afresh: iterations are draws, levels decide
