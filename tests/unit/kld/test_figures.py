"""Figures clustered by document, paired comparisons and non-inferiority."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_quantgate.errors import SpecError
from pytest_quantgate.kld.divergence import PositionScores
from pytest_quantgate.kld.figures import (
    DocTotals,
    by_category,
    cluster_proportion,
    cluster_ratio,
    figures,
    noninferiority,
    paired,
)


def _doc(doc_id: str, kld: list[float], top1: list[bool], category: str = "text") -> tuple[DocTotals, PositionScores]:
    scores = PositionScores(np.array(kld), np.array(top1), np.full(len(kld), -0.1), np.full(len(kld), np.nan))
    return DocTotals.of(doc_id, category, scores), scores


def test_equal_sized_documents_give_the_t_interval_of_document_means() -> None:
    rng = np.random.default_rng(0)
    sums = rng.gamma(2.0, 1.0, 8) * 10
    got = cluster_ratio(sums, [10] * 8)
    means = sums / 10
    low, high = stats.t.interval(0.95, 7, loc=means.mean(), scale=stats.sem(means))
    assert got is not None
    assert (got.estimate, got.lower, got.upper) == pytest.approx((means.mean(), low, high))


def test_one_document_has_no_interval() -> None:
    assert cluster_ratio([3.0], [10]) is None
    f = figures("all", [_doc("a", [0.1, 0.2], [True, False])])
    assert f.kld_ci is None and f.kld_mean == pytest.approx(0.15)


def test_tokens_of_one_document_are_not_independent() -> None:
    # Ten documents, each either all-agreeing or all-disagreeing over 100 positions: 1,000 positions but
    # only ten independent units; the interval must be about as wide as ten coin flips, not a thousand.
    hits = [100.0] * 7 + [0.0] * 3
    clustered = cluster_proportion(hits, [100] * 10)
    naive = cluster_proportion([700.0], [1000])
    assert clustered.estimate == pytest.approx(0.7)
    assert clustered.upper - clustered.lower > 3 * (naive.upper - naive.lower)


def test_full_agreement_still_has_an_interval_below_100() -> None:
    ci = cluster_proportion([50.0] * 4, [50] * 4)
    assert ci.upper == 1.0 and 0.9 < ci.lower < 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.floats(0, 1)), min_size=1, max_size=20))
def test_proportion_interval_brackets_the_rate(docs: list[tuple[int, float]]) -> None:
    counts = [n for n, _ in docs]
    hits = [round(n * f) for n, f in docs]
    ci = cluster_proportion(hits, counts)
    assert 0.0 <= ci.lower <= ci.estimate + 1e-12 and ci.estimate - 1e-12 <= ci.upper <= 1.0


def test_figures_per_category_and_overall() -> None:
    docs = [
        _doc("c1", [0.0, 0.2, 0.1], [True, True, False], "code"),
        _doc("c2", [0.1, 0.1], [True, True], "code"),
        _doc("p1", [1.0, 3.0], [False, True], "prose"),
    ]
    shown = {f.label: f for f in by_category(docs)}
    assert list(shown) == ["all", "code", "prose"]
    assert shown["all"].n_positions == 7 and shown["all"].n_documents == 3
    assert shown["all"].kld_mean == pytest.approx(4.5 / 7)
    assert shown["all"].kld_max == 3.0 and shown["all"].kld_median == pytest.approx(0.1)
    assert shown["code"].top1 == pytest.approx(4 / 5)
    assert shown["prose"].kld_ci is None
    assert shown["all"].rms_dp == pytest.approx(0.1)
    assert math.isnan(shown["all"].rms_dp_next)


def test_paired_comparison_finds_the_closer_candidate_and_is_symmetric() -> None:
    rng = np.random.default_rng(5)
    a, b = [], []
    for d in range(12):
        base = rng.gamma(2.0, 0.05, 40)
        a.append(_doc(f"d{d}", list(base), [True] * 40)[0])
        b.append(_doc(f"d{d}", list(base * 1.5 + 0.01), [True] * 40)[0])
    ab = paired("q8", a, "q4", b)
    ba = paired("q4", b, "q8", a)
    assert ab.closer == "first" and ba.closer == "second"
    assert ab.difference.kld is not None and ba.difference.kld is not None
    assert ab.difference.kld.estimate == pytest.approx(-ba.difference.kld.estimate)
    assert "q8" in ab.describe()


def test_paired_comparison_needs_the_same_documents() -> None:
    a = [_doc("x", [0.1], [True])[0]]
    b = [_doc("y", [0.1], [True])[0]]
    with pytest.raises(SpecError, match="'x' is missing"):
        paired("a", a, "b", b)


def _sides(shift: float, n_docs: int = 30, drop: int = 0) -> tuple[list[DocTotals], list[DocTotals]]:
    rng = np.random.default_rng(11)
    cand, base = [], []
    for d in range(n_docs):
        k = rng.gamma(2.0, 0.01, 50)
        agree = [True] * 50
        moved = k + shift * rng.uniform(0.5, 1.5, 50)
        cand.append(_doc(f"d{d}", list(moved), [i >= drop for i in range(50)])[0])
        base.append(_doc(f"d{d}", list(k), agree)[0])
    return cand, base


def test_noninferiority_decides_within_and_beyond_the_margin() -> None:
    assert noninferiority(*_sides(0.0), kld_margin=0.01, top1_margin=1).decision == "non-inferior"
    worse = noninferiority(*_sides(0.05), kld_margin=0.01, top1_margin=1)
    assert worse.decision == "inferior" and "mean KLD is higher" in worse.reasons[0]
    lost = noninferiority(*_sides(0.0, drop=5), kld_margin=0.01, top1_margin=1)
    assert lost.decision == "inferior" and "top-1 lower by 10.00 points" in lost.reasons[0]
    few = noninferiority(*_sides(0.009, n_docs=3), kld_margin=0.01, top1_margin=1)
    assert few.decision == "inconclusive"


def test_noninferiority_refuses_a_negative_margin() -> None:
    with pytest.raises(SpecError, match="kld_margin=-1"):
        noninferiority(*_sides(0.0), kld_margin=-1, top1_margin=1)


def test_doc_totals_round_trip_and_malformed_entries() -> None:
    t = _doc("a", [0.5, 0.25], [True, False], "code")[0]
    assert DocTotals.from_dict(t.to_dict(), "x") == t
    with pytest.raises(SpecError, match=r"result\.json: a per-document KLD entry is malformed"):
        DocTotals.from_dict({"doc_id": "a"}, "result.json")
