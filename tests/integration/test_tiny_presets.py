"""The shipped tiny presets against the real llama-server: they load, answer, report timings, and score
what the manifest says they score."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import ServerProcess, spec_for
from pytest_quantgate.tinymodel import tasks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
PRESETS = ("tiny-f16", "tiny-q8_0", "tiny-q4_0")
# Items per task for the manifest check: enough to see a 10-point quant gap, quick on 2 cores.
CHECK_ITEMS = 60


@pytest.fixture(scope="module", params=PRESETS)
def served(request: pytest.FixtureRequest, llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    preset = resolve(request.param)
    log = tmp_path_factory.mktemp(preset.id) / "server.log"
    with (
        ServerProcess.start(spec_for(preset), log) as server,
        Client(server.base_url, defaults=preset.sampler.request_fields(), max_tokens=8) as client,
    ):
        yield preset, server, client


def test_preset_loads_fast_and_answers_with_server_timings(served) -> None:
    preset, server, client = served
    assert server.load_s is not None and server.load_s < preset.startup_timeout_s
    completion = client.complete(tasks.prompt("copy", "kqz"))
    assert completion.finish_reason == "stop"
    assert completion.ttft_s is not None and completion.ttft_s < completion.wall_s
    t = completion.timings
    assert t is not None
    assert t.prompt_n and t.prompt_n >= len("copy kqz=")
    assert t.predicted_n and t.predicted_n >= 1
    assert t.prompt_ms is not None and t.predicted_ms is not None


def test_chat_endpoint_answers_too(served) -> None:
    # No chat template in the tiny GGUFs: llama-server falls back to chatml. The answer is noise, but the
    # path (and content vs reasoning separation) must work on a real server.
    _, _, client = served
    completion = client.chat("copy abc=", max_tokens=4)
    assert completion.reasoning == ""
    assert completion.timings is not None


def test_held_out_accuracy_agrees_with_the_manifest(served, tiny_models: Path) -> None:
    preset, _, client = served
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    quant = preset.id.removeprefix("tiny-")
    expected = manifest["quants"][quant]["accuracy"]
    for task in tasks.TASKS:
        items = tasks.held_out_items(task, CHECK_ITEMS, seed=0)
        correct = sum(tasks.is_correct(task, item, client.complete(tasks.prompt(task, item)).content) for item in items)
        measured = 100 * correct / len(items)
        # Greedy and deterministic, but a 60-item subset of the manifest's items: allow sampling error.
        message = f"{preset.id} {task}: {measured:.1f} % vs manifest {100 * expected[task]:.1f} %"
        assert abs(measured - 100 * expected[task]) <= 12, message


def test_demo_suite_keeps_f16_and_rejects_q4_0(llama_server_bin: Path, tmp_path: Path) -> None:
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(llama_server_bin)}
    argv = [sys.executable, "-m", "pytest", str(ROOT / "example_suites" / "tiny"), "-p", "no:cacheprovider",
            "--preset", "tiny-f16", "--preset", "tiny-q4_0", "--iterations", "8",
            "--quantgate-dir", str(tmp_path), "-q"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    f16 = next(line for line in out.splitlines() if line.startswith("tiny-f16 "))
    q4 = next(line for line in out.splitlines() if line.startswith("tiny-q4_0 "))
    assert "PASS" in f16, out[-3000:]
    assert "FAIL" in q4, out[-3000:]
    assert "gate[score_mean>=90] failed: score mean" in out


def _has_a_sample(tmp_path: Path) -> bool:
    """Iteration 1's level is in the results stream (written as each sample arrives)."""
    stream = next(tmp_path.glob(".quantgate/runs/*/*/result.jsonl"), None)
    return stream is not None and '"sample"' in stream.read_text(encoding="utf-8")


def test_ctrl_c_leaves_no_server_behind(llama_server_bin: Path, tmp_path: Path) -> None:
    suite = tmp_path / "test_slow.py"
    suite.write_text(
        "import time, pytest\n"
        "@pytest.mark.level(points=1)\n"
        "def test_slow(llm, quantgate_iteration):\n"
        "    llm.complete('copy abc=')\n"
        "    if quantgate_iteration == 2:\n"
        "        time.sleep(60)\n"
    )
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(llama_server_bin)}
    argv = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "--preset", "tiny-f16",
            "--iterations", "2", "--rootdir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (state is None or not _has_a_sample(tmp_path)):
        state = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/server.json"), None)
        time.sleep(0.1)
    assert state is not None, "the server never started"
    time.sleep(1.0)  # inside iteration 2's sleep now
    pid = json.loads(state.read_text())["pid"]
    assert psutil.pid_exists(pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "llama-server outlived the interrupted run"
    # Iteration 1 finished before the interrupt: its sample is on disk.
    stream = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/result.jsonl"))
    lines = stream.read_text().splitlines()
    assert lines[0].startswith('{"header"')
    assert sum('"sample"' in line for line in lines) == 1


def test_base_url_attaches_to_a_running_server(llama_server_bin: Path, tmp_path: Path) -> None:
    preset = resolve("tiny-q8_0")
    suite = tmp_path / "test_attach.py"
    suite.write_text(
        "import pytest\n"
        "@pytest.mark.level(points=1)\n"
        "def test_copy(llm):\n"
        "    assert llm.complete('copy abc=', temperature=0).content == 'abc'\n"
    )
    with ServerProcess.start(spec_for(preset), tmp_path / "server.log") as server:
        argv = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "--base-url", server.base_url,
                "--iterations", "2", "--rootdir", str(tmp_path), "--gate", "score_mean>=100"]  # fmt: skip
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "external" in proc.stdout
        assert server.alive(), "attaching must not stop a server the run did not start"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
