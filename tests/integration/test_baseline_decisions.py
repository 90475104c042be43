"""Verdicts against a baseline on the real tiny pair, default options: Q4_0 must not replace F16, Q8_0 may."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SUITE = Path(__file__).parents[2] / "example_suites" / "tiny"
# The tiny suite records every item it asks (1,500 over 15 iterations, the same draw on every preset), so
# the default 2-point margin is settled on items; as five pass/fail levels it would need ~60 iterations.


def run(tmp_path: Path, server: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(server)}
    argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q", "--iterations", "15",
            "--quantgate-dir", str(tmp_path), *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_q4_0_is_not_non_inferior_to_f16_on_the_hard_level(llama_server_bin: Path, tmp_path: Path) -> None:
    proc = run(tmp_path, llama_server_bin, "--preset", "tiny-f16", "--preset", "tiny-q4_0", "--baseline", "tiny-f16")
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:]
    assert "quantgate::verdict[tiny-q4_0 vs tiny-f16]" in out.split("short test summary info")[-1]  # a failed outcome
    verdict = next(line for line in out.splitlines() if line.startswith("verdict "))
    assert verdict.startswith("verdict keep"), verdict
    assert "items (" in verdict and "pairs)" in verdict  # how many items and pairs decided it
    assert "test_add_three_terms[" in verdict  # items of the level that carries the difference are named


def test_q8_0_may_replace_f16(llama_server_bin: Path, tmp_path: Path) -> None:
    proc = run(tmp_path, llama_server_bin, "--preset", "tiny-f16", "--preset", "tiny-q8_0", "--baseline", "tiny-f16")
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:]
    verdict = next(line for line in out.splitlines() if line.startswith("verdict "))
    assert verdict.startswith("verdict swap"), verdict
    assert " items (" in verdict  # decided on items, with the default margin
    [stored] = (tmp_path / "results" / "tiny-q8_0").glob("*.json")  # the latest clean run of (preset, suite)
    assert stored.name.startswith("test_tiny-")
    assert json.loads(stored.read_text())["complete"] is True


def test_a_stored_baseline_by_preset_id(llama_server_bin: Path, tmp_path: Path) -> None:
    first = run(tmp_path, llama_server_bin, "--preset", "tiny-f16")
    assert first.returncode == 0, first.stdout[-3000:]
    [stored] = (tmp_path / "results" / "tiny-f16").glob("*.json")
    first_run = json.loads(stored.read_text())["run_id"]
    second = run(tmp_path, llama_server_bin, "--preset", "tiny-q8_0", "--baseline", "tiny-f16")
    assert second.returncode == 0, second.stdout[-4000:]
    assert "against the baseline tiny-f16" in second.stdout
    assert f"baseline: {stored} (run {first_run}, started " in second.stdout


@pytest.mark.parametrize(("candidate", "verdict", "status"), [("tiny-q8_0", "swap", 0), ("tiny-q4_0", "keep", 1)])
def test_sequential_stops_early_with_the_verdicts_exit_status_and_complete_results(
    llama_server_bin: Path, tmp_path: Path, candidate: str, verdict: str, status: int
) -> None:
    proc = run(tmp_path, llama_server_bin, "--preset", "tiny-f16", "--preset", candidate, "--baseline", "tiny-f16",
               "--sequential")  # fmt: skip
    out = proc.stdout
    assert proc.returncode == status, out[-4000:]  # the verdict's, never 2 ("interrupted")
    assert "Interrupted" not in out
    line = next(line for line in out.splitlines() if line.startswith("verdict "))
    assert line.startswith(f"verdict {verdict}: "), line
    assert "sequential test after" in line
    results = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/result.json")}
    cand = results[candidate]
    assert cand["complete"] is True
    assert cand["iterations_planned"] == 15 and cand["iterations_run"] < 15
    assert cand["stopped_early"].startswith(f"{verdict}: ")
    assert {g["id"] for g in cand["gates"]} >= {"score_mean>=90", "tps_mean>=50"}  # the gates were evaluated
