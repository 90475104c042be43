"""A deliberately broken OpenAI-compatible peer on 127.0.0.1, for the client's real-socket error paths.

It exists only because a real llama-server cannot be made to return a 500, a malformed body or a stalled
stream on demand, and those are exactly the failures the client must turn into clear errors. It never
produces figures: nothing it serves is measured, reported, compared or gated on, and no test may read a
speed, a score or a memory figure from it. Everything the plugin measures comes from a real server.

It uses nothing but the standard library (``http.server`` in a thread). Each failure mode is a path prefix,
so one peer serves them all: ``peer.url("status-500")`` is a base URL whose ``/v1/chat/completions``
answers HTTP 500. ``/health`` answers 200.

Modes:

``ok``
    a short, well-formed stream (or JSON body): the control that shows the socket path works, so the
    error tests cannot pass for an unrelated reason.
``status-500``
    HTTP 500 with an OpenAI-style error body.
``malformed-json``
    HTTP 200 whose JSON body is cut short.
``stall``
    a stream that sends its first chunk and then nothing; bounded: it gives up after
    :data:`STALL_LIMIT_S` seconds (or at once when the peer stops), so no test can hang on it.
``malformed-event``
    a stream whose second event is not JSON.
``drop``
    a stream whose connection is closed after the first chunk, without the end of the chunked body.
``no-end``
    a stream whose chunked body ends properly after the first chunk, with neither a ``finish_reason`` nor
    ``data: [DONE]``: the answer stopped mid-way though the HTTP message looks complete.
``http10``
    a whole stream in an HTTP/1.0 response, its body delimited by closing the connection: the control
    for ``http10-cut``.
``http10-cut``
    the same HTTP/1.0 close-delimited stream, closed after the first chunk: to HTTP the body is complete.
``trickle``
    a stream that sends its first chunk and then a ``: keep-alive`` comment every :data:`TRICKLE_EVERY_S`
    seconds; a request without ``stream`` gets a chunked JSON body whose leading whitespace trickles the
    same way. Each read is quick, so only a deadline on the whole request ends it. Bounded: it gives up
    after :data:`TRICKLE_LIMIT_S` seconds (or at once when the peer stops) by dropping the connection.
``json-for-stream``
    a plain ``application/json`` answer (the whole message) even to a streamed request.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

MODES = (
    "ok", "status-500", "malformed-json", "stall", "malformed-event", "drop",
    "no-end", "http10", "http10-cut", "trickle", "json-for-stream",
)  # fmt: skip
STALL_LIMIT_S = 5.0
TRICKLE_EVERY_S = 0.2
TRICKLE_LIMIT_S = 30.0

_FIRST = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
_SECOND = {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}
_WHOLE = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest's output clean

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b'{"status":"ok"}')
        else:
            self._reply(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        mode, _, rest = self.path.lstrip("/").partition("/")
        self.server.requests.append((mode, "/" + rest, body))
        if mode not in MODES or rest not in ("v1/chat/completions", "v1/completions"):
            self._reply(404, b'{"error":"no such mode"}')
            return
        if mode == "status-500":
            self._reply(500, b'{"error":{"code":500,"message":"simulated failure","type":"server_error"}}')
            return
        if mode == "malformed-json":
            self._reply(200, b'{"choices": [{"index": 0, "message": {"content": "Hel')
            return
        if mode == "trickle" and not body.get("stream"):
            self._start_chunked("application/json")
            self._trickle(b" ")
            return
        if mode == "json-for-stream" or not body.get("stream"):
            self._reply(200, json.dumps(_WHOLE).encode())
            return
        if mode.startswith("http10"):
            self._close_delimited(cut=mode == "http10-cut")
            return
        self._start_chunked("text/event-stream")
        self._chunk(_event(_FIRST))
        if mode == "trickle":
            self._trickle(b": keep-alive\n\n")
            return
        if mode == "no-end":
            self._chunk(b"")
            return
        if mode == "stall":
            self.server.stopping.wait(STALL_LIMIT_S)
            self.close_connection = True
            return
        if mode == "drop":
            self.close_connection = True  # no terminating chunk: the body ends mid-stream
            return
        if mode == "malformed-event":
            self._chunk(b'data: {"choices": [{"delta": {"content": "lo"}\n\n')
        else:
            self._chunk(_event(_SECOND))
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _trickle(self, filler: bytes) -> None:
        """Send ``filler`` every TRICKLE_EVERY_S until the client goes, the peer stops or the limit passes;
        then drop the connection without ending the body."""
        self.close_connection = True
        deadline = time.monotonic() + TRICKLE_LIMIT_S
        try:
            while time.monotonic() < deadline and not self.server.stopping.wait(TRICKLE_EVERY_S):
                self._chunk(filler)
        except OSError:
            pass  # the client hung up: what the test wanted

    def _close_delimited(self, *, cut: bool) -> None:
        """An HTTP/1.0 response: no length, no chunks, the body ends when the connection closes."""
        self.protocol_version = "HTTP/1.0"
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(_event(_FIRST))
        if not cut:
            self.wfile.write(_event(_SECOND) + b"data: [DONE]\n\n")
        self.wfile.flush()

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _event(obj: object) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    requests: list[tuple[str, str, dict[str, object]]]
    stopping: threading.Event


class BrokenPeer:
    """The running peer: :meth:`url` gives the base URL of one failure mode."""

    modes: ClassVar[tuple[str, ...]] = MODES

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.requests = []
        self._server.stopping = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, name="broken-peer", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str, dict[str, object]]]:
        """(mode, path, JSON body) of every POST received, in order."""
        return self._server.requests

    def url(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        return f"{self.root}/{mode}"

    def start(self) -> BrokenPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()  # releases stalled streams at once
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
