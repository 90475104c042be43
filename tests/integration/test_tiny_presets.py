"""The shipped tiny presets against the real llama-server: they load, answer, report timings, and score
what the manifest says they score."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import LOG_TAIL_LINES, ServerProcess, spec_for
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


def _run_suite(server: Path, suite: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """A pytest run of *suite* on tiny-f16, started as from a terminal: Ctrl-C (SIGINT) at its default.

    A shell without job control starts background commands (``make test &``, many CI scripts) with SIGINT
    ignored, and every process below inherits that: Python then never installs its KeyboardInterrupt
    handler, and the SIGINT this test sends would be discarded.
    """
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(server), "QG_MARKER": str(tmp_path / "marker")}
    argv = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "--preset", "tiny-f16",
            "--rootdir", str(tmp_path), *args]  # fmt: skip
    return subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_sigint_at_default,
    )


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    """Until the level under test writes *path* (generous: CI machines are shared and may be slow)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before the level got there:\n{proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"the level did not write {path} within {timeout} s"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str], server_state: Path | None) -> None:
    """Whatever happened: no run and no server (stopped or not) outlive the test."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    if server_state is not None and server_state.exists():
        pid = json.loads(server_state.read_text())["pid"]
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)


def _samples(tmp_path: Path) -> list[dict]:
    stream = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/result.jsonl"))
    return [json.loads(line)["sample"] for line in stream.read_text().splitlines() if '"sample"' in line]


CTRL_C_SUITE = """
import os, time, pytest
from pathlib import Path

@pytest.mark.level(points=1)
def test_busy(llm, quantgate_iteration):
    llm.complete('copy abc=')
    if quantgate_iteration == 2:
        Path(os.environ["QG_MARKER"]).touch()
        if WHERE == "sleeping":
            time.sleep(600)
        while True:  # "asking": Ctrl-C lands among streamed requests
            llm.complete('copy abc=')
"""


@pytest.mark.parametrize("where", ["sleeping", "asking"])
def test_ctrl_c_leaves_no_server_behind(llama_server_bin: Path, tmp_path: Path, where: str) -> None:
    suite = tmp_path / "test_busy.py"
    suite.write_text(f"WHERE = {where!r}\n" + CTRL_C_SUITE)
    proc = _run_suite(llama_server_bin, suite, tmp_path, "--iterations", "2")
    state = None
    try:
        _wait_for(tmp_path / "marker", proc)  # iteration 2's level is running
        state = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/server.json"))
        pid = json.loads(state.read_text())["pid"]
        assert _alive(pid)
        proc.send_signal(signal.SIGINT)
        # The level runs until interrupted: an interrupt that got lost shows as a timeout here.
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        assert not _alive(pid), "llama-server outlived the interrupted run"
        # Iteration 1 finished before the interrupt: its sample is on disk, and nothing of iteration 2.
        stream = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/result.jsonl"))
        assert stream.read_text().startswith('{"header"')
        assert [(s["iteration"], s["outcome"]) for s in _samples(tmp_path)] == [(1, "passed")]
    finally:
        _finish(proc, state)


STOPPING_SUITE = """
import os, signal, time, pytest
from pathlib import Path

@pytest.mark.level(points=1, timeout_s=TIMEOUT_S)
def test_first(llm, quantgate_server, quantgate_iteration):
    if quantgate_iteration == 2:
        os.kill(quantgate_server.info.pid, SIGNAL)
        Path(os.environ["QG_MARKER"]).write_text(repr(time.time()))
    llm.complete('copy abc=')

@pytest.mark.level(points=1, timeout_s=TIMEOUT_S)
def test_second(llm):
    llm.complete('copy abc=')
"""
TIMEOUT_S = 5
ITERATIONS = 10


def _log_lines_shown(out: str) -> int:
    """Lines of llama-server's log (``0.00.274.253 I srv ...``) quoted in a run's output."""
    return len(re.findall(r"^(?:E\s+)?\d+\.\d\d\.\d{3}\.\d{3} [DIWE] ", out, flags=re.MULTILINE))


def test_a_stopped_server_fails_the_remaining_levels_at_once(llama_server_bin: Path, tmp_path: Path) -> None:
    # SIGSTOP: the process is there, its port accepts connections, and nothing answers (as with a wedged GPU).
    suite = tmp_path / "test_stopping.py"
    suite.write_text(f"import signal\nTIMEOUT_S = {TIMEOUT_S}\nSIGNAL = signal.SIGSTOP\n" + STOPPING_SUITE)
    proc = _run_suite(llama_server_bin, suite, tmp_path, "--iterations", str(ITERATIONS))
    state = None
    try:
        _wait_for(tmp_path / "marker", proc)
        state = next(tmp_path.glob(".quantgate/runs/*/tiny-f16/server.json"))
        out, _ = proc.communicate(timeout=300)
        stopped_at = float((tmp_path / "marker").read_text())
        ended_after = time.time() - stopped_at
        assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]
        samples = _samples(tmp_path)
        assert [s["outcome"] for s in samples] == ["passed"] * 2 + ["error"] * (2 * ITERATIONS - 2), out[-3000:]
        timed_out, *remaining = samples[2:]
        base_url = json.loads(state.read_text())["base_url"]
        headline = (
            rf"preset 'tiny-f16': the server \(pid \d+, {re.escape(base_url)}\) has not answered since "
            rf"\d\d:\d\d:\d\d: a request sent then timed out, and GET {re.escape(base_url)}/health got no answer "
            r"within 5 s \(ReadTimeout\); the remaining levels of this preset fail at once"
        )
        assert re.search(headline, timed_out["error"]), timed_out["error"]
        assert timed_out["duration_s"] >= TIMEOUT_S  # the one request that found out
        for sample in remaining:
            assert re.search(headline, sample["error"]), sample["error"]
            assert sample["duration_s"] < TIMEOUT_S, sample  # failed at once, no request sent
        # Generous, for a busy machine: the 17 levels after the first would have waited 85 s more.
        assert ended_after < (2 * ITERATIONS - 3) * TIMEOUT_S / 2, out[-3000:]
        assert 0 < _log_lines_shown(out) <= LOG_TAIL_LINES, out  # the log tail once, not once per failed level
        assert out.count("(its last lines are shown with this preset's first failure)") >= 2 * ITERATIONS - 3
        assert not _alive(json.loads(state.read_text())["pid"]), "the stopped server outlived the run"
    finally:
        _finish(proc, state)


def test_a_dead_server_s_log_tail_is_shown_once(llama_server_bin: Path, tmp_path: Path) -> None:
    suite = tmp_path / "test_dying.py"
    suite.write_text(f"import signal\nTIMEOUT_S = {TIMEOUT_S}\nSIGNAL = signal.SIGKILL\n" + STOPPING_SUITE)
    proc = _run_suite(llama_server_bin, suite, tmp_path, "--iterations", "4")
    try:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]
        assert [s["outcome"] for s in _samples(tmp_path)] == ["passed"] * 2 + ["error"] * 6
        # The level that killed it may meet a reset connection first; the five after it fail on the dead server.
        assert out.count("is no longer running; the remaining levels of this preset fail at once") >= 5
        assert 0 < _log_lines_shown(out) <= LOG_TAIL_LINES, out  # it was shown once per failed level
    finally:
        _finish(proc, None)


KILLED_AFTER_ITS_REQUEST = """
import os, signal, time, pytest

@pytest.mark.level(points=1)
def test_first(llm, quantgate_server, quantgate_iteration):
    llm.complete('copy abc=')
    if quantgate_iteration == 2:
        os.kill(quantgate_server.info.pid, signal.SIGKILL)
        deadline = time.monotonic() + 120  # the kill has landed once the lease sees the process gone
        while quantgate_server.alive() and time.monotonic() < deadline:
            time.sleep(0.05)

@pytest.mark.level(points=1)
def test_second(llm):
    llm.complete('copy abc=')
"""


def test_a_server_found_dead_at_a_level_s_set_up_shows_its_log_tail(llama_server_bin: Path, tmp_path: Path) -> None:
    """The first failure is the next level's set-up (the llm fixture finds the server gone): its report
    carries the log's tail as a section. pytest.fail() in the fixture dropped it before."""
    suite = tmp_path / "test_killed.py"
    suite.write_text(KILLED_AFTER_ITS_REQUEST)
    proc = _run_suite(llama_server_bin, suite, tmp_path, "--iterations", "3")
    try:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]
        assert [s["outcome"] for s in _samples(tmp_path)] == ["passed"] * 3 + ["error"] * 3
        assert "ERROR at setup of test_second[iter-02]" in out
        assert "quantgate: last lines of the server log" in out
        assert 0 < _log_lines_shown(out) <= LOG_TAIL_LINES, out
    finally:
        _finish(proc, None)


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
