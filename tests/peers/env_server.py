"""A loopback peer that answers ``/health`` and, at ``/env``, the environment it was started with (JSON).

A real llama-server cannot show the environment it got; this peer stands in for the pinning tests of
gpu/pinning.py only, to see which visibility variables a pinned preset's server is started with. It never
produces figures.

    python env_server.py --port N [--host H]
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    body = json.dumps(dict(os.environ)).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            payload = body if self.path == "/env" else b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    HTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
