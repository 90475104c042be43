"""A stand-in server *process* for the lifecycle tests of server.py and sharing.py.

The start/ready/stop machinery is about processes, ports and signals, not models: this script is a real
process that listens on a real port, answers ``/health`` with 200, and can be told to misbehave the way
servers do (ignore SIGTERM, leave a child behind). It never produces figures.

    python fake_server.py --port N [--host H] [--ignore-sigterm K] [--child] [--health-status S]

``--ignore-sigterm K`` ignores the first K SIGTERMs (logging each); ``--child`` starts a helper process in
the same process group that ignores SIGTERM altogether and prints ``child pid N``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

# The helper ignores SIGTERM, as a stuck worker would; it gives up by itself after a minute at most.
CHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ignore-sigterm", type=int, default=0)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--health-status", type=int, default=200)
    args = parser.parse_args()

    received = 0

    def on_term(signum: int, frame: object) -> None:
        nonlocal received
        received += 1
        if received <= args.ignore_sigterm:
            print(f"ignored SIGTERM {received}", flush=True)
            return
        print(f"exiting on SIGTERM {received}", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    if args.child:
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        print(f"child pid {child.pid}", flush=True)

    status = args.health_status

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            code = status if self.path == "/health" else 404
            payload = b'{"status":"ok"}' if code == 200 else b'{"status":"no"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = HTTPServer((args.host, args.port), Handler)
    print(f"listening on {args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
