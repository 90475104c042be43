"""One candidate against a reference: tokenize, reference lists (cached), candidate lists, figures, caveats.

The reference is started only when its lists are not cached (:class:`Reference` carries how to start it),
and before the candidate is needed, so the two never have to fit in memory together; a candidate whose
token ids differ from the reference's is an error before any position is scored.
No pytest here: the KLD suite and the benchmark call :func:`measure`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld import cache
from pytest_quantgate.kld.divergence import PositionScores, score_positions
from pytest_quantgate.kld.fetch import DEFAULT_K, FetchStats, KldServer, Method, Positions, Tokenized, fetch, tokenize
from pytest_quantgate.kld.figures import DocTotals, Figures, by_category
from pytest_quantgate.kld.guards import caveats, check_tokens

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from pytest_quantgate.kld.corpus import Corpus
    from pytest_quantgate.kld.divergence import TopK
    from pytest_quantgate.presets import Preset


@dataclass(frozen=True, slots=True)
class Reference:
    """The reference model: its name, its GGUF (the cache key's first part) and how to start its server."""

    label: str
    gguf: Path | None
    start: Callable[[], AbstractContextManager[KldServer]]
    base_url: str = ""  # when there is no local GGUF: the server's model path keys the cache instead


@dataclass(frozen=True, slots=True)
class Options:
    k: int = DEFAULT_K
    positions: Positions = field(default_factory=Positions)
    cache_dir: Path | None = None  # None: <quantgate cache>/kld; use_cache False: never read nor write
    use_cache: bool = True
    confidence: float = 0.95
    method: Method = "auto"  # how the lists are asked for (fetch.py): auto, forced or prefixes


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    """A candidate's figures against a reference (per preset first, then per category)."""

    candidate: str
    reference: str
    k: int
    docs: tuple[tuple[DocTotals, PositionScores], ...]
    figures: tuple[Figures, ...]
    caveats: tuple[str, ...]
    cache: str  # "hit", or why the reference ran ("not cached yet", "checksum mismatch ...")
    reference_stats: FetchStats | None  # None on a cache hit
    candidate_stats: FetchStats
    total_s: float

    @property
    def overall(self) -> Figures:
        return self.figures[0]


@dataclass(frozen=True, slots=True, eq=False)
class ReferenceLists:
    """The reference's tokens and top-K lists, and where they came from."""

    label: str
    gguf: Path | None
    tokens: Tokenized
    topk: TopK
    cache: str  # "hit", "cache off", or why the reference ran ("not cached yet", "checksum mismatch ...")
    stats: FetchStats | None  # None on a cache hit


def reference_key(reference: Reference, corpus: Corpus, options: Options, directory: Path) -> cache.CacheKey:
    """Reference GGUF hash (which fixes its tokenizer and chat template), corpus hash, K and positions."""
    if reference.gguf is not None and reference.gguf.is_file():
        ref_hash = cache.file_sha256(reference.gguf, directory)
    elif reference.base_url:
        ref_hash = f"url:{reference.base_url}:{reference.label}"
    else:
        raise KldError(
            f"reference {reference.label}: its model file {reference.gguf} does not exist; the reference cache is "
            "keyed by the file's hash"
        )
    p = options.positions
    return cache.CacheKey(ref_hash, corpus.digest(), options.k, f"max={p.max_tokens},stride={p.stride},skip={p.skip}")


def reference_lists(reference: Reference, corpus: Corpus, options: Options | None = None) -> ReferenceLists:
    """The reference's lists from the cache, or from its server (started only then, and cached)."""
    options = options or Options()
    directory = options.cache_dir or cache.cache_dir()
    if not options.use_cache:
        topk, tokens, stats = _run_reference(reference, corpus, options)
        return ReferenceLists(reference.label, reference.gguf, tokens, topk, "cache off", stats)
    key = reference_key(reference, corpus, options, directory)
    path = key.path(directory)
    entry, why = cache.load(path, key)
    if entry is None:
        with cache.reference_lock(path):
            entry, _ = cache.load(path, key)  # another process may have written it while this one waited
            if entry is None:
                topk, tokens, stats = _run_reference(reference, corpus, options)
                cache.save(path, key, cache.Entry(tokens, topk, reference.label))
                return ReferenceLists(reference.label, reference.gguf, tokens, topk, why, stats)
    return ReferenceLists(reference.label, reference.gguf, entry.corpus, entry.topk, "hit", None)


def _run_reference(reference: Reference, corpus: Corpus, options: Options) -> tuple[TopK, Tokenized, FetchStats]:
    stats = FetchStats()
    with reference.start() as server:
        ref_tokens = tokenize(server, corpus, options.positions)
        topk = fetch(server, ref_tokens, options.k, stats, method=options.method)
    return topk, ref_tokens, stats


def measure(
    candidate: KldServer,
    reference: Reference | ReferenceLists,
    corpus: Corpus,
    options: Options | None = None,
    *,
    candidate_gguf: Path | None = None,
) -> Result:
    """KLD, top-1 and Δp of *candidate* against *reference* on *corpus* (see :mod:`pytest_quantgate.kld`).

    A :class:`Reference` is looked up in the cache (and run on a miss) first; pass :class:`ReferenceLists`
    to measure several candidates against one lookup. The candidate's token ids must be the reference's.
    """
    options = options or Options()
    started = time.perf_counter()
    ref = reference if isinstance(reference, ReferenceLists) else reference_lists(reference, corpus, options)
    tokens = tokenize(candidate, corpus, options.positions)
    check_tokens(ref.tokens, tokens, ref.label, candidate.label)
    cand_stats = FetchStats()
    cand_topk = fetch(candidate, tokens, options.k, cand_stats, method=options.method)
    scores = score_positions(ref.topk, cand_topk, tokens.next_ids())
    if not np.all(np.isfinite(scores.kld)):
        raise KldError(f"{candidate.label}: non-finite KL divergence at some positions: malformed server lists")
    offsets = tokens.offsets()
    docs = []
    for i, (doc_id, category) in enumerate(zip(tokens.doc_ids, tokens.categories, strict=True)):
        a, b = offsets[i], offsets[i + 1]
        part = PositionScores(scores.kld[a:b], scores.top1[a:b], scores.dp_top[a:b], scores.dp_next[a:b])
        docs.append((DocTotals.of(doc_id, category, part), part))
    return Result(
        candidate=candidate.label,
        reference=ref.label,
        k=options.k,
        docs=tuple(docs),
        figures=tuple(by_category(docs, options.confidence)),
        # How the lists were asked for, when it was not the usual way (fetch.py): a server without token grammars.
        caveats=(*caveats(ref.gguf, candidate_gguf), *(ref.stats.notes if ref.stats else ()), *cand_stats.notes),
        cache=ref.cache,
        reference_stats=ref.stats,
        candidate_stats=cand_stats,
        total_s=time.perf_counter() - started,
    )


def preset_reference(preset: Preset, log_dir: Path) -> Reference:
    """A :class:`Reference` that boots *preset*'s server only when its lists are not cached."""
    import contextlib

    @contextlib.contextmanager
    def start() -> Iterator[KldServer]:
        from pytest_quantgate.server import ServerProcess, spec_for

        if preset.base_url:  # an external preset: already running
            with KldServer(preset.base_url, label=f"reference {preset.id}", api_key=preset.api_key()) as server:
                yield server
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        with (
            ServerProcess.start(spec_for(preset), log_dir / f"reference-{preset.id}.log") as process,
            KldServer(process.base_url, label=f"reference {preset.id}", api_key=preset.api_key()) as server,
        ):
            yield server

    return Reference(preset.id, preset.model, start, base_url=preset.base_url or "")


__all__ = [
    "Options",
    "Reference",
    "ReferenceLists",
    "Result",
    "measure",
    "preset_reference",
    "reference_key",
    "reference_lists",
]
