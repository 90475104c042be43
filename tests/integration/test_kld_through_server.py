"""KL divergence against the real llama-server on the tiny presets: the fetch layer, the reference cache,
determinism, and the guards."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
from peers.no_grammar_server import NoGrammarPeer
from peers.no_probs_server import NoProbsPeer

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld import cache
from pytest_quantgate.kld.corpus import Corpus, Document, select, tiny_corpus
from pytest_quantgate.kld.fetch import FetchStats, KldServer, NotForced, Positions, fetch, tokenize
from pytest_quantgate.kld.measure import Options, ReferenceLists, measure, preset_reference
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import ServerProcess, spec_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pytest_quantgate.kld.fetch import Method

pytestmark = pytest.mark.integration

CORPUS = tiny_corpus(documents_per_task=8)  # 40 documents, ~600 positions: quick on a busy 2-core machine


@contextlib.contextmanager
def _serve(preset_id: str, log_dir: Path) -> Iterator[KldServer]:
    preset = resolve(preset_id)
    with (
        ServerProcess.start(spec_for(preset), log_dir / f"{preset_id}.log") as process,
        KldServer(process.base_url, label=preset_id) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def q4(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KldServer]:
    with _serve("tiny-q4_0", tmp_path_factory.mktemp("q4")) as server:
        yield server


def _never_started() -> contextlib.AbstractContextManager[KldServer]:
    raise AssertionError("the reference was started although its lists are cached")


@pytest.mark.parametrize("method", ["forced", "prefixes"])
def test_one_token_evaluated_per_position_and_whole_vocabulary_lists(q4: KldServer, method: Method) -> None:
    tokens = tokenize(q4, CORPUS, Positions())
    stats = FetchStats()
    full = fetch(q4, tokens, 1000, stats, method=method)
    assert stats.method == method and not stats.notes
    assert full.full and full.k == 257  # the tiny byte vocabulary: 256 bytes and <|endoftext|>
    np.testing.assert_allclose(np.exp(full.logprobs).sum(axis=1), 1.0, atol=1e-4)
    # Forced: each document's first token, then each forced token once. Prefixes: every prefix after the first
    # extends a cached one, one new token each (BOS is shared by all documents).
    assert tokens.n_positions <= stats.evaluated <= tokens.n_positions + 2
    if method == "forced":
        assert stats.requests == len(tokens.doc_ids)  # one generation per document
    else:
        assert stats.requests <= -(-tokens.n_positions // 256)


def test_auto_forces_generation_on_the_tiny_vocabulary_and_both_ways_give_the_same_lists(q4: KldServer) -> None:
    tokens = tokenize(q4, CORPUS, Positions(skip=3, stride=2))
    auto, prefixes = FetchStats(), FetchStats()
    forced_lists = fetch(q4, tokens, 40, auto)
    prefix_lists = fetch(q4, tokens, 40, prefixes, method="prefixes")
    assert q4.n_vocab == 257 and auto.method == "forced" and prefixes.method == "prefixes"
    assert auto.positions == prefixes.positions == tokens.n_positions
    # The same positions, evaluated one token at a time either way: the same lists up to float rounding.
    np.testing.assert_array_equal(forced_lists.ids[:, 0], prefix_lists.ids[:, 0])
    np.testing.assert_allclose(forced_lists.logprobs[:, :5], prefix_lists.logprobs[:, :5], atol=1e-4)


def test_a_document_with_an_end_of_generation_token_is_forced_around_it(q4: KldServer) -> None:
    # <|endoftext|> ends a generation on the tiny model; a grammar that forced it would abort llama-server.
    assert q4.end_of_generation() == frozenset({256})
    text = "copy abc=abc\n<|endoftext|>reverse abc=cba\n"
    corpus = Corpus("eog", (Document("eog", "text", text=text),))
    tokens = tokenize(q4, corpus, Positions())
    eog_at = tokens.tokens[0].index(256, 1)
    forced, prefixes = FetchStats(), FetchStats()
    forced_lists = fetch(q4, tokens, 40, forced, method="forced")
    prefix_lists = fetch(q4, tokens, 40, prefixes, method="prefixes")
    assert forced.requests == 2 and forced.positions == tokens.n_positions  # a segment each side of the token
    # The position in front of the end-of-generation token has its lists too, and the server is still up.
    np.testing.assert_array_equal(forced_lists.ids[:, 0], prefix_lists.ids[:, 0])
    assert forced_lists.logprobs[eog_at - 1, 0] == pytest.approx(prefix_lists.logprobs[eog_at - 1, 0], abs=1e-3)
    assert tuple(q4.tokenize("copy")) == tokens.tokens[0][:5]


@pytest.mark.parametrize("ignore_grammar", [False, True], ids=["refuses", "ignores"])
def test_a_server_without_token_grammars_is_asked_one_prompt_per_prefix(ignore_grammar: bool) -> None:
    with NoGrammarPeer(ignore_grammar=ignore_grammar) as peer, KldServer(peer.url, label="old-llama") as server:
        tokens = tokenize(server, Corpus("c", (Document("d", "text", text="abcabcab"),)), Positions())
        stats = FetchStats()
        lists = fetch(server, tokens, 2, stats)
        assert stats.method == "prefixes" and lists.ids.shape == (tokens.n_positions, 2)
        (note,) = stats.notes
        assert note.startswith("old-llama: ") and note.endswith("asked one prompt per prefix instead (slower)")
        with pytest.raises(NotForced, match="old-llama: "):
            fetch(server, tokens, 2, method="forced")
        # Measured against a reference, the note is a caveat under the KLD table.
        reference = ReferenceLists("ref", None, tokens, lists, "hit", None)
        result = measure(server, reference, Corpus("c", (Document("d", "text", text="abcabcab"),)), Options(k=2))
        assert note in result.caveats and result.candidate_stats.method == "prefixes"


def test_second_candidate_reads_the_cached_reference_and_runs_are_identical(
    q4: KldServer, llama_server_bin: Path, tmp_path: Path
) -> None:
    options = Options(k=40, cache_dir=tmp_path / "cache")
    reference = preset_reference(resolve("tiny-f16"), tmp_path / "logs")
    first = measure(q4, reference, CORPUS, options)
    assert first.cache == "not cached yet" and first.reference_stats is not None
    cached = dataclasses.replace(reference, start=_never_started)
    again = [measure(q4, cached, CORPUS, options) for _ in range(2)]
    assert [r.cache for r in again] == ["hit", "hit"]
    for run in again:
        assert run.figures == first.figures  # σ = 0: the measurement is deterministic
    overall = first.overall
    assert overall.n_positions == tokenize(q4, CORPUS, Positions()).n_positions
    assert 0 < overall.kld_mean < 1 and 0.8 < overall.top1 < 1
    assert [f.label for f in first.figures] == ["all", "copy", "reverse", "inc", "add2", "add3"]

    # A truncated cache file is rebuilt, never trusted.
    (path,) = (tmp_path / "cache").glob("ref-*.qgkld")
    path.write_bytes(path.read_bytes()[:-100])
    rebuilt = measure(q4, reference, CORPUS, options)
    assert rebuilt.cache.startswith("checksum mismatch") and rebuilt.figures == first.figures
    assert cache.load(path, cache.CacheKey("x", "y", 1, "z"))[1] == "written for another key"


def test_top_40_kld_is_a_lower_bound_of_the_whole_vocabulary_kld(q4: KldServer, tmp_path: Path) -> None:
    reference = preset_reference(resolve("tiny-f16"), tmp_path / "logs")
    small = select(CORPUS, ["add3"])
    k40 = measure(q4, reference, small, Options(k=40, use_cache=False))
    full = measure(q4, reference, small, Options(k=400, use_cache=False))
    lower = np.concatenate([s.kld for _, s in k40.docs])
    exact = np.concatenate([s.kld for _, s in full.docs])
    # float32 log-probabilities: the whole-vocabulary sum carries rounding of a few 1e-6 nats.
    assert np.all(lower <= exact + 1e-5)
    assert k40.overall.kld_mean == pytest.approx(full.overall.kld_mean, rel=0.05)  # the tail is small here
    assert k40.overall.top1 == full.overall.top1


def test_a_tokenizer_mismatch_is_an_error_before_scoring(q4: KldServer, tmp_path: Path) -> None:
    # The "reference" tokenized the same text differently: reference lists made from other token ids.
    corpus = select(CORPUS, ["copy"])
    tokens = tokenize(q4, corpus, Positions())
    shifted = dataclasses.replace(tokens, tokens=tuple(tuple(t + 1 for t in doc) for doc in tokens.tokens))
    lists = ReferenceLists("other-tokenizer", None, shifted, fetch(q4, tokens, 5), "hit", None)
    with pytest.raises(KldError, match="tokenizer mismatch: document 'copy-00'"):
        measure(q4, lists, corpus, Options(k=5))


def test_a_document_longer_than_the_context_names_it(q4: KldServer) -> None:
    long = Corpus("long", (Document("essay", "text", text="copy abc=abc\n" * 40, source="essay.txt"),))
    with pytest.raises(KldError, match=r"'essay' \(essay.txt\) is 521 tokens, longer than the context"):
        tokenize(q4, long, Positions())
    assert tokenize(q4, long, Positions(max_tokens=100)).n_positions == 99


def test_a_request_on_a_connection_the_server_closed_unanswered_is_sent_once_more() -> None:
    with NoGrammarPeer(drop_first=True) as peer, KldServer(peer.url, label="old-llama") as server:
        tokens = tokenize(server, Corpus("c", (Document("d", "text", text="abcab"),)), Positions())
        lists = fetch(server, tokens, 2, method="prefixes")
        assert lists.ids.shape == (4, 2) and peer.completions == 2


def test_a_server_without_probabilities_is_a_clear_error() -> None:
    with NoProbsPeer() as peer, KldServer(peer.url, label="not-llama") as server:
        tokens = tokenize(server, select(CORPUS, ["copy"]), Positions())
        with pytest.raises(KldError, match=r"not-llama: .*/completion returned no completion_probabilities"):
            fetch(server, tokens, 40)
