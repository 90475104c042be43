"""A scripted OpenAI-compatible peer on 127.0.0.1 that answers each prompt from a fixed script.

It exists only to show that each example suite's validators pass a right answer and fail a wrong one: the
peer plays a model whose answers are known in advance (a "good" script of known-good answers, a "bad"
script of known-bad ones, and one script per malformed answer). It never produces figures: its token
counts and ``timings`` are placeholders (1 ms per token, set high enough to clear any speed gate of the
example suites), and no test may read a speed, a score or a memory figure from it as a measurement.
Everything the plugin measures comes from a real server.

It uses nothing but the standard library (``http.server`` in a thread). A script maps a *fingerprint* (a
distinctive substring of a level's prompt) to an :class:`Answer`; the request's messages (or raw prompt)
are searched for every fingerprint (runs of whitespace count as one space), and exactly one must match.
Each script is a path prefix, so one peer serves them all: ``peer.url("good")`` is a base URL whose
``/v1/chat/completions`` answers from the "good" script. ``/health`` (with or without the prefix) answers
200. Streaming follows llama-server: ``data: {...}`` chunks with ``choices[0].delta`` (``reasoning_content``
first, then ``content``), a final chunk with ``finish_reason``, one with ``usage`` and ``timings``, then
``data: [DONE]``; without ``stream`` the whole message comes as one JSON body.

An unknown script, or a prompt that no fingerprint (or more than one) matches, is an HTTP 404 whose body
says which: the level then errors, so a prompt edited without its script cannot pass for a miss.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

CHUNK_CHARS = 24  # the answer is streamed in pieces of this many characters, as a server would


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted reply: the message ``content``, the thinking model's ``reasoning_content``, and the
    ``finish_reason`` ("length" plays an answer cut off at max_tokens)."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str = "stop"


Script = dict[str, Answer]


def _prompt_text(body: Mapping[str, Any]) -> str:
    """Everything the request asks: the raw prompt, or every message's text."""
    if "prompt" in body:
        return str(body["prompt"])
    parts = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts
            parts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
        elif content is not None:
            parts.append(str(content))
    return "\n".join(parts)


def _pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), CHUNK_CHARS):
        yield text[start : start + CHUNK_CHARS]


def _placeholder_usage(answer: Answer, prompt: str) -> tuple[dict[str, int], dict[str, float]]:
    """Token counts and llama-server-style timings. Placeholders, not measurements (see the module doc)."""
    completion = max(2, (len(answer.content) + len(answer.reasoning)) // 4)
    prompt_tokens = max(1, len(prompt) // 4)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    timings = {
        "prompt_n": prompt_tokens,
        "prompt_ms": float(prompt_tokens),
        "prompt_per_second": 1000.0,
        "predicted_n": completion,
        "predicted_ms": float(completion),
        "predicted_per_second": 1000.0,
    }
    return usage, timings


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest's output clean

    def do_GET(self) -> None:
        if self.path == "/health" or self.path.endswith("/health"):
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": {"code": 404, "message": f"no such path {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        name, _, rest = self.path.lstrip("/").partition("/")
        self.server.requests.append((name, "/" + rest, body))
        chat = rest == "v1/chat/completions"
        if not chat and rest != "v1/completions":
            self._reply(404, {"error": {"code": 404, "message": f"no such endpoint /{rest}"}})
            return
        script = self.server.scripts.get(name)
        if script is None:
            known = ", ".join(sorted(self.server.scripts))
            self._reply(404, {"error": {"code": 404, "message": f"no script named {name!r}; scripts: {known}"}})
            return
        prompt = _prompt_text(body)
        # Whitespace is folded on both sides: a prompt re-wrapped at another width keeps its fingerprint.
        folded = " ".join(prompt.split())
        matches = [fingerprint for fingerprint in script if " ".join(fingerprint.split()) in folded]
        if len(matches) != 1:
            what = "no fingerprint" if not matches else f"{len(matches)} fingerprints ({', '.join(matches)})"
            message = f"script {name!r}: {what} matches the prompt {prompt[:120]!r}"
            self._reply(404, {"error": {"code": 404, "message": message}})
            return
        answer = script[matches[0]]
        if body.get("stream"):
            self._stream(answer, prompt, chat=chat)
        else:
            self._whole(answer, prompt, chat=chat)

    def _whole(self, answer: Answer, prompt: str, *, chat: bool) -> None:
        usage, timings = _placeholder_usage(answer, prompt)
        if chat:
            message = {"role": "assistant", "content": answer.content, "reasoning_content": answer.reasoning}
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": answer.finish_reason}
        else:
            choice = {"index": 0, "text": answer.content, "finish_reason": answer.finish_reason}
        self._reply(200, {"object": "chat.completion", "choices": [choice], "usage": usage, "timings": timings})

    def _stream(self, answer: Answer, prompt: str, *, chat: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def choice(key: str, piece: str) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {key: piece}, "finish_reason": None}
            return {"index": 0, "text": piece, "finish_reason": None}

        if chat:
            for piece in _pieces(answer.reasoning):
                self._event({"choices": [choice("reasoning_content", piece)]})
        for piece in _pieces(answer.content):
            self._event({"choices": [choice("content", piece)]})
        last = {"index": 0, "delta": {}, "finish_reason": answer.finish_reason}
        if not chat:
            last = {"index": 0, "text": "", "finish_reason": answer.finish_reason}
        self._event({"choices": [last]})
        usage, timings = _placeholder_usage(answer, prompt)
        self._event({"choices": [], "usage": usage, "timings": timings})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _reply(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, obj: object) -> None:
        self._chunk(f"data: {json.dumps(obj)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    scripts: dict[str, Script]
    requests: list[tuple[str, str, dict[str, Any]]]


class ScriptedPeer:
    """The running peer: :meth:`url` gives the base URL of one script."""

    def __init__(self, scripts: Mapping[str, Mapping[str, Answer | str]]) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.scripts = {}
        self._server.requests = []
        for name, script in scripts.items():
            self.add(name, script)
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-peer", daemon=True)

    def add(self, name: str, script: Mapping[str, Answer | str]) -> str:
        """Add (or replace) the script ``name``; a plain string is an answer's content. Returns its URL."""
        if not name or "/" in name:
            raise ValueError(f"script names are one path segment, got {name!r}")
        self._server.scripts[name] = {
            fingerprint: answer if isinstance(answer, Answer) else Answer(answer)
            for fingerprint, answer in script.items()
        }
        return self.url(name)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(script, path, JSON body) of every POST received, in order."""
        return self._server.requests

    def url(self, name: str) -> str:
        if name not in self._server.scripts:
            raise ValueError(f"unknown script {name!r}; scripts: {', '.join(sorted(self._server.scripts))}")
        return f"{self.root}/{name}"

    def start(self) -> ScriptedPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
