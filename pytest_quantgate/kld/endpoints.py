"""The few endpoints a KLD measurement needs, on one llama-server: its properties, vocabulary and
end-of-generation tokens, tokenizing and chat rendering, and the two ways of asking for top-K lists
(:meth:`KldServer.forced`, :meth:`KldServer.top_k`; :mod:`pytest_quantgate.kld.fetch` says when each is used).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from pytest_quantgate.errors import KldError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_quantgate.kld.corpus import Document


@dataclass(slots=True)
class FetchStats:
    """Where a fetch's time went (wall, the server's own time, JSON decoding), its requests and the tokens the
    server evaluated, and how the lists were asked for."""

    wall_s: float = 0.0
    server_ms: float = 0.0  # Σ the server's own time (prompt_ms, and predicted_ms of forced tokens)
    json_s: float = 0.0  # decoding the answers' JSON
    parse_s: float = 0.0  # turning the entries into arrays
    requests: int = 0
    evaluated: int = 0
    positions: int = 0
    method: str = ""  # "forced" or "prefixes" (see pytest_quantgate.kld.fetch)
    notes: list[str] = field(default_factory=list)

    def add(self, other: FetchStats) -> None:
        """Count *other*'s server time, decoding and requests in (requests answered on other threads)."""
        self.server_ms += other.server_ms
        self.json_s += other.json_s
        self.requests += other.requests
        self.evaluated += other.evaluated


class Refused(KldError):
    """The server answered a request with an HTTP error."""


class NotForced(KldError):
    """The server does not force a generation with a grammar of token ids (see :mod:`pytest_quantgate.kld.fetch`)."""


class KldServer:
    """The few endpoints a KLD measurement needs, on one llama-server."""

    def __init__(self, base_url: str, *, label: str, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.label = label
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._props: dict[str, Any] | None = None
        self._eog: tuple[frozenset[int] | None] | None = None
        self._vocab: tuple[int | None] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KldServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any], stats: FetchStats | None = None) -> Any:
        url = f"{self.base_url}{path}"
        content, headers = json.dumps(body), {"Content-Type": "application/json"}
        try:
            try:
                response = self._http.post(path, content=content, headers=headers)
            except httpx.RemoteProtocolError as exc:
                if "without sending a response" not in str(exc):
                    raise
                # llama-server closed a kept-alive connection that had been idle (several threads keep several
                # open): the request was never answered, so it is sent once more, on a fresh connection.
                response = self._http.post(path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise KldError(f"{self.label}: POST {url} failed: {exc!r}; is the server running?") from None
        if response.status_code != 200:
            raise Refused(f"{self.label}: POST {url} answered HTTP {response.status_code}: {response.text[:300]}")
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
    def n_vocab(self) -> int | None:
        """The model's vocabulary size (``/v1/models``), or None when the server does not say."""
        if self._vocab is None:
            try:
                data = self._http.get("/v1/models").json()
                value = data["data"][0]["meta"]["n_vocab"]
            except (httpx.HTTPError, ValueError, LookupError, TypeError):
                value = None
            self._vocab = (int(value) if isinstance(value, int) and value > 0 else None,)
        return self._vocab[0]

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
                raise self._no_probs(k, r)
            out.append(probs[0]["top_logprobs"])
            stats.evaluated += int(r.get("timings/prompt_n") or 0)
            stats.server_ms += float(r.get("timings/prompt_ms") or 0.0)
        stats.requests += 1
        return out

    def end_of_generation(self) -> frozenset[int] | None:
        """The token ids the server ends a generation at (EOS, end of turn, ...), or None when it does not say.

        A grammar must never force one of them (llama.cpp aborts when a grammar accepts one before it is
        complete), so forced generation stops in front of them. The server lists them itself: ``ignore_eos``
        biases exactly these tokens to -inf, and the answer's ``generation_settings`` shows that bias.
        """
        if self._eog is None:
            body = {"prompt": [0], "n_predict": 1, "ignore_eos": True, "cache_prompt": False,
                    "response_fields": ["generation_settings/logit_bias"]}  # fmt: skip
            try:
                data = self._post("/completion", body)
            except KldError:
                data = None
            answer = data[0] if isinstance(data, list) and data else data
            bias = answer.get("generation_settings/logit_bias") if isinstance(answer, dict) else None
            ids = [b.get("token") for b in bias if isinstance(b, dict)] if isinstance(bias, list) else []
            tokens = frozenset(i for i in ids if isinstance(i, int))
            self._eog = (tokens if tokens and len(tokens) == len(ids) else None,)
        return self._eog[0]

    def forced(
        self, prompt: Sequence[int], forced: Sequence[int], k: int, *, free_after: int | None, stats: FetchStats
    ) -> tuple[list[int], list[Any]]:
        """Generate *forced* after *prompt* (a grammar of token ids allows nothing else), then, with
        *free_after*, one more token that is not that one (so the lists of the position in front of an
        end-of-generation token come too): the tokens the server generated and, for each, the raw
        ``top_logprobs`` entries of the position that predicted it. Fewer tokens than asked when the server
        stopped early (a server-side cap on ``n_predict``)."""
        rule = [f"<[{t}]>" for t in forced] + ([f"!<[{free_after}]>"] if free_after is not None else [])
        body: dict[str, Any] = {
            "prompt": list(prompt),
            "n_predict": len(rule),
            "grammar": "root ::= " + " ".join(rule),
            "n_probs": k,
            "cache_prompt": False,
            "temperature": 0.0,
            "top_k": 1,
            "seed": 0,
            "return_tokens": True,
            "response_fields": [
                "completion_probabilities",
                "tokens",
                "timings/prompt_n",
                "timings/prompt_ms",
                "timings/predicted_n",
                "timings/predicted_ms",
            ],
        }
        data = self._post("/completion", body, stats)
        answer = data[0] if isinstance(data, list) and data else data
        probs = answer.get("completion_probabilities") if isinstance(answer, dict) else None
        if not probs or not isinstance(probs, list) or not isinstance(probs[0], dict) or "top_logprobs" not in probs[0]:
            raise self._no_probs(k, answer)
        tokens = answer.get("tokens")
        if not isinstance(tokens, list) or len(tokens) != len(probs):
            raise NotForced(f"{self.label}: /completion returned no generated token ids (return_tokens)")
        prompt_n, predicted_n = answer.get("timings/prompt_n"), answer.get("timings/predicted_n")
        stats.evaluated += int(prompt_n or 0) + max(int(predicted_n or 0) - 1, 0)  # the last one is not evaluated
        prompt_ms, predicted_ms = answer.get("timings/prompt_ms"), answer.get("timings/predicted_ms")
        stats.server_ms += float(prompt_ms or 0.0) + float(predicted_ms or 0.0)
        stats.requests += 1
        return tokens, [p.get("top_logprobs") for p in probs]

    def _no_probs(self, k: int, answer: object) -> KldError:
        return KldError(
            f"{self.label}: {self.base_url}/completion returned no completion_probabilities with n_probs={k}; "
            "a KLD measurement needs a llama-server that reports next-token log-probabilities "
            f"(answer: {str(answer)[:200]!r})"
        )


__all__ = ["FetchStats", "KldServer", "NotForced", "Refused"]
