"""Top-K next-token lists at every position of a corpus, from a running llama-server.

The stock server gives no log-probabilities for prompt tokens (``echo`` is refused), but ``/completion`` with
the prompt as a **list of token-id lists** (every prefix of a document), ``n_predict: 1``, ``n_probs: K`` and
``cache_prompt: true`` returns, for each prefix, the top-K log-probabilities of the next token; with the prompt
cache each prefix evaluates exactly one new token. All prefixes go in a few large requests (whole
documents, at least :data:`BATCH_POSITIONS` positions each), so the per-request cost is paid rarely. With
several slots, each request is pinned to one slot (``id_slot``) and the slots are fed concurrently: a request
spread over slots would re-evaluate its prefixes once per slot.

Documents are tokenized by the server (``/tokenize`` with the model's special tokens, so BOS is there when the
model wants it); chats are rendered with the model's own template (``/apply-template``) first.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld.divergence import TopK

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from pytest_quantgate.kld.corpus import Corpus, Document

BATCH_POSITIONS = 256
DEFAULT_K = 40
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


@dataclass(slots=True)
class FetchStats:
    """Where a fetch's time went: wall, the server's own prompt time, requests, and tokens it evaluated."""

    wall_s: float = 0.0
    server_ms: float = 0.0  # Σ the server's prompt_ms
    json_s: float = 0.0  # decoding the answers' JSON
    parse_s: float = 0.0  # turning the entries into arrays
    requests: int = 0
    evaluated: int = 0
    positions: int = 0
    notes: list[str] = field(default_factory=list)


class KldServer:
    """The few endpoints a KLD measurement needs, on one llama-server."""

    def __init__(self, base_url: str, *, label: str, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.label = label
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._props: dict[str, Any] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KldServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any], stats: FetchStats | None = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise KldError(f"{self.label}: POST {url} failed: {exc!r}; is the server running?") from None
        if response.status_code != 200:
            raise KldError(f"{self.label}: POST {url} answered HTTP {response.status_code}: {response.text[:300]}")
        decoding = time.perf_counter()
        try:
            return json.loads(response.content)
        except ValueError:
            raise KldError(f"{self.label}: POST {url} answered with no JSON: {response.text[:300]!r}") from None
        finally:
            if stats is not None:
                stats.json_s += time.perf_counter() - decoding

    def props(self) -> dict[str, Any]:
        if self._props is None:
            try:
                response = self._http.get("/props")
                self._props = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                self._props = {}
        return self._props

    @property
    def n_ctx(self) -> int | None:
        value = self.props().get("default_generation_settings", {}).get("n_ctx")
        return int(value) if isinstance(value, int) else None

    @property
    def slots(self) -> int:
        value = self.props().get("total_slots")
        return int(value) if isinstance(value, int) and value > 0 else 1

    def tokenize(self, text: str) -> list[int]:
        data = self._post("/tokenize", {"content": text, "add_special": True, "parse_special": True})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise KldError(f"{self.label}: /tokenize answered {str(data)[:200]!r}, not {{'tokens': [ids]}}")
        return tokens

    def render(self, doc: Document) -> str:
        """A chat rendered with the server's chat template (``/apply-template``); plain text as it is."""
        if not doc.is_chat:
            return doc.text
        messages = [{"role": r, "content": c} for r, c in doc.messages]
        data = self._post("/apply-template", {"messages": messages})
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(prompt, str):
            raise KldError(f"{self.label}: /apply-template answered {str(data)[:200]!r}, not {{'prompt': text}}")
        # The template ends with the assistant's turn opened for a reply: the conversation is complete, so
        # that trailing generation prompt is not text to predict. It is kept: it is what a real request sends.
        return prompt

    def top_k(self, prefixes: Sequence[Sequence[int]], k: int, *, slot: int | None, stats: FetchStats) -> list[Any]:
        """The top-*k* lists after each prefix, in order (raw ``top_logprobs`` entries)."""
        body: dict[str, Any] = {
            "prompt": [list(p) for p in prefixes],
            "n_predict": 1,
            "n_probs": k,
            "cache_prompt": True,
            "temperature": 0.0,
            "top_k": 1,
            "response_fields": ["completion_probabilities", "index", "timings/prompt_n", "timings/prompt_ms"],
        }
        if slot is not None:
            body["id_slot"] = slot
        data = self._post("/completion", body, stats)
        results = data if isinstance(data, list) else [data]
        if len(results) != len(prefixes):
            raise KldError(f"{self.label}: /completion answered {len(results)} results for {len(prefixes)} prompts")
        results.sort(key=lambda r: r.get("index", 0) if isinstance(r, dict) else 0)
        out = []
        for r in results:
            probs = r.get("completion_probabilities") if isinstance(r, dict) else None
            if not probs or not isinstance(probs, list) or "top_logprobs" not in probs[0]:
                raise KldError(
                    f"{self.label}: {self.base_url}/completion returned no completion_probabilities with n_probs={k}; "
                    "a KLD measurement needs a llama-server that reports next-token log-probabilities "
                    f"(answer: {str(r)[:200]!r})"
                )
            out.append(probs[0]["top_logprobs"])
            stats.evaluated += int(r.get("timings/prompt_n") or 0)
            stats.server_ms += float(r.get("timings/prompt_ms") or 0.0)
        stats.requests += 1
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


def fetch(server: KldServer, corpus: Tokenized, k: int, stats: FetchStats | None = None) -> TopK:
    """The top-*k* lists at every scored position of *corpus*, all documents concatenated in order."""
    if k < 1:
        raise KldError(f"K={k}: ask for at least the top 1 token")
    stats = stats if stats is not None else FetchStats()
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
    started = time.perf_counter()
    if slots > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(slots) as pool:
            futures = [
                pool.submit(server.top_k, [p for p, _ in job], k, slot=j % slots, stats=stats)
                for j, job in enumerate(jobs)
            ]
            answers = [f.result() for f in futures]
    else:
        answers = [server.top_k([p for p, _ in job], k, slot=None, stats=stats) for job in jobs]
    rows = [
        entry
        for job, answer in zip(jobs, answers, strict=True)
        for (_, keep), entry in zip(job, answer, strict=True)
        if keep
    ]
    parsed_at = time.perf_counter()
    topk = _to_topk(rows, k, server.label)
    stats.parse_s += time.perf_counter() - parsed_at
    stats.wall_s += time.perf_counter() - started
    stats.positions += len(rows)
    return topk


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


__all__ = ["BATCH_POSITIONS", "DEFAULT_K", "FetchStats", "KldServer", "Positions", "Tokenized", "fetch", "tokenize"]
