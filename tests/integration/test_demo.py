"""`make demo` (example_suites/demo.py): the designed decision reads as a success, anything else does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "example_suites" / "demo.py"


def demo(tmp_path: Path, server: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(server)}
    argv = [sys.executable, str(DEMO), "-p", "no:cacheprovider", "-q", "--quantgate-dir", str(tmp_path), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)


def test_the_demo_ends_in_its_decision_and_exits_0(llama_server_bin: Path, tmp_path: Path) -> None:
    proc = demo(tmp_path, llama_server_bin)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    # pytest itself still failed the kept candidate's verdict (what a CI gate reads) ...
    summary = out.split("short test summary info")[-1]
    assert "FAILED" in summary and "verdict[tiny-q4_0 vs tiny-f16]" in summary
    # ... and the last lines say in plain words what was decided.
    tail = out.split(" what was decided ")[-1]
    assert "tiny-q8_0 may replace tiny-f16 (swap)" in tail
    assert "tiny-q4_0 may not replace tiny-f16: keep tiny-f16 (keep)" in tail
    assert "The demo did its job." in tail
    assert "NOT" not in tail


def test_a_demo_that_decides_otherwise_fails_and_says_what_differed(llama_server_bin: Path, tmp_path: Path) -> None:
    # An impossible gate fails every preset (two iterations keep it short).
    proc = demo(tmp_path, llama_server_bin, "--iterations", "2", "--gate", "score_mean >= 101")
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:]
    tail = out.split(" what was decided ")[-1]
    assert "The demo did NOT behave as designed" in tail
    assert "Failed beyond the design: " in tail and "quantgate::tiny-f16::gate[score_mean>=101]" in tail
    assert "did its job" not in tail
