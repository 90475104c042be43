"""A loopback peer that answers like a llama-server built before grammars of token ids (``<[id]>``): it
refuses such a grammar with HTTP 400, or (``ignore_grammar=True``) generates its own tokens regardless, as a
server that drops unknown fields would. A current llama-server cannot be made to do either. Everything else
a KLD fetch asks works: ``/v1/models`` (a 4-token vocabulary), ``/props``, ``/tokenize`` (one token per
character, ids modulo 4), ``/completion`` with one top-2 list per prompt, and ``ignore_eos`` naming token 3
as the end of generation. With ``drop_first=True`` it closes the connection of its first ``/completion``
unanswered, as llama-server does with a kept-alive connection it timed out. Standard library only."""

from __future__ import annotations

import json
import math
from http.server import ThreadingHTTPServer
from typing import Any

from peers.no_probs_server import JsonHandler, LoopbackPeer

HALF = math.log(0.5)


def _lists(prompt: list[int]) -> list[dict[str, Any]]:
    # The "model": the two likeliest next tokens are the last one and its successor, 50 % each.
    last = prompt[-1]
    return [{"id": last, "logprob": HALF, "token": "", "bytes": []},
            {"id": (last + 1) % 3, "logprob": HALF, "token": "", "bytes": []}]  # fmt: skip


class _Handler(JsonHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._reply({"data": [{"id": "old", "meta": {"n_vocab": 4}}]})
        else:
            self._reply({"total_slots": 1, "default_generation_settings": {"n_ctx": 4096}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/tokenize":
            self._reply({"tokens": [ord(c) % 3 for c in body.get("content", "")]})
            return
        self.server.completions += 1
        if self.server.drop_first and self.server.completions == 1:
            self.close_connection = True  # no answer at all: "Server disconnected without sending a response"
            return
        if body.get("ignore_eos"):
            self._reply({"generation_settings/logit_bias": [{"bias": None, "token": 3}]})
            return
        if "grammar" in body and not self.server.ignore_grammar:
            self._reply({"error": {"code": 400, "message": "failed to parse grammar"}}, status=400)
            return
        prompts = body["prompt"] if body["prompt"] and isinstance(body["prompt"][0], list) else [body["prompt"]]
        answers = []
        for i, prompt in enumerate(prompts):
            n = int(body.get("n_predict", 1))
            answers.append({
                "index": i,
                "tokens": [0] * n,  # its own choice, whatever was forced
                "completion_probabilities": [{"top_logprobs": _lists(prompt)} for _ in range(n)],
                "timings/prompt_n": 1,
                "timings/prompt_ms": 0.1,
            })  # fmt: skip
        self._reply(answers if len(answers) > 1 else answers[0])


class _Server(ThreadingHTTPServer):
    ignore_grammar = False
    drop_first = False
    completions = 0


class NoGrammarPeer(LoopbackPeer):
    def __init__(self, *, ignore_grammar: bool = False, drop_first: bool = False) -> None:
        self._peer = _Server(("127.0.0.1", 0), _Handler)
        self._peer.ignore_grammar = ignore_grammar
        self._peer.drop_first = drop_first
        super().__init__(self._peer)

    @property
    def completions(self) -> int:
        """How many ``/completion`` requests arrived (answered or not)."""
        return self._peer.completions
