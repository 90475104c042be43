"""A loopback peer for the lane suite's "cannot be measured" paths, which a real llama-server never takes.

It exists only because llama-server always sends ``timings`` and always has ``/tokenize``, ``/props`` and
``/slots``: the lane suite must still say which figures another OpenAI-compatible server cannot give, and
measure the rest. It never produces figures a test may read as a measurement: its answers are streamed
placeholders (one character per token, no pacing), and tests only check *which* figures are present.

Each mode is a path prefix (``peer.url("no-timings")``):

``no-timings``
    ``/tokenize`` (one token per byte), ``/props`` and ``/slots`` like llama-server's, and completions
    without ``timings``.
``openai-only``
    completions without ``timings``, and 404 for ``/tokenize``, ``/props`` and ``/slots``, as a plain
    OpenAI-compatible server answers.

``/health`` answers 200 in every mode. Standard library only (``http.server`` in a thread).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("no-timings", "openai-only")
_PROPS = {"total_slots": 1, "default_generation_settings": {"n_ctx": 4096, "params": {"speculative.types": "none"}},
          "model_path": "placeholder.gguf", "build_info": "lane-peer"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _route(self) -> tuple[str, str]:
        mode, _, rest = self.path.lstrip("/").partition("/")
        return mode, rest

    def do_GET(self) -> None:
        mode, rest = self._route()
        if self.path == "/health" or rest == "health":
            self._reply(200, {"status": "ok"})
        elif mode == "no-timings" and rest == "props":
            self._reply(200, _PROPS)
        elif mode == "no-timings" and rest == "slots":
            self._reply(200, [{"id": 0, "n_ctx": 4096, "speculative": False, "is_processing": False}])
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        mode, rest = self._route()
        if mode == "no-timings" and rest == "tokenize":
            self._reply(200, {"tokens": list(str(body.get("content", "")).encode())})
        elif mode in MODES and rest == "v1/completions":
            self._complete(body)
        else:
            self._reply(404, {"error": "not found"})

    def _complete(self, body: dict[str, object]) -> None:
        raw = body.get("max_tokens")
        n = raw if isinstance(raw, int) and raw > 0 else 16
        prompt = body.get("prompt")
        usage = {"prompt_tokens": len(prompt) if isinstance(prompt, list | str) else 0, "completion_tokens": n}
        if not body.get("stream"):
            choice = {"index": 0, "text": "x" * n, "finish_reason": "length"}
            self._reply(200, {"choices": [choice], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(n):
            finish = "length" if i == n - 1 else None
            self._chunk({"choices": [{"index": 0, "text": "x", "finish_reason": finish}]})
        self._chunk({"choices": [], "usage": usage})
        self._write(b"data: [DONE]\n\n")
        self._write(b"")

    def _chunk(self, event: object) -> None:
        self._write(b"data: " + json.dumps(event).encode() + b"\n\n")

    def _write(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _reply(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LanePeer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url(mode)`` is a base URL."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lane-peer", daemon=True)

    def url(self, mode: str) -> str:
        assert mode in MODES, mode
        return f"http://127.0.0.1:{self._server.server_address[1]}/{mode}"

    def start(self) -> LanePeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

