"""What the hidden-test sandbox costs on top of the hidden tests' own run time. Never asserts timings.

    python benchmarks/bench_validators.py [--repeat 5]

V1  one level, sequential: wall time of run_hidden_tests() minus the pytest session time the reporter
    measured inside the child (the hidden tests' own run time). Goal: ≤ 0.5 s.
V2  the same with a level whose tests take ~1 s: the overhead should not grow with the tests.
V3  a bare ``python -m pytest`` in a temporary directory (no guards) over the same files: how much of V1 is
    the interpreter and pytest starting, which any child-process design pays.
V4  four validations at once (ThreadPoolExecutor): per-validation overhead, and the batch's wall time.

Prints medians of --repeat runs and their spread (min–max). On a busy 2-core machine expect noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_quantgate.validators import run_hidden_tests

CODE = """
def add(a, b):
    return a + b
"""
TESTS = """
from solution import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -2) == -3

def test_zero():
    assert add(0, 0) == 0
"""
SLOW_TESTS = (
    TESTS
    + """
import time

def test_slow():
    time.sleep(1.0)
    assert add(2, 2) == 4
"""
)


def _overhead(tests: str) -> tuple[float, float]:
    result = run_hidden_tests(CODE, tests)
    if not result.passed:
        raise SystemExit(f"the benchmark level failed: {result.reason}")
    assert result.tests_duration_s is not None
    return result.duration_s, result.duration_s - result.tests_duration_s


def _bare_pytest() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "solution.py").write_text(CODE)
        Path(tmp, "test_hidden.py").write_text(TESTS)
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hidden.py"],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
        )
        return time.monotonic() - start


def _parallel(width: int) -> tuple[list[float], float]:
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=width) as pool:
        overheads = [over for _, over in pool.map(lambda _: _overhead(TESTS), range(width))]
    return overheads, time.monotonic() - start


def _show(label: str, values: list[float], unit: str = "s") -> None:
    median = statistics.median(values)
    print(f"{label:<62} median {median:6.3f} {unit}   spread {min(values):.3f}–{max(values):.3f} (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (at least 3)")
    args = parser.parse_args()
    repeat = max(3, args.repeat)

    _overhead(TESTS)  # warm the page cache and learn which guard this machine gets
    probe = run_hidden_tests(CODE, TESTS)
    print(f"guards: {', '.join(probe.guards)}   network guard: {probe.network_guard}")

    walls, overheads = zip(*(_overhead(TESTS) for _ in range(repeat)), strict=True)
    _show("V1 one level: wall", list(walls))
    _show("V1 one level: overhead over the tests' own time (goal ≤ 0.5)", list(overheads))

    slow_walls, slow_overheads = zip(*(_overhead(SLOW_TESTS) for _ in range(repeat)), strict=True)
    _show("V2 ~1 s of tests: wall", list(slow_walls))
    _show("V2 ~1 s of tests: overhead over the tests' own time", list(slow_overheads))

    _show("V3 bare `python -m pytest` subprocess (no guards): wall", [_bare_pytest() for _ in range(repeat)])

    per_run: list[float] = []
    batches: list[float] = []
    for _ in range(repeat):
        overheads_4, batch = _parallel(4)
        per_run += overheads_4
        batches.append(batch)
    _show("V4 4 in parallel: overhead per validation", per_run)
    _show("V4 4 in parallel: wall of the batch of 4", batches)
    _show("V4 4 in parallel: batch wall / 4", [b / 4 for b in batches])


if __name__ == "__main__":
    main()
