"""A loopback peer that answers ``/completion`` like an OpenAI-compatible server that is not llama-server: text,
and no ``completion_probabilities``. A real llama-server always reports them when asked (``n_probs``), so this
case cannot be produced with one on demand. ``/tokenize`` answers the UTF-8 bytes of the text. It never produces
figures. Standard library only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._reply({"total_slots": 1, "default_generation_settings": {"n_ctx": 4096}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/tokenize":
            self._reply({"tokens": list(body.get("content", "").encode())})
        else:
            prompts = body.get("prompt", [])
            self._reply([{"index": i, "content": "x"} for i in range(len(prompts))])

    def _reply(self, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class NoProbsPeer:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> NoProbsPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
