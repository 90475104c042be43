"""Top-K next-token lists at every position of a corpus, from a running llama-server.

The stock server gives no log-probabilities for prompt tokens (``echo`` is refused). Two ways around it:

* **Forced generation**: one ``/completion`` per document whose prompt is the context before the
  first scored position and whose output is **forced to be the document's own next tokens** by a grammar of
  token ids (``root ::= <[id]> <[id]> ...``), with ``n_probs: K``. Every generated token comes with the top-K
  log-probabilities of the model's *raw* distribution at that position (``post_sampling_probs`` off: the
  grammar and the sampler do not touch them), and the server evaluates each forced token once, one token per
  decode, as a generation does. One task per document, so the server's per-task cost (a slot launch, a
  sampler, a result) is paid once per document instead of once per position. ``cache_prompt: false`` makes
  every document start from an empty slot: the context is evaluated in one batch whatever the slot held
  before, so requests can go to any slot, several at once. (On one slot every run gives identical figures;
  several slots decode their tokens together in one batch, which may move the last digits.)
* **One prompt per prefix** (the fallback, for a server without token grammars): the prompt as a list of
  token-id lists (every prefix of a document), ``n_predict: 1``, ``cache_prompt: true``: for each prefix the
  top-K of the next token; with the prompt cache each prefix evaluates exactly one new token. Whole documents
  go in requests of at least :data:`BATCH_POSITIONS` positions, each pinned to one slot (``id_slot``): a request
  spread over slots would re-evaluate its prefixes once per slot.

Forced generation saves the per-task cost but pays, at every position where the model's own choice is not
the document's token, a grammar pass over the whole vocabulary: it is the faster way on a small vocabulary
(:data:`FORCED_MAX_VOCAB`), one prompt per prefix on a large one (docs/benchmarks.md, B8). ``fetch`` chooses
by the vocabulary size the server reports, so a reference and its candidates are always asked the same way.
A server that refuses the grammar, or whose output is not the forced tokens, is asked the second way (its
first document decides), and :class:`FetchStats` says so. A grammar never forces an end-of-generation token
(llama.cpp aborts on one): a document is forced in segments that stop in front of each such token, whose
position's lists come from one free, non-final token at the segment's end.

Documents are tokenized by the server (``/tokenize`` with the model's special tokens, so BOS is there when the
model wants it); chats are rendered with the model's own template (``/apply-template``) first.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld.divergence import TopK
from pytest_quantgate.kld.endpoints import FetchStats, KldServer, NotForced, Refused

if TYPE_CHECKING:
    import numpy.typing as npt

    from pytest_quantgate.kld.corpus import Corpus

BATCH_POSITIONS = 256
DEFAULT_K = 40
# Forced generation pays a grammar pass over the whole vocabulary at every position where the model's own
# choice is not the document's token; one prompt per prefix pays the server's per-task cost instead. Measured
# (docs/benchmarks.md, B8): forced is 1.7x faster on the tiny model's 257 tokens, 1.3x slower on SmolLM2's 49,152.
FORCED_MAX_VOCAB = 8192
# Listed mass this close to 1 means the list holds the whole vocabulary (float32 rounding over ~10⁵ terms).
FULL_MASS = 1.0 - 1e-3


@dataclass(frozen=True, slots=True)
class Positions:
    """Which positions of each document are scored: from ``skip`` on (earlier tokens are context only),
    every ``stride``-th, at most ``max_tokens`` tokens of each document (0: all)."""

    max_tokens: int = 0
    stride: int = 1
    skip: int = 0

    def __post_init__(self) -> None:
        if self.max_tokens < 0 or self.stride < 1 or self.skip < 0:
            raise KldError(f"positions {self}: max_tokens >= 0, stride >= 1 and skip >= 0 are required")

    def of(self, n_tokens: int) -> list[int]:
        """Scored positions (index of the last prefix token) of a document of *n_tokens* tokens."""
        return list(range(self.skip, n_tokens - 1, self.stride))


@dataclass(frozen=True, slots=True, eq=False)
class Tokenized:
    """A corpus as token ids, with the positions scored in each document."""

    doc_ids: tuple[str, ...]
    categories: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    positions: tuple[tuple[int, ...], ...]

    @property
    def n_positions(self) -> int:
        return sum(len(p) for p in self.positions)

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for doc_id, toks, pos in zip(self.doc_ids, self.tokens, self.positions, strict=True):
            h.update(json.dumps([doc_id, toks, pos]).encode())
        return h.hexdigest()

    def next_ids(self) -> npt.NDArray[np.int64]:
        return np.asarray([t[i + 1] for t, pos in zip(self.tokens, self.positions, strict=True) for i in pos], np.int64)

    def offsets(self) -> list[int]:
        out = [0]
        for pos in self.positions:
            out.append(out[-1] + len(pos))
        return out


def tokenize(server: KldServer, corpus: Corpus, positions: Positions) -> Tokenized:
    """Render and tokenize every document on *server*; a document longer than the context is an error."""
    n_ctx = server.n_ctx
    ids, cats, toks, pos = [], [], [], []
    for doc in corpus.documents:
        tokens = server.tokenize(server.render(doc))
        if positions.max_tokens:
            tokens = tokens[: positions.max_tokens]
        if n_ctx is not None and len(tokens) > n_ctx:
            raise KldError(
                f"document {doc.id!r} ({doc.source or corpus.name}) is {len(tokens)} tokens, longer than the context "
                f"of {server.label} ({n_ctx}): shorten it, or score only its first tokens (max tokens per document)"
            )
        scored = positions.of(len(tokens))
        if not scored:
            raise KldError(f"document {doc.id!r} ({doc.source or corpus.name}) leaves no position to score")
        ids.append(doc.id)
        cats.append(doc.category)
        toks.append(tuple(tokens))
        pos.append(tuple(scored))
    return Tokenized(tuple(ids), tuple(cats), tuple(toks), tuple(pos))


Method = Literal["auto", "forced", "prefixes"]


def fetch(
    server: KldServer, corpus: Tokenized, k: int, stats: FetchStats | None = None, *, method: Method = "auto"
) -> TopK:
    """The top-*k* lists at every scored position of *corpus*, all documents concatenated in order.

    *method* ``auto`` forces generation on a vocabulary of at most :data:`FORCED_MAX_VOCAB` tokens when the
    server can (its first document decides), else asks one prompt per prefix; ``forced`` and ``prefixes`` ask
    for one way (``forced`` on a server that cannot is an error).
    """
    if k < 1:
        raise KldError(f"K={k}: ask for at least the top 1 token")
    stats = stats if stats is not None else FetchStats()
    started = time.perf_counter()
    rows: list[Any] | None = None
    n_vocab = server.n_vocab if method == "auto" else None
    if method == "forced" or (method == "auto" and n_vocab is not None and n_vocab <= FORCED_MAX_VOCAB):
        try:
            rows = _forced_rows(server, corpus, k, stats)
        except NotForced as exc:
            if method == "forced":
                raise
            stats.notes.append(f"{exc}; asked one prompt per prefix instead (slower)")
    if rows is None:
        rows = _prefix_rows(server, corpus, k, stats)
    parsed_at = time.perf_counter()
    topk = _to_topk(rows, k, server.label)
    stats.parse_s += time.perf_counter() - parsed_at
    stats.wall_s += time.perf_counter() - started
    stats.positions += len(rows)
    return topk


def _forced_rows(server: KldServer, corpus: Tokenized, k: int, stats: FetchStats) -> list[Any]:
    """Forced generation, one request per document, ``slots + 1`` at a time (the next one waits in the server's
    queue while this process decodes an answer). Raises :class:`NotForced` when the server does not name its
    end-of-generation tokens or the first document shows that it does not force tokens."""
    docs = list(zip(corpus.tokens, corpus.positions, strict=True))
    if not docs:
        return []
    eog = server.end_of_generation()
    if eog is None:
        raise NotForced(f"{server.label}: the server does not name its end-of-generation tokens")
    first, first_stats = _forced_document(server, *docs[0], k, eog, first=True)
    stats.add(first_stats)
    stats.method = "forced"
    rows = [first]
    pool = ThreadPoolExecutor(server.slots + 1)
    try:
        futures = [pool.submit(_forced_document, server, toks, pos, k, eog) for toks, pos in docs[1:]]
        for future in futures:
            doc_rows, doc_stats = future.result()
            rows.append(doc_rows)
            stats.add(doc_stats)
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the documents not yet asked for are not asked
    return [entry for doc_rows in rows for entry in doc_rows]


def _forced_document(
    server: KldServer,
    toks: tuple[int, ...],
    pos: tuple[int, ...],
    k: int,
    eog: frozenset[int],
    *,
    first: bool = False,
) -> tuple[list[Any], FetchStats]:
    """The lists of one document's scored positions: generation forced from its first scored position to its
    last, in segments that end in front of each end-of-generation token of the document (the next segment's
    prompt takes it in), continued wherever the server stopped early."""
    stats = FetchStats()
    lists: list[Any] = []
    at, last = pos[0], pos[-1]
    while at <= last:
        end = next((j for j in range(at + 1, last + 2) if toks[j] in eog), None)
        want = toks[at + 1 : (end if end is not None else last + 2)]
        free_after = toks[end] if end is not None else None
        try:
            got, entries = server.forced(toks[: at + 1], want, k, free_after=free_after, stats=stats)
        except Refused as exc:
            if first and not lists:  # a server that cannot parse a grammar of token ids refuses the first one
                raise NotForced(str(exc)) from None
            raise
        matched = list(got[: len(want)]) == list(want[: len(got)])
        if not got or len(got) > len(want) + (free_after is not None) or not matched:
            raise NotForced(
                f"{server.label}: /completion did not generate the forced tokens (asked {list(want[:5])}..., "
                f"got {list(got[:5])}...): it does not force tokens with a grammar of token ids"
            )
        lists += entries
        at += len(got)
    return [lists[i - pos[0]] for i in pos], stats


def _prefix_rows(server: KldServer, corpus: Tokenized, k: int, stats: FetchStats) -> list[Any]:
    """One prompt per prefix, whole documents in requests of at least :data:`BATCH_POSITIONS` prefixes."""
    stats.method = "prefixes"
    # A document whose first scored position is not 0 starts with an unscored prefix of its first token alone:
    # then that token's state is always evaluated by itself, whatever the slot held before, and the context
    # up to the first scored position always in the same batch after it. Otherwise the first token would be
    # evaluated with the context or not, depending on the cache, and the arithmetic (so the figures) with it.
    jobs: list[list[tuple[tuple[int, ...], bool]]] = [[]]
    for toks, pos in zip(corpus.tokens, corpus.positions, strict=True):
        wanted = [(toks[:1], False)] if pos and pos[0] > 0 else []
        wanted += [(toks[: i + 1], True) for i in pos]
        # Requests break only between documents: each slot then holds whole documents, and the prefixes of
        # one document extend each other in one slot's cache.
        if len(jobs[-1]) >= BATCH_POSITIONS:
            jobs.append([])
        jobs[-1] += wanted
    slots = server.slots

    def ask(job: list[tuple[tuple[int, ...], bool]], slot: int | None) -> tuple[list[Any], FetchStats]:
        job_stats = FetchStats()
        return server.top_k([p for p, _ in job], k, slot=slot, stats=job_stats), job_stats

    if slots > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(slots) as pool:
            futures = [pool.submit(ask, job, j % slots) for j, job in enumerate(jobs)]
            answered = [f.result() for f in futures]
    else:
        answered = [ask(job, None) for job in jobs]
    for _, job_stats in answered:
        stats.add(job_stats)
    return [
        entry
        for job, (answer, _) in zip(jobs, answered, strict=True)
        for (_, keep), entry in zip(job, answer, strict=True)
        if keep
    ]


def _to_topk(rows: list[Any], k: int, label: str) -> TopK:
    width = max((len(r) for r in rows), default=1)
    ids = np.full((len(rows), width), -1, dtype=np.int64)
    lps = np.full((len(rows), width), -np.inf, dtype=np.float64)
    for i, row in enumerate(rows):
        n = len(row)
        ids[i, :n] = [e["id"] for e in row]
        lps[i, :n] = [e["logprob"] for e in row]
    # The server computes in float32; rounding back to it makes a fresh list and a cached one (float32 on disk)
    # identical, so a run that reads the cache gives the same figures as the run that wrote it.
    lps = lps.astype(np.float32).astype(np.float64)
    order = np.argsort(-lps, axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    lps = np.take_along_axis(lps, order, axis=1)
    full = False
    if width < k and rows:
        mass = np.exp(lps).sum(axis=1)
        if float(mass.min()) < FULL_MASS:
            raise KldError(
                f"{label}: asked for the top {k} tokens, the server returned {width} holding only "
                f"{100 * float(mass.min()):.2f} % of the probability: it caps n_probs; use K <= {width}"
            )
        full = True
    return TopK(ids, lps, full)


__all__ = [
    "BATCH_POSITIONS",
    "DEFAULT_K",
    "FORCED_MAX_VOCAB",
    "FetchStats",
    "KldServer",
    "Method",
    "NotForced",
    "Positions",
    "Refused",
    "Tokenized",
    "fetch",
    "tokenize",
]
