"""A loopback peer that answers ``/completion`` like an OpenAI-compatible server that is not llama-server: text,
and no ``completion_probabilities``. A real llama-server always reports them when asked (``n_probs``), so this
case cannot be produced with one on demand. ``/tokenize`` answers the UTF-8 bytes of the text. It never produces
figures. Standard library only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class JsonHandler(BaseHTTPRequestHandler):
    """Quiet, and answers JSON (the base of the KLD peers' handlers)."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, payload: object, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackPeer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 served from a thread while the ``with`` block runs."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        self._reply({"total_slots": 1, "default_generation_settings": {"n_ctx": 4096}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/tokenize":
            self._reply({"tokens": list(body.get("content", "").encode())})
        else:
            prompts = body.get("prompt", [])
            self._reply([{"index": i, "content": "x"} for i in range(len(prompts))])


class NoProbsPeer(LoopbackPeer):
    def __init__(self) -> None:
        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), _Handler))
