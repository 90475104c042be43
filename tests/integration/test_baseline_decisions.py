"""Verdicts against a baseline on the real tiny pair: Q4_0 must not replace F16, Q8_0 may."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SUITE = Path(__file__).parents[2] / "example_suites" / "tiny"
# Five pass/fail levels over 15 iterations resolve differences of roughly 10-18 points (docs/statistics.md,
# benchmarks/bench_sequential.py); a 2-point margin would leave even F16 against itself inconclusive.
MARGIN = "15"


def run(tmp_path: Path, server: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(server)}
    argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q", "--iterations", "15",
            "--quantgate-dir", str(tmp_path), *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_q4_0_is_not_non_inferior_to_f16_on_the_hard_level(llama_server_bin: Path, tmp_path: Path) -> None:
    proc = run(tmp_path, llama_server_bin, "--preset", "tiny-f16", "--preset", "tiny-q4_0",
               "--baseline", "tiny-f16", "--margin", MARGIN)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:]
    assert "quantgate::verdict[tiny-q4_0 vs tiny-f16]" in out.split("short test summary info")[-1]  # a failed outcome
    verdict = next(line for line in out.splitlines() if line.startswith("verdict "))
    assert verdict.startswith(("verdict keep", "verdict inconclusive")), verdict  # never swap
    assert "test_add_three_terms" in verdict  # the level that carries the difference is named


def test_q8_0_may_replace_f16(llama_server_bin: Path, tmp_path: Path) -> None:
    proc = run(tmp_path, llama_server_bin, "--preset", "tiny-f16", "--preset", "tiny-q8_0",
               "--baseline", "tiny-f16", "--margin", MARGIN)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:]
    verdict = next(line for line in out.splitlines() if line.startswith("verdict "))
    assert verdict.startswith("verdict swap"), verdict
    [stored] = (tmp_path / "results" / "tiny-q8_0").glob("*.json")  # the latest clean run of (preset, suite)
    assert stored.name.startswith("test_tiny-")
    assert json.loads(stored.read_text())["complete"] is True


def test_a_stored_baseline_by_preset_id(llama_server_bin: Path, tmp_path: Path) -> None:
    first = run(tmp_path, llama_server_bin, "--preset", "tiny-f16")
    assert first.returncode == 0, first.stdout[-3000:]
    [stored] = (tmp_path / "results" / "tiny-f16").glob("*.json")
    first_run = json.loads(stored.read_text())["run_id"]
    second = run(tmp_path, llama_server_bin, "--preset", "tiny-q8_0", "--baseline", "tiny-f16", "--margin", MARGIN)
    assert second.returncode == 0, second.stdout[-4000:]
    assert "against the baseline tiny-f16" in second.stdout
    assert f"baseline: {stored} (run {first_run}, started " in second.stdout
