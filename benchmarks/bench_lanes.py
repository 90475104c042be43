"""The lane suite's own cost against the real tiny llama-server (B7 of the benchmark protocol,
docs/benchmarks.md), side by side in one run. Prints medians of --repeat runs and their spread; never asserts.

    python benchmarks/bench_lanes.py [--repeat 3] [--requests 30] [--slots 2] [--breakdown]

B7a per request: the lane suite's fixed request (``example_suites/perf -k fixed_request``), --requests
    iterations, against a bare httpx loop sending the very same requests (the same token ids, lengths,
    ignore_eos, cache_prompt false, not streamed, as the lane sends them) on the same server in the same
    pytest run. For both, the milliseconds per request beyond the server's own prompt_ms + predicted_ms;
    the figure is the lane's minus the bare loop's (goal <= 1 ms).
    --breakdown adds where those milliseconds go, each from runs of its own on the same server and prompt: a
    plain pytest test per request (not a level) sending it with httpx, the same with quantgate's Client,
    and a minimal level (``llm.complete`` and nothing else), each --requests tests.
B7b N slots: the lane suite's slots_aggregate_tps on a --parallel N server against N bare concurrent
    httpx clients (one thread and one connection each, released together) sending the same requests, on the
    same server in the same run: the ratio lane / bare of the medians (goal >= 0.95).

The suite runs in this process (pytest.main), copied into a temporary directory beside one extra test file
that runs the bare loops first, through the lane suite's own fixtures (so the prompts are the same ids).
Run it on a quiet machine: a background build or training run slows llama-server several-fold.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bench_harness import BENCH_CONTEXT, bench_model, bench_preset, spread

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
PROMPT_TOKENS = 256
OUTPUT_TOKENS = 512

# The bare loops, on the lane suite's own server and prompt: half the rounds before test_lanes.py and half
# after it (file order), so that neither side has the server's first or last minutes to itself.
BARE = '''
import json, threading, time
import httpx

BODY = {body!r}


def one(client, ids, out):
    # The same single retry as quantgate's client when llama-server closed a kept-alive connection unanswered.
    try:
        return attempt(client, ids, out)
    except httpx.RemoteProtocolError:
        return attempt(client, ids, out)


def whole(client, ids, out):
    # The lane's fixed request is not streamed: one JSON answer.
    payload = {{**BODY, "prompt": ids, "max_tokens": out}}
    try:
        return client.post("/v1/completions", json=payload).json()["timings"]
    except httpx.RemoteProtocolError:
        return client.post("/v1/completions", json=payload).json()["timings"]


def attempt(client, ids, out):
    payload = {{**BODY, "prompt": ids, "max_tokens": out, "stream": True, "stream_options": {{"include_usage": True}}}}
    with client.stream("POST", "/v1/completions", json=payload) as response:
        timings = usage = None
        for line in response.iter_lines():
            if line.startswith("data: ") and line[6:] != "[DONE]":
                event = json.loads(line[6:])
                timings = event.get("timings", timings)
                usage = event.get("usage") or usage
    return timings, usage


def test_{order}_bare_loop(quantgate_server, lane_server, lane_lengths, lane_slots):
    ids = lane_server.prompt(lane_lengths.used.prompt, "bare")
    out = lane_lengths.used.output
    results = {{}}
    if {mode!r} == "sequential":
        server_ms = 0.0
        with httpx.Client(base_url=quantgate_server.base_url, timeout=120) as client:
            client.get("/health")
            started = time.perf_counter()
            for _ in range({n}):
                timings = whole(client, ids, out)
                server_ms += timings["prompt_ms"] + timings["predicted_ms"]
            results = {{"wall": time.perf_counter() - started, "server": server_ms / 1000}}
    else:
        rates = []
        for _ in range({n}):
            clients = [httpx.Client(base_url=quantgate_server.base_url, timeout=120) for _ in range(lane_slots)]
            for c in clients:
                c.get("/health")
            barrier = threading.Barrier(lane_slots + 1)
            tokens = [0] * lane_slots

            def stream(i):
                barrier.wait()
                _, usage = one(clients[i], ids, out)
                tokens[i] = usage["completion_tokens"]

            threads = [threading.Thread(target=stream, args=(i,)) for i in range(lane_slots)]
            for t in threads:
                t.start()
            barrier.wait()
            started = time.perf_counter()
            for t in threads:
                t.join()
            rates.append(sum(tokens) / (time.perf_counter() - started))
            for c in clients:
                c.close()
        results = {{"rates": rates}}
    with open({out!r}, "w") as fh:
        json.dump(results, fh)
'''

# B7a's breakdown: the lane's fixed request as a plain test with httpx, the same with quantgate's Client,
# and as a minimal level. The plain tests are not levels (no llm): they run before the levels, and each run
# selects one kind.
BREAKDOWN = '''
import json
import httpx
import pytest
from pytest_quantgate.client import Client

BODY = {body!r}
SERVER_MS = []


@pytest.fixture(scope="session")
def server_ms(quantgate_server):
    yield SERVER_MS
    with open({out!r}, "w") as fh:
        json.dump(SERVER_MS, fh)


@pytest.fixture(scope="session")
def httpx_client(quantgate_server):
    with httpx.Client(base_url=quantgate_server.base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def quantgate_client(quantgate_server):
    with Client(quantgate_server.base_url, timeout_s=120) as client:
        yield client


@pytest.mark.parametrize("i", range({n}))
def test_item_httpx(i, httpx_client, server_ms, lane_server, lane_lengths):
    ids = lane_server.prompt(lane_lengths.used.prompt, "breakdown")
    payload = {{**BODY, "prompt": ids, "max_tokens": lane_lengths.used.output}}
    timings = httpx_client.post("/v1/completions", json=payload).json()["timings"]
    server_ms.append(timings["prompt_ms"] + timings["predicted_ms"])


@pytest.mark.parametrize("i", range({n}))
def test_item_client(i, quantgate_client, server_ms, lane_server, lane_lengths):
    ids = lane_server.prompt(lane_lengths.used.prompt, "breakdown")
    answer = quantgate_client.complete(ids, **{{**BODY, "max_tokens": lane_lengths.used.output, "stream": False}})
    server_ms.append(answer.timings.prompt_ms + answer.timings.predicted_ms)


@pytest.mark.level(points=1)
def test_level_minimal(llm, lane_server, lane_lengths):
    ids = lane_server.prompt(lane_lengths.used.prompt, "breakdown")
    llm.complete(ids, max_tokens=lane_lengths.used.output, ignore_eos=True, cache_prompt=False, stream=False)
'''
BREAKDOWN_KINDS = {
    "item_httpx": "a plain test with httpx",
    "item_client": "a plain test with quantgate's Client",
    "level_minimal": "a minimal level (llm.complete only)",
}

_RUNS = itertools.count()


def _is_level(item: pytest.Item) -> bool:
    return "llm" in getattr(item, "fixturenames", ())


class _LevelWindow:
    """From the end of the first level's set-up to the start of the last level's teardown (levels: the tests
    that ask through ``llm``; the bare loops around them are left out). *timed* picks other tests instead."""

    def __init__(self, timed: Callable[[pytest.Item], bool] = _is_level) -> None:
        self.timed = timed
        self.started: float | None = None
        self.ended: float | None = None

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> object:
        result = yield
        if self.started is None and self.timed(item):
            self.started = time.perf_counter()
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if self.timed(item):
            self.ended = time.perf_counter()

    @property
    def seconds(self) -> float:
        assert self.started is not None and self.ended is not None, "the suite ran no level"
        return self.ended - self.started


def _combined(halves: list[dict]) -> dict:
    if "rates" in halves[0]:
        return {"rates": [rate for half in halves for rate in half["rates"]]}
    return {key: sum(half[key] for half in halves) for key in ("wall", "server")}


BODY = {"max_tokens": OUTPUT_TOKENS, "ignore_eos": True, "cache_prompt": False, "temperature": 0.0, "top_k": 1,
        "seed": 0}  # fmt: skip


def _suite(tmp: Path) -> tuple[Path, int]:
    """The lane suite copied into *tmp*, and the run's number (the suffix of its module names)."""
    suite = tmp / "perf"
    shutil.copytree(ROOT / "example_suites" / "perf", suite, ignore=shutil.ignore_patterns("__pycache__"))
    (suite / "pytest.ini").unlink()  # its quantgate_dir points into the repository
    # Fresh module names per run: pytest.main in one process keeps each test module it imported.
    run = next(_RUNS)
    (suite / "test_lanes.py").rename(suite / f"test_lanes_{run}.py")
    return suite, run


def _pytest(suite: Path, out_dir: str, preset: Path, n: int, slots: int, select: str, window: _LevelWindow) -> None:
    argv = [str(suite), "-q", "-p", "no:cacheprovider", "--import-mode", "importlib", "--rootdir", str(suite),
            "-k", select,
            "--iterations", str(n), "--quantgate-dir", out_dir,
            "--preset", str(preset), "--lane-prompt-tokens", str(PROMPT_TOKENS),
            "--lane-output-tokens", str(OUTPUT_TOKENS), "--lane-slots", str(slots)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()) as text:
        code = pytest.main(argv, plugins=[window])
    if code != 0:
        raise SystemExit(f"the lane suite failed ({code}):\n{text.getvalue()[-3000:]}")


def lane_run(preset: Path, mode: str, n: int, slots: int) -> tuple[dict, dict, float]:
    """(the result file, the bare loop's figures, the lane levels' window in seconds) of one pytest.main run."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        suite, run = _suite(tmp)
        outs = [tmp / "bare-before.json", tmp / "bare-after.json"]
        for order, rounds, out in (("0", n // 2, outs[0]), ("z", n - n // 2, outs[1])):
            text = BARE.format(body=BODY, mode=mode, n=rounds, out=str(out), order=order)
            (suite / f"test_{order}_bare_{run}.py").write_text(text)
        select = "fixed_request or bare" if mode == "sequential" else "slots or bare"
        window = _LevelWindow()
        _pytest(suite, tmp_name, preset, n, slots, select, window)
        result = json.loads(next(tmp.glob("runs/*/*/result.json")).read_text())
        return result, _combined([json.loads(out.read_text()) for out in outs]), window.seconds


def breakdown_run(preset: Path, kind: str, n: int) -> float:
    """Milliseconds per request beyond the server's time of n tests of *kind* (see BREAKDOWN_KINDS), one
    pytest.main run on the lane suite's server and prompt."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        suite, run = _suite(tmp)
        out = tmp / "server-ms.json"
        (suite / f"test_breakdown_{run}.py").write_text(BREAKDOWN.format(body=BODY, n=n, out=str(out)))
        window = _LevelWindow(lambda item: item.name.startswith(f"test_{kind}"))
        _pytest(suite, tmp_name, preset, n, 1, kind, window)
        if kind.startswith("level"):
            result = json.loads(next(tmp.glob("runs/*/*/result.json")).read_text())
            server_ms = [r["prompt_ms"] + r["predicted_ms"] for s in result["samples"] for r in s["requests"]]
        else:
            server_ms = json.loads(out.read_text())
        assert len(server_ms) == n, len(server_ms)
        return (1000 * window.seconds - sum(server_ms)) / n


def per_request(preset: Path, n: int) -> tuple[float, float]:
    """(lane ms per request beyond the server's time, bare loop's ditto)."""
    result, bare, window = lane_run(preset, "sequential", n, 1)
    requests = [r for s in result["samples"] for r in s["requests"]]
    assert len(requests) == n, len(requests)
    server = sum(r["prompt_ms"] + r["predicted_ms"] for r in requests) / 1000
    return 1000 * (window - server) / n, 1000 * (bare["wall"] - bare["server"]) / n


def slots_ratio(preset: Path, n: int, slots: int) -> tuple[float, float]:
    """(lane slots_aggregate_tps median, bare concurrent clients' median) over n rounds each."""
    result, bare, _ = lane_run(preset, "concurrent", n, slots)
    lane = [v for _, v in result["summary"]["measures"]["slots_aggregate_tps"]["per_iteration"]]
    return statistics.median(lane), statistics.median(bare["rates"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30, help="fixed requests (and slot rounds) per run")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--breakdown", action="store_true", help="also where B7a's milliseconds go (see above)")
    parser.add_argument(
        "--server-threads", type=int, default=2, help="the server's --threads (1 leaves the harness a core of its own)"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; tiny F16 model (context {BENCH_CONTEXT} per slot, server --threads "
          f"{args.server_threads}); {PROMPT_TOKENS} tokens in / {OUTPUT_TOKENS} out, ignore_eos")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = bench_model(tmp, BENCH_CONTEXT)
        one = bench_preset(tmp, model, context=BENCH_CONTEXT, parallel=1, threads=args.server_threads)
        many = bench_preset(tmp, model, context=BENCH_CONTEXT, parallel=args.slots, threads=args.server_threads)
        lane_run(one, "sequential", 2, 1)  # warm-up: imports happen once per process
        lane_ms, bare_ms, extra = [], [], []
        lane_tps, bare_tps, ratios = [], [], []
        parts: dict[str, list[float]] = {kind: [] for kind in BREAKDOWN_KINDS} if args.breakdown else {}
        for _ in range(args.repeat):
            lane, bare = per_request(one, args.requests)
            lane_ms.append(lane)
            bare_ms.append(bare)
            extra.append(lane - bare)
            lane_rate, bare_rate = slots_ratio(many, args.requests, args.slots)
            lane_tps.append(lane_rate)
            bare_tps.append(bare_rate)
            ratios.append(lane_rate / bare_rate)
            for kind, figures in parts.items():
                figures.append(breakdown_run(one, kind, args.requests))
    print(f"B7a ms per request beyond the server's time: lane suite {spread(lane_ms)}; bare httpx {spread(bare_ms)}; "
          f"lane - bare {spread(extra)} (goal <= 1 ms)")  # fmt: skip
    for kind, figures in parts.items():
        print(f"B7a breakdown, ms per request beyond the server's time, {BREAKDOWN_KINDS[kind]}: {spread(figures)}")
    print(f"B7b {args.slots}-slot aggregate tok/s: lane suite {spread(lane_tps)}; {args.slots} bare clients "
          f"{spread(bare_tps)}; ratio lane / bare {spread(ratios)} (goal >= 0.95)")  # fmt: skip


if __name__ == "__main__":
    main()
