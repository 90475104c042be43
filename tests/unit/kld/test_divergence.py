"""Per-position KL, top-1 and Δp from top-K lists, against a direct computation on whole distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import SpecError
from pytest_quantgate.kld.divergence import TopK, score_positions


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _topk(logp: np.ndarray, k: int) -> TopK:
    order = np.argsort(-logp, axis=1, kind="stable")[:, :k]
    return TopK(order.astype(np.int64), np.take_along_axis(logp, order, axis=1), full=k >= logp.shape[1])


def _exact_kl(p_log: np.ndarray, q_log: np.ndarray) -> np.ndarray:
    return (np.exp(p_log) * (p_log - q_log)).sum(axis=1)


logits_pairs = st.tuples(st.integers(1, 6), st.integers(2, 30), st.integers(0, 2**31 - 1), st.floats(0.0, 3.0))


@settings(max_examples=150, deadline=None)
@given(logits_pairs, st.integers(1, 30))
def test_top_k_kl_is_a_lower_bound_exact_with_the_whole_vocabulary(case: tuple[int, int, int, float], k: int) -> None:
    n, vocab, seed, noise = case
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 2, (n, vocab))
    ref = _log_softmax(base)
    cand = _log_softmax(base + rng.normal(0, noise, (n, vocab)))
    exact = _exact_kl(ref, cand)
    got = score_positions(_topk(ref, k), _topk(cand, k)).kld
    assert np.all(got <= exact + 1e-9)
    assert np.all(got >= -1e-9)
    if k >= vocab:
        np.testing.assert_allclose(got, exact, atol=1e-9)


def test_whole_vocabulary_figures_match_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 2, (50, 20))
    ref, cand = _log_softmax(base), _log_softmax(base + rng.normal(0, 0.7, (50, 20)))
    next_ids = rng.integers(0, 20, 50)
    s = score_positions(_topk(ref, 20), _topk(cand, 20), next_ids)
    np.testing.assert_allclose(s.kld, _exact_kl(ref, cand), atol=1e-12)
    np.testing.assert_array_equal(s.top1, ref.argmax(1) == cand.argmax(1))
    top = ref.argmax(1)
    rows = np.arange(50)
    np.testing.assert_allclose(s.dp_top, np.exp(cand[rows, top]) - np.exp(ref[rows, top]))
    np.testing.assert_allclose(s.dp_next, np.exp(cand[rows, next_ids]) - np.exp(ref[rows, next_ids]))


def test_identical_lists_give_zero_and_full_agreement() -> None:
    ref = _topk(_log_softmax(np.random.default_rng(1).normal(0, 1, (10, 50))), 5)
    s = score_positions(ref, ref)
    np.testing.assert_allclose(s.kld, 0.0, atol=1e-12)
    assert s.top1.all()
    np.testing.assert_allclose(s.dp_top, 0.0)


def test_mass_outside_both_lists_counts_as_one_cell() -> None:
    # Reference: 0.5 on token 1, 0.3 on token 2, 0.2 elsewhere. Candidate lists token 2 (0.6) and token 3;
    # token 1 is not in its list. Cells: {2}, other. KL = .3 ln(.3/.6) + .7 ln(.7/.4).
    ref = TopK.from_rows([[(1, math.log(0.5)), (2, math.log(0.3))]])
    cand = TopK.from_rows([[(2, math.log(0.6)), (3, math.log(0.2))]])
    s = score_positions(ref, cand, np.array([1]))
    assert s.kld[0] == pytest.approx(0.3 * math.log(0.3 / 0.6) + 0.7 * math.log(0.7 / 0.4))
    assert not s.top1[0]
    assert s.dp_top[0] == pytest.approx(-0.5)  # token 1 outside the candidate's list counts as 0
    assert math.isnan(s.dp_next[0])  # the text's next token is outside the candidate's list: unknown


def test_short_rows_are_padded_and_ignored() -> None:
    ref = TopK.from_rows([[(0, math.log(0.7)), (1, math.log(0.3))], [(0, 0.0)]], full=True)
    cand = TopK.from_rows([[(1, math.log(0.4)), (0, math.log(0.6))], [(0, 0.0)]], full=True)
    s = score_positions(ref, cand)
    assert s.kld[0] == pytest.approx(0.7 * math.log(0.7 / 0.6) + 0.3 * math.log(0.3 / 0.4))
    assert s.kld[1] == pytest.approx(0.0)
    assert s.top1.tolist() == [True, True]


def test_different_position_counts_are_refused() -> None:
    one = TopK.from_rows([[(0, 0.0)]])
    two = TopK.from_rows([[(0, 0.0)], [(0, 0.0)]])
    with pytest.raises(SpecError, match="1 positions and candidate 2"):
        score_positions(one, two)


def test_lists_shorter_than_k_are_the_whole_vocabulary_or_a_capped_server() -> None:
    from pytest_quantgate.errors import KldError
    from pytest_quantgate.kld.fetch import _to_topk

    whole = [[{"id": 0, "logprob": math.log(0.75)}, {"id": 1, "logprob": math.log(0.25)}]]
    assert _to_topk(whole, 40, "ref").full
    capped = [[{"id": 0, "logprob": math.log(0.5)}, {"id": 1, "logprob": math.log(0.25)}]]
    with pytest.raises(KldError, match=r"asked for the top 40 tokens, the server returned 2 .* use K <= 2"):
        _to_topk(capped, 40, "ref")
    assert not _to_topk(capped, 2, "ref").full
